-- Counts kept in the fields of a hash (the per topic counts of a schedule and of a dead letter
-- hash): a field that reaches 0 is deleted, so a hash holds only what is there.

-- Adds `n` (negative: takes) to the count `field` of the hash `key`.
local function count_add(key, field, n)
  if n ~= 0 and redis.call('HINCRBY', key, field, n) <= 0 then
    redis.call('HDEL', key, field)
  end
end
