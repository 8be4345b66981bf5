-- Blocked keys (chains) and parked (held) messages of one shard, for stats().
-- KEYS[1] chains set, KEYS[2] held hash
-- ARGV none
-- Returns { chains, held messages }.
return { redis.call('SCARD', KEYS[1]), redis.call('HLEN', KEYS[2]) }
