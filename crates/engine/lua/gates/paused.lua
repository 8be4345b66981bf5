-- What is paused now (by Redis's clock).
-- KEYS[1] paused hash
-- ARGV none
-- Returns { topic or '*', until ms or 0, ... }.
--- @include "lib/clock"

local now = now_ms()
local out = {}
local flat = redis.call('HGETALL', KEYS[1])
for i = 1, #flat, 2 do
  local until_ms = tonumber(flat[i + 1]) or 0
  if until_ms == 0 or until_ms > now then
    out[#out + 1] = flat[i]
    out[#out + 1] = flat[i + 1]
  end
end
return out
