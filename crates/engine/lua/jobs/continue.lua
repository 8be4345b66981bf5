-- Continue a stopped or failed job, or an interrupted one (running, its lease run out: the
-- process that ran it is gone), under the next run number with a fresh lease. Its count and
-- spec stay: the caller runs the same spec again (a requeue or removal of what still matches
-- moves nothing twice). Two processes continuing at once: one wins, the other gets 0.
-- KEYS[1] jobs hash
-- ARGV[1] id, ARGV[2] lease ms.
-- Returns the new run number, 0 when the job is done or running under a live lease, -1 when
--   there is no such job.
--- @include "lib/clock"

local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then
  return -1
end
local record = cjson.decode(raw)
local now = now_ms()
if record.state == 'done' or (record.state == 'running' and record.leaseUntil > now) then
  return 0
end
if record.state == 'running' then
  -- Interrupted: what its runner moved after its last report is not in the count.
  record.interruptions = (record.interruptions or 0) + 1
end
record.run = record.run + 1
record.state = 'running'
record.stopRequested = false
record.leaseUntil = now + tonumber(ARGV[2])
record.updatedAt = now
record.continuedAt = now
record.finishedAt = nil
record.error = nil
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(record))
return record.run
