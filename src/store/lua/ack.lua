-- Forget messages whose publish (or dead-lettering) the broker acknowledged.
-- KEYS[1] lease zset, KEYS[2] entries hash, KEYS[3] seen zset (id -> when acknowledged, by
-- Redis's clock), KEYS[4] failures hash (release.lua's counts of publishes that failed with an
-- error retrying cannot fix: forgotten with the message)
-- ARGV[1] dedupe window ms, ARGV[2..] ids.
-- Deleting only after the ack is what makes a crash mid-publish lose nothing.
-- While a message is stored, its entry itself drops a redelivered push (HSETNX); once it is
-- gone, an id derived from the payload's msgId ('m:') or a legacy bucket ('legacy:') is
-- remembered in the seen set for the window, so a late redelivery is still dropped. Remembering
-- it only now, not at push, keeps scheduled messages from paying for the marker.
redis.replicate_commands()
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
-- Formatted once: a Lua number passed to redis.call is formatted with printf per argument.
local now_text = string.format('%d', now)
local window = tonumber(ARGV[1])
local STEP = 500 -- arguments per command, well under Lua's unpack limit
local ids, seen = {}, {}
for i = 2, #ARGV do
  local id = ARGV[i]
  ids[#ids + 1] = id
  if string.sub(id, 1, 2) == 'm:' or string.sub(id, 1, 7) == 'legacy:' then
    seen[#seen + 1] = now_text
    seen[#seen + 1] = id
  end
end
for i = 1, #ids, STEP do
  local last = math.min(i + STEP - 1, #ids)
  redis.call('ZREM', KEYS[1], unpack(ids, i, last))
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
return #ids
