-- Operator gates of a claim (included by claim.lua): pauses and the publish rate cap. Kept in a
-- file of its own so the claim itself stays what it was; claim.lua calls gate_open, gate_parks
-- and gate_close at three marked places.
-- The keys come from the claim, as a table `keys`: `due` the due zset, `paused` the paused hash
-- (topic, or '*' for the whole schedule -> until ms, 0 for no end), `parked` the parked zset
-- (score 0, member topic .. '\n' .. id: due messages of paused topics, taken out of the due set
-- so they neither block the claim nor get leased), `rate` the rate hash (tokens, at: the token
-- bucket of maxPublishRate).
-- `breaker` the breaker hash (lib/breaker), read only when the breaker is on.
-- Without pauses, a cap or the breaker this costs two O(1) calls per claim, not one per message.
--- @include "lib/tally"
--- @include "lib/breaker"

local DRAIN = 1000 -- parked messages of resumed topics put back per claim

-- Puts parked messages of topics no longer paused back on the due set (due now), DRAIN per call:
-- a resume (or an untilMs that passed) takes effect over the next claims.
local function gate_drain(keys, now, paused, held)
  local budget = DRAIN
  local from = '-'
  local now_text = string.format('%d', now)
  while budget > 0 do
    local first = redis.call('ZRANGEBYLEX', keys.parked, from, '+', 'LIMIT', 0, 1)[1]
    if not first then
      return
    end
    local topic = string.sub(first, 1, string.find(first, '\n', 1, true) - 1)
    -- '\v' follows '\n': the range of the members of this topic ends before it.
    local after = '(' .. topic .. '\v'
    if not paused[topic] and not held[topic] then
      local members = redis.call('ZRANGEBYLEX', keys.parked, '[' .. topic .. '\n', after, 'LIMIT', 0, budget)
      local due = {}
      for _, member in ipairs(members) do
        due[#due + 1] = now_text
        due[#due + 1] = string.sub(member, #topic + 2)
      end
      for i = 1, #members, 250 do
        local last = math.min(i + 249, #members)
        redis.call('ZADD', keys.due, unpack(due, 2 * i - 1, 2 * last))
        redis.call('ZREM', keys.parked, unpack(members, i, last))
      end
      -- Back in the due set, due now (lib/tally).
      tally_count('p', tally_unescape(topic), -#members)
      tally_due(now, tally_unescape(topic), #members)
      budget = budget - #members
    end
    from = after
  end
end

-- What this claim may take: { limit, paused topics (or nil), wake (ms or nil), tokens }, with
-- `keys` kept for gate_parks and gate_close. `rate`: most messages published per second from
-- this schedule (shard), 0 for no cap. `breaker`: the breaker's options (lib/breaker), '' when off.
local function gate_open(keys, now, limit, rate, breaker)
  local state = { limit = limit, keys = keys }
  local flat = redis.call('HGETALL', keys.paused)
  for i = 1, #flat, 2 do
    local until_ms = tonumber(flat[i + 1]) or 0
    if until_ms > 0 and until_ms <= now then
      redis.call('HDEL', keys.paused, flat[i])
    else
      state.paused = state.paused or {}
      state.paused[flat[i]] = true
      if until_ms > 0 and (not state.wake or until_ms < state.wake) then
        state.wake = until_ms
      end
    end
  end
  if state.paused and state.paused['*'] then
    state.limit = 0
    state.hold = true
    return state
  end
  if breaker and breaker ~= '' then
    breaker_gate(state, now, breaker)
  end
  if redis.call('EXISTS', keys.parked) == 1 then
    gate_drain(keys, now, state.paused or {}, state.breaker and state.breaker.held or {})
  end
  if rate > 0 then
    -- A bucket of a tenth of a second's tokens: a recovered downstream gets the rate, not a
    -- burst of the backlog.
    local capacity = math.max(1, rate / 10)
    local bucket = redis.call('HMGET', keys.rate, 'tokens', 'at')
    local tokens = tonumber(bucket[1]) or capacity
    local at = tonumber(bucket[2]) or now
    tokens = math.min(capacity, tokens + math.max(now - at, 0) * rate / 1000)
    state.rate, state.tokens = rate, tokens
    state.limit = math.min(limit, math.floor(tokens))
    if state.limit < 1 then
      state.rate_wake = now + math.ceil((1 - tokens) * 1000 / rate)
    end
  end
  return state
end

-- Whether a claimed message is held back: its topic (as its entry stores it, tally_topic) is
-- paused, or its breaker holds it (lib/breaker). It goes to the parked set.
local function gate_parks(state, id, topic)
  if not (state.paused and state.paused[topic]) and not (state.breaker and breaker_parks(state.breaker, topic)) then
    return false
  end
  redis.call('ZADD', state.keys.parked, 0, topic .. '\n' .. id)
  return true
end

-- After the claim: spend the tokens of what it took; tell the listener when to look again (when
-- the pause ends, or a token is there).
local function gate_close(state, now, out, taken)
  if state.breaker then
    breaker_close(state, now, out)
  end
  if state.rate then
    local left = state.tokens - taken
    redis.call('HSET', state.keys.rate, 'tokens', string.format('%.4f', left), 'at', string.format('%d', now))
    redis.call('PEXPIRE', state.keys.rate, 60000)
    if state.rate_wake and out[2] and out[2] < state.rate_wake then
      out[2] = state.rate_wake
    elseif left < 1 and out[2] and out[2] <= now then
      out[2] = now + math.ceil((1 - left) * 1000 / state.rate)
    end
  end
  if state.hold then
    out[2] = state.wake or false
  elseif state.wake and (not out[2] or state.wake < out[2]) then
    out[2] = state.wake
  end
end
