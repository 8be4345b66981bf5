'use strict'
// Fire throughput: n due messages are pushed first (not timed); then the clock runs from
// queueListener(null, dlq) (the package's own rdkafka producer, acks=all) until none of them is
// left in the schedule (due or leased), polled every 5 ms.
//
// args: { n, prefix?, producer?, breaker? }
//   breaker: config `breaker: true` on both instances (a healthy topic: every ack counts attempts,
//           every claim reads the breaker hash)
//   producer 'noop': publish through a JS produce wrapper that resolves at once instead of the
//           internal producer, to see what the schedule side alone manages (a diagnostic)
//   prefix: an existing schedule (the scale benchmark: messages due a year from now); those stay,
//           only the n pushed here fire. Without it a fresh prefix is used and deleted.

const c = require("/work/main/bench/lib/common")

const EVENT = 'OrderFailed'
const POLL_MS = 5

c.main(async ({ n, prefix: existing, producer, breaker }) => {
  const { KafkaRetry } = require(c.PACKAGE)
  const redis = c.redisClient()
  const prefix = existing || c.unique('fire')
  const keys = c.scheduleKeys(prefix)
  const dlq = `${prefix}:dlq`
  const topic = c.unique('fire-topic')
  await c.createTopic(topic)

  const started = Date.now()
  const withBreaker = breaker ? { breaker: true } : {}
  const pusher = new KafkaRetry({ keyPrefix: prefix, redisUrl: c.REDIS_URL, ...withBreaker })
  const before = await redis.hlen(keys.entries)
  const options = { delay: '0', maxRetry: '3', retryCount: '0' }
  await c.runCallers(256, n, (k) =>
    pusher.pushToQueue(topic, { event: EVENT, value: JSON.stringify({ msgId: `${prefix}-${k}`, n: k }) }, options),
  )
  const horizon = Date.now() + 86_400_000 // everything pushed here is due by now; a pre-fill is not
  const pending = async () => {
    const [due, leased] = await Promise.all([redis.zcount(keys.due, '-inf', horizon), redis.zcard(keys.lease)])
    return due + leased
  }
  const queued = await pending()

  const listener = new KafkaRetry({ keyPrefix: prefix, redisUrl: c.REDIS_URL, brokers: c.KAFKA_BROKERS, ...withBreaker })
  const stats0 = await c.commandStats(redis)
  const cpu = await c.cpuMeter(redis)
  const t0 = process.hrtime.bigint()
  const noop = { produce: () => Promise.resolve() }
  process.stderr.write("FIRESTART\n"); await listener.queueListener(producer === 'noop' ? noop : null, dlq)
  let left = queued
  const deadline = Date.now() + 300_000
  while (left > 0 && Date.now() < deadline) {
    await c.sleep(POLL_MS)
    left = await pending()
  }
  const ms = Number(process.hrtime.bigint() - t0) / 1e6
  const usage = cpu.stop()
  const stats1 = await c.commandStats(redis)
  await listener.close()
  await pusher.close()

  const after = await redis.hlen(keys.entries)
  const deadLettered = await redis.hlen(dlq)
  if (existing) {
    await redis.zremrangebyscore(keys.seen, started, '+inf')
  } else {
    await c.unlink(redis, keys.due, keys.entries, keys.seen, keys.lease)
  }
  await c.unlink(redis, dlq)
  redis.disconnect()
  if (left > 0) throw new Error(`${left} of ${queued} messages still scheduled after 300 s`)
  return {
    n,
    queued,
    ms,
    perSec: (queued / ms) * 1000,
    published: before + queued - after - deadLettered,
    deadLettered,
    scheduleBefore: before,
    cpu: usage,
    // claim + ack script calls of the listener (and the 5 ms polls' ZCOUNT/ZCARD, not counted)
    evalsha: c.usecPerCall(stats0, stats1, 'evalsha'),
    // Where Redis's time per fired message went, per command (those the scripts call included)
    commands: c.perMessage(stats0, stats1, queued),
  }
})
