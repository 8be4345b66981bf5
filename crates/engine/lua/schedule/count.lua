-- Sizes of one schedule, by Redis's clock.
-- KEYS[1] due zset, KEYS[2] topics hash (lib/tally: 'l' .. topic, leased)
-- ARGV none
-- Returns { scheduled, of those due now, claimed, how long the oldest due message has waited
--   past its due time (ms; 0 when none is due) }.
-- Claimed is the sum of the per topic leased counts: the lease set holds one record per batch.
--- @include "lib/clock"

local now = now_ms()
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')[2]
local late = first and math.max(now - tonumber(first), 0) or 0
local leased = 0
local cursor = '0'
repeat
  local page = redis.call('HSCAN', KEYS[2], cursor, 'MATCH', 'l*', 'COUNT', 1000)
  cursor = page[1]
  for i = 2, #page[2], 2 do
    leased = leased + tonumber(page[2][i])
  end
until cursor == '0'
return {
  redis.call('ZCARD', KEYS[1]),
  redis.call('ZCOUNT', KEYS[1], '-inf', string.format('%d', now)),
  leased,
  late,
}
