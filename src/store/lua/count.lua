-- Sizes of one schedule: scheduled, of those due now (Redis's clock), and claimed.
-- KEYS[1] due zset, KEYS[2] lease zset
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
return {
  redis.call('ZCARD', KEYS[1]),
  redis.call('ZCOUNT', KEYS[1], '-inf', string.format('%d', now)),
  redis.call('ZCARD', KEYS[2]),
}
