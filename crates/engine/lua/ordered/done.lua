-- The head of a chain was handled: it leaves the chain and the next held message is scheduled,
-- due now, as the new head. One at a time: the one after it waits until this one is handled.
-- lib/ordered describes the chains.
-- KEYS[1] chain list, KEYS[2] chains set, KEYS[3] held hash, KEYS[4] due zset, KEYS[5] entries
--   hash, KEYS[6] wake key, KEYS[7] topics hash, KEYS[8] history (lib/tally)
-- ARGV[1] token of the handled message, ARGV[2] the topic.
-- Returns { released token or false, its due time or 0 }; nothing moves when the token is not
--   the head (a second handling of a copy).
--- @include "lib/clock"
--- @include "lib/ordered"

redis.replicate_commands()
local now = now_ms()
local chain, chains, held, due_key, entries, wake = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
if redis.call('LINDEX', chain, 0) ~= ARGV[1] then
  return { false, 0 }
end
redis.call('LPOP', chain)
while true do
  local next_token = redis.call('LINDEX', chain, 0)
  if not next_token then
    redis.call('SREM', chains, chain)
    return { false, 0 }
  end
  local tail = redis.call('HGET', held, next_token)
  if tail then
    redis.call('HDEL', held, next_token)
    return { next_token, schedule(now, due_key, entries, wake, { KEYS[7], KEYS[8] }, ARGV[2], next_token, 0, tail) }
  end
  -- A token without a held entry has nothing to release (its entry was removed by hand).
  redis.call('LPOP', chain)
end
