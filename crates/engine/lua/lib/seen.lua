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

-- Remembers ids in the bucket `bucket_key`, given grouped by field as the client sends them:
-- `fields[i]` a 2-character field (an id's first 2 characters after 'm:') and `records[i]` the
-- records of its ids (their other 20 characters each), joined. Grouping in the client leaves no
-- work per id here: per field, the old value is read and written back whole with the new records
-- appended (a value allocated for what it holds, where APPEND on a string doubles its allocation
-- as it grows), with one HMGET and one HSET per STEP fields. A 2-character field takes SEEN_FULL
-- records; those beyond go, one by one (rare), to the 3-character fields.
local function seen_add(bucket_key, fields, records)
  local STEP = 500
  local writes = {}
  -- Appends `more[j]` to each of `names[j]`, keeping a 2-character field to SEEN_FULL records
  -- when `spill` is given (it takes each record beyond that).
  local function append(names, more, spill)
    for first = 1, #names, STEP do
      local last = math.min(first + STEP - 1, #names)
      local old = redis.call('HMGET', bucket_key, unpack(names, first, last))
      for j = first, last do
        local packed = old[j - first + 1] or ''
        local add = more[j]
        if spill then
          local room = math.max(SEEN_FULL - #packed / 20, 0) * 20
          if room < #add then
            for at = room + 1, #add, 20 do
              spill(names[j], string.sub(add, at, at + 19))
            end
            add = string.sub(add, 1, room)
          end
        end
        if #add > 0 then
          writes[#writes + 1] = names[j]
          writes[#writes + 1] = packed .. add
        end
      end
    end
  end
  local spilled, spilled_fields = {}, {}
  append(fields, records, function(head, record)
    local more = head .. string.sub(record, 1, 1)
    local list = spilled[more]
    if not list then
      list = {}
      spilled[more] = list
      spilled_fields[#spilled_fields + 1] = more
    end
    list[#list + 1] = string.sub(record, 2)
  end)
  local spilled_records = {}
  for j, more in ipairs(spilled_fields) do
    spilled_records[j] = table.concat(spilled[more])
  end
  append(spilled_fields, spilled_records, nil)
  for i = 1, #writes, 2 * STEP do
    redis.call('HSET', bucket_key, unpack(writes, i, math.min(i + 2 * STEP - 1, #writes)))
  end
end
