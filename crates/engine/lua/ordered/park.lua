-- Parks a message behind its key's head, or schedules it when nothing of its key waits (park),
-- and stores a failed message of an ordered key (the failure half of endTurn / handleInOrder).
-- Deciding in the script closes the race with the head's handling: a park that finds nothing
-- ahead any more becomes the head and is scheduled at once. lib/ordered describes the chains.
-- KEYS[1] chain list, KEYS[2] chains set, KEYS[3] held hash, KEYS[4] due zset, KEYS[5] entries
--   hash, KEYS[6] seen, KEYS[7] wake key, KEYS[8] topics hash, KEYS[9] history (lib/tally)
-- ARGV[1] dedupe window ms, ARGV[2] token of the message ('' for one the consumer sees for the
--   first time), ARGV[3] id, ARGV[4] delay ms when it is scheduled, ARGV[5] stored entry
--   without its due time (its retryOrder header is the token, or the id for a new member),
--   ARGV[6] '1' when the id comes from the payload's msgId, ARGV[7] the topic.
-- Returns { 'scheduled', due } (the head, on the schedule), { 'parked', 0 } (held behind the
--   head), { 'duplicate', 0 } (stored already: a redelivery).
--- @include "lib/clock"
--- @include "lib/ordered"

redis.replicate_commands()
local now = now_ms()
local chain, chains, held, due_key, entries, seen_key, wake =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local window, token, id, delay, tail, dedupe =
  tonumber(ARGV[1]), ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5], ARGV[6]
local tally_keys, topic = { KEYS[8], KEYS[9] }, ARGV[7]
if token ~= '' then
  if redis.call('LINDEX', chain, 0) == token then
    -- The head failed again: its retry is scheduled and what follows it stays held.
    local due = schedule(now, due_key, entries, wake, tally_keys, topic, id, delay, tail)
    return { due > 0 and 'scheduled' or 'duplicate', due }
  end
  -- Held behind the head, or handled already (its chain moved past it): a copy.
  return { 'duplicate', 0 }
end
if dedupe == '1' and (in_chain(chain, id) or redis.call('HEXISTS', entries, id) == 1
    or seen(seen_key, id, window, now)) then
  return { 'duplicate', 0 }
end
local ahead = redis.call('EXISTS', chain) == 1
redis.call('RPUSH', chain, id)
redis.call('SADD', chains, chain)
if ahead then
  redis.call('HSET', held, id, tail)
  return { 'parked', 0 }
end
return { 'scheduled', schedule(now, due_key, entries, wake, tally_keys, topic, id, delay, tail) }
