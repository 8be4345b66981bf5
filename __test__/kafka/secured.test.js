// The internal producer against a secured Apache Kafka listener: SASL_SSL with SCRAM-SHA-512,
// SCRAM-SHA-256 and PLAIN (librdkafka built with vendored OpenSSL), checked by a kafkajs consumer
// with the same credentials; a wrong password is reported, and the message stays scheduled.
//
// Needs the SASL_SSL listener that `scripts/services.sh start` adds to Apache Kafka
// (KAFKA_IMPL=apache; `npm test` exports its settings, `scripts/services.sh secured-env` prints
// them). Without it the suite fails: Tansu has no secured listener.
const fs = require('fs')
const { Kafka, logLevel } = require('kafkajs')
const { KafkaRetry } = require('../..')
const h = require('../helpers')

const SECURED = {
  brokers: process.env.KAFKA_SECURED_BROKERS,
  ca: process.env.KAFKA_SECURED_CA,
  username: process.env.KAFKA_SECURED_USERNAME,
  password: process.env.KAFKA_SECURED_PASSWORD,
  sslBrokers: process.env.KAFKA_SSL_BROKERS,
}

beforeAll(async () => {
  const names = { brokers: 'KAFKA_SECURED_BROKERS', ca: 'KAFKA_SECURED_CA', username: 'KAFKA_SECURED_USERNAME', password: 'KAFKA_SECURED_PASSWORD', sslBrokers: 'KAFKA_SSL_BROKERS' }
  const missing = Object.entries(SECURED).filter(([, v]) => !v).map(([k]) => names[k])
  if (missing.length) {
    throw new Error(
      `the secured-broker tests need Apache Kafka's SASL_SSL and SSL listeners, but ${missing.join(', ')} ` +
        `${missing.length > 1 ? 'are' : 'is'} not set: run them with \`KAFKA_IMPL=apache npm test\`, or start them with ` +
        '`KAFKA_IMPL=apache scripts/services.sh start` and `eval "$(KAFKA_IMPL=apache scripts/services.sh secured-env)"` ' +
        '(the default broker, Tansu, has no secured listeners)',
    )
  }
  if (!fs.existsSync(SECURED.ca)) throw new Error(`KAFKA_SECURED_CA=${SECURED.ca}: no such file`)
  await h.requireServers()
  for (const [name, address] of [['KAFKA_SECURED_BROKERS', SECURED.brokers], ['KAFKA_SSL_BROKERS', SECURED.sslBrokers]]) {
    const at = address.lastIndexOf(':')
    if (!(await reachable(address.slice(0, at).replace(/^\[|\]$/g, ''), Number(address.slice(at + 1))))) {
      throw new Error(`No listener at ${name}=${address}: run \`KAFKA_IMPL=apache scripts/services.sh start\``)
    }
  }
})

function reachable(host, port) {
  return new Promise((resolve) => {
    const socket = require('net').connect({ host, port })
    const done = (ok) => {
      socket.destroy()
      resolve(ok)
    }
    socket.setTimeout(2000, () => done(false))
    socket.once('connect', () => done(true))
    socket.once('error', () => done(false))
  })
}

/** A kafkajs client on the SASL_SSL listener (mechanism as kafkajs names it), or on the SSL one. */
function securedKafka(mechanism) {
  return new Kafka({
    clientId: h.unique('secured-test'),
    brokers: [mechanism ? SECURED.brokers : SECURED.sslBrokers],
    logLevel: logLevel.NOTHING,
    ssl: { ca: [fs.readFileSync(SECURED.ca)] },
    ...(mechanism && { sasl: { mechanism, username: SECURED.username, password: SECURED.password } }),
  })
}

/** The internal producer's librdkafka properties for the SASL_SSL listener, or the SSL one. */
function producerConfig(mechanism, password = SECURED.password) {
  if (!mechanism) return { 'security.protocol': 'ssl', 'ssl.ca.location': SECURED.ca }
  return {
    'security.protocol': 'sasl_ssl',
    'sasl.mechanisms': mechanism,
    'sasl.username': SECURED.username,
    'sasl.password': password,
    'ssl.ca.location': SECURED.ca,
  }
}

const opts = (delay) => ({ delay, maxRetry: '3', retryCount: '0' })

describe.each([
  ['sasl_ssl with SCRAM-SHA-512', 'SCRAM-SHA-512', 'scram-sha-512'],
  ['sasl_ssl with SCRAM-SHA-256', 'SCRAM-SHA-256', 'scram-sha-256'],
  ['sasl_ssl with PLAIN', 'PLAIN', 'plain'],
  ['ssl (TLS only)', null, null],
])('%s', (_, mechanism, kafkajsMechanism) => {
  test('the internal producer publishes a pushed message; a kafkajs consumer with the same credentials reads it', async () => {
    const kafka = securedKafka(kafkajsMechanism)
    const topic = h.unique(`secured-${kafkajsMechanism || 'ssl'}`)
    const admin = kafka.admin()
    await admin.connect()
    try {
      await admin.createTopics({ topics: [{ topic, numPartitions: 1, replicationFactor: 1 }], waitForLeaders: true })
    } finally {
      await admin.disconnect()
    }

    const consumer = kafka.consumer({
      groupId: h.unique('secured-group'),
      sessionTimeout: 6000,
      rebalanceTimeout: 3000,
      heartbeatInterval: 500,
      maxWaitTimeInMs: 100,
    })
    const seen = []
    const events = []
    const logged = []
    const retry = new KafkaRetry({
      keyPrefix: h.unique('secured'),
      brokers: mechanism ? SECURED.brokers : SECURED.sslBrokers,
      kafka: producerConfig(mechanism),
      onEvent: (e) => events.push(e),
      logger: { warn: (m) => logged.push(m), error: (m) => logged.push(m) },
    })
    try {
      await consumer.connect()
      await consumer.subscribe({ topic, fromBeginning: true })
      await consumer.run({
        eachMessage: async ({ message }) => {
          const headers = {}
          for (const [k, v] of Object.entries(message.headers || {})) headers[k] = v && v.toString()
          seen.push({ key: message.key && message.key.toString(), value: JSON.parse(message.value.toString()), headers })
        },
      })
      await retry.queueListener(null)
      await retry.pushToQueue(topic, { event: 'order-created', value: JSON.stringify({ msgId: 'm-1', order: 42, mechanism }) }, opts('0.01'))
      await h.waitFor(() => seen.length >= 1, 30000)
      expect(seen).toHaveLength(1)
      const [m] = seen
      expect(m.key).toBe('order-created')
      expect(m.value).toMatchObject({ order: 42, mechanism })
      expect(typeof m.value.msgId).toBe('string')
      expect(m.headers).toMatchObject({ delay: '0.01', maxRetry: '3', retryCount: '1' })
      expect(Number(m.headers.executeAt)).toBeGreaterThan(0)
      expect(events.filter((e) => e.type === 'error')).toEqual([])
      const stats = await retry.stats()
      expect(stats).toMatchObject({ scheduled: 0, inflight: 0, published: 1, publishFailures: 0 })
    } finally {
      await retry.close()
      await consumer.disconnect()
    }
  })
})

test('a wrong password: an ERR_KAFKA_PUBLISH error event names the authentication failure, the message stays scheduled', async () => {
  const wrong = `not-${SECURED.password}-${Date.now()}`
  const topic = h.unique('secured-wrong-password')
  const dlq = h.unique('secured-dlq')
  const events = []
  const logged = []
  const retry = new KafkaRetry({
    keyPrefix: h.unique('secured-wrong'),
    brokers: SECURED.brokers,
    // fail the publish after 5 s instead of the package's 30 s
    kafka: { ...producerConfig('SCRAM-SHA-512', wrong), 'message.timeout.ms': '5000' },
    onEvent: (e) => events.push(e),
    logger: { warn: (m) => logged.push(m), error: (m) => logged.push(m) },
  })
  try {
    await retry.queueListener(null, dlq)
    await retry.pushToQueue(topic, { event: 'e', value: JSON.stringify({ n: 1 }) }, opts('0'))
    await h.waitFor(() => events.some((e) => e.type === 'error'), 30000)
    const error = events.find((e) => e.type === 'error')
    expect(error).toMatchObject({ code: 'ERR_KAFKA_PUBLISH' })
    expect(error.message).toContain(`publishing to topic "${topic}" failed`)
    expect(error.message).toMatch(/SASL authentication error: Authentication failed/)
    expect(error.message).toContain('SCRAM-SHA-512')
    for (const text of [...events.map((e) => JSON.stringify(e)), ...logged]) expect(text).not.toContain(wrong)
    const stats = await retry.stats(dlq)
    expect(stats.scheduled + stats.inflight).toBe(1)
    expect(stats).toMatchObject({ published: 0, deadLettered: 0, deadLetteredTotal: 0 })
    expect(stats.publishFailures).toBeGreaterThanOrEqual(1)
    expect(events.filter((e) => e.type === 'deadLetter' || e.type === 'retry')).toEqual([])
  } finally {
    await retry.close()
  }
})

test('the build has SASL PLAIN, SCRAM and OAUTHBEARER (vendored OpenSSL), not GSSAPI', async () => {
  const producer = (kafka) => new KafkaRetry({ keyPrefix: h.unique('secured-build'), brokers: SECURED.brokers, kafka })
  const oauth = producer({ 'security.protocol': 'sasl_ssl', 'sasl.mechanisms': 'OAUTHBEARER', 'enable.sasl.oauthbearer.unsecure.jwt': 'true' })
  try {
    await oauth.queueListener(null)
  } finally {
    await oauth.close()
  }
  const gssapi = producer({ 'security.protocol': 'sasl_ssl', 'sasl.mechanisms': 'GSSAPI' })
  try {
    const err = await gssapi.queueListener(null).then(() => null, (e) => e)
    expect(err).toMatchObject({ code: 'ERR_INVALID_ARG' })
    expect(err.message).toContain('No provider for SASL mechanism GSSAPI')
    expect(err.message).toContain('Current build options: PLAIN SASL_SCRAM OAUTHBEARER')
  } finally {
    await gssapi.close()
  }
})

test('an untrusted broker certificate: the ERR_KAFKA_PUBLISH error event names the failed verification', async () => {
  const events = []
  const retry = new KafkaRetry({
    keyPrefix: h.unique('secured-untrusted'),
    brokers: SECURED.sslBrokers,
    // no ssl.ca.location: the test CA is not trusted
    kafka: { 'security.protocol': 'ssl', 'message.timeout.ms': '3000' },
    onEvent: (e) => events.push(e),
    logger: { warn: () => {}, error: () => {} },
  })
  try {
    await retry.queueListener(null)
    await retry.pushToQueue(h.unique('secured-untrusted'), { event: 'e', value: '{}' }, opts('0'))
    await h.waitFor(() => events.some((e) => e.type === 'error'), 30000)
    const error = events.find((e) => e.type === 'error')
    expect(error).toMatchObject({ code: 'ERR_KAFKA_PUBLISH' })
    // librdkafka says "SSL handshake failed: error:0A000086:SSL routines::certificate verify failed: ..."
    // or, on a later attempt, just "error:0A000086:SSL routines::certificate verify failed"
    expect(error.message).toMatch(/ssl:\/\/.*certificate verify failed/)
    const stats = await retry.stats()
    expect(stats.scheduled + stats.inflight).toBe(1)
    expect(stats.published).toBe(0)
  } finally {
    await retry.close()
  }
})
