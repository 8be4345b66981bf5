-- A page of the audit stream, newest first: entries before the cursor, at or after ARGV[2], and
-- none older than the age the stream keeps (an entry past it may still wait for the next write's
-- trim: it is not shown).
-- KEYS[1] audit stream
-- ARGV[1] cursor: the id of the last entry of the previous page ('' for the newest),
-- ARGV[2] since (ms since the epoch, 0 for none), ARGV[3] most entries, ARGV[4] longest age (ms).
-- Returns XREVRANGE's reply: { { id, { field, value, ... } }, ... }.
--- @include "lib/clock"

local now = now_ms()
local min = math.max(tonumber(ARGV[2]), now - tonumber(ARGV[4]), 0)
local max = '+'
if ARGV[1] ~= '' then
  max = '(' .. ARGV[1]
end
return redis.call('XREVRANGE', KEYS[1], max, string.format('%d', min), 'COUNT', ARGV[3])
