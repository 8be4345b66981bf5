-- Pause a topic, or with '*' the whole schedule, until ARGV[2] (ms since the epoch, by Redis's
-- clock; 0: until resumed). Claims read it (lib/gate): from the next claim on, no listener takes
-- the topic's messages; they stay stored and wait.
-- KEYS[1] paused hash
-- ARGV[1] topic or '*', ARGV[2] until ms or 0.
-- Returns Redis's clock now (ms), 0 when ARGV[2] is already past (nothing paused).
--- @include "lib/clock"

local now = now_ms()
local until_ms = tonumber(ARGV[2])
if until_ms > 0 and until_ms <= now then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return now
