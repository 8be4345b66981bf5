-- One more (or fewer) dead letter of a topic in a dead letter hash's per topic counts; a field
-- that reaches 0 is deleted. A script of one key: on a cluster the counts have a slot of their own.
-- KEYS[1] the counts hash; ARGV[1] topic, ARGV[2] how many more (negative: fewer).
if redis.call('HINCRBY', KEYS[1], ARGV[1], ARGV[2]) <= 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
end
return 1
