-- Move one dead letter back onto the schedule, atomically: it leaves the dead letter hash in the
-- same step as it is scheduled, so it is never in both and never in neither.
-- KEYS[1] dead letter hash, KEYS[2] its time index, KEYS[3] due zset, KEYS[4] entries hash
-- ARGV[1] dead letter field, ARGV[2] the dead letter as read (unchanged since?), ARGV[3] new id,
-- ARGV[4] stored entry, ARGV[5] due ms
-- Returns 1 when moved, 0 when the dead letter is gone or changed since it was read.
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then
  return 0
end
redis.call('HSET', KEYS[4], ARGV[3], ARGV[4])
redis.call('ZADD', KEYS[3], ARGV[5], ARGV[3])
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
