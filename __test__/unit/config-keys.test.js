// A config key the constructor does not know throws ERR_INVALID_ARG naming it and the closest
// known key, at the top level and in the nested objects whose keys are the package's own (tls,
// sentinel, sentinel.sentinels[i], backoff); `kafka` (librdkafka's properties) and `logger` (the
// caller's own object) take any keys. Construction opens no connection, so no server is needed.
const { KafkaRetry } = require('../..')
const h = require('../helpers')

/** The error `new KafkaRetry(config)` throws (fails the test when it does not throw). */
function thrown(config) {
  try {
    const retry = new KafkaRetry(config)
    retry.close()
  } catch (err) {
    return err
  }
  throw new Error(`new KafkaRetry(${JSON.stringify(config)}) did not throw`)
}

describe('an unknown config key throws ERR_INVALID_ARG naming the closest known key', () => {
  const prefix = h.unique('keys')
  const cases = [
    ['a case slip', { redisURL: 'redis://127.0.0.1:6379' }, 'config has no key `redisURL` (did you mean `redisUrl`?)'],
    ['snake case', { key_prefix: prefix }, 'config has no key `key_prefix` (did you mean `keyPrefix`?)'],
    ['a typo', { keyPrefix: prefix, leaseMS: 5000 }, 'config has no key `leaseMS` (did you mean `leaseMs`?)'],
    ['a part of a key', { prefix }, 'config has no key `prefix` (did you mean `keyPrefix`?)'],
    ['a kafkajs name', { kafkaBrokers: ['localhost:9092'] }, 'config has no key `kafkaBrokers` (did you mean `brokers`?)'],
    ['a key set to undefined', { dlqname: undefined }, 'config has no key `dlqname`'],
    ['in tls', { tls: { rejectUnauthorised: false } }, 'config.tls has no key `rejectUnauthorised` (did you mean `rejectUnauthorized`?)'],
    ['in sentinel', { sentinel: { sentinels: [{ host: 'h', port: 26379 }], masterName: 'm' } }, 'config.sentinel has no key `masterName` (did you mean `name`?)'],
    ['in a sentinel node', { sentinel: { sentinels: [{ hostname: 'h' }], name: 'm' } }, 'config.sentinel.sentinels[0] has no key `hostname` (did you mean `host`?)'],
    ['in sentinel.tls', { sentinel: { sentinels: [{ host: 'h' }], name: 'm', tls: { servername: 'x', ca2: '' } } }, 'config.sentinel.tls has no key `ca2` (did you mean `ca`?)'],
    ['in backoff', { backoff: { type: 'exponential', maxDelay: 1000 } }, 'config.backoff has no key `maxDelay` (did you mean `maxDelayMs`?)'],
  ]
  test.each(cases)('%s', (_, config, message) => {
    const err = thrown(config)
    expect(Object.prototype.toString.call(err)).toBe('[object Error]')
    expect(err.code).toBe('ERR_INVALID_ARG')
    expect(err.message).toContain(message)
  })

  test('a key nothing is close to lists the known keys', () => {
    const err = thrown({ zzz: 1 })
    expect(err.code).toBe('ERR_INVALID_ARG')
    expect(err.message).toMatch(/^config has no key `zzz` \(known keys: redisUrl, brokers, .*waitTimeoutMs(, \w+)*\)$/)
  })

  test('every declared key, kafka properties and a logger with methods of its own are accepted', () => {
    const logger = { ...console, child() {}, level: 'info' }
    const retry = new KafkaRetry({
      redisUrl: 'redis://127.0.0.1:6379',
      brokers: ['localhost:9092'],
      kafka: { 'linger.ms': 5, 'enable.idempotence': true },
      keyPrefix: prefix,
      pollIntervalMs: 1000,
      leaseMs: 30000,
      batchSize: 100,
      redisTimeoutMs: 5000,
      dedupeWindowMs: 60000,
      cluster: false,
      backoff: { type: 'exponential', multiplier: 2, maxDelayMs: 60000, jitter: 'none' },
      deadLetterTopic: 'dlt',
      maxDeadLetters: 10,
      maxPublishFailures: 5,
      maxPublishRate: 100,
      maxReplays: 3,
      migrateLegacy: false,
      onEvent: () => {},
      logger,
      shards: 1,
      username: 'default',
      password: 'secret',
      // the PEM keys present (undefined: no PEM needed here), so their names are checked too
      tls: { ca: undefined, cert: undefined, key: undefined, rejectUnauthorized: true, servername: '127.0.0.1' },
      waitReplicas: 0,
      waitTimeoutMs: 1000,
    })
    retry.close()
  })

  test('every key of sentinel, its nodes and its tls, and of a list backoff, is accepted', () => {
    const retry = new KafkaRetry({
      keyPrefix: prefix,
      sentinel: {
        sentinels: [{ host: '127.0.0.1', port: 26379 }],
        name: 'mymaster',
        username: 'default',
        password: 'secret',
        tls: { rejectUnauthorized: false },
      },
      backoff: { type: 'list', delaysMs: [1000, 5000], jitter: 'full' },
    })
    retry.close()
  })

  test('no config at all, as the original class was constructed, still works', () => {
    new KafkaRetry().close()
  })
})
