-- Per topic counters and the per-minute history (included by push, claim, ack, release,
-- requeue, lib/gate and lib/ordered). A script tallies in Lua tables while it works and writes
-- once at its end: one HINCRBY per topic (and per due minute) per call, never one per message.
-- The topics hash of a shard (store/tally.rs reads it): 's' .. topic scheduled (in the due set or
-- parked), 'l' .. topic leased, 'p' .. topic parked (due, held by a pause), and
-- minute .. '\t' .. topic: messages in the due set whose due time falls in that minute
-- (ms // 60000), so "due now" per topic is the parked plus the minutes begun, without a scan. A
-- field that reaches 0 is deleted.
-- The history of a shard: one hash per hour, '<history>:<hour>' (hour = ms // 3600000), field
-- two-digit minute of the hour .. kind .. topic, kind 'p' pushed, 'o' published, 'f' failed
-- publish, 'd' dead-lettered; each hour's hash expires whole 48 hours after its last minute.
--- @include "lib/counts"

local TALLY_KEEP_MS = 48 * 3600 * 1000
local TALLY = { s = {}, l = {}, p = {}, due = {}, events = {}, pushed = {}, leased = {} }

-- `n` more (or fewer) messages of `topic` under 's', 'l' or 'p'.
local function tally_count(kind, topic, n)
  local counts = TALLY[kind]
  counts[topic] = (counts[topic] or 0) + n
end

-- `n` more (or fewer) messages of `topic` in the due set, due at `due_ms`.
local function tally_due(due_ms, topic, n)
  local minute = math.floor(due_ms / 60000)
  local counts = TALLY.due[minute]
  if not counts then
    counts = {}
    TALLY.due[minute] = counts
  end
  counts[topic] = (counts[topic] or 0) + n
end

-- One message of `topic` stored on the schedule, due at `due_ms` (push, requeue): scheduled, in
-- its due minute, and pushed this minute. One table update per message besides the minute's;
-- the counts are added up in tally_write.
local function tally_pushed(due_ms, topic)
  tally_due(due_ms, topic, 1)
  TALLY.pushed[topic] = (TALLY.pushed[topic] or 0) + 1
end

-- One message of `topic` claimed from the due set, where it was due at `due_ms`: out of its due
-- minute, from scheduled to leased (added up in tally_write).
local function tally_leased(due_ms, topic)
  tally_due(due_ms, topic, -1)
  TALLY.leased[topic] = (TALLY.leased[topic] or 0) + 1
end

-- `n` more of history `kind` ('p', 'o', 'f', 'd') for `topic` this minute.
local function tally_event(kind, topic, n)
  local counts = TALLY.events[kind]
  if not counts then
    counts = {}
    TALLY.events[kind] = counts
  end
  counts[topic] = (counts[topic] or 0) + n
end

-- The topic of a stored entry as stored (escaped): the sixth field, in one pattern match (the
-- claim reads it per message), or `topic` of an entry stored as JSON (before 0.2).
local function tally_topic(entry)
  if string.sub(entry, 1, 1) == '{' then
    local ok, decoded = pcall(cjson.decode, entry)
    return ok and type(decoded.topic) == 'string' and decoded.topic or ''
  end
  return string.match(entry, '^[^\n]*\n[^\n]*\n[^\n]*\n[^\n]*\n[^\n]*\n([^\n]*)\n') or ''
end

-- A topic as the stored entry escapes it (`\\`, `\n`), read back.
local function tally_unescape(text)
  if not string.find(text, '\\', 1, true) then
    return text
  end
  return (string.gsub(text, '\\(.)', function(c)
    return c == 'n' and '\n' or c
  end))
end

-- Writes what the call tallied: the counters into `topics_key`, the events into this minute of
-- the history under `history_key`.
local function tally_write(topics_key, history_key, now)
  for topic, n in pairs(TALLY.pushed) do
    tally_count('s', topic, n)
    tally_event('p', topic, n)
  end
  for topic, n in pairs(TALLY.leased) do
    tally_count('s', topic, -n)
    tally_count('l', topic, n)
  end
  for _, kind in ipairs({ 's', 'l', 'p' }) do
    for topic, n in pairs(TALLY[kind]) do
      count_add(topics_key, kind .. topic, n)
    end
  end
  for minute, counts in pairs(TALLY.due) do
    local head = string.format('%d', minute) .. '\t'
    for topic, n in pairs(counts) do
      count_add(topics_key, head .. topic, n)
    end
  end
  local minute = math.floor(now / 60000)
  local hour = math.floor(minute / 60)
  local key = history_key .. ':' .. string.format('%d', hour)
  local head = string.format('%02d', minute % 60)
  local written = false
  for kind, counts in pairs(TALLY.events) do
    for topic, n in pairs(counts) do
      -- A new field (the first count of this minute, kind and topic) may be the hash's first: only
      -- then is the expiry (fixed per hour) set, not on every call.
      if n > 0 and redis.call('HINCRBY', key, head .. kind .. topic, n) == n then
        written = true
      end
    end
  end
  if written then
    redis.call('PEXPIRE', key, string.format('%d', (hour + 1) * 3600000 + TALLY_KEEP_MS - now))
  end
end
