-- Store and schedule a batch of messages, atomically per message. Concurrent pushToQueue calls
-- are gathered into one call of this script, so they share one round trip and one script run.
-- KEYS[1] due zset (id -> due ms), KEYS[2] entries hash (id -> stored entry), KEYS[3] seen zset
-- ARGV[1] now ms, ARGV[2] dedupe window ms, then per message 4 values:
--   id, due ms, stored entry, '1' when the id comes from the payload's msgId (a redelivery reuses it)
-- Returns one integer per message: 1 stored, 0 already pushed (a consumer redelivery): its entry
-- is still stored, or it was published within the window (see ack.lua).
local cutoff = tonumber(ARGV[1]) - tonumber(ARGV[2])
local stored = {}
for i = 3, #ARGV, 4 do
  local id, due, entry, dedupe = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local result = 1
  if dedupe == '1' then
    local seen = redis.call('ZSCORE', KEYS[3], id)
    if seen and tonumber(seen) >= cutoff then
      result = 0
    end
  end
  if result == 1 and redis.call('HSETNX', KEYS[2], id, entry) == 0 then
    result = 0
  end
  if result == 1 then
    redis.call('ZADD', KEYS[1], due, id)
  end
  stored[#stored + 1] = result
end
return stored
