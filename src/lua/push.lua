-- Store one message and schedule it, atomically.
-- KEYS[1] due zset (id -> due ms), KEYS[2] entries hash (id -> entry JSON), KEYS[3] seen zset
-- ARGV[1] id, ARGV[2] due ms, ARGV[3] entry JSON, ARGV[4] now ms, ARGV[5] dedupe window ms,
-- ARGV[6] '1' when the id comes from the payload's msgId (a redelivery would reuse it)
-- Returns 1 when stored, 0 when this id was already pushed (a consumer redelivery).
if ARGV[6] == '1' then
  -- Forget markers older than the window first, so the seen set stays bounded.
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. (tonumber(ARGV[4]) - tonumber(ARGV[5])))
  if redis.call('ZSCORE', KEYS[3], ARGV[1]) then
    return 0
  end
  redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1])
  -- The markers are only useful for the window: let an idle schedule's set expire entirely.
  redis.call('PEXPIRE', KEYS[3], ARGV[5])
end
if redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[3]) == 0 then
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
return 1
