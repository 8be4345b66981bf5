-- Record one operator action in the schedule's audit stream, then hold the stream to its bounds:
-- the newest ARGV[7] entries, none older than ARGV[8] ms by Redis's clock, and the key itself
-- gone that long after its last write (a schedule no longer used keeps no trail forever).
-- KEYS[1] audit stream
-- ARGV[1] actor, ARGV[2] action, ARGV[3] target (JSON), ARGV[4] count, ARGV[5] outcome ('ok' or
-- an error code), ARGV[6] the error's message ('' for none), ARGV[7] most entries kept,
-- ARGV[8] longest age kept (ms).
-- Returns the new entry's id.
--- @include "lib/clock"

local now = now_ms()
-- The stream's own id ('*') stays increasing even if Redis's clock steps back; `at` is the time.
local id = redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[7], '*',
  'at', string.format('%d', now), 'actor', ARGV[1], 'action', ARGV[2], 'target', ARGV[3],
  'count', ARGV[4], 'outcome', ARGV[5], 'error', ARGV[6])
local oldest = now - tonumber(ARGV[8])
if oldest > 0 then
  redis.call('XTRIM', KEYS[1], 'MINID', string.format('%d', oldest))
end
redis.call('PEXPIRE', KEYS[1], ARGV[8])
return id
