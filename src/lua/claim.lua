-- Claim up to ARGV[2] due messages for one listener, atomically, with a lease.
-- Claim and lease happen in one script so two listeners can never take the same id; a message
-- whose lease ran out (its listener died or stalled) is due again and is claimed first.
-- KEYS[1] due zset, KEYS[2] lease zset (id -> lease deadline ms), KEYS[3] entries hash
-- ARGV[1] now ms, ARGV[2] limit, ARGV[3] lease ms
-- Returns { lease deadline, next wake-up ms or false, id1, entry1, id2, entry2, ... }
local now = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local deadline = now + tonumber(ARGV[3])
local claimed = {}

local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, limit)
for _, id in ipairs(expired) do
  claimed[#claimed + 1] = id
end
if #claimed < limit then
  local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, limit - #claimed)
  for _, id in ipairs(due) do
    redis.call('ZREM', KEYS[1], id)
    claimed[#claimed + 1] = id
  end
end

local out = { deadline, false }
for _, id in ipairs(claimed) do
  local entry = redis.call('HGET', KEYS[3], id)
  if entry then
    redis.call('ZADD', KEYS[2], deadline, id)
    out[#out + 1] = id
    out[#out + 1] = entry
  else
    -- An id without an entry has nothing to publish: drop it instead of claiming it forever.
    redis.call('ZREM', KEYS[2], id)
  end
end

-- The earliest moment anything becomes claimable, so the listener sleeps exactly until then.
local next_due = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')[2]
local next_lease = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')[2]
if next_due and next_lease then
  out[2] = math.min(tonumber(next_due), tonumber(next_lease))
elseif next_due or next_lease then
  out[2] = tonumber(next_due or next_lease)
end
return out
