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
-- written whole (its old records and the new ones): a value allocated for what it holds, where
-- APPEND on a string doubles its allocation as it grows. The fields are read with one HMGET and
-- written with one HSET per STEP fields, not a call each: a batch's ids mostly have fields of
-- their own.
local function seen_add(bucket_key, ids)
  local STEP = 500
  local by_head, heads = {}, {}
  for _, id in ipairs(ids) do
    local head = string.sub(id, 3, 4)
    local list = by_head[head]
    if not list then
      list = {}
      by_head[head] = list
      heads[#heads + 1] = head
    end
    list[#list + 1] = string.sub(id, 5)
  end
  -- `fields` of the bucket with `records` (field -> list of records) appended to each.
  local writes = {}
  local function append(fields, records, spill)
    for first = 1, #fields, STEP do
      local last = math.min(first + STEP - 1, #fields)
      local old = redis.call('HMGET', bucket_key, unpack(fields, first, last))
      for j = first, last do
        local field = fields[j]
        local packed = old[j - first + 1] or ''
        local list = records[field]
        if spill then
          -- A 2-character field takes SEEN_FULL records; the others go to 3-character fields.
          local room = SEEN_FULL - #packed / 20
          if room < #list then
            for k = math.max(room, 0) + 1, #list do
              spill(field, list[k])
            end
            list = { unpack(list, 1, math.max(room, 0)) }
          end
        end
        if #list > 0 then
          writes[#writes + 1] = field
          writes[#writes + 1] = packed .. table.concat(list)
        end
      end
    end
  end
  local spilled, spilled_fields = {}, {}
  append(heads, by_head, function(head, rest)
    local more = head .. string.sub(rest, 1, 1)
    local list = spilled[more]
    if not list then
      list = {}
      spilled[more] = list
      spilled_fields[#spilled_fields + 1] = more
    end
    list[#list + 1] = string.sub(rest, 2)
  end)
  append(spilled_fields, spilled, nil)
  for i = 1, #writes, 2 * STEP do
    redis.call('HSET', bucket_key, unpack(writes, i, math.min(i + 2 * STEP - 1, #writes)))
  end
end
