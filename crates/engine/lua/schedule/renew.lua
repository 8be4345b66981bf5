-- Extend the lease of claimed messages whose publish is still pending, so no other listener
-- claims and publishes them while the first publish may still succeed.
-- Only ids still leased under our deadline are extended (they all get the new deadline, which
-- becomes our token); an id another listener took after our lease ran out stays theirs.
-- KEYS[1] lease zset
-- ARGV[1] lease deadline of our claim (our token), ARGV[2] lease ms, ARGV[3..] ids.
-- Returns { new deadline, how many were extended }.
--- @include "lib/clock"

redis.replicate_commands()
local now = now_ms()
local deadline = now + tonumber(ARGV[2])
local deadline_text = string.format('%d', deadline)
local old = tonumber(ARGV[1])
local renewed = 0
for i = 3, #ARGV do
  local id = ARGV[i]
  local score = redis.call('ZSCORE', KEYS[1], id)
  if score and tonumber(score) == old then
    redis.call('ZADD', KEYS[1], deadline_text, id)
    renewed = renewed + 1
  end
end
return { deadline, renewed }
