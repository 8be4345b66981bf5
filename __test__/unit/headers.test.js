// KafkaRetry.headers(): the original's defaults, kafkajs Buffers, strings and arrays, and which
// caller headers it keeps. Static, so no Redis and no broker.
const { KafkaRetry } = require('../..')

const TRACEPARENT = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'

describe('KafkaRetry.headers', () => {
  test('defaults like the original', () => {
    expect(KafkaRetry.headers()).toEqual({ delay: '2', maxRetry: '3', retryCount: '0' })
    expect(KafkaRetry.headers(undefined)).toEqual({ delay: '2', maxRetry: '3', retryCount: '0' })
    expect(KafkaRetry.headers({})).toEqual({ delay: '2', maxRetry: '3', retryCount: '0' })
  })

  test('reads kafkajs Buffers, strings and arrays', () => {
    const headers = { delay: Buffer.from('0.5'), maxRetry: '7', retryCount: [Buffer.from('1'), Buffer.from('2')], other: 'x' }
    expect(KafkaRetry.headers(headers)).toEqual({ delay: '0.5', maxRetry: '7', retryCount: '2' })
  })
})

describe('KafkaRetry.headers(kafkaHeaders, keep?)', () => {
  const consumed = {
    delay: Buffer.from('0.5'),
    maxRetry: Buffer.from('5'),
    traceparent: Buffer.from(TRACEPARENT),
    tracestate: 'vendor=1',
    baggage: [Buffer.from('a=1'), Buffer.from('b=2')],
    'x-tenant': Buffer.from([0xff, 0x00]),
    executeAt: Buffer.from('123'),
    retryDelayMs: Buffer.from('456'),
    firstFailedAt: Buffer.from('789'),
    empty: null,
  }

  test('by default: the original three (and firstFailedAt) as strings, the W3C trace context as given', () => {
    const got = KafkaRetry.headers(consumed)
    expect(Object.keys(got)).toEqual(['delay', 'maxRetry', 'retryCount', 'firstFailedAt', 'traceparent', 'tracestate', 'baggage'])
    expect(got).toMatchObject({ delay: '0.5', maxRetry: '5', retryCount: '0', firstFailedAt: '789' })
    expect(got.traceparent).toBe(consumed.traceparent) // the same Buffer: re-published byte for byte
    expect(got.tracestate).toBe('vendor=1')
    expect(got.baggage).toBe(consumed.baggage)
    // The original's defaults without headers.
    expect(KafkaRetry.headers({})).toEqual({ delay: '2', maxRetry: '3', retryCount: '0' })
    expect(KafkaRetry.headers()).toEqual({ delay: '2', maxRetry: '3', retryCount: '0' })
  })

  test('keep: names add to the W3C ones, true keeps all but the package\'s own, false keeps none', () => {
    expect(Object.keys(KafkaRetry.headers(consumed, ['x-tenant', 'absent']))).toEqual(['delay', 'maxRetry', 'retryCount', 'firstFailedAt', 'traceparent', 'tracestate', 'baggage', 'x-tenant'])
    expect(KafkaRetry.headers(consumed, ['x-tenant'])['x-tenant']).toBe(consumed['x-tenant'])
    const all = KafkaRetry.headers(consumed, true)
    expect(Object.keys(all)).toEqual(['delay', 'maxRetry', 'retryCount', 'firstFailedAt', 'traceparent', 'tracestate', 'baggage', 'x-tenant'])
    expect(KafkaRetry.headers(consumed, false)).toEqual({ delay: '0.5', maxRetry: '5', retryCount: '0', firstFailedAt: '789' })
    // A header named __proto__ stays a header (own property), never a prototype.
    const proto = KafkaRetry.headers(JSON.parse('{"__proto__":"x","delay":"1"}'), true)
    expect(Object.getOwnPropertyNames(proto)).toContain('__proto__')
    expect(proto['__proto__']).toBe('x')
    // (Object.prototype of the addon's realm, not jest's.)
    expect(Object.getPrototypeOf(Object.getPrototypeOf(proto))).toBeNull()
    // It never throws (it runs in a consumer's error path): any other keep counts as absent,
    // list elements that are not names are skipped.
    const byDefault = Object.keys(KafkaRetry.headers(consumed))
    for (const other of ['x-tenant', 5, { a: 1 }, Symbol('s'), null]) {
      expect(Object.keys(KafkaRetry.headers(consumed, other))).toEqual(byDefault)
    }
    expect(Object.keys(KafkaRetry.headers(consumed, [5, 'x-tenant', null]))).toEqual([...byDefault, 'x-tenant'])
  })
})
