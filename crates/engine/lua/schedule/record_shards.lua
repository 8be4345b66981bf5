-- Records a schedule's shard count when nothing is recorded yet (the first instance to use the
-- schedule), so an instance configured with another count is refused.
-- KEYS[1] the shard count key ({keyPrefix}:shards)
-- ARGV[1] this instance's shard count
-- Returns the recorded count, this one when nothing was recorded.
local recorded = redis.call('GET', KEYS[1])
if recorded then return recorded end
redis.call('SET', KEYS[1], ARGV[1])
return ARGV[1]
