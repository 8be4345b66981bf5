-- Redis's clock: the one time every script goes by, so hosts whose clocks disagree schedule,
-- lease and expire alike. The only place a script reads TIME.

-- Redis's clock now, ms since the epoch (TIME gives seconds and microseconds).
local function now_ms()
  local time = redis.call('TIME')
  return tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
end
