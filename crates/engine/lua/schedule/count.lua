-- Sizes of one schedule, by Redis's clock.
-- KEYS[1] due zset, KEYS[2] topics hash (lib/tally: 'l' .. topic, leased), KEYS[3] parked zset
--   (lib/gate: due messages a pause or a breaker holds)
-- ARGV none
-- Returns { scheduled, of those due now, claimed, how long the oldest due message has waited
--   past its due time (ms; 0 when none is due) }. Held messages are scheduled and due, as the
--   per topic counts have them, but not late: holding them is what was asked.
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
local held = redis.call('ZCARD', KEYS[3])
return {
  redis.call('ZCARD', KEYS[1]) + held,
  redis.call('ZCOUNT', KEYS[1], '-inf', string.format('%d', now)) + held,
  leased,
  late,
}
