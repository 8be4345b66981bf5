-- Functions the ordered-retry scripts (ordered/turn.lua, park.lua, done.lua) share; each of
-- them includes it, as claim.lua includes lib/gate. Only ordered calls run it: push.lua,
-- claim.lua and ack.lua, the unordered path, are untouched.
--
-- A chain is one Redis list per topic and key (KEYS[1] of every ordered script), holding the
-- tokens of the messages of that key not yet handled, oldest first. Its first token is the head:
-- the one message of the key that is on the schedule, on its way to the consumer, or
-- dead-lettered. The others are held (parked) in the held hash, token -> stored entry without its
-- due time, until the head is handled. A token is the schedule id of the message's first ordered
-- entry, so a held message is scheduled under it when released. The chains set lists the chains
-- that exist (its size is the number of blocked keys); the held hash's size is the number of
-- parked messages. Every key shares the schedule shard's hash tag.
-- Times are Redis's clock, read once by the script (lib/clock) and passed in as `now`.
--- @include "lib/base36"
--- @include "lib/seen"
--- @include "lib/tally"

-- Whether `id` was acknowledged within `window` ms before `now`: the seen buckets (lib/seen),
-- then the legacy sorted set.
local function seen(seen_key, id, window, now)
  if window <= 0 then
    return false
  end
  if seen_in(seen_buckets(seen_key, window, now), id) then
    return true
  end
  return seen_in_set(seen_key, id, now - window)
end

-- Stores `tail` under `id` on the schedule, due `delay` ms after `now`, counts it for `topic` in
-- the per topic counters and the history like push.lua (lib/tally), and announces it on the wake
-- channel. Returns the due time, or 0 when `id` is stored already.
local function schedule(now, due_key, entries_key, wake_key, tally_keys, topic, id, delay, tail)
  local due = now + delay
  if redis.call('HSETNX', entries_key, id, base36(due) .. '\n' .. tail) == 0 then
    return 0
  end
  redis.call('ZADD', due_key, due, id)
  tally_pushed(due, topic)
  tally_write(tally_keys[1], tally_keys[2], now)
  local planned = redis.call('GET', wake_key)
  if not planned or due < tonumber(planned) then
    redis.call('PUBLISH', wake_key, string.format('%d', due))
  end
  return due
end

-- Whether `token` is in the chain `chain_key`.
local function in_chain(chain_key, token)
  return redis.call('LPOS', chain_key, token) ~= false
end
