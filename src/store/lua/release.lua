-- Put claimed messages back on the schedule (a failed publish, or close() before publishing),
-- without spending a retry.
-- KEYS[1] due zset, KEYS[2] lease zset; ARGV[1] lease deadline of our claim, ARGV[2] new due ms,
-- ARGV[3..] ids.
-- Only ids still leased under our deadline move: if our lease ran out and another listener
-- claimed the id, it is theirs now and moving it would let a third listener publish it too.
local moved = 0
local deadline = tonumber(ARGV[1])
for i = 3, #ARGV do
  local id = ARGV[i]
  local score = redis.call('ZSCORE', KEYS[2], id)
  if score and tonumber(score) == deadline then
    redis.call('ZREM', KEYS[2], id)
    redis.call('ZADD', KEYS[1], ARGV[2], id)
    moved = moved + 1
  end
end
return moved
