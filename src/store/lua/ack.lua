-- Forget messages whose publish (or dead-lettering) the broker acknowledged.
-- KEYS[1] lease zset, KEYS[2] entries hash, KEYS[3] seen zset (id -> when acknowledged)
-- ARGV[1] now ms, ARGV[2] dedupe window ms, ARGV[3..] ids.
-- Deleting only after the ack is what makes a crash mid-publish lose nothing.
-- While a message is stored, its entry itself drops a redelivered push (HSETNX); once it is
-- gone, an id derived from the payload's msgId ('m:') or a legacy bucket ('legacy:') is
-- remembered in the seen set for the window, so a late redelivery is still dropped. Remembering
-- it only now, not at push, keeps scheduled messages from paying for the marker.
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local STEP = 500 -- arguments per command, well under Lua's unpack limit
local ids, seen = {}, {}
for i = 3, #ARGV do
  local id = ARGV[i]
  ids[#ids + 1] = id
  if string.sub(id, 1, 2) == 'm:' or string.sub(id, 1, 7) == 'legacy:' then
    seen[#seen + 1] = ARGV[1] -- the text as given: a Lua number would be formatted per id
    seen[#seen + 1] = id
  end
end
for i = 1, #ids, STEP do
  local last = math.min(i + STEP - 1, #ids)
  redis.call('ZREM', KEYS[1], unpack(ids, i, last))
  redis.call('HDEL', KEYS[2], unpack(ids, i, last))
end
if #seen > 0 then
  for i = 1, #seen, STEP do
    redis.call('ZADD', KEYS[3], unpack(seen, i, math.min(i + STEP - 1, #seen)))
  end
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. (now - window))
  redis.call('PEXPIRE', KEYS[3], math.max(window, 1))
end
return #ids
