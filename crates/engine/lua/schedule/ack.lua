-- Forget messages whose publish (or dead-lettering) the broker acknowledged, and with ARGV[3]
-- '1' the batch they were claimed in (claim.lua), once its listener settled all of it.
-- Each group's messages still stored count once, as no longer leased and as published or
-- dead-lettered this minute (an id acked twice counts once). Deleting the entry is what tells a
-- later claim of a lapsed batch that the id is done: the batch record is left as it is.
-- When the batch is no longer in the lease set (its lease ran out and another claim took its
-- ids), each id is looked at: one released back to the schedule meanwhile leaves it too.
-- Deleting only after the ack is what makes a crash mid-publish lose nothing.
-- While a message is stored, its entry itself drops a redelivered push (push.lua finds the id
-- stored); once it is gone, an id derived from the payload's msgId ('m:') or a legacy bucket
-- ('legacy:') is remembered for the window, so a late redelivery is still dropped. Remembering it
-- only now, not at push, keeps scheduled messages from paying for the marker.
-- An 'm:' id is remembered in the seen bucket of now (lib/seen says how); legacy ids (any
-- length, rare) keep the sorted set. The client sorts the ids into the two (store/schedule's
-- `SeenArgs`), the bucket's already grouped by field.
-- KEYS[1] lease zset (batch name -> deadline), KEYS[2] entries hash, KEYS[3] seen zset (legacy ids -> when acknowledged,
--   by Redis's clock; also the name the seen buckets start with), KEYS[4] failures hash
--   (release.lua's counts of publishes that failed with an error retrying cannot fix: forgotten
--   with the message), KEYS[5] topics hash, KEYS[6] history (lib/tally), KEYS[7] batches hash
--   (claim.lua), KEYS[8] due zset, KEYS[9] breaker hash, only while the breaker is on
--   (lib/breaker: each message published counts as an attempt)
-- ARGV[1] dedupe window ms, ARGV[2] the batch's name ('' for none known), ARGV[3] '1' to forget
--   the batch, ARGV[4] how many groups, ARGV[5] how many seen fields, ARGV[6] how many ids for
--   the seen sorted set; then per group 3 values: what happened to its messages ('o' published,
--   'd' dead-lettered), their topic, how many; then per seen field 2 values: the field and the
--   records of its ids joined (lib/seen, grouped by the client); then the ids for the sorted set;
--   then the ids, group after group.
-- Returns how many ids it was given.
--- @include "lib/clock"
--- @include "lib/tally"
--- @include "lib/seen"
--- @include "lib/breaker"

redis.replicate_commands()
local now = now_ms()
-- Formatted once: a Lua number passed to redis.call is formatted with printf per argument.
local now_text = string.format('%d', now)
local window = tonumber(ARGV[1])
local STEP = 500 -- arguments per command, well under Lua's unpack limit
local width = seen_width(window)
local bucket = math.floor(now / width)
local bucket_key = seen_bucket_key(KEYS[3], bucket)
local batch = ARGV[2]
local ours = batch ~= '' and redis.call('ZSCORE', KEYS[1], batch) ~= false
local groups, fields, set_ids = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local seen_from = 7 + 3 * groups
local set_from = seen_from + 2 * fields
-- The ids are read straight from ARGV: no copy per id.
local ids_from = set_from + set_ids
if fields > 0 then
  local names, records = {}, {}
  for f = 0, fields - 1 do
    names[f + 1] = ARGV[seen_from + 2 * f]
    records[f + 1] = ARGV[seen_from + 2 * f + 1]
  end
  seen_add(bucket_key, names, records)
  -- The last id a bucket can take is acked just before (bucket + 1) * width.
  redis.call('PEXPIRE', bucket_key, string.format('%d', (bucket + 1) * width + window - now))
end
-- One HDEL per group while the batch is ours: what it removed is what the group counts.
local attempts = {}
local first = ids_from
for g = 0, groups - 1 do
  local kind, topic, n = ARGV[7 + 3 * g], ARGV[8 + 3 * g], tonumber(ARGV[9 + 3 * g])
  local removed = 0
  if ours then
    for i = first, first + n - 1, STEP do
      removed = removed + redis.call('HDEL', KEYS[2], unpack(ARGV, i, math.min(i + STEP - 1, first + n - 1)))
    end
    tally_count('l', topic, -removed)
  else
    for i = first, first + n - 1 do
      local id = ARGV[i]
      -- Released back to the schedule after our lease ran out: it leaves the due set too.
      local due = redis.call('ZSCORE', KEYS[8], id)
      if redis.call('HDEL', KEYS[2], id) == 1 then
        removed = removed + 1
        if due then
          redis.call('ZREM', KEYS[8], id)
          tally_count('s', topic, -1)
          tally_due(tonumber(due), topic, -1)
        else
          tally_count('l', topic, -1)
        end
      end
      -- A lease taken one id at a time (a release before 0.4).
      redis.call('ZREM', KEYS[1], id)
    end
  end
  if removed > 0 then
    tally_event(kind, topic, removed)
    if KEYS[9] and kind == 'o' then
      breaker_add(attempts, topic, 0, removed)
    end
  end
  first = first + n
end
-- Ids beyond the groups (none from this package) are forgotten too.
for i = first, #ARGV, STEP do
  redis.call('HDEL', KEYS[2], unpack(ARGV, i, math.min(i + STEP - 1, #ARGV)))
end
if ours and ARGV[3] == '1' then
  redis.call('ZREM', KEYS[1], batch)
  redis.call('HDEL', KEYS[7], batch)
end
-- Almost always absent: one EXISTS instead of an HDEL per step.
if redis.call('EXISTS', KEYS[4]) == 1 then
  for i = ids_from, #ARGV, STEP do
    redis.call('HDEL', KEYS[4], unpack(ARGV, i, math.min(i + STEP - 1, #ARGV)))
  end
end
if set_ids > 0 then
  local now_ids = {}
  for i = set_from, ids_from - 1 do
    now_ids[#now_ids + 1] = now_text
    now_ids[#now_ids + 1] = ARGV[i]
  end
  for i = 1, #now_ids, STEP do
    redis.call('ZADD', KEYS[3], unpack(now_ids, i, math.min(i + STEP - 1, #now_ids)))
  end
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. (now - window))
  redis.call('PEXPIRE', KEYS[3], math.max(window, 1))
end
tally_write(KEYS[5], KEYS[6], now)
if KEYS[9] then
  breaker_count(KEYS[9], attempts, now)
end
return #ARGV - ids_from + 1
