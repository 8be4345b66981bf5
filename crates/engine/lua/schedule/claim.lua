-- Claim up to ARGV[1] due messages for one listener, atomically, under one lease: the batch.
-- Claim and lease happen in one script so two listeners can never take the same id; a batch
-- whose lease ran out (its listener died or stalled) is due again and its messages not yet
-- acknowledged are claimed first. "Due" and the lease deadline are Redis's clock, so listeners on
-- hosts whose clocks disagree agree on both. Records in the wake key when this listener next
-- looks, so a push due before then announces itself (push.lua).
-- One lease record per claim, not one per message: the batch's name in the lease set (scored by
-- its deadline) and its ids in the batches hash, written with one command each. An id leaves the
-- record when released (release.lua); an acknowledged one is known by its entry being gone
-- (ack.lua), and the record goes when the listener settled the whole batch.
-- Variadic commands over the whole batch, not one call per message: the claim is most of the
-- Redis work per fired message.
-- KEYS[1] due zset, KEYS[2] lease zset (batch name -> lease deadline ms; an id leased by a
--   release before 0.4 -> its deadline), KEYS[3] entries hash, KEYS[4] wake key, KEYS[5] paused
--   hash, KEYS[6] parked zset, KEYS[7] rate hash (the gates, lib/gate), KEYS[8] topics hash,
--   KEYS[9] history (lib/tally: a claim moves its topics' counts from scheduled to leased or
--   parked), KEYS[10] batches hash (batch name -> claim time ms '\n' its ids, '\n'-separated),
--   KEYS[11] breaker hash (lib/breaker)
-- ARGV[1] limit, ARGV[2] lease ms, ARGV[3] longest sleep of the listener (poll interval) ms,
--   ARGV[4] most messages published per second from this shard, 0 for no cap (lib/gate),
--   ARGV[5] the breaker's options, '' when it is off (lib/breaker)
-- Returns { lease deadline, next wake-up ms or false, Redis now ms, batch name or false, id1,
--   entry1, id2, entry2, ... }; when a breaker opened or closed, { now, kind, topic, detail
--   JSON, ... } in place of now.
--- @include "lib/clock"
--- @include "lib/tally"
--- @include "lib/gate"

redis.replicate_commands()
local now = now_ms()
local limit = tonumber(ARGV[1])
-- Operator gates (lib/gate): a pause holds the claim or parks a topic's messages; the rate cap
-- lowers the limit.
local gate_keys = { due = KEYS[1], paused = KEYS[5], parked = KEYS[6], rate = KEYS[7], breaker = KEYS[11] }
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

local now_text = string.format('%d', now)
-- A new batch's name: when it was claimed and its first id, unique among the batches leased
-- (the same id may be claimed again in the same ms after a release).
local function batch_name(first)
  local base = 'b:' .. now_text .. ':' .. first
  local name, n = base, 1
  while redis.call('HEXISTS', KEYS[10], name) == 1 do
    n = n + 1
    name = base .. ':' .. n
  end
  return name
end

-- A batch's record: its claim time, then its ids.
local function split(record)
  local parts = {}
  for part in string.gmatch(record, '[^\n]+') do
    parts[#parts + 1] = part
  end
  return parts
end

-- Lapsed leases first. Their ids that are no longer theirs are skipped below: acknowledged (no
-- entry) or stored again since (a push after the ack: due after the batch's claim, or in the
-- due set).
local claimed, claimed_since = {}, {}
local lapsed = limit > 0 and redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, limit) or {}
for _, member in ipairs(lapsed) do
  local room = limit - #claimed
  if room <= 0 then
    break
  end
  redis.call('ZREM', KEYS[2], member)
  if string.sub(member, 1, 2) == 'b:' then
    local record = redis.call('HGET', KEYS[10], member)
    redis.call('HDEL', KEYS[10], member)
    local parts = record and split(record) or {}
    local since = tonumber(parts[1])
    for i = 2, math.min(#parts, room + 1) do
      claimed[#claimed + 1] = parts[i]
      claimed_since[#claimed] = since
    end
    if #parts > room + 1 then
      -- Bounded claim: the rest stays lapsed, under a new name (its old owner's renewal, release
      -- and finish no longer find it).
      local rest = batch_name(parts[room + 2])
      redis.call('HSET', KEYS[10], rest, parts[1] .. '\n' .. table.concat(parts, '\n', room + 2))
      redis.call('ZADD', KEYS[2], string.format('%d', now), rest)
    end
  else
    -- Leased one by one by a release before 0.4.
    claimed[#claimed + 1] = member
  end
end
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

-- Whether id `i` of a lapsed batch was stored again after that batch's claim (its entry due
-- later, or it waits in the due set): then it is not that batch's to give.
local function newer(i, entry)
  local since = claimed_since[i]
  if since and string.sub(entry, 1, 1) ~= '{' then
    local due = tonumber(string.match(entry, '^[^\n]*'), 36)
    if due and due > since then
      return true
    end
  end
  return redis.call('ZSCORE', KEYS[1], claimed[i]) ~= false
end

local out = { deadline, false, now, false }
if #claimed > 0 then
  local entries = {}
  each_chunk(claimed, function(first, last)
    local part = redis.call('HMGET', KEYS[3], unpack(claimed, first, last))
    for j = 1, #part do
      entries[first + j - 1] = part[j]
    end
  end)
  local leased = {}
  for i, id in ipairs(claimed) do
    local entry = entries[i]
    if entry and i <= expired and newer(i, entry) then
      entry = nil
    end
    local raw_topic = entry and tally_topic(entry)
    if entry and not gate_parks(gate, id, raw_topic) then
      leased[#leased + 1] = id
      out[#out + 1] = id
      out[#out + 1] = entry
      if i > expired then
        tally_leased(due_at[i], tally_unescape(raw_topic))
      end
    elseif entry then
      -- Parked: still scheduled, and due (lib/tally). (An id without an entry has nothing to
      -- publish: dropped instead of claimed forever.)
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
  if #leased > 0 then
    local name = batch_name(leased[1])
    redis.call('HSET', KEYS[10], name, now_text .. '\n' .. table.concat(leased, '\n'))
    redis.call('ZADD', KEYS[2], deadline_text, name)
    out[4] = name
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
-- When this listener looks next. Several listeners overwrite each other; any of them wakes by
-- the time written, and the key outlives it by a second only, so a dead listener's plan
-- does not silence pushes for long.
local planned = now + tonumber(ARGV[3])
if out[2] and out[2] < planned then
  planned = out[2]
end
redis.call('SET', KEYS[4], string.format('%d', planned), 'PX', math.max(planned - now, 0) + 1000)
gate_close(gate, now, out, (#out - 4) / 2)
tally_write(KEYS[8], KEYS[9], now)
return out
