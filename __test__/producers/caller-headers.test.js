// Drop-in to the letter: every option the package does not interpret travels with the message and
// is re-published as a header of the same name and bytes (through each producer kind and on the
// dead letter topic), dead letters hold the payload as an object, and what 0.2 stored still works.
// Real Redis and broker.
const { KafkaRetry } = require('../..')
const h = require('../helpers')

beforeAll(h.requireServers)

// Invalid UTF-8, NUL, newline, backslash, U+0001 (the entry's section mark): bytes only.
const BIN = Buffer.from([0x00, 0xff, 0x0a, 0x5c, 0x01, 0x80, 0xc3])
const UNICODE = 'é 漢字 🎉\nline \\n two'
const TRACEPARENT = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'

/** The options of every push here: the retry options plus the caller's own headers. */
function options(retryCount, maxRetry) {
  return {
    ...KafkaRetry.headers({ retryCount: Buffer.from(retryCount), maxRetry: Buffer.from(maxRetry) }),
    delay: '0.0005',
    tenant: 'acme',
    'x-unicode': UNICODE,
    bin: BIN,
    utf8buf: Buffer.from('plain é'),
    list: ['a', Buffer.from([0xff, 0x00])],
    traceparent: TRACEPARENT,
    // The package's own names: replaced on the retry (executeAt, retryDelayMs) ...
    executeAt: 'from the caller',
    retryDelayMs: 'from the caller',
    // ... and on the dead letter topic (originalTopic is the caller's on the retry).
    originalTopic: 'from the caller',
    error: new Error('boom'),
    gone: undefined,
  }
}

/** Checks the caller's headers of a consumed message (kafkajs: Buffers, repeated names as arrays). */
function expectCallerHeaders(raw) {
  expect(raw.tenant).toEqual(Buffer.from('acme'))
  expect(raw['x-unicode'].toString('utf8')).toBe(UNICODE)
  expect(raw.bin).toEqual(BIN)
  expect(raw.utf8buf).toEqual(Buffer.from('plain é'))
  expect(raw.list).toEqual([Buffer.from('a'), Buffer.from([0xff, 0x00])])
  expect(raw.traceparent.toString()).toBe(TRACEPARENT)
  expect(raw.error).toBeUndefined()
  expect(raw.gone).toBeUndefined()
}

const KINDS = {
  'the internal rdkafka producer': () => null,
  'a produce(topic, key, value, headers) wrapper': (kafkaProducer, calls) => ({
    async produce(topic, key, value, headers) {
      calls.push(headers)
      await kafkaProducer.send({ topic, messages: [{ key, value, headers }] })
    },
  }),
  'a kafkajs Producer (send)': (kafkaProducer) => kafkaProducer,
}

describe.each(Object.entries(KINDS))('caller headers through %s', (_, makeProducer) => {
  test('arrive byte for byte on the retry, on the dead letter topic, in the dead letter, and again after a requeue', async () => {
    const topic = h.unique('dropin')
    const dlqTopic = h.unique('dropin-dlq')
    const dlq = h.unique('dropin-hash')
    await h.createTopics(topic, dlqTopic)
    const kafkaProducer = await h.producer()
    const calls = []
    const retry = new KafkaRetry({ keyPrefix: h.unique('dropin'), pollIntervalMs: 100, deadLetterTopic: dlqTopic })
    const retries = await h.consume(topic)
    const dead = await h.consume(dlqTopic)
    try {
      await retry.queueListener(makeProducer(kafkaProducer, calls), dlq)
      await retry.pushToQueue(topic, { event: 'Retried', value: { msgId: 'r-1', n: 1 } }, options('0', '3'))
      // retryCount 3 of maxRetry 3: the 4th failure, dead-lettered at once.
      await retry.pushToQueue(topic, { event: 'Exhausted', value: JSON.stringify({ msgId: 'd-1', n: 2 }) }, options('3', '3'))

      expect(await h.waitFor(() => retries.seen.length >= 1 && dead.seen.length >= 1, 20000)).toBeTruthy()
      const [retried] = retries.seen
      expect(retried.key).toBe('Retried')
      expectCallerHeaders(retried.rawHeaders)
      expect(retried.headers.originalTopic).toBe('from the caller')
      expect(retried.headers.retryCount).toBe('1')
      expect(Number(retried.headers.executeAt)).toBeGreaterThan(Date.now() - 60000)
      expect(retried.headers.retryDelayMs).toBe('30')

      const [letter] = dead.seen
      expect(letter.key).toBe('Exhausted')
      expectCallerHeaders(letter.rawHeaders)
      // The dead letter topic's own headers win (one value, not the caller's).
      expect(letter.rawHeaders.originalTopic).toEqual(Buffer.from(topic))
      expect(letter.headers.retryCount).toBe('4')

      if (calls.length) {
        // The wrapper gets strings as strings, Buffers as Buffers, arrays as arrays.
        const headers = calls.find((c) => c.retryCount === '1')
        expect(typeof headers.tenant).toBe('string')
        expect(headers['x-unicode']).toBe(UNICODE)
        expect(Buffer.isBuffer(headers.bin) && headers.bin.equals(BIN)).toBe(true)
        expect(headers.list).toEqual(['a', Buffer.from([0xff, 0x00])])
        expect(Object.keys(headers).slice(0, 4)).toEqual(['delay', 'maxRetry', 'retryCount', 'executeAt'])
      }

      // The dead letter hash: the payload as an object, the caller's headers in options as
      // JSON.stringify writes them.
      const redis = h.redisClient()
      try {
        const [stored] = Object.values(await redis.hgetall(dlq))
        const record = JSON.parse(stored)
        expect(record.value).toEqual({ msgId: 'd-1', n: 2 })
        expect(record.options).toMatchObject({ delay: '0.0005', maxRetry: '3', retryCount: '4', tenant: 'acme', 'x-unicode': UNICODE, originalTopic: 'from the caller' })
        expect(record.options.bin).toEqual(JSON.parse(JSON.stringify(BIN)))
        expect(Buffer.from(record.options.bin.data)).toEqual(BIN)
        expect(record.options.list).toEqual(['a', { type: 'Buffer', data: [0xff, 0x00] }])
        expect(record.options.executeAt).not.toBe('from the caller')
      } finally {
        redis.disconnect()
      }
      const { items } = await retry.deadLetters(dlq)
      expect(items).toHaveLength(1)
      expect(items[0].value).toEqual({ msgId: 'd-1', n: 2 })
      expect(items[0].options.tenant).toBe('acme')

      // Requeued, it is published again with the same headers.
      expect(await retry.requeueDeadLetter(dlq, items[0].id)).toBe(true)
      expect(await h.waitFor(() => retries.seen.some((m) => m.key === 'Exhausted'), 20000)).toBeTruthy()
      const again = retries.seen.find((m) => m.key === 'Exhausted')
      expectCallerHeaders(again.rawHeaders)
      expect(again.value.n).toBe(2)
    } finally {
      await retry.close()
      await retries.consumer.disconnect()
      await dead.consumer.disconnect()
      await kafkaProducer.disconnect()
    }
  })
})

describe('limits of the caller headers (ERR_INVALID_ARG, nothing stored)', () => {
  const retry = new KafkaRetry({ keyPrefix: h.unique('limits') })
  afterAll(() => retry.close())
  const push = (extra) => retry.pushToQueue('t', { event: 'e', value: '{}' }, { delay: '60', ...extra })
  const many = (n) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`h${i}`, 'v']))

  test('at the limits: 64 values, 65,536 bytes in all, a 255-byte name', async () => {
    await expect(push(many(64))).resolves.toBeUndefined()
    await expect(push({ big: 'x'.repeat(65536 - 3) })).resolves.toBeUndefined()
    await expect(push({ ['n'.repeat(255)]: 'v' })).resolves.toBeUndefined()
    await expect(push({ list: Array(64).fill('v') })).resolves.toBeUndefined()
  })

  test.each([
    ['65 values', many(65), /at most 64 header values/],
    ['65 array elements', { list: Array(65).fill('v') }, /at most 64 header values/],
    ['65,537 bytes', { big: 'x'.repeat(65536 - 2) }, /at most 65536 bytes/],
    ['a 256-byte name', { ['n'.repeat(256)]: 'v' }, /1 to 255 bytes/],
    ['a name with NUL', { 'a\u0000b': 'v' }, /without NUL/],
    ['an empty name', { '': 'v' }, /1 to 255 bytes/],
    ['an object', { meta: { a: 1 } }, /options\["meta"\] becomes a Kafka header.*an object/],
    ['a nested array', { list: ['a', ['b']] }, /options\["list"\]\[1\] must be a string or a Buffer/],
    ['a function', { f: () => 1 }, /a function/],
  ])('%s', async (_, extra, message) => {
    await expect(push(extra)).rejects.toMatchObject({ code: 'ERR_INVALID_ARG', message: expect.stringMatching(message) })
  })
})

describe('what 0.2 stored still works', () => {
  test('a hand-written 0.2 entry fires; a 0.2 dead letter lists with its value parsed and requeues', async () => {
    const prefix = h.unique('v02')
    const dlq = h.unique('v02-dlq')
    const keys = h.scheduleKeys(prefix)
    const redis = h.redisClient()
    const published = []
    const retry = new KafkaRetry({ keyPrefix: prefix, pollIntervalMs: 100 })
    try {
      // As 0.2.0 stored an entry: ten fields, then the payload (no headers section).
      const now = Date.now()
      const entry = `${now.toString(36)}\n${(30).toString(36)}\n\n3\n2\norders\nOrderFailed\n0.0005\nTypeError\nboom\n{"msgId":"old-1","n":1}`
      await redis.hset(keys.entries, 'm:old-entry-000000000000', entry)
      await redis.zadd(keys.due, now, 'm:old-entry-000000000000')
      // As 0.2.0 wrote a dead letter: the payload as escaped JSON text.
      const letter = JSON.stringify({
        id: 'm:old-dead-0000000000000', topic: 'orders', event: 'OrderDied', value: '{"msgId":"old-2","n":2}',
        options: { delay: '0.0005', maxRetry: '3', retryCount: '4', executeAt: String(now) }, diedAt: now, keyPrefix: prefix,
      })
      await redis.hset(dlq, 'm:old-dead-0000000000000', letter)
      await redis.zadd(`${dlq}:index`, now, 'm:old-dead-0000000000000')

      await retry.queueListener({ produce: async (topic, key, value, headers) => published.push({ topic, key, value: JSON.parse(value), headers }) }, dlq)
      expect(await h.waitFor(() => published.length >= 1, 10000)).toBeTruthy()
      expect(published[0]).toMatchObject({ topic: 'orders', key: 'OrderFailed', value: { n: 1 }, headers: { delay: '0.0005', maxRetry: '3', retryCount: '2', executeAt: String(now) } })
      expect(Object.keys(published[0].headers)).toEqual(['delay', 'maxRetry', 'retryCount', 'executeAt', 'firstFailedAt', 'retryDelayMs'])

      const { items } = await retry.deadLetters(dlq)
      expect(items).toHaveLength(1)
      expect(items[0].value).toEqual({ msgId: 'old-2', n: 2 })
      expect(await retry.requeueDeadLetter(dlq, items[0].id)).toBe(true)
      expect(await h.waitFor(() => published.length >= 2, 10000)).toBeTruthy()
      expect(published[1]).toMatchObject({ topic: 'orders', key: 'OrderDied', value: { n: 2 }, headers: { retryCount: '0' } })
      expect(await redis.hlen(dlq)).toBe(0)
    } finally {
      await retry.close()
      redis.disconnect()
    }
  })

  test('an entry without caller headers is stored exactly in the 0.2 form; one with them carries the section', async () => {
    const prefix = h.unique('form')
    const keys = h.scheduleKeys(prefix)
    const redis = h.redisClient()
    const retry = new KafkaRetry({ keyPrefix: prefix })
    try {
      await retry.pushToQueue('t', { event: 'e', value: '{"msgId":"plain"}' }, { delay: '60', maxRetry: '3', retryCount: '0' })
      await retry.pushToQueue('t', { event: 'e', value: '{"msgId":"extra"}' }, { delay: '60', tenant: 'acme', bin: BIN })
      const stored = Object.values(await redis.hgetall(keys.entries))
      const plain = stored.find((s) => s.includes('"plain"'))
      const extra = stored.find((s) => s.includes('"extra"'))
      expect(plain).not.toContain('\u0001')
      expect(plain.split('\n').slice(3)).toEqual(['3', '1', 't', 'e', '60', '', '', '{"msgId":"plain"}'])
      const decoded = h.decodeEntry(extra)
      expect(decoded.value).toBe('{"msgId":"extra"}')
      expect(decoded.headers).toEqual([
        { name: 'tenant', value: 'acme', inArray: false },
        { name: 'bin', value: BIN, inArray: false },
      ])
    } finally {
      await retry.close()
      await redis.unlink(keys.entries, keys.due, keys.seen)
      redis.disconnect()
    }
  })
})

describe('KafkaRetry.headers()', () => {
  test('never throws on a header name with NUL, and keeps only what pushToQueue accepts', async () => {
    const consumed = {
      retryCount: Buffer.from('1'),
      'bad\0name': Buffer.from('x'),
      traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
      ['n'.repeat(256)]: 'too long a name',
      many: Array.from({ length: 60 }, (_, i) => Buffer.from(String(i))),
      overflow: Array.from({ length: 10 }, () => 'x'), // 1 + 60 + 10 values: past 64
      big: Buffer.alloc(70 * 1024), // past 64 KiB alone
      after: 'still fits',
    }
    const kept = KafkaRetry.headers(consumed, true)
    expect(Object.keys(kept).sort()).toEqual(['after', 'delay', 'many', 'maxRetry', 'retryCount', 'traceparent'])
    expect(kept.retryCount).toBe('1')
    expect(kept.many).toHaveLength(60)
    // What it returned can be pushed: the retry keeps its headers.
    const retry = new KafkaRetry({ keyPrefix: h.unique('headers') })
    try {
      await retry.pushToQueue('t', { event: 'e', value: '{}' }, kept)
      expect((await retry.stats()).scheduled).toBe(1)
    } finally {
      await retry.close()
    }
  })
})
