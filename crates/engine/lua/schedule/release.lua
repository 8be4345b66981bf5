-- Put claimed messages back on the schedule (a failed publish, or close() before publishing),
-- without spending a retry, due ARGV[2] ms from now by Redis's clock.
-- Only ids of our batch still in the lease set move: if our lease ran out and another claim took
-- the batch, its ids are theirs now and moving them would let a third listener publish them too.
-- A moved id leaves the batch's record (claim.lua), so a claim of the batch after its lease ran
-- out does not take it from wherever it is by then.
-- With ARGV[3] > 0 each id's count goes up by one; an id that reaches it stays leased (ours) and
-- is returned, for the caller to dead-letter and then ack (ack.lua clears its count).
-- KEYS[1] due zset, KEYS[2] lease zset (batch name -> deadline), KEYS[3] wake key, KEYS[4]
--   failures hash (id -> publishes failed with an error retrying cannot fix), KEYS[5] topics
--   hash, KEYS[6] history (lib/tally), KEYS[7] batches hash (claim.lua)
-- ARGV[1] our batch's name, ARGV[2] delay ms, ARGV[3] maxPublishFailures, or 0 for a transient
--   failure (nothing counted), ARGV[4] '1' when the ids' publishes failed (counted in the
--   history), ARGV[5..] pairs of id and its topic.
-- Returns { moved, reached ids... }.
--- @include "lib/clock"
--- @include "lib/tally"

redis.replicate_commands()
local now = now_ms()
local due = string.format('%d', now + tonumber(ARGV[2]))
local moved = 0
local batch = ARGV[1]
local max = tonumber(ARGV[3])
local reached = {}
local failed = ARGV[4] == '1'
local record = redis.call('ZSCORE', KEYS[2], batch) and redis.call('HGET', KEYS[7], batch)
if not record then
  return { 0 }
end
-- The batch's ids (after its claim time), and which of them go.
local held, gone = {}, {}
local ids = {}
for part in string.gmatch(record, '[^\n]+') do
  ids[#ids + 1] = part
end
for i = 2, #ids do
  held[ids[i]] = true
end
for i = 5, #ARGV, 2 do
  local id, topic = ARGV[i], ARGV[i + 1]
  if held[id] and not gone[id] then
    if max > 0 and redis.call('HINCRBY', KEYS[4], id, 1) >= max then
      reached[#reached + 1] = id
    else
      gone[id] = true
      redis.call('ZADD', KEYS[1], due, id)
      moved = moved + 1
      tally_count('l', topic, -1)
      tally_count('s', topic, 1)
      tally_due(tonumber(due), topic, 1)
    end
    if failed then
      tally_event('f', topic, 1)
    end
  end
end
if moved > 0 then
  local kept = { ids[1] }
  for i = 2, #ids do
    if not gone[ids[i]] then
      kept[#kept + 1] = ids[i]
    end
  end
  redis.call('HSET', KEYS[7], batch, table.concat(kept, '\n'))
end
tally_write(KEYS[5], KEYS[6], now)
-- Announced like a push (push.lua), so another listener takes over if this one is closing.
if moved > 0 then
  local planned = redis.call('GET', KEYS[3])
  if not planned or tonumber(due) < tonumber(planned) then
    redis.call('PUBLISH', KEYS[3], due)
  end
end
return { moved, unpack(reached) }
