-- What is paused now (by Redis's clock): { topic or '*', until ms or 0, ... }.
-- KEYS[1] paused hash.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
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
