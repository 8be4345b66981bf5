-- The seen window: ids published within `dedupeWindowMs` (included by ack.lua, which writes it,
-- and by push.lua and lib/ordered, which read it).
-- An 'm:' id (fixed size: 'm:' and 22 characters) acked at `now` is remembered in the seen
-- bucket of now, a hash `<seen>:<bucket>` (bucket = now // width, width half the window), as a
-- fixed-size record added after those of the ids before it in one field: the field named by its
-- first 2 characters after 'm:' (the record: its other 20), until that field holds SEEN_FULL
-- records; after that, the field named by its first 3 characters (the record: its other 19).
-- About 20 bytes per id plus the fields' share, where a sorted set member cost about 120; and
-- looking an id up reads at most SEEN_FULL records of a 2-character field and the few of a
-- 3-character one (262,144 of them), so a push costs about the same with millions of ids
-- remembered as with none. A bucket expires whole once the last id it took has been remembered
-- for the window.
local SEEN_FULL = 128

-- The width of a seen bucket, ms.
local function seen_width(window)
  return math.max(math.ceil(window / 2), 1)
end

-- The name of the seen bucket `bucket`.
local function seen_bucket_key(seen_key, bucket)
  return seen_key .. ':' .. string.format('%d', bucket)
end

-- The seen buckets that can hold an id acked within `window` ms before `now` (those of now back
-- to now - window), the ones that exist only: checked once per call, so a bucket that does not
-- exist costs nothing per message.
local function seen_buckets(seen_key, window, now)
  local buckets = {}
  if window > 0 then
    local width = seen_width(window)
    for bucket = math.floor((now - window) / width), math.floor(now / width) do
      local key = seen_bucket_key(seen_key, bucket)
      if redis.call('EXISTS', key) == 1 then
        buckets[#buckets + 1] = key
      end
    end
  end
  return buckets
end

-- Whether `packed` holds the record `rest` (records of `size` bytes: a match counts only where
-- a record starts).
local function seen_record(packed, rest, size)
  local at = string.find(packed, rest, 1, true)
  while at do
    if (at - 1) % size == 0 then
      return true
    end
    at = string.find(packed, rest, at + 1, true)
  end
  return false
end

-- Whether `id` is remembered in one of `buckets` (from seen_buckets).
local function seen_in(buckets, id)
  if #buckets == 0 or #id ~= 24 or string.sub(id, 1, 2) ~= 'm:' then
    return false
  end
  local head, more = string.sub(id, 3, 4), string.sub(id, 3, 5)
  for _, key in ipairs(buckets) do
    -- Both fields in one call; the 3-character one exists only once the other is full.
    local fields = redis.call('HMGET', key, head, more)
    if fields[1] and seen_record(fields[1], string.sub(id, 5), 20) then
      return true
    end
    if fields[2] and seen_record(fields[2], string.sub(id, 6), 19) then
      return true
    end
  end
  return false
end

-- Whether `id` was acked at `cutoff` or later by the previous format: the sorted set `seen_key`
-- (id -> ack time), which still holds ids acked before the buckets existed, and legacy ids.
local function seen_in_set(seen_key, id, cutoff)
  local score = redis.call('ZSCORE', seen_key, id)
  return score ~= false and tonumber(score) >= cutoff
end

-- Remembers the 'm:' ids in `ids` (each 24 characters) in the bucket `bucket_key`. Each field is
-- written whole (HGET, then HSET of old and new records): a value allocated for what it holds,
-- where APPEND on a string doubles its allocation as it grows.
local function seen_add(bucket_key, ids)
  local by_head = {}
  for _, id in ipairs(ids) do
    local head = string.sub(id, 3, 4)
    local list = by_head[head]
    if not list then
      list = {}
      by_head[head] = list
    end
    list[#list + 1] = id
  end
  for head, list in pairs(by_head) do
    local packed = redis.call('HGET', bucket_key, head) or ''
    local room = SEEN_FULL - #packed / 20
    local records, spilled = {}, {}
    for _, id in ipairs(list) do
      if room > 0 then
        records[#records + 1] = string.sub(id, 5)
        room = room - 1
      else
        local more = string.sub(id, 3, 5)
        spilled[more] = spilled[more] or {}
        table.insert(spilled[more], string.sub(id, 6))
      end
    end
    if #records > 0 then
      redis.call('HSET', bucket_key, head, packed .. table.concat(records))
    end
    for more, tail in pairs(spilled) do
      local old = redis.call('HGET', bucket_key, more) or ''
      redis.call('HSET', bucket_key, more, old .. table.concat(tail))
    end
  end
end
