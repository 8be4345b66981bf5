-- Sizes of one schedule, by Redis's clock.
-- KEYS[1] due zset, KEYS[2] lease zset
-- ARGV none
-- Returns { scheduled, of those due now, claimed, how long the oldest due message has waited
--   past its due time (ms; 0 when none is due) }.
--- @include "lib/clock"

local now = now_ms()
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')[2]
local late = first and math.max(now - tonumber(first), 0) or 0
return {
  redis.call('ZCARD', KEYS[1]),
  redis.call('ZCOUNT', KEYS[1], '-inf', string.format('%d', now)),
  redis.call('ZCARD', KEYS[2]),
  late,
}
