-- The job records with Redis's clock, so the reader tells a running job from an interrupted one
-- (its lease run out) by the same clock the leases were given by.
-- KEYS[1] jobs hash
-- ARGV[1] an id, or '' for every record.
-- Returns { now ms, record JSON, ... }.
--- @include "lib/clock"

local now = now_ms()
local out = { now }
if ARGV[1] ~= '' then
  local raw = redis.call('HGET', KEYS[1], ARGV[1])
  if raw then
    out[2] = raw
  end
  return out
end
for _, raw in ipairs(redis.call('HVALS', KEYS[1])) do
  out[#out + 1] = raw
end
return out
