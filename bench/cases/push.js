'use strict'
// Push throughput of one implementation at one concurrency, and how many pushes were lost.
//
// args: { kind, callers, n, prefix?, delay?, breaker? }
//   breaker: config `breaker: true`, each push a retry that came back failed (retryCount 1), so
//           every push batch counts into the breaker hash: its cost at its most (docs/breaker.md)
//   kind 'kafka-redis-retry'       one KafkaRetry instance, pushToQueue() per message
//        'kafka-redis-retry-new'   `new KafkaRetry().pushToQueue()` per message, as the seed's consumer does
//        'bullmq'            BullMQ Queue.add(name, data, { delay }) on its own ioredis connection
//        'original'          the original class's storage: GET the minute's JSON array, push, SET
//        'zadd'              reference, not a retry queue: one ioredis ZADD of the id per message,
//                            what this machine manages for the cheapest possible one-command push
//   prefix: an existing kafka-redis-retry schedule to push into (the scale benchmark); the pushes made
//           here are removed afterwards and the schedule is left as it was. Without it a fresh
//           prefix is used and deleted.
// Every caller awaits its push before the next one. Every message has its own msgId, as the
// seed's payloads do. Nothing fires: the delay is 60 minutes.

const c = require('../lib/common')

const TOPIC = 'bench-orders'
const EVENT = 'OrderFailed'
const DELAY_MINUTES = '60'
const WARMUP = 500

function payload(tag, k) {
  return JSON.stringify({ msgId: `${tag}-${k}`, orderId: k, success: false })
}

async function kafkaRetry({ callers, n, prefix: existing, newInstance, breaker }) {
  const { KafkaRetry } = require(c.PACKAGE)
  const redis = c.redisClient()
  const prefix = existing || c.unique('push')
  const keys = c.scheduleKeys(prefix)
  const config = { keyPrefix: prefix, redisUrl: c.REDIS_URL, ...(breaker ? { breaker: true } : {}) }
  const options = { delay: DELAY_MINUTES, maxRetry: '3', retryCount: breaker ? '1' : '0' }
  const tag = c.unique('m')

  // Warm-up on a throwaway schedule: opens the shared connection, loads the script, warms the JIT.
  // The instance stays alive, so the per-message instances below share its connection (in a
  // service the listener's instance plays that part).
  const warmPrefix = c.unique('warm')
  const warm = new KafkaRetry({ keyPrefix: warmPrefix, redisUrl: c.REDIS_URL })
  await c.runCallers(32, WARMUP, (k) => warm.pushToQueue(TOPIC, { event: EVENT, value: payload(`${tag}w`, k) }, options))
  const w = c.scheduleKeys(warmPrefix)
  await c.unlink(redis, w.due, w.entries, w.seen)

  const retry = new KafkaRetry(config)
  const before = existing ? await redis.zcard(keys.due) : 0
  const started = Date.now()
  const stats0 = await c.commandStats(redis)
  const cpu = await c.cpuMeter(redis)
  const ms = await c.runCallers(callers, n, (k) => {
    const target = newInstance ? new KafkaRetry(config) : retry
    return target.pushToQueue(TOPIC, { event: EVENT, value: payload(tag, k) }, options)
  })
  const usage = cpu.stop()
  const stats1 = await c.commandStats(redis)
  const stored = (await redis.zcard(keys.due)) - before

  if (existing) {
    // Take back exactly what this run pushed (due within the next day; the pre-filled schedule is
    // due a year from now), so the next run sees the same schedule size.
    const ids = await redis.zrangebyscore(keys.due, '-inf', Date.now() + 86_400_000)
    for (let i = 0; i < ids.length; i += 10_000) {
      const chunk = ids.slice(i, i + 10_000)
      await redis.zrem(keys.due, ...chunk)
      await redis.hdel(keys.entries, ...chunk)
    }
    await redis.zremrangebyscore(keys.seen, started, '+inf')
  } else {
    await c.unlink(redis, keys.due, keys.entries, keys.seen, keys.lease)
  }
  await warm.close()
  await retry.close()
  redis.disconnect()
  return {
    perSec: (n / ms) * 1000,
    ms,
    n,
    stored,
    lost: n - stored,
    scheduleBefore: before,
    cpu: usage,
    evalsha: c.usecPerCall(stats0, stats1, 'evalsha'),
  }
}

async function bullmq({ callers, n }) {
  const { Queue } = require('bullmq')
  const redis = c.redisClient()
  // BullMQ wants its own connection with maxRetriesPerRequest: null.
  const connection = c.redisClient()
  const prefix = c.unique('bullmq')
  const data = (k, tag) => ({ topic: TOPIC, event: EVENT, value: payload(tag, k) })
  const delay = Number(DELAY_MINUTES) * 60_000

  const warm = new Queue('warm', { connection, prefix })
  await warm.waitUntilReady()
  await c.runCallers(32, WARMUP, (k) => warm.add('retry', data(k, 'w'), { delay }))
  await warm.obliterate({ force: true })
  await warm.close()

  const queue = new Queue('retry', { connection, prefix })
  await queue.waitUntilReady()
  const stats0 = await c.commandStats(redis)
  const cpu = await c.cpuMeter(redis)
  const ms = await c.runCallers(callers, n, (k) => queue.add('retry', data(k, 'm'), { delay }))
  const usage = cpu.stop()
  const stats1 = await c.commandStats(redis)
  const stored = await queue.getDelayedCount()
  await queue.obliterate({ force: true })
  await queue.close()
  await c.unlinkMatching(redis, `${prefix}:*`)
  connection.disconnect()
  redis.disconnect()
  return {
    perSec: (n / ms) * 1000,
    ms,
    n,
    stored,
    lost: n - stored,
    cpu: usage,
    evalsha: c.usecPerCall(stats0, stats1, 'evalsha'),
  }
}

/** The original class's bucket name: the due minute as YYYYMMDD-HHmm. */
function minuteBucket(ms) {
  const d = new Date(ms)
  const p = (v) => String(v).padStart(2, '0')
  return `${d.getFullYear()}${p(d.getMonth() + 1)}${p(d.getDate())}-${p(d.getHours())}${p(d.getMinutes())}`
}

/**
 * The original pushToQueue's storage, on one shared ioredis connection (the original opened a new
 * connection per instance; sharing one only makes it faster): read the due minute's JSON array,
 * append, write it back. Concurrent pushes into the same minute overwrite each other.
 */
async function originalPush(redis, prefix, topic, message, options) {
  const key = `${prefix}:${minuteBucket(Date.now() + Number(options.delay) * 60_000)}`
  const raw = await redis.get(key)
  const list = raw ? JSON.parse(raw) : []
  list.push({
    topic,
    event: message.event,
    value: JSON.parse(message.value),
    options: { ...options, retryCount: String(Number(options.retryCount) + 1) },
  })
  await redis.set(key, JSON.stringify(list), 'EX', Number(options.delay) * 60 + 3600)
}

async function countOriginal(redis, prefix) {
  let cursor = '0'
  let count = 0
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000)
    cursor = next
    for (const key of keys) count += JSON.parse(await redis.get(key)).length
  } while (cursor !== '0')
  return count
}

async function original({ callers, n }) {
  const redis = c.redisClient()
  const options = { delay: DELAY_MINUTES, maxRetry: '3', retryCount: '0' }
  const warmPrefix = c.unique('original-warm')
  await c.runCallers(1, 100, (k) => originalPush(redis, warmPrefix, TOPIC, { event: EVENT, value: payload('w', k) }, options))
  await c.unlinkMatching(redis, `${warmPrefix}:*`)

  const prefix = c.unique('original')
  const cpu = await c.cpuMeter(redis)
  const ms = await c.runCallers(callers, n, (k) =>
    originalPush(redis, prefix, TOPIC, { event: EVENT, value: payload('m', k) }, options),
  )
  const usage = cpu.stop()
  const stored = await countOriginal(redis, prefix)
  await c.unlinkMatching(redis, `${prefix}:*`)
  redis.disconnect()
  return { perSec: (n / ms) * 1000, ms, n, stored, lost: n - stored, cpu: usage }
}

async function zadd({ callers, n }) {
  const redis = c.redisClient()
  const key = `${c.unique('zadd')}:due`
  const tag = c.unique('z')
  await c.runCallers(32, WARMUP, (k) => redis.zadd(key, k, `w-${k}`))
  await c.unlink(redis, key)
  const cpu = await c.cpuMeter(redis)
  const ms = await c.runCallers(callers, n, (k) => redis.zadd(key, Date.now() + 3_600_000, `m:1:12:bench-orders:${tag}-${k}`))
  const usage = cpu.stop()
  const stored = await redis.zcard(key)
  await c.unlink(redis, key)
  redis.disconnect()
  return { perSec: (n / ms) * 1000, ms, n, stored, lost: n - stored, cpu: usage }
}

c.main(async (args) => {
  switch (args.kind) {
    case 'kafka-redis-retry':
      return kafkaRetry(args)
    case 'kafka-redis-retry-new':
      return kafkaRetry({ ...args, newInstance: true })
    case 'bullmq':
      return bullmq(args)
    case 'original':
      return original(args)
    case 'zadd':
      return zadd(args)
    default:
      throw new Error(`unknown kind ${args.kind}`)
  }
})
