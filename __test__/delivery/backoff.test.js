// Retry policies, why it failed, dead letters to Kafka and to work with, migration from the
// original class, and visibility (stats, metrics, events, logger). Real Redis and broker.
const { KafkaRetry } = require('../..')
const h = require('../helpers')

beforeAll(h.requireServers)

const opts = (delay, retryCount = '0', maxRetry = '3', extra = {}) => ({ delay, maxRetry, retryCount, ...extra })

/** A listener whose JS producer records what it is asked to publish. */
async function recordingListener(config, dlq) {
  const published = []
  const retry = new KafkaRetry({ pollIntervalMs: 100, ...config })
  await retry.queueListener({ produce: async (topic, key, value, headers) => published.push({ topic, key, value: JSON.parse(value), headers, at: Date.now() }) }, dlq)
  return { retry, published }
}

describe('backoff policies', () => {
  test('exponential: attempt k waits base × multiplier^(k-1); the delay header keeps the base', async () => {
    const prefix = h.unique('exp')
    const { retry, published } = await recordingListener({ keyPrefix: prefix, backoff: { type: 'exponential', multiplier: 2 } }, h.unique('dlq'))
    try {
      const pushedAt = {}
      for (const retryCount of ['0', '1', '2']) {
        pushedAt[retryCount] = Date.now()
        // base 0.003 min = 180 ms: attempts 1, 2, 3 wait 180, 360, 720 ms.
        await retry.pushToQueue('t', { event: 'e', value: JSON.stringify({ retryCount }) }, opts('0.003', retryCount, '5'))
      }
      await h.waitFor(() => published.length === 3, 5000)
      const byAttempt = Object.fromEntries(published.map((p) => [p.headers.retryCount, p]))
      expect(byAttempt['1'].headers.retryDelayMs).toBe('180')
      expect(byAttempt['2'].headers.retryDelayMs).toBe('360')
      expect(byAttempt['3'].headers.retryDelayMs).toBe('720')
      for (const p of published) expect(p.headers.delay).toBe('0.003')
      expect(Number(byAttempt['3'].headers.executeAt) - pushedAt['2']).toBeGreaterThanOrEqual(720)
      expect(byAttempt['3'].at - pushedAt['2']).toBeGreaterThanOrEqual(700)
    } finally {
      await retry.close()
    }
  })

  test('list: attempt k waits delaysMs[k-1], the last repeating; maxDelayMs caps exponential', async () => {
    const list = await recordingListener({ keyPrefix: h.unique('list'), backoff: { type: 'list', delaysMs: [50, 400] } }, h.unique('dlq'))
    const capped = await recordingListener({ keyPrefix: h.unique('cap'), backoff: { type: 'exponential', multiplier: 10, maxDelayMs: 250 } }, h.unique('dlq'))
    try {
      for (const retryCount of ['0', '1', '4']) {
        await list.retry.pushToQueue('t', { event: 'e', value: '{}' }, opts('60', retryCount, '9'))
        await capped.retry.pushToQueue('t', { event: 'e', value: '{}' }, opts('0.001', retryCount, '9'))
      }
      await h.waitFor(() => list.published.length === 3 && capped.published.length === 3, 5000)
      const delays = (p) => Object.fromEntries(p.map((m) => [m.headers.retryCount, m.headers.retryDelayMs]))
      // The base (60 minutes) is not used by a list.
      expect(delays(list.published)).toEqual({ 1: '50', 2: '400', 5: '400' })
      expect(delays(capped.published)).toEqual({ 1: '60', 2: '250', 5: '250' })
    } finally {
      await list.retry.close()
      await capped.retry.close()
    }
  })

  test('equal jitter waits between half and all of the computed delay, and varies', async () => {
    const { retry, published } = await recordingListener({ keyPrefix: h.unique('jitter'), backoff: { type: 'fixed', jitter: 'equal' } }, h.unique('dlq'))
    try {
      await Promise.all(Array.from({ length: 30 }, (_, n) => retry.pushToQueue('t', { event: 'e', value: JSON.stringify({ n }) }, opts('0.005'))))
      await h.waitFor(() => published.length === 30, 5000)
      const waited = published.map((p) => Number(p.headers.retryDelayMs))
      expect(waited.every((w) => w >= 150 && w <= 300)).toBe(true)
      expect(new Set(waited).size).toBeGreaterThan(5)
    } finally {
      await retry.close()
    }
  })

  test('a bad policy is rejected with ERR_INVALID_ARG naming the key', () => {
    for (const [backoff, key] of [
      [{ type: 'linear' }, 'backoff.type'],
      [{ type: 'exponential', multiplier: 0.5 }, 'backoff.multiplier'],
      [{ type: 'list', delaysMs: [] }, 'backoff.delaysMs'],
      [{ type: 'list', delaysMs: ['1'] }, 'backoff.delaysMs[0]'],
      [{ type: 'fixed', jitter: 'some' }, 'backoff.jitter'],
    ]) {
      let thrown
      try {
        new KafkaRetry({ backoff })
      } catch (err) {
        thrown = err
      }
      expect(thrown && thrown.code).toBe('ERR_INVALID_ARG')
      expect(thrown.message).toContain(key)
    }
  })
})

describe('dead letters', () => {
  test('keep why it failed and since when, and go to the dead letter topic too', async () => {
    const topic = h.unique('dlt')
    await h.createTopics(topic)
    const dlq = h.unique('dlq')
    const redis = h.redisClient()
    const { consumer, seen } = await h.consume(topic)
    const retry = new KafkaRetry({ keyPrefix: h.unique('why'), deadLetterTopic: topic })
    try {
      await retry.queueListener(null, dlq)
      const err = new TypeError('amount is not a number')
      await retry.pushToQueue('orders', { event: 'OrderCreated', value: '{"id":9}' }, opts('0', '3', '3', { error: err, firstFailedAt: '1700000000000' }))
      await retry.pushToQueue('orders', { event: 'Plain', value: '{"id":10}' }, opts('0', '3', '3', { error: 'timeout' }))
      await h.waitFor(() => seen.length === 2, 20000)
      const page = await retry.deadLetters(dlq)
      expect(page.items).toHaveLength(2)
      const created = page.items.find((i) => i.event === 'OrderCreated')
      expect(created.error).toEqual({ message: 'amount is not a number', name: 'TypeError' })
      expect(created.firstFailedAt).toBe(1700000000000)
      expect(created.options.retryCount).toBe('4')
      expect(page.items.find((i) => i.event === 'Plain').error).toEqual({ message: 'timeout', name: 'Error' })
      const message = seen.find((m) => m.key === 'OrderCreated')
      expect(message.raw).toBe('{"id":9}')
      expect(message.headers).toMatchObject({
        originalTopic: 'orders', retryCount: '4', maxRetry: '3', firstFailedAt: '1700000000000',
        lastError: 'amount is not a number', lastErrorName: 'TypeError',
      })
      expect(Number(message.headers.diedAt)).toBeGreaterThan(1700000000000)
      expect(await redis.hlen(dlq)).toBe(2)
    } finally {
      await retry.close()
      await consumer.disconnect()
      redis.disconnect()
    }
  })

  test('page newest first, requeue one (retryCount reset), remove one, requeue all', async () => {
    const dlq = h.unique('dlq')
    const prefix = h.unique('work')
    const { retry, published } = await recordingListener({ keyPrefix: prefix }, dlq)
    const redis = h.redisClient()
    try {
      for (let n = 0; n < 5; n++) {
        await retry.pushToQueue('t', { event: `e${n}`, value: JSON.stringify({ n }) }, opts('0', '1', '1'))
        await h.waitFor(async () => (await redis.hlen(dlq)) === n + 1, 3000)
        await h.sleep(5)
      }
      // A dead letter the original class wrote (keyed by event name) is listed too.
      await redis.hset(dlq, 'LegacyEvent', JSON.stringify({ topic: 't', event: 'LegacyEvent', value: { n: 99 }, options: { delay: '2', maxRetry: '3', retryCount: '4' } }))
      const first = await retry.deadLetters(dlq, { limit: 2 })
      expect(first.items.map((i) => i.event)).toEqual(['e4', 'e3'])
      const second = await retry.deadLetters(dlq, { limit: 2, cursor: first.cursor })
      expect(second.items.map((i) => i.event)).toEqual(['e2', 'e1'])
      const third = await retry.deadLetters(dlq, { limit: 2, cursor: second.cursor })
      expect(third.items.map((i) => i.event)).toEqual(['e0', 'LegacyEvent'])
      expect(third.cursor).toBeNull()

      const e3 = first.items[1]
      expect(await retry.requeueDeadLetter(dlq, e3.id)).toBe(true)
      expect(await retry.requeueDeadLetter(dlq, e3.id)).toBe(false)
      await h.waitFor(() => published.some((p) => p.key === 'e3'), 3000)
      const again = published.find((p) => p.key === 'e3')
      expect(again.headers.retryCount).toBe('0')
      expect(again.value.n).toBe(3)
      expect(await redis.hexists(dlq, e3.id)).toBe(0)

      expect(await retry.removeDeadLetter(dlq, first.items[0].id)).toBe(true)
      expect(await retry.removeDeadLetter(dlq, first.items[0].id)).toBe(false)
      expect(await retry.requeueAllDeadLetters(dlq)).toBe(4)
      await h.waitFor(() => published.length === 5, 3000)
      expect(published.map((p) => p.key).sort()).toEqual(['LegacyEvent', 'e0', 'e1', 'e2', 'e3'])
      expect(await redis.hlen(dlq)).toBe(0)
      expect((await retry.deadLetters(dlq)).items).toEqual([])
    } finally {
      await retry.close()
      redis.disconnect()
    }
  })

  test('maxDeadLetters reports (event and stats) when passed, and trims nothing', async () => {
    const dlq = h.unique('dlq')
    const events = []
    const retry = new KafkaRetry({ keyPrefix: h.unique('cap'), maxDeadLetters: 2, onEvent: (e) => events.push(e) })
    try {
      await retry.queueListener({ produce: async () => {} }, dlq)
      for (let n = 0; n < 4; n++) await retry.pushToQueue('t', { event: 'e', value: JSON.stringify({ n }) }, opts('0', '1', '1'))
      await h.waitFor(() => events.filter((e) => e.type === 'deadLetter').length === 4, 5000)
      await h.sleep(100)
      const caps = events.filter((e) => e.type === 'deadLetterCap')
      expect(caps).toHaveLength(1)
      expect(caps[0]).toMatchObject({ dlqName: dlq, max: 2 })
      expect(caps[0].count).toBeGreaterThan(2)
      const stats = await retry.stats()
      expect(stats.deadLettered).toBe(4)
      expect(stats.deadLetterCapExceeded).toBe(true)
    } finally {
      await retry.close()
    }
  })
})

test('migration: buckets written the way the original class did are each published once', async () => {
  const redis = h.redisClient()
  const topic = h.unique('legacy-topic')
  const minuteKey = (ms) => {
    const d = new Date(ms)
    const two = (n) => String(n).padStart(2, '0')
    return `${d.getUTCFullYear()}${two(d.getUTCMonth() + 1)}${two(d.getUTCDate())}-${two(d.getUTCHours())}${two(d.getUTCMinutes())}`
  }
  // The original's pushToQueue: GET the bucket of the due minute, append, SET it back.
  const originalPush = async (dueMs, entry) => {
    const key = minuteKey(dueMs)
    const list = JSON.parse((await redis.get(key)) || '[]')
    list.push(entry)
    await redis.set(key, JSON.stringify(list), 'EX', 3600)
    return key
  }
  const buckets = new Set()
  const N = 12
  for (let n = 0; n < N; n++) {
    const due = Date.now() - (n % 3) * 60000 // this minute and two past minutes: all due now
    buckets.add(await originalPush(due, { topic, event: `E${n}`, value: JSON.stringify({ msgId: `legacy-${n}`, n }), options: { delay: '2', maxRetry: '3', retryCount: '2' } }))
  }
  const { retry, published } = await recordingListener({ keyPrefix: h.unique('migrate') }, h.unique('dlq'))
  try {
    expect(await retry.migrateLegacy()).toBe(N)
    expect(await retry.migrateLegacy()).toBe(0)
    await h.waitFor(() => published.filter((p) => p.topic === topic).length >= N, 5000)
    await h.sleep(300)
    const mine = published.filter((p) => p.topic === topic)
    expect(mine.map((p) => p.value.n).sort((a, b) => a - b)).toEqual(Array.from({ length: N }, (_, n) => n))
    // The original stored retryCount already incremented: it is published as is.
    expect(mine.every((p) => p.headers.retryCount === '2' && p.headers.delay === '2')).toBe(true)
    for (const key of buckets) expect(await redis.exists(key)).toBe(0)
  } finally {
    await retry.close()
  }
  // With migrateLegacy: true the listener does it by itself.
  const later = await originalPush(Date.now(), { topic, event: 'Late', value: '{"late":true}', options: { delay: '2', maxRetry: '3', retryCount: '1' } })
  const auto = await recordingListener({ keyPrefix: h.unique('migrate-auto'), migrateLegacy: true }, h.unique('dlq'))
  try {
    await h.waitFor(() => auto.published.some((p) => p.key === 'Late'), 5000)
    expect(auto.published.filter((p) => p.key === 'Late')).toHaveLength(1)
    expect(await redis.exists(later)).toBe(0)
  } finally {
    await auto.retry.close()
    redis.disconnect()
  }
})

test('stats, metrics, onEvent and logger report what the listener did', async () => {
  const events = []
  const logged = { warn: [], error: [] }
  const logger = { warn: (m) => logged.warn.push(m), error: (m) => logged.error.push(m) }
  const dlq = h.unique('dlq')
  const prefix = h.unique('stats')
  let failOnce = true
  const retry = new KafkaRetry({ keyPrefix: prefix, onEvent: (e) => events.push(e), logger })
  try {
    const before = await retry.stats()
    await retry.queueListener({
      produce: async () => {
        if (failOnce) {
          failOnce = false
          throw new Error('broker hiccup')
        }
      },
    }, dlq)
    await retry.pushToQueue('t', { event: 'ok', value: '{}' }, opts('0'))
    await retry.pushToQueue('t', { event: 'dead', value: '{}' }, opts('0', '1', '1'))
    await retry.pushToQueue('t', { event: 'later', value: '{}' }, opts('10'))
    await h.waitFor(() => events.some((e) => e.type === 'retry') && events.some((e) => e.type === 'deadLetter'), 5000)
    const stats = await retry.stats()
    expect(stats).toMatchObject({ scheduled: 1, due: 0, inflight: 0, deadLettered: 1, deadLetterCapExceeded: false })
    expect(stats.published - before.published).toBe(1)
    expect(stats.publishFailures - before.publishFailures).toBe(1)
    expect(stats.deadLetteredTotal - before.deadLetteredTotal).toBe(1)
    expect(events.find((e) => e.type === 'retry')).toMatchObject({ topic: 't', event: 'ok', retryCount: 1 })
    expect(events.find((e) => e.type === 'deadLetter')).toMatchObject({ event: 'dead', dlqName: dlq })
    expect(events.find((e) => e.type === 'error')).toMatchObject({ code: 'ERR_KAFKA_PUBLISH' })
    expect(logged.error.some((m) => m.includes('broker hiccup'))).toBe(true)
    const text = await retry.metrics()
    expect(text).toContain(`kafka_retry_scheduled{prefix="${prefix}"} 1`)
    expect(text).toContain(`kafka_retry_dead_letters{prefix="${prefix}"} 1`)
    expect(text).toMatch(/# TYPE kafka_retry_published_total counter/)
  } finally {
    await retry.close()
  }
})

test('a throwing onEvent or logger does not crash the process or stop the listener', async () => {
  const published = []
  const retry = new KafkaRetry({
    keyPrefix: h.unique('throwing'),
    onEvent: () => { throw new Error('bug in the metrics code') },
    logger: { error: () => { throw new Error('bug in the logger') } },
  })
  try {
    let first = true
    await retry.queueListener({ produce: async (t, k, v) => { if (first) { first = false; throw new Error('x') } published.push(v) } })
    await retry.pushToQueue('t', { event: 'e', value: '{"a":1}' }, opts('0'))
    await h.waitFor(() => published.length === 1, 5000)
    expect(published).toHaveLength(1)
  } finally {
    await retry.close()
  }
})
