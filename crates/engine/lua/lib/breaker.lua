-- The breaker of each topic (config `breaker`, docs/breaker.md): its counts (included by push.lua
-- and ack.lua, each passing the breaker hash only while the breaker is on) and its gate (included
-- by lib/gate.lua: every claim decides the state and holds an open topic's messages).
-- The breaker hash of a shard holds
--   'w'            the window (ms) the claims count with; pushes and acks read it
--   'n\t' .. topic "width bucket fc ac fp ap ft at": failures and attempts of the window-long bucket of
--                  now (fc, ac) and of the one before (fp, ap), for a sliding window estimate, and
--                  totals since the field was made (ft, at), which the probes are judged by
--   's\t' .. topic "kind since mark fmark amark sent held released" while the breaker is not
--                  plainly closed: kind 'o' open, 'h' half-open (a round of probes out since
--                  mark), 'r' ramp (closed, held messages going out at a rising rate)
-- A failure: a push of a message whose incoming retryCount is 1 or more (a retry came back
-- failed). An attempt: a retry of the topic published (acked 'o' by a listener).
-- Topics are Kafka names here: no '\n' or '\\', so the stored form and the name are one.
--- @include "lib/tally"

local BREAKER_WINDOW = 30000 -- until a claim has written 'w'
local BREAKER_RAMP_WAKE = 200 -- ms between claims while a ramp releases messages

local function breaker_numbers(text)
  local out = {}
  for word in string.gmatch(text, '%S+') do
    out[#out + 1] = tonumber(word) or word
  end
  return out
end

-- The counters of `text` (or new ones) moved on to the bucket of `now`. A record keeps the
-- bucket width it was counted with: one counted with another width (a push before any claim
-- wrote 'w', or windowMs changed) starts again.
local function breaker_counters(text, now, width)
  local bucket = math.floor(now / width)
  local c = { w = width, b = bucket, fc = 0, ac = 0, fp = 0, ap = 0, ft = 0, at = 0 }
  if text then
    local v = breaker_numbers(text)
    c.ft, c.at = v[7] or 0, v[8] or 0
    if v[1] == width and v[2] == bucket then
      c.fc, c.ac, c.fp, c.ap = v[3], v[4], v[5], v[6]
    elseif v[1] == width and v[2] == bucket - 1 then
      c.fp, c.ap = v[3], v[4]
    end
  end
  return c
end

local function breaker_counters_text(c)
  return string.format('%d %d %d %d %d %d %d %d', c.w, c.b, c.fc, c.ac, c.fp, c.ap, c.ft, c.at)
end

-- `f` more failures and `a` more attempts of `topic`, gathered in `counts` while a script works.
local function breaker_add(counts, topic, f, a)
  local n = counts[topic]
  if not n then
    n = { f = 0, a = 0 }
    counts[topic] = n
  end
  n.f, n.a = n.f + f, n.a + a
end

-- Writes what breaker_add gathered into the breaker hash `key`: one HGET and one HSET per topic.
local function breaker_count(key, counts, now)
  local width
  for topic, n in pairs(counts) do
    width = width or tonumber(redis.call('HGET', key, 'w')) or BREAKER_WINDOW
    local field = 'n\t' .. topic
    local c = breaker_counters(redis.call('HGET', key, field), now, width)
    c.fc, c.ac, c.ft, c.at = c.fc + n.f, c.ac + n.a, c.ft + n.f, c.at + n.a
    redis.call('HSET', key, field, breaker_counters_text(c))
  end
end

-- The retryCount a pushed entry (its stored form without the due time) was stored with: the
-- incoming one + 1.
local function breaker_retry_count(tail)
  return tonumber(string.match(tail, '^[^\n]*\n[^\n]*\n[^\n]*\n(%d+)\n')) or 0
end

local function breaker_state(text)
  local v = breaker_numbers(text)
  return {
    k = v[1], since = v[2], mark = v[3], fmark = v[4], amark = v[5],
    sent = v[6], held = v[7], released = v[8],
  }
end

local function breaker_state_text(s)
  return string.format('%s %d %d %d %d %d %d %d', s.k, s.since, s.mark, s.fmark, s.amark, s.sent, s.held, s.released)
end

-- Held (parked) messages of `topic`.
local function breaker_parked(parked, topic)
  return redis.call('ZLEXCOUNT', parked, '[' .. topic .. '\n', '(' .. topic .. '\v')
end

-- Puts up to `n` held messages of `topic` back on the due set, due now, so this claim can take
-- them (probes, or the ramp's share).
local function breaker_release(keys, now, topic, n)
  local members = redis.call('ZRANGEBYLEX', keys.parked, '[' .. topic .. '\n', '(' .. topic .. '\v', 'LIMIT', 0, n)
  if #members == 0 then
    return
  end
  local due = {}
  local now_text = string.format('%d', now)
  for _, member in ipairs(members) do
    due[#due + 1] = now_text
    due[#due + 1] = string.sub(member, #topic + 2)
  end
  redis.call('ZADD', keys.due, unpack(due))
  redis.call('ZREM', keys.parked, unpack(members))
  tally_count('p', topic, -#members)
  tally_due(now, topic, #members)
end

-- Decides every topic's breaker for this claim (Redis's clock `now`, options "failureRatio
-- minFailures windowMs probeIntervalMs probeCount rampMs"). Sets gate.breaker: `held` topic ->
-- how many of its messages this claim may still let through (0: all held), the states to write
-- back and the transitions to report. Paused topics stay the pause's.
local function breaker_gate(gate, now, options)
  local o = breaker_numbers(options)
  local ratio, min_failures, window, interval, probes, ramp = o[1], o[2], o[3], o[4], o[5], o[6]
  local keys = gate.keys
  local flat = redis.call('HGETALL', keys.breaker)
  local counters, states, width = {}, {}, nil
  for i = 1, #flat, 2 do
    local field, value = flat[i], flat[i + 1]
    local head = string.sub(field, 1, 2)
    if field == 'w' then
      width = tonumber(value)
    elseif head == 'n\t' then
      counters[string.sub(field, 3)] = value
    elseif head == 's\t' then
      states[string.sub(field, 3)] = value
    end
  end
  if width ~= window then
    redis.call('HSET', keys.breaker, 'w', string.format('%d', window))
  end
  local b = { held = {}, let = {}, states = {}, events = {} }
  gate.breaker = b
  local topics = {}
  for topic in pairs(counters) do
    topics[topic] = true
  end
  for topic in pairs(states) do
    topics[topic] = true
  end
  for topic in pairs(topics) do
    -- Judged with the width the counts were made with (a push may count before a claim wrote 'w').
    local own = counters[topic] and tonumber(string.match(counters[topic], '^(%d+) ')) or window
    local c = breaker_counters(counters[topic], now, own)
    local weight = 1 - (now % own) / own
    local s = states[topic] and breaker_state(states[topic])
    local dirty = false
    if not s or s.k == 'r' then
      local failures = c.fc + c.fp * weight
      local attempts = c.ac + c.ap * weight
      if failures >= min_failures and failures >= ratio * attempts then
        s = { k = 'o', since = now, mark = now, fmark = c.ft, amark = c.at, sent = 0, held = 0, released = 0 }
        dirty = true
        b.events[#b.events + 1] = { 'open', topic, cjson.encode({
          failures = math.floor(failures + 0.5), attempts = math.floor(attempts + 0.5),
        }) }
      end
    end
    if s and s.k == 'o' and now >= s.mark + interval then
      -- A round of probes starts.
      s.k, s.mark, s.fmark, s.amark, s.sent = 'h', now, c.ft, c.at, 0
      dirty = true
    elseif s and s.k == 'h' and now >= s.mark + interval then
      local parked = breaker_parked(keys.parked, topic)
      if c.ft == s.fmark and (c.at > s.amark or (s.sent == 0 and parked == 0)) then
        -- Probes were published and none came back failed within the interval (or nothing is
        -- held to probe with): closed, the held messages go out over the ramp.
        b.events[#b.events + 1] = { 'close', topic, cjson.encode({
          openMs = now - s.since, held = parked,
        }) }
        s = { k = 'r', since = now, mark = now, fmark = c.ft, amark = c.at, sent = 0, held = parked, released = 0 }
        -- The outage's counts would open it again at once.
        c.fc, c.ac, c.fp, c.ap = 0, 0, 0, 0
        redis.call('HSET', keys.breaker, 'n\t' .. topic, breaker_counters_text(c))
      else
        -- A probe came back failed, or none was published (none went out, or those that did were
        -- dead-lettered, their retries spent): the next round.
        s.mark, s.fmark, s.amark, s.sent = now, c.ft, c.at, 0
      end
      dirty = true
    end
    if s and s.k == 'r' and now >= s.since + ramp then
      -- The ramp is over: closed; what is still held goes back like a resumed pause's (lib/gate).
      redis.call('HDEL', keys.breaker, 's\t' .. topic)
      s = nil
    end
    if s and not (gate.paused and gate.paused[topic]) then
      local allowance = 0
      local wake = s.mark + interval
      if s.k == 'h' then
        allowance = math.max(probes - s.sent, 0)
      elseif s.k == 'r' then
        -- A rate rising linearly over the ramp: the share released grows with the square of the
        -- time elapsed.
        local share = (now - s.since) / ramp
        allowance = math.max(math.ceil(s.held * share * share) - s.released, 0)
        wake = now + BREAKER_RAMP_WAKE
      end
      b.held[topic] = allowance
      b.states[topic] = { state = s, dirty = dirty }
      if allowance > 0 then
        breaker_release(keys, now, topic, allowance)
      end
      if not gate.wake or wake < gate.wake then
        gate.wake = wake
      end
    elseif s then
      b.states[topic] = { state = s, dirty = dirty }
    end
  end
end

-- Whether the breaker holds a claimed message of `topic` back (true: park it); counts the ones
-- it lets through.
local function breaker_parks(b, topic)
  local allowance = b.held[topic]
  if not allowance then
    return false
  end
  if allowance > 0 then
    b.held[topic] = allowance - 1
    b.let[topic] = (b.let[topic] or 0) + 1
    return false
  end
  return true
end

-- After the claim: the states written back (probes sent, ramp released) and the transitions as
-- the claim's reply carries them: { now, kind, topic, detail JSON, ... } in place of now.
local function breaker_close(gate, now, out)
  local b = gate.breaker
  for topic, entry in pairs(b.states) do
    local s, let = entry.state, b.let[topic] or 0
    if s.k == 'h' then
      s.sent = s.sent + let
    elseif s.k == 'r' then
      s.released = s.released + let
    end
    if entry.dirty or let > 0 then
      redis.call('HSET', gate.keys.breaker, 's\t' .. topic, breaker_state_text(s))
    end
  end
  if #b.events > 0 then
    local stamped = { now }
    for _, event in ipairs(b.events) do
      stamped[#stamped + 1] = event[1]
      stamped[#stamped + 1] = event[2]
      stamped[#stamped + 1] = event[3]
    end
    out[3] = stamped
  end
end
