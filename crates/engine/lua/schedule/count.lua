-- Sizes of one schedule: scheduled, of those due now (Redis's clock), claimed, and how long the
-- oldest due message has waited past its due time (ms; 0 when none is due).
-- KEYS[1] due zset, KEYS[2] lease zset
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')[2]
local late = first and math.max(now - tonumber(first), 0) or 0
return {
  redis.call('ZCARD', KEYS[1]),
  redis.call('ZCOUNT', KEYS[1], '-inf', string.format('%d', now)),
  redis.call('ZCARD', KEYS[2]),
  late,
}
