// onEvent under a burst (issue 28, item 3): events reach onEvent in batches through a bounded
// backlog, so a burst the JavaScript thread cannot follow one call at a time is delivered whole,
// and what a receiver that falls too far behind loses is counted in stats().eventsDropped (and
// kafka_retry_events_dropped_total). Real Redis, real Kafka (the package's own producer, which
// needs no JavaScript thread).
'use strict'

const { Worker } = require('worker_threads')
const { KafkaRetry } = require('../..')
const h = require('../helpers')

/** Messages fired while the JavaScript thread is blocked: far more than 1,024 calls could wait. */
const BURST = 10000

// Polls Redis from its own thread until the schedule of `prefix` is empty (every message
// published and acknowledged), then wakes the blocked main thread.
const WAITER = `
const { workerData } = require('worker_threads')
const Redis = require('ioredis')
const { redisUrl, keys, flag } = workerData
const redis = new Redis(redisUrl)
const done = new Int32Array(flag)
const deadline = Date.now() + 180000
;(async () => {
  for (;;) {
    const left = (await redis.zcard(keys.due)) + (await redis.zcard(keys.lease)) + (await redis.hlen(keys.entries))
    if (left === 0 || Date.now() > deadline) break
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  redis.disconnect()
  Atomics.store(done, 0, 1)
  Atomics.notify(done, 0)
})()
`

test('a burst of retries reaches onEvent whole while the JavaScript thread is busy, and stats() counts no drops', async () => {
  await h.requireServers()
  const prefix = h.unique('events')
  const topic = h.unique('events-topic')
  await h.createTopics(topic)
  let retries = 0
  const retry = new KafkaRetry({ keyPrefix: prefix, batchSize: 1000, onEvent: (event) => { if (event.type === 'retry') retries++ } })
  const redis = h.redisClient()
  try {
    const items = Array.from({ length: BURST }, (_, i) => ({ topic, message: { event: `k${i}`, value: { i } }, options: { delay: '0' } }))
    await retry.pushMany(items)
    const flag = new SharedArrayBuffer(4)
    const worker = new Worker(WAITER, { eval: true, workerData: { redisUrl: h.REDIS_URL, keys: h.scheduleKeys(prefix), flag } })
    await new Promise((resolve) => worker.once('online', resolve))
    await retry.queueListener(null, `${prefix}:dead-letters`)
    // The JavaScript thread is blocked until the listener has published every message: every
    // event waits for it at once.
    const blocked = Date.now()
    Atomics.wait(new Int32Array(flag), 0, 0, 180000)
    const blockedMs = Date.now() - blocked
    await new Promise((resolve) => worker.once('exit', resolve))
    expect(await redis.zcard(h.scheduleKeys(prefix).due)).toBe(0)
    await h.waitFor(() => retries >= BURST, 60000)
    // Nothing more arrives: every message once.
    await h.sleep(500)
    expect(retries).toBe(BURST)
    const stats = await retry.stats()
    expect(stats.published).toBeGreaterThanOrEqual(BURST)
    expect(stats.eventsDropped).toBe(0)
    expect(await retry.metrics()).toMatch(new RegExp(`^kafka_retry_events_dropped_total\\{prefix="${prefix}"\\} 0$`, 'm'))
    console.log(`events: ${BURST} retries fired while the JavaScript thread was blocked for ${blockedMs} ms, ${retries} delivered`)
  } finally {
    await retry.close()
    const keys = await redis.keys(`*${prefix}*`)
    if (keys.length) await redis.del(...keys)
    redis.disconnect()
  }
}, 300000)

test('without onEvent, stats() reports eventsDropped 0', async () => {
  const retry = new KafkaRetry({ keyPrefix: h.unique('events-none') })
  try {
    expect((await retry.stats()).eventsDropped).toBe(0)
  } finally {
    await retry.close()
  }
})
