-- Operator gates of a claim (prepended to claim.lua): pauses and the publish rate cap. Kept in a
-- file of its own so the claim itself stays what it was; claim.lua calls gate_open, gate_parks
-- and gate_close at three marked places.
-- KEYS[5] paused hash (topic, or '*' for the whole schedule -> until ms, 0 for no end),
-- KEYS[6] parked zset (score 0, member topic .. '\n' .. id: due messages of paused topics, taken
-- out of the due set so they neither block the claim nor get leased), KEYS[7] rate hash
-- (tokens, at: the token bucket of maxPublishRate).
-- ARGV[4] most messages published per second from this schedule (shard), 0 for no cap.
-- Without pauses or a cap this costs two O(1) calls per claim, not one per message.
local DRAIN = 1000 -- parked messages of resumed topics put back per claim

-- Puts parked messages of topics no longer paused back on the due set (due now), DRAIN per call:
-- a resume (or an untilMs that passed) takes effect over the next claims.
local function gate_drain(now, paused)
  local budget = DRAIN
  local from = '-'
  local now_text = string.format('%d', now)
  while budget > 0 do
    local first = redis.call('ZRANGEBYLEX', KEYS[6], from, '+', 'LIMIT', 0, 1)[1]
    if not first then
      return
    end
    local topic = string.sub(first, 1, string.find(first, '\n', 1, true) - 1)
    -- '\v' follows '\n': the range of the members of this topic ends before it.
    local after = '(' .. topic .. '\v'
    if not paused[topic] then
      local members = redis.call('ZRANGEBYLEX', KEYS[6], '[' .. topic .. '\n', after, 'LIMIT', 0, budget)
      local due = {}
      for _, member in ipairs(members) do
        due[#due + 1] = now_text
        due[#due + 1] = string.sub(member, #topic + 2)
      end
      for i = 1, #members, 250 do
        local last = math.min(i + 249, #members)
        redis.call('ZADD', KEYS[1], unpack(due, 2 * i - 1, 2 * last))
        redis.call('ZREM', KEYS[6], unpack(members, i, last))
      end
      -- Back in the due set, due now (tally.lua).
      tally_count('p', tally_unescape(topic), -#members)
      tally_due(now, tally_unescape(topic), #members)
      budget = budget - #members
    end
    from = after
  end
end

-- What this claim may take: { limit, paused topics (or nil), wake (ms or nil), tokens }.
local function gate_open(now, limit)
  local state = { limit = limit }
  local flat = redis.call('HGETALL', KEYS[5])
  for i = 1, #flat, 2 do
    local until_ms = tonumber(flat[i + 1]) or 0
    if until_ms > 0 and until_ms <= now then
      redis.call('HDEL', KEYS[5], flat[i])
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
  if redis.call('EXISTS', KEYS[6]) == 1 then
    gate_drain(now, state.paused or {})
  end
  local rate = tonumber(ARGV[4]) or 0
  if rate > 0 then
    -- A bucket of a tenth of a second's tokens: a recovered downstream gets the rate, not a
    -- burst of the backlog.
    local capacity = math.max(1, rate / 10)
    local bucket = redis.call('HMGET', KEYS[7], 'tokens', 'at')
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
-- paused. It goes to the parked set.
local function gate_parks(state, id, topic)
  if not state.paused then
    return false
  end
  if not state.paused[topic] then
    return false
  end
  redis.call('ZADD', KEYS[6], 0, topic .. '\n' .. id)
  return true
end

-- After the claim: spend the tokens of what it took; tell the listener when to look again (when
-- the pause ends, or a token is there).
local function gate_close(state, now, out, taken)
  if state.rate then
    local left = state.tokens - taken
    redis.call('HSET', KEYS[7], 'tokens', string.format('%.4f', left), 'at', string.format('%d', now))
    redis.call('PEXPIRE', KEYS[7], 60000)
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
