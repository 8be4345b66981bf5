-- Remove one dead letter from its hash and hand back what was removed, in one step (one key, so
-- it runs on a cluster too: the index and the per topic counts are other slots).
-- KEYS[1] dead letter hash
-- ARGV[1] its field; ARGV[2], when given, the record as the caller read it: the field is removed
--   only if it still holds exactly that (a requeue on a cluster removes the dead letter it
--   scheduled, never a newer one written under the same field meanwhile).
-- Returns the removed record, or false when nothing was removed.
local text = redis.call('HGET', KEYS[1], ARGV[1])
if not text or (ARGV[2] and text ~= ARGV[2]) then
  return false
end
redis.call('HDEL', KEYS[1], ARGV[1])
return text
