-- Start an operator job (a dashboard's bulk requeue or removal) under a new id: running, run 1,
-- its lease ARGV[2] ms from now by Redis's clock. Records beyond the newest ARGV[3] are dropped,
-- oldest first, unless running under a live lease.
-- KEYS[1] jobs hash (id -> record JSON), KEYS[2] id counter
-- ARGV[1] spec (JSON text, kept as a string so its numbers are never re-encoded), ARGV[2] lease
--   ms, ARGV[3] records kept.
-- Returns the new id.
--- @include "lib/clock"

local now = now_ms()
local id = redis.call('INCR', KEYS[2])
local record = {
  id = id, spec = ARGV[1], state = 'running', run = 1, done = 0, startedAt = now,
  updatedAt = now, leaseUntil = now + tonumber(ARGV[2]), stopRequested = false,
}
redis.call('HSET', KEYS[1], id, cjson.encode(record))
local keep = tonumber(ARGV[3])
local excess = redis.call('HLEN', KEYS[1]) - keep
if excess > 0 then
  local ids = redis.call('HKEYS', KEYS[1])
  table.sort(ids, function(a, b) return tonumber(a) < tonumber(b) end)
  for i = 1, #ids do
    if excess <= 0 then break end
    local old = cjson.decode(redis.call('HGET', KEYS[1], ids[i]))
    if old.state ~= 'running' or old.leaseUntil <= now then
      redis.call('HDEL', KEYS[1], ids[i])
      excess = excess - 1
    end
  end
end
return id
