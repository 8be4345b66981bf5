-- Resume a topic, or with '*' the whole schedule; with no ARGV[1] every pause ends. The parked
-- messages of a resumed topic go back on the due set over the next claims (lib/gate), which the
-- announcement on the wake channel starts at once, in every listener process.
-- KEYS[1] paused hash, KEYS[2] wake key (the channel)
-- ARGV[1] topic, '*', or absent.
-- Returns how many pauses ended.
--- @include "lib/clock"

redis.replicate_commands()
local ended
if ARGV[1] then
  ended = redis.call('HDEL', KEYS[1], ARGV[1])
else
  ended = redis.call('HLEN', KEYS[1])
  redis.call('DEL', KEYS[1])
end
local now = now_ms()
redis.call('PUBLISH', KEYS[2], string.format('%d', now))
return ended
