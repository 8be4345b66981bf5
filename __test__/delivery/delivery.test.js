// Storage that loses nothing: concurrent pushes, exactly-once publishing with several listeners,
// de-duplication of redeliveries, millisecond scheduling, failed publishes rescheduled.
const { randomUUID } = require('crypto')
const { KafkaRetry } = require('../..')
const h = require('../helpers')

beforeAll(h.requireServers)

const opts = (delay, retryCount = '0', maxRetry = '3') => ({ delay, maxRetry, retryCount })

test('2,000 concurrent pushes are all stored, then each is published to Kafka exactly once', async () => {
  const topic = h.unique('bulk-topic')
  const prefix = h.unique('bulk')
  await h.createTopics(topic)
  const pusher = new KafkaRetry({ keyPrefix: prefix })
  const redis = h.redisClient()
  const N = 2000
  const started = process.hrtime.bigint()
  await Promise.all(
    Array.from({ length: N }, (_, n) =>
      pusher.pushToQueue(topic, { event: `e${n}`, value: JSON.stringify({ msgId: randomUUID(), n }) }, opts('0.002')),
    ),
  )
  const seconds = Number(process.hrtime.bigint() - started) / 1e9
  console.log(`2,000 concurrent pushes took ${(seconds * 1000).toFixed(0)} ms (${Math.round(N / seconds)} pushes/s)`)
  // Every push resolved only once stored: all are in Redis before any listener runs.
  expect(await redis.hlen(h.scheduleKeys(prefix).entries)).toBe(N)

  const { consumer, seen } = await h.consume(topic)
  const listener = new KafkaRetry({ keyPrefix: prefix })
  try {
    await listener.queueListener(null, h.unique('dlq'))
    await h.waitFor(() => seen.length >= N, 60000)
    await h.sleep(1000) // anything extra (a duplicate) would arrive by now
    const counts = new Map()
    for (const m of seen) counts.set(m.value.n, (counts.get(m.value.n) || 0) + 1)
    expect(counts.size).toBe(N)
    expect([...counts.values()].every((c) => c === 1)).toBe(true)
    expect(seen).toHaveLength(N)
    expect(await redis.hlen(h.scheduleKeys(prefix).entries)).toBe(0)
  } finally {
    await listener.close()
    await pusher.close()
    await consumer.disconnect()
    redis.disconnect()
  }
})

test('two listeners on one schedule never publish the same message twice', async () => {
  const prefix = h.unique('two')
  const N = 1000
  const published = new Map()
  const byListener = [0, 0]
  const producerFor = (i) => ({
    async produce(topic, key, value) {
      const { n } = JSON.parse(value)
      published.set(n, (published.get(n) || 0) + 1)
      byListener[i] += 1
      await h.sleep(1) // a publish takes a moment, so the two listeners overlap
    },
  })
  const a = new KafkaRetry({ keyPrefix: prefix, batchSize: 20, pollIntervalMs: 50 })
  const b = new KafkaRetry({ keyPrefix: prefix, batchSize: 20, pollIntervalMs: 50 })
  try {
    await a.queueListener(producerFor(0), h.unique('dlq'))
    await b.queueListener(producerFor(1), h.unique('dlq'))
    await Promise.all(
      Array.from({ length: N }, (_, n) =>
        a.pushToQueue('t', { event: 'e', value: JSON.stringify({ n }) }, opts(String((n % 50) / 6000))),
      ),
    )
    await h.waitFor(() => published.size >= N, 30000)
    await h.sleep(500)
    expect(published.size).toBe(N)
    expect([...published.values()].filter((c) => c !== 1)).toEqual([])
    console.log(`two listeners: ${byListener[0]} + ${byListener[1]} messages`)
  } finally {
    await a.close()
    await b.close()
  }
})

test('a redelivered message (same msgId and retryCount) is stored once', async () => {
  const prefix = h.unique('dedupe')
  const redis = h.redisClient()
  const retry = new KafkaRetry({ keyPrefix: prefix })
  try {
    const value = JSON.stringify({ msgId: 'same-id', x: 1 })
    await retry.pushToQueue('t', { event: 'e', value }, opts('5'))
    await retry.pushToQueue('t', { event: 'e', value }, opts('5'))
    // The same msgId at the next retry count is a new failure, not a redelivery.
    await retry.pushToQueue('t', { event: 'e', value }, opts('5', '1'))
    // A message without msgId is never de-duplicated.
    await retry.pushToQueue('t', { event: 'e', value: '{"x":1}' }, opts('5'))
    await retry.pushToQueue('t', { event: 'e', value: '{"x":1}' }, opts('5'))
    expect(await redis.zcard(h.scheduleKeys(prefix).due)).toBe(4)
    const entries = Object.values(await redis.hgetall(h.scheduleKeys(prefix).entries)).map(h.decodeEntry)
    expect(entries.map((e) => e.retryCount).sort()).toEqual([1, 1, 1, 2])
  } finally {
    await retry.close()
    redis.disconnect()
  }
})

test('messages fire within milliseconds of their due time, not on a minute tick', async () => {
  const prefix = h.unique('late')
  const fired = []
  const retry = new KafkaRetry({ keyPrefix: prefix })
  try {
    await retry.queueListener({ produce: async (topic, key, value, headers) => fired.push({ at: Date.now(), headers }) })
    const pushedAt = []
    for (const delay of ['0.01', '0.02', '0.005']) {
      pushedAt.push(Date.now())
      await retry.pushToQueue('t', { event: 'e', value: JSON.stringify({ delay }) }, opts(delay))
    }
    await h.waitFor(() => fired.length === 3, 5000)
    expect(fired).toHaveLength(3)
    for (const { at, headers } of fired) {
      const late = at - Number(headers.executeAt)
      expect(late).toBeGreaterThanOrEqual(0)
      expect(late).toBeLessThan(100)
    }
    // due = push time + delay: 0.005 min = 300 ms fired first, 0.02 min = 1200 ms last.
    expect(fired.map((f) => f.headers.delay)).toEqual(['0.005', '0.01', '0.02'])
    expect(Number(fired[2].headers.executeAt) - pushedAt[1]).toBeGreaterThanOrEqual(1200)
  } finally {
    await retry.close()
  }
})

test('a producer that throws or rejects leaves the message scheduled, without spending a retry', async () => {
  const prefix = h.unique('flaky')
  let attempts = 0
  const delivered = []
  const retry = new KafkaRetry({ keyPrefix: prefix })
  const redis = h.redisClient()
  try {
    await retry.queueListener({
      produce(topic, key, value, headers) {
        attempts += 1
        if (attempts === 1) throw new Error('broker down (sync throw)')
        if (attempts === 2) return Promise.reject(new Error('broker down (rejection)'))
        delivered.push(headers)
        return Promise.resolve()
      },
    }, h.unique('dlq'))
    // maxRetry 1: had a failed publish spent a retry, the third attempt would be dead-lettered.
    await retry.pushToQueue('t', { event: 'e', value: '{"a":1}' }, opts('0', '0', '1'))
    await h.waitFor(() => delivered.length === 1, 10000)
    expect(attempts).toBe(3)
    // The two failed publishes did not change the count.
    expect(delivered).toHaveLength(1)
    expect(delivered[0].retryCount).toBe('1')
    expect(await redis.hlen(h.scheduleKeys(prefix).entries)).toBe(0)
  } finally {
    await retry.close()
    redis.disconnect()
  }
})

test('an exhausted message is dead-lettered right away, not after one more delay', async () => {
  const prefix = h.unique('exhausted')
  const dlq = h.unique('dlq')
  const redis = h.redisClient()
  const published = []
  const retry = new KafkaRetry({ keyPrefix: prefix })
  try {
    await retry.queueListener({ produce: async (...args) => published.push(args) }, dlq)
    const started = Date.now()
    // retryCount 3 of maxRetry 3 failed again: the 4th retry is not allowed.
    await retry.pushToQueue('t', { event: 'e', value: '{"n":1}' }, opts('5', '3', '3'))
    expect(await h.waitFor(async () => (await redis.hlen(dlq)) === 1, 3000)).toBe(true)
    expect(Date.now() - started).toBeLessThan(1000)
    expect(published).toHaveLength(0)
  } finally {
    await retry.close()
    redis.disconnect()
  }
})

test('a redelivery after the message was already published is still dropped (within dedupeWindowMs)', async () => {
  const prefix = h.unique('late-redelivery')
  const published = []
  const retry = new KafkaRetry({ keyPrefix: prefix })
  const redis = h.redisClient()
  try {
    await retry.queueListener({ produce: async (topic, key, value, headers) => published.push(headers.retryCount) }, h.unique('dlq'))
    const value = JSON.stringify({ msgId: 'redelivered-1' })
    await retry.pushToQueue('t', { event: 'e', value }, opts('0'))
    await h.waitFor(() => published.length === 1, 3000)
    await h.waitFor(async () => (await redis.hlen(h.scheduleKeys(prefix).entries)) === 0, 3000)
    // The consumer crashed before committing its offset and gets the same failure again.
    await retry.pushToQueue('t', { event: 'e', value }, opts('0'))
    await h.sleep(300)
    expect(published).toEqual(['1'])
    expect(await redis.hlen(h.scheduleKeys(prefix).entries)).toBe(0)
    // Its next failure (retryCount 1) is new and goes through.
    await retry.pushToQueue('t', { event: 'e', value }, opts('0', '1'))
    await h.waitFor(() => published.length === 2, 3000)
    expect(published).toEqual(['1', '2'])
  } finally {
    await retry.close()
    redis.disconnect()
  }
})

test('with dedupeWindowMs 0 a redelivery after publishing is stored again', async () => {
  const prefix = h.unique('no-window')
  const published = []
  const retry = new KafkaRetry({ keyPrefix: prefix, dedupeWindowMs: 0 })
  try {
    await retry.queueListener({ produce: async () => published.push(1) }, h.unique('dlq'))
    const value = JSON.stringify({ msgId: 'window-0' })
    await retry.pushToQueue('t', { event: 'e', value }, opts('0'))
    await h.waitFor(() => published.length === 1, 3000)
    await h.sleep(50)
    await retry.pushToQueue('t', { event: 'e', value }, opts('0'))
    await h.waitFor(() => published.length === 2, 3000)
    expect(published).toHaveLength(2)
  } finally {
    await retry.close()
  }
})

test('entries stored as JSON by an earlier version are still published after an upgrade', async () => {
  const prefix = h.unique('upgrade')
  const keys = h.scheduleKeys(prefix)
  const redis = h.redisClient()
  const fired = []
  const retry = new KafkaRetry({ keyPrefix: prefix })
  try {
    // Exactly what 0.1 stored: the entry as JSON with named fields, the payload escaped inside.
    const due = Date.now() - 5
    const old = {
      topic: 'orders', event: 'OrderFailed', value: JSON.stringify({ msgId: 'old-1', n: 7 }), delay: '0.5',
      maxRetry: 3, retryCount: 2, dueAt: due, firstFailedAt: due - 60000, waitedMs: 30000,
    }
    await redis.hset(keys.entries, 'm:2:6:orders:old-1', JSON.stringify(old))
    await redis.zadd(keys.due, due, 'm:2:6:orders:old-1')
    // And one written now, to see both forms side by side.
    await retry.pushToQueue('orders', { event: 'New', value: '{"n":8}' }, opts('0'))
    const [newId] = (await redis.hkeys(keys.entries)).filter((id) => id.startsWith('u:'))
    expect(newId).toHaveLength(24)
    const stored = h.decodeEntry(await redis.hget(keys.entries, newId))
    expect(stored).toMatchObject({ topic: 'orders', event: 'New', value: '{"n":8}', delay: '0', maxRetry: 3, retryCount: 1 })
    expect(stored.firstFailedAt).toBe(stored.dueAt - stored.waitedMs)

    await retry.queueListener({ produce: async (topic, key, value, headers) => fired.push({ topic, key, value: JSON.parse(value), headers }) })
    await h.waitFor(() => fired.length === 2, 5000)
    const oldOne = fired.find((f) => f.key === 'OrderFailed')
    expect(oldOne.topic).toBe('orders')
    expect(oldOne.value.n).toBe(7)
    expect(oldOne.headers).toMatchObject({ delay: '0.5', maxRetry: '3', retryCount: '2', executeAt: String(due), firstFailedAt: String(due - 60000) })
    expect(fired.find((f) => f.key === 'New').value.n).toBe(8)
    await h.waitFor(async () => (await redis.hlen(keys.entries)) === 0, 3000)
    expect(await redis.hlen(keys.entries)).toBe(0)
  } finally {
    await retry.close()
    redis.disconnect()
  }
})

test('a JavaScript producer: failures are reported with their text and retried; a plain return value counts as published', async () => {
  const prefix = h.unique('jsprod')
  const errors = []
  const attempts = new Map()
  const delivered = []
  const retry = new KafkaRetry({ keyPrefix: prefix, onEvent: (e) => { if (e.type === 'error') errors.push(e.message) } })
  const redis = h.redisClient()
  try {
    await retry.queueListener({
      produce(topic, key, value, headers) {
        const { n } = JSON.parse(value)
        const attempt = (attempts.get(n) || 0) + 1
        attempts.set(n, attempt)
        if (attempt === 1 && n === 1) throw new Error('sync boom')
        if (attempt === 1 && n === 2) return Promise.reject(new Error('async boom'))
        if (attempt === 1 && n === 3) return Promise.reject('just a string')
        delivered.push({ n, headers })
        return n === 4 ? 'not a promise' : new Promise((resolve) => setTimeout(resolve, 20))
      },
    }, h.unique('dlq'))
    for (const n of [1, 2, 3, 4]) await retry.pushToQueue('t', { event: 'e', value: JSON.stringify({ n }) }, opts('0'))
    await h.waitFor(async () => delivered.length === 4 && (await redis.hlen(h.scheduleKeys(prefix).entries)) === 0, 15000)
    expect(delivered.map((d) => d.n).sort()).toEqual([1, 2, 3, 4])
    // Failed publishes did not spend a retry, and every header arrived as a string.
    for (const d of delivered) expect(d.headers).toMatchObject({ retryCount: '1', maxRetry: '3', delay: '0' })
    expect([...attempts.values()].sort()).toEqual([1, 2, 2, 2])
    for (const text of ['sync boom', 'async boom', 'just a string']) {
      expect(errors.some((m) => m.includes(text))).toBe(true)
    }
    expect(await redis.hlen(h.scheduleKeys(prefix).entries)).toBe(0)
  } finally {
    await retry.close()
    redis.disconnect()
  }
})

test('keyed retries land on the partition kafkajs and the Java client pick for their key', async () => {
  const { Partitioners } = require('kafkajs')
  const topic = h.unique('keyed-topic')
  const prefix = h.unique('keyed')
  const PARTITIONS = 6
  const admin = h.kafka().admin()
  await admin.connect()
  try {
    await admin.createTopics({ topics: [{ topic, numPartitions: PARTITIONS, replicationFactor: 1 }], waitForLeaders: true })
  } finally {
    await admin.disconnect()
  }
  const { consumer, seen } = await h.consume(topic)
  const retry = new KafkaRetry({ keyPrefix: prefix, pollIntervalMs: 50 })
  const N = 40
  try {
    await retry.queueListener(null, h.unique('dlq'))
    await Promise.all(Array.from({ length: N }, (_, n) => retry.pushToQueue(topic, { event: `order-${n}`, value: JSON.stringify({ n }) }, opts('0'))))
    await h.waitFor(() => seen.length >= N, 30000)
    // kafkajs's default partitioner is the Java client's: murmur2 of the key.
    const partitioner = Partitioners.DefaultPartitioner()
    const partitionMetadata = Array.from({ length: PARTITIONS }, (_, partitionId) => ({ partitionId, leader: 0 }))
    const expected = (key) => partitioner({ topic, partitionMetadata, message: { key } })
    const elsewhere = seen.filter((m) => m.partition !== expected(m.key)).map((m) => ({ key: m.key, got: m.partition, expected: expected(m.key) }))
    expect(seen).toHaveLength(N)
    expect(new Set(seen.map((m) => m.partition)).size).toBeGreaterThan(1) // the keys do spread
    expect(elsewhere).toEqual([])
  } finally {
    await retry.close()
    await consumer.disconnect()
  }
})
