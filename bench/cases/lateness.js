'use strict'
// Lateness: a steady `rate` pushes/s for `seconds`, each with a delay drawn uniformly from
// [minMs, maxMs] (given to pushToQueue as decimal minutes), while a listener in the same process
// (a separate instance, as in a service) publishes through a JS produce wrapper that records
// Date.now() - Number(headers.executeAt) and resolves at once (no broker: this measures the
// schedule, not Kafka).
//
// args: { seconds, rate, minMs, maxMs }

const c = require('../lib/common')

const TICK_MS = 2

function percentile(sorted, p) {
  if (!sorted.length) return null
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]
}

c.main(async ({ seconds, rate, minMs, maxMs }) => {
  const { KafkaRetry } = require(c.ROOT)
  const redis = c.redisClient()
  const prefix = c.unique('late')
  const keys = c.scheduleKeys(prefix)
  const dlq = `${prefix}:dlq`
  const late = []
  const producer = {
    produce(topic, key, value, headers) {
      late.push(Date.now() - Number(headers.executeAt))
      return Promise.resolve()
    },
  }
  const listener = new KafkaRetry({ keyPrefix: prefix, redisUrl: c.REDIS_URL })
  await listener.queueListener(producer, dlq)
  const pusher = new KafkaRetry({ keyPrefix: prefix, redisUrl: c.REDIS_URL })
  const options = (ms) => ({ delay: String(ms / 60_000), maxRetry: '3', retryCount: '0' })

  const total = Math.round(seconds * rate)
  let pushed = 0
  let failed = 0
  const inflight = new Set()
  const cpu = await c.cpuMeter(redis)
  const t0 = Date.now()
  // Paced by the clock, not by the timer: each tick pushes what is owed so far.
  while (pushed < total) {
    const owed = Math.min(total, Math.floor(((Date.now() - t0) * rate) / 1000))
    while (pushed < owed) {
      const k = pushed++
      const delayMs = minMs + Math.random() * (maxMs - minMs)
      const p = pusher
        .pushToQueue('bench-late', { event: 'OrderFailed', value: JSON.stringify({ msgId: `${prefix}-${k}`, n: k }) }, options(delayMs))
        .catch(() => failed++)
        .finally(() => inflight.delete(p))
      inflight.add(p)
    }
    await c.sleep(TICK_MS)
  }
  const pushSeconds = (Date.now() - t0) / 1000
  await Promise.all(inflight)
  const deadline = Date.now() + maxMs + 10_000
  while (late.length < total - failed && Date.now() < deadline) await c.sleep(20)
  const usage = cpu.stop()
  await listener.close()
  await pusher.close()
  await c.unlink(redis, keys.due, keys.entries, keys.seen, keys.lease, dlq)
  redis.disconnect()

  const sorted = late.slice().sort((a, b) => a - b)
  return {
    pushed: total,
    failed,
    received: late.length,
    pushRate: total / pushSeconds,
    min: sorted[0],
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    max: sorted[sorted.length - 1],
    cpu: usage,
  }
})
