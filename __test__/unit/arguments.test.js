// Bad arguments are refused with ERR_INVALID_ARG before any connection, a Redis that refuses or
// never answers with ERR_REDIS_UNAVAILABLE, calls after close() with ERR_CLOSED. Needs no Redis and
// no broker: the unit tier runs it with REDIS_URL pointing where nothing listens.
const net = require('net')
const { Registry } = require('prom-client')
const { KafkaRetry } = require('../..')
const { registerMetrics } = require('../../prometheus')
const h = require('../helpers')

describe('bad input rejects with a code, never crashes', () => {
  let retry
  beforeAll(() => {
    retry = new KafkaRetry({ keyPrefix: h.unique('bad') })
  })
  afterAll(() => retry.close())
  const msg = { event: 'e', value: '{}' }
  const cases = [
    ['empty topic', () => retry.pushToQueue('', msg, {}), /topic/],
    ['non-string topic', () => retry.pushToQueue(42, msg, {}), /topic.*number 42/],
    ['missing topic', () => retry.pushToQueue(), /topic/],
    ['missing message', () => retry.pushToQueue('t'), /message/],
    ['missing event', () => retry.pushToQueue('t', { value: '{}' }, {}), /message\.event/],
    ['non-string event', () => retry.pushToQueue('t', { event: {}, value: '{}' }, {}), /message\.event/],
    ['value not JSON', () => retry.pushToQueue('t', { event: 'e', value: 'not json' }, {}), /message\.value.*not json/],
    ['missing value', () => retry.pushToQueue('t', { event: 'e' }, {}), /message\.value/],
    ['non-numeric delay', () => retry.pushToQueue('t', msg, { delay: 'soon' }), /delay.*soon/],
    ['negative delay', () => retry.pushToQueue('t', msg, { delay: '-1' }), /delay.*negative/],
    ['non-numeric maxRetry', () => retry.pushToQueue('t', msg, { maxRetry: 'x' }), /maxRetry/],
    ['negative retryCount', () => retry.pushToQueue('t', msg, { retryCount: -2 }), /retryCount/],
    ['fractional retryCount', () => retry.pushToQueue('t', msg, { retryCount: '1.5' }), /retryCount/],
    ['options not an object', () => retry.pushToQueue('t', msg, 'fast'), /options/],
    ['producer without produce or send', () => retry.queueListener({ publish() {} }, 'dlq'), /producer.*produce.*send/],
    ['producer that is a string', () => retry.queueListener('kafka', 'dlq'), /producer/],
    ['empty dlqName', () => retry.queueListener(null, ''), /dlqName/],
    ['pushToDlq without a name', () => retry.pushToDlq(undefined, {}), /dlqName/],
  ]
  test.each(cases)('%s', async (_, call, message) => {
    const err = await h.rejection(call())
    expect(Object.prototype.toString.call(err)).toBe('[object Error]') // jest's realm differs from the addon's
    expect(err.code).toBe('ERR_INVALID_ARG')
    expect(err.message).toMatch(message)
  })

  test('bad config throws ERR_INVALID_ARG naming the key', () => {
    for (const [config, key] of [
      [{ leaseMs: 'long' }, 'config.leaseMs'],
      [{ batchSize: 0 }, 'config.batchSize'],
      [{ redisUrl: 'http://nope' }, 'config.redisUrl'],
      [{ brokers: [1] }, 'config.brokers'],
      [{ keyPrefix: 'a{b}' }, 'config.keyPrefix'],
      [{ cluster: 'yes' }, 'config.cluster'],
      [{ shards: 0 }, 'config.shards'],
      ['redis://x', 'config'],
    ]) {
      let thrown
      try {
        new KafkaRetry(config)
      } catch (err) {
        thrown = err
      }
      expect(thrown && thrown.code).toBe('ERR_INVALID_ARG')
      expect(thrown.message).toContain(key)
    }
  })

  test('unreachable Redis (connection refused) rejects with ERR_REDIS_UNAVAILABLE quickly', async () => {
    const down = new KafkaRetry({ redisUrl: 'redis://127.0.0.1:1', redisTimeoutMs: 1000 })
    const started = Date.now()
    const err = await h.rejection(down.pushToQueue('t', msg, {}))
    expect(err.code).toBe('ERR_REDIS_UNAVAILABLE')
    expect(err.message).toContain('127.0.0.1:1')
    expect(Date.now() - started).toBeLessThan(3000)
    const err2 = await h.rejection(down.queueListener(null, 'dlq'))
    expect(err2.code).toBe('ERR_REDIS_UNAVAILABLE')
    await down.close()
  })

  test('a Redis that accepts but never answers rejects within the timeout, no hang', async () => {
    const sockets = []
    const blackhole = net.createServer((s) => sockets.push(s))
    await new Promise((resolve) => blackhole.listen(0, '127.0.0.1', resolve))
    const { port } = blackhole.address()
    const silent = new KafkaRetry({ redisUrl: `redis://127.0.0.1:${port}`, redisTimeoutMs: 500 })
    const started = Date.now()
    const err = await h.rejection(silent.pushToQueue('t', msg, {}))
    expect(err.code).toBe('ERR_REDIS_UNAVAILABLE')
    expect(Date.now() - started).toBeLessThan(3000)
    await silent.close()
    sockets.forEach((s) => s.destroy())
    blackhole.close()
  })

  test('calls after close() reject with ERR_CLOSED', async () => {
    const closed = new KafkaRetry({ keyPrefix: h.unique('closed') })
    await closed.close()
    await closed.close() // twice is harmless
    expect((await h.rejection(closed.pushToQueue('t', msg, {}))).code).toBe('ERR_CLOSED')
    expect((await h.rejection(closed.queueListener(null, 'dlq'))).code).toBe('ERR_CLOSED')
    expect((await h.rejection(closed.pushToDlq('dlq', {}))).code).toBe('ERR_CLOSED')
  })
})

describe('backoff policies', () => {
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

describe('prometheus.js', () => {
  test('bad arguments are ERR_INVALID_ARG', () => {
    expect(() => registerMetrics({}, [])).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG' }))
    expect(() => registerMetrics(new Registry(), [{}])).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG' }))
    expect(() => registerMetrics(new Registry(), null)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG' }))
  })
})
