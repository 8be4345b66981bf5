-- Ask a running job to stop: its runner, in whichever process, reads the request at its next
-- report and stops before its next move. A job whose lease ran out (no process runs it) is
-- marked stopped at once.
-- KEYS[1] jobs hash
-- ARGV[1] id.
-- Returns 1 when asked (or marked), 0 when the job is not running, -1 when there is no such job.
--- @include "lib/clock"

local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then
  return -1
end
local record = cjson.decode(raw)
if record.state ~= 'running' then
  return 0
end
local now = now_ms()
if record.leaseUntil <= now then
  record.state = 'stopped'
  record.finishedAt = now
else
  record.stopRequested = true
end
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(record))
return 1
