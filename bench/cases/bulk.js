'use strict'
// Batch push throughput: messages per second stored through one call per batch, as a kafkajs
// `eachBatch` consumer pushes the failed messages of a batch.
//
// args: { kind, batch, n, callers }
//   kind 'kafka-redis-retry'  one KafkaRetry instance, pushMany(items) per batch
//        'bullmq'       BullMQ Queue.addBulk(jobs) per batch, on its own ioredis connection
//   batch  messages per call (50 or 1,000 in the table)
//   n      messages in all (a whole number of batches)
//   callers  batches in flight at once (each awaits its call before the next)
// Same payloads and the same delay (60 minutes: nothing fires) for both; every message has its
// own msgId, as the seed's payloads do.

const c = require('../lib/common')

const TOPIC = 'bench-orders'
const EVENT = 'OrderFailed'
const DELAY_MINUTES = '60'
const WARMUP_BATCHES = 20

function payload(tag, k) {
  return JSON.stringify({ msgId: `${tag}-${k}`, orderId: k, success: false })
}

async function kafkaRetry({ batch, n, callers }) {
  const { KafkaRetry } = require(c.PACKAGE)
  const redis = c.redisClient()
  const options = { delay: DELAY_MINUTES, maxRetry: '3', retryCount: '0' }
  const items = (tag, b) =>
    Array.from({ length: batch }, (_, i) => ({
      topic: TOPIC,
      message: { event: EVENT, value: payload(tag, b * batch + i) },
      options,
    }))
  const tag = c.unique('m')

  const warmPrefix = c.unique('warm')
  const warm = new KafkaRetry({ keyPrefix: warmPrefix, redisUrl: c.REDIS_URL })
  await c.runCallers(callers, WARMUP_BATCHES, (b) => warm.pushMany(items(`${tag}w`, b)))
  const w = c.scheduleKeys(warmPrefix)
  await c.unlink(redis, w.due, w.entries, w.seen)

  const prefix = c.unique('bulk')
  const keys = c.scheduleKeys(prefix)
  const retry = new KafkaRetry({ keyPrefix: prefix, redisUrl: c.REDIS_URL })
  const stats0 = await c.commandStats(redis)
  const cpu = await c.cpuMeter(redis)
  // The items are built inside the timed part, as a consumer builds them from its batch.
  const ms = await c.runCallers(callers, n / batch, (b) => retry.pushMany(items(tag, b)))
  const usage = cpu.stop()
  const stats1 = await c.commandStats(redis)
  const stored = await redis.zcard(keys.due)
  await c.unlink(redis, keys.due, keys.entries, keys.seen, keys.lease)
  await warm.close()
  await retry.close()
  redis.disconnect()
  return { perSec: (n / ms) * 1000, ms, n, stored, lost: n - stored, cpu: usage, evalsha: c.usecPerCall(stats0, stats1, 'evalsha') }
}

async function bullmq({ batch, n, callers }) {
  const { Queue } = require('bullmq')
  const redis = c.redisClient()
  const connection = c.redisClient()
  const prefix = c.unique('bullmq-bulk')
  const delay = Number(DELAY_MINUTES) * 60_000
  const jobs = (tag, b) =>
    Array.from({ length: batch }, (_, i) => ({
      name: 'retry',
      data: { topic: TOPIC, event: EVENT, value: payload(tag, b * batch + i) },
      opts: { delay },
    }))

  const warm = new Queue('warm', { connection, prefix })
  await warm.waitUntilReady()
  await c.runCallers(callers, WARMUP_BATCHES, (b) => warm.addBulk(jobs('w', b)))
  await warm.obliterate({ force: true })
  await warm.close()

  const queue = new Queue('retry', { connection, prefix })
  await queue.waitUntilReady()
  const stats0 = await c.commandStats(redis)
  const cpu = await c.cpuMeter(redis)
  const ms = await c.runCallers(callers, n / batch, (b) => queue.addBulk(jobs('m', b)))
  const usage = cpu.stop()
  const stats1 = await c.commandStats(redis)
  const stored = await queue.getDelayedCount()
  await queue.obliterate({ force: true })
  await queue.close()
  await c.unlinkMatching(redis, `${prefix}:*`)
  connection.disconnect()
  redis.disconnect()
  return { perSec: (n / ms) * 1000, ms, n, stored, lost: n - stored, cpu: usage, evalsha: c.usecPerCall(stats0, stats1, 'evalsha') }
}

c.main(async (args) => {
  if (args.n % args.batch) throw new Error('n must be a whole number of batches')
  switch (args.kind) {
    case 'kafka-redis-retry':
      return kafkaRetry(args)
    case 'bullmq':
      return bullmq(args)
    default:
      throw new Error(`unknown kind ${args.kind}`)
  }
})
