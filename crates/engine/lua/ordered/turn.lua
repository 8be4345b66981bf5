-- Whether the consumer may handle a message of an ordered key now (takeTurn / handleInOrder),
-- and if not, the message parked behind its key's head in the same script: a check and a park
-- in two calls would let the head be handled in between and leave the message parked behind
-- nothing. lib/ordered describes the chains.
-- KEYS[1] chain list, KEYS[2] chains set, KEYS[3] held hash, KEYS[4] entries hash, KEYS[5] seen
-- ARGV[1] dedupe window ms, ARGV[2] the message's token (its retryOrder header) or '' for a
--   message the consumer sees for the first time, ARGV[3] id, ARGV[4] stored entry without its
--   due time (with retryOrder = id), ARGV[5] '1' when the id comes from the payload's msgId.
-- Returns 'mine' (the head came back: handle it), 'free' (nothing of the key waits: handle it),
--   'parked' (held behind the head), 'duplicate' (a copy of a message already handled or held).
--- @include "lib/clock"
--- @include "lib/ordered"

redis.replicate_commands()
local now = now_ms()
local chain, chains, held, entries, seen_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local window, token, id, tail, dedupe = tonumber(ARGV[1]), ARGV[2], ARGV[3], ARGV[4], ARGV[5]
if token ~= '' then
  if redis.call('LINDEX', chain, 0) == token then
    return 'mine'
  end
  -- A chain's message reaches the consumer only as its head, and leaves the chain once handled:
  -- anything else carrying a token is a second publish of a message already handled.
  return 'duplicate'
end
if redis.call('EXISTS', chain) == 0 then
  return 'free'
end
if dedupe == '1' and (in_chain(chain, id) or redis.call('HEXISTS', entries, id) == 1
    or seen(seen_key, id, window, now)) then
  return 'duplicate'
end
redis.call('RPUSH', chain, id)
redis.call('HSET', held, id, tail)
redis.call('SADD', chains, chain)
return 'parked'
