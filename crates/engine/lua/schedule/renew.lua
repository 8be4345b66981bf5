-- Extend the lease of a claimed batch whose publishes are still pending (or whose finished
-- messages wait for their settle), so no other listener claims and publishes them while the first
-- publish may still succeed.
-- Only a batch still in the lease set is extended: once its lease ran out and another claim took
-- its ids, it is gone (or renamed, claim.lua) and stays theirs.
-- KEYS[1] lease zset (batch name -> deadline)
-- ARGV[1] our batch's name, ARGV[2] lease ms.
-- Returns { new deadline, 1 when extended, 0 when the batch is no longer ours }.
--- @include "lib/clock"

redis.replicate_commands()
local now = now_ms()
local deadline = now + tonumber(ARGV[2])
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  redis.call('ZADD', KEYS[1], 'XX', string.format('%d', deadline), ARGV[1])
  return { deadline, 1 }
end
return { deadline, 0 }
