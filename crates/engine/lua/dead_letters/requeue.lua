-- Move one dead letter back onto the schedule, atomically: it leaves the dead letter hash in the
-- same step as it is scheduled, so it is never in both and never in neither.
-- It is due ARGV[5] ms from now by Redis's clock (0: now).
-- KEYS[1] dead letter hash, KEYS[2] its time index, KEYS[3] due zset, KEYS[4] entries hash,
--   KEYS[5] wake key, KEYS[6] topics hash, KEYS[7] history (lib/tally), KEYS[8] the dead letter
--   hash's per topic counts
-- ARGV[1] dead letter field, ARGV[2] the dead letter as read (unchanged since?), ARGV[3] new id,
--   ARGV[4] the stored entry without its first field (the due time, written here), ARGV[5] delay
--   ms, ARGV[6] its topic
-- Returns 1 when moved, 0 when the dead letter is gone or changed since it was read.
--- @include "lib/clock"
--- @include "lib/base36"
--- @include "lib/counts"
--- @include "lib/tally"

redis.replicate_commands()
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then
  return 0
end
local now = now_ms()
local at = now + (tonumber(ARGV[5]) or 0)
redis.call('HSET', KEYS[4], ARGV[3], base36(at) .. '\n' .. ARGV[4])
redis.call('ZADD', KEYS[3], string.format('%d', at), ARGV[3])
redis.call('PUBLISH', KEYS[5], string.format('%d', at))
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
-- Scheduled again: counted as pushed (as on a cluster, where the push script stores it).
tally_pushed(at, ARGV[6])
tally_write(KEYS[6], KEYS[7], now)
count_add(KEYS[8], ARGV[6], -1)
return 1
