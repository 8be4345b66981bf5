-- Close a topic's breaker by hand (resume(topic)), or every topic's with no ARGV[1]: its state and
-- counts are forgotten, so its held messages go back like a resumed pause's (lib/gate drains the
-- parked set over the next claims), which the announcement on the wake channel starts at once.
-- KEYS[1] breaker hash (lib/breaker), KEYS[2] wake key (the channel)
-- ARGV[1] topic, or absent for every topic.
-- Returns the topics whose breaker was open or half-open.
--- @include "lib/clock"

redis.replicate_commands()
local closed = {}
local fields = {}
if ARGV[1] then
  local state = redis.call('HGET', KEYS[1], 's\t' .. ARGV[1])
  if state and string.sub(state, 1, 1) ~= 'r' then
    closed[1] = ARGV[1]
  end
  fields = { 's\t' .. ARGV[1], 'n\t' .. ARGV[1] }
else
  local flat = redis.call('HGETALL', KEYS[1])
  for i = 1, #flat, 2 do
    local head = string.sub(flat[i], 1, 2)
    if head == 's\t' and string.sub(flat[i + 1], 1, 1) ~= 'r' then
      closed[#closed + 1] = string.sub(flat[i], 3)
    end
    if head == 's\t' or head == 'n\t' then
      fields[#fields + 1] = flat[i]
    end
  end
end
if #fields > 0 then
  redis.call('HDEL', KEYS[1], unpack(fields))
end
redis.call('PUBLISH', KEYS[2], string.format('%d', now_ms()))
return closed
