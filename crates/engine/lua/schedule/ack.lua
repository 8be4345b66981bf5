-- Forget messages whose publish (or dead-lettering) the broker acknowledged.
-- Each group's messages still leased count once, as no longer leased and as published or
-- dead-lettered this minute (an id acked twice counts once).
-- Deleting only after the ack is what makes a crash mid-publish lose nothing.
-- While a message is stored, its entry itself drops a redelivered push (HSETNX); once it is
-- gone, an id derived from the payload's msgId ('m:') or a legacy bucket ('legacy:') is
-- remembered for the window, so a late redelivery is still dropped. Remembering it only now, not
-- at push, keeps scheduled messages from paying for the marker.
-- An 'm:' id is remembered in the seen bucket of now (lib/seen says how); legacy ids (any
-- length, rare) keep the sorted set.
-- KEYS[1] lease zset, KEYS[2] entries hash, KEYS[3] seen zset (legacy ids -> when acknowledged,
--   by Redis's clock; also the name the seen buckets start with), KEYS[4] failures hash
--   (release.lua's counts of publishes that failed with an error retrying cannot fix: forgotten
--   with the message), KEYS[5] topics hash, KEYS[6] history (lib/tally), KEYS[7] breaker hash,
--   only while the breaker is on (lib/breaker: each message published counts as an attempt)
-- ARGV[1] dedupe window ms, ARGV[2] how many groups follow, then per group 3 values: what
--   happened to its messages ('o' published, 'd' dead-lettered), their topic, how many; then the
--   ids, group after group.
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
local remembered = {}
local ids, seen = {}, {}
local groups = tonumber(ARGV[2])
for i = 3 + 3 * groups, #ARGV do
  local id = ARGV[i]
  ids[#ids + 1] = id
  if window > 0 and #id == 24 and string.sub(id, 1, 2) == 'm:' then
    remembered[#remembered + 1] = id
  elseif string.sub(id, 1, 2) == 'm:' or string.sub(id, 1, 7) == 'legacy:' then
    seen[#seen + 1] = now_text
    seen[#seen + 1] = id
  end
end
if #remembered > 0 then
  seen_add(bucket_key, remembered)
  -- The last id a bucket can take is acked just before (bucket + 1) * width.
  redis.call('PEXPIRE', bucket_key, string.format('%d', (bucket + 1) * width + window - now))
end
-- One ZREM per group: what it removed is what the group counts.
local attempts = {}
local first = 1
for g = 0, groups - 1 do
  local kind, topic, n = ARGV[3 + 3 * g], ARGV[4 + 3 * g], tonumber(ARGV[5 + 3 * g])
  local removed = 0
  for i = first, first + n - 1, STEP do
    removed = removed + redis.call('ZREM', KEYS[1], unpack(ids, i, math.min(i + STEP - 1, first + n - 1)))
  end
  if removed > 0 then
    tally_count('l', topic, -removed)
    tally_event(kind, topic, removed)
    if KEYS[7] and kind == 'o' then
      breaker_add(attempts, topic, 0, removed)
    end
  end
  first = first + n
end
for i = 1, #ids, STEP do
  local last = math.min(i + STEP - 1, #ids)
  if last >= first then
    -- Ids beyond the groups (none from this package) are forgotten too.
    redis.call('ZREM', KEYS[1], unpack(ids, math.max(i, first), last))
  end
  redis.call('HDEL', KEYS[2], unpack(ids, i, last))
end
-- Almost always absent: one EXISTS instead of an HDEL per step.
if redis.call('EXISTS', KEYS[4]) == 1 then
  for i = 1, #ids, STEP do
    redis.call('HDEL', KEYS[4], unpack(ids, i, math.min(i + STEP - 1, #ids)))
  end
end
if #seen > 0 then
  for i = 1, #seen, STEP do
    redis.call('ZADD', KEYS[3], unpack(seen, i, math.min(i + STEP - 1, #seen)))
  end
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. (now - window))
  redis.call('PEXPIRE', KEYS[3], math.max(window, 1))
end
tally_write(KEYS[5], KEYS[6], now)
if KEYS[7] then
  breaker_count(KEYS[7], attempts, now)
end
return #ids
