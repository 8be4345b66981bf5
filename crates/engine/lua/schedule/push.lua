-- Store and schedule a batch of messages, atomically per message. Concurrent pushToQueue calls
-- are gathered into one call of this script, so they share one round trip and one script run.
-- Due times come from Redis's clock, never from the pushing host's, so hosts whose clocks
-- disagree schedule alike. A message due before the listeners next look is announced on the
-- wake channel, so a listener in any process wakes for it at once.
-- KEYS[1] due zset (id -> due ms), KEYS[2] entries hash (id -> stored entry), KEYS[3] seen zset
--   (legacy ids, and the name the seen buckets of ack.lua start with), KEYS[4] wake key (when
--   the listeners next look; also the name of the wake channel), KEYS[5] topics hash, KEYS[6]
--   history (lib/tally), KEYS[7] breaker hash, only while the breaker is on (lib/breaker: a
--   stored message whose incoming retryCount was 1 or more counts as a failure)
-- ARGV[1] dedupe window ms, then per message 5 values: id, delay ms, the stored entry without
--   its first field (the due time, written here), '1' when the id comes from the payload's msgId
--   (a redelivery reuses it), its topic
-- Returns one integer per message: its due time when stored, 0 when already pushed (a consumer
--   redelivery): its entry is still stored, or it was published within the window (see ack.lua).
--- @include "lib/clock"
--- @include "lib/base36"
--- @include "lib/tally"
--- @include "lib/seen"
--- @include "lib/breaker"

redis.replicate_commands()
local now = now_ms()
local window = tonumber(ARGV[1])
local cutoff = now - window
local buckets = seen_buckets(KEYS[3], window, now)
-- Ids acknowledged before the buckets existed (or legacy ids) are in the sorted set, honoured
-- until it expires: one EXISTS per call, not a ZSCORE per message.
local seen_set = redis.call('EXISTS', KEYS[3]) == 1

-- Whether `id` was acknowledged within the window (never with a window of 0: an id acked in the
-- same millisecond as this push would otherwise count as within it).
local function seen(id)
  if window <= 0 then
    return false
  end
  if seen_in(buckets, id) then
    return true
  end
  return seen_set and seen_in_set(KEYS[3], id, cutoff)
end

local STEP = 500 -- arguments per command, well under Lua's unpack limit
-- Whether each id is stored already: one HMGET per STEP ids, not an HSETNX each (the entries and
-- due times are then written with one HSET and one ZADD per STEP messages). An id twice in one
-- call is stored once, as HSETNX stored it.
local ids = {}
for i = 2, #ARGV, 5 do
  ids[#ids + 1] = ARGV[i]
end
local present = {}
for first = 1, #ids, STEP do
  local found = redis.call('HMGET', KEYS[2], unpack(ids, first, math.min(first + STEP - 1, #ids)))
  for j = 1, #found do
    if found[j] then
      present[ids[first + j - 1]] = true
    end
  end
end

local stored = {}
local entries, schedule = {}, {}
local breaker_key = KEYS[7]
local failures = {}
local earliest = nil
-- A batch's messages mostly share one delay: its due time and the due time's two texts (base 36
-- for the entry, decimal for ZADD, which would otherwise format the number with %.17g) are
-- worked out once per run of equal delays, not per message.
local last_delay, due, due36, due_text = nil, nil, nil, nil
for i = 2, #ARGV, 5 do
  local id, delay, tail, dedupe = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  if delay ~= last_delay then
    last_delay = delay
    due = now + tonumber(delay)
    due36, due_text = base36(due), string.format('%d', due)
  end
  local result = due
  if present[id] or (dedupe == '1' and seen(id)) then
    result = 0
  else
    present[id] = true
    entries[#entries + 1] = id
    entries[#entries + 1] = due36 .. '\n' .. tail
    schedule[#schedule + 1] = due_text
    schedule[#schedule + 1] = id
    if not earliest or due < earliest then
      earliest = due
    end
    -- Counted only when stored: a redelivered push (result 0) counts nothing.
    tally_pushed(due, ARGV[i + 4])
    if breaker_key and breaker_retry_count(tail) >= 2 then
      breaker_add(failures, ARGV[i + 4], 1, 0)
    end
  end
  stored[#stored + 1] = result
end
for first = 1, #entries, 2 * STEP do
  local last = math.min(first + 2 * STEP - 1, #entries)
  redis.call('HSET', KEYS[2], unpack(entries, first, last))
  redis.call('ZADD', KEYS[1], unpack(schedule, first, last))
end
tally_write(KEYS[5], KEYS[6], now)
if breaker_key then
  breaker_count(breaker_key, failures, now)
end
if earliest then
  local planned = redis.call('GET', KEYS[4])
  if not planned or earliest < tonumber(planned) then
    redis.call('PUBLISH', KEYS[4], string.format('%d', earliest))
    -- The woken listener looks at `earliest` at the latest: later pushes due after it need not
    -- announce themselves again (the listener's next claim writes its own plan).
    redis.call('SET', KEYS[4], string.format('%d', earliest), 'PX', math.max(earliest - now, 0) + 1000)
  end
end
return stored
