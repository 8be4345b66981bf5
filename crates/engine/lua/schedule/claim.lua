-- Claim up to ARGV[1] due messages for one listener, atomically, with a lease.
-- Claim and lease happen in one script so two listeners can never take the same id; a message
-- whose lease ran out (its listener died or stalled) is due again and is claimed first. "Due"
-- and the lease deadline are Redis's clock, so listeners on hosts whose clocks disagree agree on
-- both. Records in the wake key when this listener next looks, so a push due before then
-- announces itself (push.lua).
-- Variadic commands over the whole batch, not one call per message: the claim is most of the
-- Redis work per fired message.
-- KEYS[1] due zset, KEYS[2] lease zset (id -> lease deadline ms), KEYS[3] entries hash,
--   KEYS[4] wake key, KEYS[5] paused hash, KEYS[6] parked zset, KEYS[7] rate hash (the gates,
--   lib/gate), KEYS[8] topics hash, KEYS[9] history (lib/tally: a claim moves its topics' counts
--   from scheduled to leased or parked), KEYS[10] breaker hash (lib/breaker)
-- ARGV[1] limit, ARGV[2] lease ms, ARGV[3] longest sleep of the listener (poll interval) ms,
--   ARGV[4] most messages published per second from this shard, 0 for no cap (lib/gate),
--   ARGV[5] the breaker's options, '' when it is off (lib/breaker)
-- Returns { lease deadline, next wake-up ms or false, Redis now ms, id1, entry1, id2, entry2, ... };
--   when a breaker opened or closed, { now, kind, topic, detail JSON, ... } in place of now.
--- @include "lib/clock"
--- @include "lib/tally"
--- @include "lib/gate"

redis.replicate_commands()
local now = now_ms()
local limit = tonumber(ARGV[1])
-- Operator gates (lib/gate): a pause holds the claim or parks a topic's messages; the rate cap
-- lowers the limit.
local gate_keys = { due = KEYS[1], paused = KEYS[5], parked = KEYS[6], rate = KEYS[7], breaker = KEYS[10] }
local gate = gate_open(gate_keys, now, limit, tonumber(ARGV[4]) or 0, ARGV[5])
limit = gate.limit
local deadline = now + tonumber(ARGV[2])
-- Formatted once: a Lua number passed to redis.call is formatted with printf per argument, which
-- showed up in profiles of the fire path when done per claimed message.
local deadline_text = string.format('%d', deadline)
local STEP = 500 -- arguments per command, well under Lua's unpack limit

local function each_chunk(list, fn)
  for i = 1, #list, STEP do
    fn(i, math.min(i + STEP - 1, #list))
  end
end

local claimed = limit > 0 and redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, limit) or {}
-- Claimed ids after this many came from the due set (the others were leased already); their due
-- times say which minute's count they leave (lib/tally).
local expired = #claimed
local due_at = {}
if #claimed < limit then
  local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'WITHSCORES', 'LIMIT', 0, limit - #claimed)
  if #due > 0 then
    -- The due ids are the lowest scores, so they are exactly the first ranks.
    redis.call('ZREMRANGEBYRANK', KEYS[1], 0, #due / 2 - 1)
    for i = 1, #due, 2 do
      claimed[#claimed + 1] = due[i]
      due_at[#claimed] = tonumber(due[i + 1])
    end
  end
end

local out = { deadline, false, now }
if #claimed > 0 then
  local entries = {}
  each_chunk(claimed, function(first, last)
    local part = redis.call('HMGET', KEYS[3], unpack(claimed, first, last))
    for j = 1, #part do
      entries[first + j - 1] = part[j]
    end
  end)
  local leases, orphans = {}, {}
  for i, id in ipairs(claimed) do
    local raw_topic = entries[i] and tally_topic(entries[i])
    if entries[i] and not gate_parks(gate, id, raw_topic) then
      leases[#leases + 1] = deadline_text
      leases[#leases + 1] = id
      out[#out + 1] = id
      out[#out + 1] = entries[i]
      if i > expired then
        tally_leased(due_at[i], tally_unescape(raw_topic))
      end
    else
      -- An id without an entry has nothing to publish: drop it instead of claiming it forever.
      -- (A parked one, gate_parks, leaves the lease set too.)
      orphans[#orphans + 1] = id
      if entries[i] then
        -- Parked: still scheduled, and due (lib/tally).
        local topic = tally_unescape(raw_topic)
        if i > expired then
          tally_due(due_at[i], topic, -1)
        else
          tally_count('l', topic, -1)
          tally_count('s', topic, 1)
        end
        tally_count('p', topic, 1)
      end
    end
  end
  each_chunk(leases, function(first, last)
    redis.call('ZADD', KEYS[2], unpack(leases, first, last))
  end)
  each_chunk(orphans, function(first, last)
    redis.call('ZREM', KEYS[2], unpack(orphans, first, last))
  end)
end

-- The earliest moment anything becomes claimable, so the listener sleeps exactly until then.
local next_due = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')[2]
local next_lease = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')[2]
if next_due and next_lease then
  out[2] = math.min(tonumber(next_due), tonumber(next_lease))
elseif next_due or next_lease then
  out[2] = tonumber(next_due or next_lease)
end
-- When this listener looks next. Several listeners overwrite each other; any of them wakes by
-- the time written, and the key outlives it by a second only, so a dead listener's plan
-- does not silence pushes for long.
local planned = now + tonumber(ARGV[3])
if out[2] and out[2] < planned then
  planned = out[2]
end
redis.call('SET', KEYS[4], string.format('%d', planned), 'PX', math.max(planned - now, 0) + 1000)
gate_close(gate, now, out, (#out - 3) / 2)
tally_write(KEYS[8], KEYS[9], now)
return out
