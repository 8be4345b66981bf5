// pushMany: a batch of failed messages in one call, validated as a whole, stored with the same
// guarantees as pushToQueue (idempotent per msgId, resolved only once Redis holds every item).
const { randomUUID } = require('crypto')
const { KafkaRetry } = require('../..')
const h = require('../helpers')

beforeAll(h.requireServers)

const opts = (delay, retryCount = '0', maxRetry = '3') => ({ delay, maxRetry, retryCount })
const item = (topic, n, extra = {}) => ({
  topic,
  message: { event: `e${n}`, value: JSON.stringify({ msgId: `m-${n}`, n }) },
  options: opts('10'),
  ...extra,
})

describe('pushMany', () => {
  let retry
  let redis
  let prefix
  let keys
  beforeEach(() => {
    prefix = h.unique('bulk')
    keys = h.scheduleKeys(prefix)
    retry = new KafkaRetry({ keyPrefix: prefix })
    redis = h.redisClient()
  })
  afterEach(async () => {
    await retry.close()
    redis.disconnect()
  })

  test('stores every item before it resolves, each as pushToQueue would', async () => {
    const items = Array.from({ length: 20 }, (_, n) => item('orders', n))
    expect(await retry.pushMany(items)).toBe(20)
    expect(await redis.hlen(keys.entries)).toBe(20)
    expect(await redis.zcard(keys.due)).toBe(20)
    // The same message through pushToQueue gets the same id: it is recognised as already stored.
    const single = new KafkaRetry({ keyPrefix: prefix })
    try {
      await single.pushToQueue('orders', items[7].message, items[7].options)
    } finally {
      await single.close()
    }
    expect(await redis.hlen(keys.entries)).toBe(20)
    const entries = Object.values(await redis.hgetall(keys.entries)).map(h.decodeEntry)
    const byEvent = new Map(entries.map((e) => [e.event, e]))
    expect(byEvent.get('e3')).toMatchObject({ topic: 'orders', retryCount: 1, maxRetry: 3, delay: '10' })
    expect(JSON.parse(byEvent.get('e3').value)).toEqual({ msgId: 'm-3', n: 3 })
  })

  test('an invalid item at index k rejects the whole call with ERR_INVALID_ARG naming k, nothing stored', async () => {
    const bad = [
      [{ ...item('t', 0), topic: '' }, /items\[4\]: topic/],
      [{ ...item('t', 0), message: { event: 'e', value: 'not json' } }, /items\[4\]: message\.value/],
      [{ ...item('t', 0), options: { delay: 'soon' } }, /items\[4\]: .*delay/],
      [{ ...item('t', 0), options: { retryCount: -1 } }, /items\[4\]: .*retryCount/],
      ['not an object', /items\[4\]: item must be an object/],
      [null, /items\[4\]: item must be an object/],
    ]
    for (const [invalid, message] of bad) {
      const items = Array.from({ length: 8 }, (_, n) => item('t', n))
      items[4] = invalid
      const err = await h.rejection(retry.pushMany(items))
      expect(Object.prototype.toString.call(err)).toBe('[object Error]')
      expect(err.code).toBe('ERR_INVALID_ARG')
      expect(err.message).toMatch(message)
    }
    expect(await redis.exists(keys.entries, keys.due)).toBe(0)
  })

  test('items that are not an array reject with ERR_INVALID_ARG', async () => {
    for (const items of [undefined, null, 'x', { 0: item('t', 0), length: 1 }]) {
      const err = await h.rejection(retry.pushMany(items))
      expect(err.code).toBe('ERR_INVALID_ARG')
      expect(err.message).toMatch(/items must be an array/)
    }
  })

  test('an empty array resolves to 0 and stores nothing', async () => {
    expect(await retry.pushMany([])).toBe(0)
    expect(await redis.exists(keys.entries, keys.due)).toBe(0)
  })

  test('a redelivered batch is stored once; items without a msgId are stored each time', async () => {
    const items = Array.from({ length: 50 }, (_, n) => item('t', n))
    const plain = { topic: 't', message: { event: 'plain', value: '{"n":-1}' }, options: opts('10') }
    expect(await retry.pushMany([...items, plain])).toBe(51)
    // The consumer crashed before committing: the same batch comes again, half of it, then all.
    expect(await retry.pushMany(items.slice(0, 25))).toBe(0)
    expect(await retry.pushMany([...items, plain])).toBe(1)
    expect(await redis.hlen(keys.entries)).toBe(52)
    // A batch holding the same message twice stores it once.
    const twice = item('t', 1000)
    expect(await retry.pushMany([twice, twice])).toBe(1)
    expect(await redis.hlen(keys.entries)).toBe(53)
  })

  test('mixed topics and retry counts in one batch', async () => {
    const items = [
      item('a', 1),
      item('b', 2),
      { ...item('c', 3), options: opts('10', '2', '5') },
      // The same msgId at another retry count is another attempt, stored beside the first.
      { ...item('a', 1), options: opts('10', '1') },
    ]
    expect(await retry.pushMany(items)).toBe(4)
    const entries = Object.values(await redis.hgetall(keys.entries)).map(h.decodeEntry)
    const seen = entries.map((e) => `${e.topic}:${e.event}:${e.retryCount}`).sort()
    expect(seen).toEqual(['a:e1:1', 'a:e1:2', 'b:e2:1', 'c:e3:3'])
  })

  test('5,000 items in one call, spread over shards', async () => {
    await retry.close()
    retry = new KafkaRetry({ keyPrefix: prefix, shards: 4 })
    const items = Array.from({ length: 5000 }, (_, n) => item(`t${n % 7}`, n))
    expect(await retry.pushMany(items)).toBe(5000)
    let stored = 0
    for (const shard of h.shardKeys(prefix, 4)) stored += await redis.hlen(shard.entries)
    expect(stored).toBe(5000)
    expect(await retry.pushMany(items)).toBe(0)
  })

  test('after close() it rejects with ERR_CLOSED', async () => {
    await retry.close()
    const err = await h.rejection(retry.pushMany([item('t', 0)]))
    expect(err.code).toBe('ERR_CLOSED')
  })

  test('with Redis unreachable it rejects with ERR_REDIS_UNAVAILABLE', async () => {
    const port = await h.freePort()
    const down = new KafkaRetry({ keyPrefix: prefix, redisUrl: `redis://127.0.0.1:${port}`, redisTimeoutMs: 300 })
    try {
      const err = await h.rejection(down.pushMany([item('t', 0), item('t', 1)]))
      expect(err.code).toBe('ERR_REDIS_UNAVAILABLE')
    } finally {
      await down.close()
    }
  })
})

test('a batch pushed with pushMany is published to Kafka, each message once, with its key and headers', async () => {
  const topic = h.unique('bulk-topic')
  const other = h.unique('bulk-other')
  const prefix = h.unique('bulk-publish')
  await h.createTopics(topic, other)
  const { consumer, seen } = await h.consume(topic)
  const { consumer: otherConsumer, seen: otherSeen } = await h.consume(other)
  const retry = new KafkaRetry({ keyPrefix: prefix })
  try {
    const items = Array.from({ length: 200 }, (_, n) => ({
      topic: n % 2 ? topic : other,
      message: { event: `key-${n}`, value: JSON.stringify({ msgId: randomUUID(), n }) },
      options: { ...opts('0.001', '1', '3'), origin: 'batch' },
    }))
    expect(await retry.pushMany(items)).toBe(200)
    await retry.queueListener(null, h.unique('dlq'))
    await h.waitFor(() => seen.length >= 100 && otherSeen.length >= 100, 60000)
    await h.sleep(500) // a duplicate would arrive by now
    expect(seen).toHaveLength(100)
    expect(otherSeen).toHaveLength(100)
    for (const m of [...seen, ...otherSeen]) {
      expect(m.key).toBe(`key-${m.value.n}`)
      expect(m.topic).toBe(m.value.n % 2 ? topic : other)
      expect(m.headers).toMatchObject({ retryCount: '2', maxRetry: '3', origin: 'batch' })
    }
    expect(new Set(seen.map((m) => m.value.n)).size).toBe(100)
  } finally {
    await retry.close()
    await consumer.disconnect()
    await otherConsumer.disconnect()
  }
})
