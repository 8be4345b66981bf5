// Dead letters: why it failed and since when, the dead letter topic, pages newest first, requeue
// and remove one or all, maxDeadLetters. Real Redis and broker.
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
