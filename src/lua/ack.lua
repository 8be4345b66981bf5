-- Forget messages whose publish (or dead-lettering) the broker acknowledged.
-- KEYS[1] lease zset, KEYS[2] entries hash; ARGV ids.
-- Deleting only after the ack is what makes a crash mid-publish lose nothing.
for _, id in ipairs(ARGV) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('HDEL', KEYS[2], id)
end
return #ARGV
