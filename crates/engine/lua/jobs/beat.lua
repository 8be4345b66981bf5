-- A running job's runner reports: its count so far, its lease renewed (a runner that stops
-- reporting leaves a job whose lease runs out: shown as interrupted), and at the end its final
-- state. Only the run that owns the record may (a job continued elsewhere has a newer run).
-- KEYS[1] jobs hash
-- ARGV[1] id, ARGV[2] run, ARGV[3] count done (over every run), ARGV[4] lease ms, ARGV[5] final
--   state ('done', 'stopped', 'failed'; '' while it runs on), ARGV[6] error text.
-- Returns -1 when the record is gone or no longer this run's to report, 1 when someone asked it
--   to stop, 0 otherwise.
--- @include "lib/clock"

local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then
  return -1
end
local record = cjson.decode(raw)
if record.state ~= 'running' or record.run ~= tonumber(ARGV[2]) then
  return -1
end
local now = now_ms()
record.done = math.max(record.done, tonumber(ARGV[3]))
record.updatedAt = now
record.leaseUntil = now + tonumber(ARGV[4])
if ARGV[5] ~= '' then
  record.state = ARGV[5]
  record.finishedAt = now
  if ARGV[6] ~= '' then
    record.error = ARGV[6]
  end
end
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(record))
if record.stopRequested then
  return 1
end
return 0
