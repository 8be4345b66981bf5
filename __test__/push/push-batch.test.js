// pushToQueue's gathering (lib/kafka-retry.js, docs/push-batch.md) against real Redis: the pushes of
// one tick reach the addon as one native call (`pushPacked`) per 64, a lone push goes out before any
// timer could fire, a bad push among good ones rejects alone with the native error, and what is
// stored is byte for byte what the native pushToQueue stores. pushMany packs its items the same
// way (`pushManyPacked`), with the native pushMany's errors and what it stores.
const { KafkaRetry } = require('../..')
const native = require('../../native.js')
const h = require('../helpers')

beforeAll(h.requireServers)

/** Counts the native calls every instance makes, for the length of one test. */
function countCalls() {
  const calls = { pushPacked: 0, pushToQueue: 0, pushManyPacked: 0, pushMany: 0 }
  const originals = {}
  for (const name of Object.keys(calls)) {
    originals[name] = native.KafkaRetry.prototype[name]
    native.KafkaRetry.prototype[name] = function (...args) {
      calls[name]++
      return originals[name].apply(this, args)
    }
  }
  calls.restore = () => Object.assign(native.KafkaRetry.prototype, originals)
  return calls
}

// Each test: a fresh instance on a prefix of its own, a Redis client, and the native calls counted.
let retry
let redis
let prefix
let calls
beforeEach(() => {
  prefix = h.unique('gather')
  retry = new KafkaRetry({ keyPrefix: prefix })
  redis = h.redisClient()
  calls = countCalls()
})
afterEach(async () => {
  calls.restore()
  await retry.close()
  redis.disconnect()
})

/** Both schedules hold the same `n` entries by id (a hash of topic, msgId and retry count),
 *  compared without the due time the script writes. */
async function expectSameEntries(packedPrefix, nativePrefix, n) {
  const stored = async (keyPrefix) => {
    const entries = await redis.hgetall(h.scheduleKeys(keyPrefix).entries)
    return Object.fromEntries(Object.entries(entries).map(([id, text]) => [id, text.slice(text.indexOf('\n') + 1)]))
  }
  const packed = await stored(packedPrefix)
  expect(Object.keys(packed)).toHaveLength(n)
  expect(packed).toEqual(await stored(nativePrefix))
}

describe('pushes gathered per tick', () => {
  test('the pushes of a tick are one native call per 64, and each is stored before it resolves', async () => {
    const pushes = Array.from({ length: 200 }, (_, n) =>
      retry.pushToQueue('orders', { event: `e${n}`, value: JSON.stringify({ msgId: `m-${n}` }) }, { delay: '10', retryCount: '0' }),
    )
    // Each full part of 64 went as it filled; the last 8 wait for the end of the tick.
    expect(calls.pushPacked).toBe(3)
    await Promise.all(pushes)
    expect(calls).toMatchObject({ pushPacked: 4, pushToQueue: 0 })
    expect(await redis.hlen(h.scheduleKeys(prefix).entries)).toBe(200)
    // The next tick is a call of its own.
    await Promise.all([retry.pushToQueue('orders', { event: 'a', value: '1' }), retry.pushToQueue('orders', { event: 'b', value: '2' })])
    expect(calls.pushPacked).toBe(5)
  })

  test('a lone push is sent before any timer fires, and resolves', async () => {
    let resolved = false
    const push = retry.pushToQueue('orders', { event: 'e', value: '{}' }).then(() => (resolved = true))
    // A timer of 0 ms fires after the microtasks of this tick: the push is already on its way.
    await new Promise((resolve) => setTimeout(resolve, 0))
    expect(calls.pushPacked).toBe(1)
    await push
    expect(resolved).toBe(true)
    expect(await redis.hlen(h.scheduleKeys(prefix).entries)).toBe(1)
  })

  test('bad pushes among good ones in one tick reject alone, each with the native error', async () => {
    const bad = [
      ['orders', { event: 'e', value: 'not json' }],
      ['orders', { event: 'e', value: '{"x":1}' }, { delay: 'soon' }],
      ['orders', { event: 'e', value: '{"x":1}' }, { maxRetry: -1 }],
      ['orders', { event: 'e', value: '{"x":1}' }, { 'bad\u0000name': 'v' }],
    ]
    const expected = []
    for (const args of bad) {
      // What the native pushToQueue says (it rejects before touching Redis).
      const err = await native.KafkaRetry.prototype.pushToQueue.apply(retry, args).catch((e) => e)
      expected.push({ code: err.code, message: err.message })
    }
    calls.pushToQueue = 0
    const outcomes = await Promise.allSettled([
      retry.pushToQueue('orders', { event: 'g1', value: '{"n":1}' }),
      ...bad.map((args) => retry.pushToQueue(...args)),
      retry.pushToQueue('orders', { event: 'g2', value: '{"n":2}' }),
    ])
    expect(calls).toMatchObject({ pushPacked: 1, pushToQueue: 0 })
    expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'rejected', 'rejected', 'rejected', 'rejected', 'fulfilled'])
    expect(outcomes.slice(1, 5).map((o) => ({ code: o.reason.code, message: o.reason.message }))).toEqual(expected)
    expect(expected.every((e) => e.code === 'ERR_INVALID_ARG')).toBe(true)
    expect(await redis.hlen(h.scheduleKeys(prefix).entries)).toBe(2)
  })

  test('what the packed path stores is what the native pushToQueue stores', async () => {
    const other = new KafkaRetry({ keyPrefix: h.unique('gather-native') })
    try {
      const error = new TypeError('handler failed')
      const cases = [
        [{ event: 'k\u{1f600}', value: JSON.stringify({ msgId: 'a', text: 'é\ud800' }) }, { delay: 0.5, maxRetry: '4', retryCount: 1, firstFailedAt: '1700000000000', error }],
        [{ event: '', value: JSON.stringify({ msgId: 'b' }) }, { delay: '2', traceparent: '00-abc', bin: Buffer.from([0, 255, 10]), n: 1.5, empty: null, executeAt: '5' }],
        [{ event: 'e', value: JSON.stringify({ msgId: 'c' }) }, { retryCount: '3', maxRetry: 3, error: 'as text' }],
      ]
      await Promise.all(cases.map(([message, options]) => retry.pushToQueue('orders', message, options)))
      for (const [message, options] of cases) await native.KafkaRetry.prototype.pushToQueue.call(other, 'orders', message, options)
      expect(calls.pushPacked).toBe(1)
      await expectSameEntries(prefix, other.keyPrefix, 3)
    } finally {
      await other.close()
    }
  })

  test('pushes made before close() in the same tick are stored; after close, ERR_CLOSED', async () => {
    const before = [1, 2, 3].map((n) => retry.pushToQueue('orders', { event: `e${n}`, value: '{}' }))
    await retry.close()
    await Promise.all(before)
    expect(await redis.hlen(h.scheduleKeys(prefix).entries)).toBe(3)
    await expect(retry.pushToQueue('orders', { event: 'late', value: '{}' })).rejects.toMatchObject({ code: 'ERR_CLOSED' })
  })
})

describe('pushMany packed', () => {
  const good = (n) => ({ topic: 'orders', message: { event: `e${n}`, value: JSON.stringify({ msgId: `g-${n}` }) }, options: { delay: '5' } })

  test('a batch is one packed native call, stored as the native pushMany stores it', async () => {
    const other = new KafkaRetry({ keyPrefix: h.unique('many-native') })
    try {
      const items = [
        { topic: 'orders', message: { event: 'k\u{1f600}', value: JSON.stringify({ msgId: 'a', text: 'é' }) }, options: { delay: 0.5, maxRetry: '4', retryCount: 1, error: new TypeError('failed') } },
        { topic: 'orders', message: { event: '', value: JSON.stringify({ msgId: 'b' }) }, options: { delay: '2', traceparent: '00-abc', bin: Buffer.from([0, 255]) } },
        { topic: 'payments', message: { event: 'e', value: JSON.stringify({ msgId: 'c' }) } },
      ]
      expect(await retry.pushMany(items)).toBe(3)
      expect(calls).toMatchObject({ pushManyPacked: 1, pushMany: 0 })
      expect(await native.KafkaRetry.prototype.pushMany.call(other, items)).toBe(3)
      await expectSameEntries(prefix, other.keyPrefix, 3)
      // A redelivered batch stores nothing again.
      expect(await retry.pushMany(items)).toBe(0)
    } finally {
      await other.close()
    }
  })

  test('an invalid item rejects the whole batch with the native error and its index, nothing stored', async () => {
    const batches = [
      [good(1), good(2), { ...good(3), options: { delay: 'soon' } }], // packed: a bad option
      [good(1), { topic: 'orders', message: { event: 'e', value: 'not json' } }], // packed: a bad payload
      [good(1), null, good(3)], // not an object: the native way
      [good(1), good(2), new Proxy({ ...good(3), topic: 42 }, {})], // a Proxy: the native way
      [good(1), { ...good(2), topic: '' }], // an empty topic: the native way
    ]
    for (const items of batches) {
      const expected = await native.KafkaRetry.prototype.pushMany.call(retry, items).catch((e) => e)
      const got = await retry.pushMany(items).catch((e) => e)
      expect({ code: got.code, message: got.message }).toEqual({ code: expected.code, message: expected.message })
      expect(got).toMatchObject({ code: 'ERR_INVALID_ARG', message: expect.stringMatching(/^items\[\d\]: /) })
    }
    // Five native calls for the expected errors, three more for the batches that did not pack.
    expect(calls).toMatchObject({ pushManyPacked: 2, pushMany: 8 })
    expect(await redis.exists(h.scheduleKeys(prefix).entries)).toBe(0)
  })
})
