-- Deletes a bucket of the original class once its entries are scheduled, unless someone
-- appended to it meanwhile (then the next migration schedules the rest; ids de-duplicate).
-- KEYS[1] the bucket (a string key named by due minute, YYYYMMDD-HHmm)
-- ARGV[1] the bucket's value as the migration read it
-- Returns 1 when deleted, 0 when it changed (or is gone).
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0
