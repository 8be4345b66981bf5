'use strict'
// Node RSS before and after n pushes (256 callers, one instance), in a fresh process started with
// --expose-gc. The messages go to `prefix` and are due a year from now: they are the pre-filled
// schedule of the scale benchmark, which reuses them (and deletes them at the end).
//
// args: { n, prefix }

const c = require('../lib/common')

const MB = 1024 * 1024

async function settledRss() {
  if (global.gc) {
    global.gc()
    await c.sleep(200)
    global.gc()
  }
  await c.sleep(300)
  return process.memoryUsage().rss
}

c.main(async ({ n, prefix }) => {
  const { KafkaRetry } = require(c.PACKAGE)
  const redis = c.redisClient()
  const retry = new KafkaRetry({ keyPrefix: prefix, redisUrl: c.REDIS_URL })
  const options = { delay: '525600', maxRetry: '3', retryCount: '0' }
  const tag = c.unique('r')
  const push = (k) =>
    retry.pushToQueue('bench-orders', { event: 'OrderFailed', value: JSON.stringify({ msgId: `${tag}-${k}`, orderId: k, success: false }) }, options)

  // Warm-up (connection, runtime threads, JIT) on a throwaway schedule, then the baseline.
  const warmPrefix = c.unique('rss-warm')
  const warm = new KafkaRetry({ keyPrefix: warmPrefix, redisUrl: c.REDIS_URL })
  await c.runCallers(256, 5000, (k) =>
    warm.pushToQueue('bench-orders', { event: 'OrderFailed', value: JSON.stringify({ msgId: `w${tag}-${k}` }) }, options),
  )
  await warm.close()
  const w = c.scheduleKeys(warmPrefix)
  await c.unlink(redis, w.due, w.entries, w.seen)
  const before = await settledRss()

  let peak = before
  const sampler = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss)
  }, 100)
  const ms = await c.runCallers(256, n, push)
  clearInterval(sampler)
  const after = process.memoryUsage().rss
  peak = Math.max(peak, after)
  const afterGc = await settledRss()
  const stored = await redis.zcard(c.scheduleKeys(prefix).due)
  await retry.close()
  redis.disconnect()
  return {
    n,
    stored,
    perSec: (n / ms) * 1000,
    rssBeforeMB: before / MB,
    rssAfterMB: after / MB,
    rssAfterGcMB: afterGc / MB,
    rssPeakMB: peak / MB,
    growthMB: (afterGc - before) / MB,
  }
})
