// Every producer a service hands to queueListener(producer), created as its README creates it,
// against the real broker: a retry is re-published through it and read back with its key, value
// and headers (the retry headers and a caller's own: a string, a Buffer, one with two values). A
// producer the package cannot drive is refused with ERR_INVALID_ARG saying what to pass. Which
// producer is which is decided in src/producer_shape.js.
const path = require('path')
const { execFile } = require('child_process')
const { KafkaRetry } = require('../..')
const h = require('../helpers')

beforeAll(h.requireServers)

const OPTIONS = { ...KafkaRetry.headers({ delay: Buffer.from('0') }), tenant: 'acme', blob: Buffer.from('bü'), tag: ['a', 'b'] }

/**
 * A retry pushed due now is re-published by a listener through the producer: `publish(topic,
 * prefix)` does it and resolves with the listener's stats; the topic must get it with its key,
 * value and headers.
 */
async function roundTrip(label, publish) {
  const topic = h.unique(`producers-${label}`)
  await h.createTopics(topic)
  const { consumer, seen } = await h.consume(topic)
  try {
    const stats = await publish(topic, h.unique(`producers-${label}`))
    // Acknowledged only after the producer's confirmation: nothing left scheduled or leased.
    expect(stats).toMatchObject({ published: 1, inflight: 0, scheduled: 0 })
    await h.waitFor(() => seen.length > 0, 30000)
    expect(seen).toHaveLength(1)
    const [message] = seen
    expect(message.key).toBe('Created')
    expect(message.value).toEqual({ id: 7, name: 'ü', msgId: expect.any(String) })
    expect(message.headers).toMatchObject({ delay: '0', maxRetry: '3', retryCount: '1', tenant: 'acme', blob: 'bü' })
    expect(message.rawHeaders.tag.map(String)).toEqual(['a', 'b'])
  } finally {
    await consumer.disconnect()
  }
}

/** The producer handed over in this process. */
const inProcess = (producer) => async (topic, prefix) => {
  const retry = new KafkaRetry({ keyPrefix: prefix })
  try {
    await retry.queueListener(producer, `${prefix}-dlq`)
    await retry.pushToQueue(topic, { event: 'Created', value: '{"id":7,"name":"ü"}' }, OPTIONS)
    return await h.waitFor(async () => {
      const s = await retry.stats()
      return s.published === 1 && s.inflight === 0 && s.scheduled === 0 && s
    }, 20000)
  } finally {
    await retry.close()
  }
}

/**
 * The producer made in a child process (an ES module client, or a native one jest cannot load),
 * `kind` as children/producer.mjs names it; `more` is more of its environment (COUNT, WAIT_MS, ...).
 */
const inChild =
  (kind, more = {}) =>
  (topic, prefix) =>
    new Promise((resolve, reject) => {
      const env = { ...process.env, TOPIC: topic, PREFIX: prefix, OPTIONS: JSON.stringify(OPTIONS), ...more }
      execFile(process.execPath, [path.join(__dirname, '..', 'children', 'producer.mjs'), kind], { env, timeout: 120000 }, (err, stdout, stderr) => {
        const result = stdout.split('\n').find((line) => line.startsWith('RESULT '))
        if (err || !result) reject(new Error(`${err ? err.message : 'no RESULT line'}\n${stdout}\n${stderr}`))
        else resolve(JSON.parse(result.slice('RESULT '.length)))
      })
    })

/** How many messages `topic` holds, from the broker's own offsets (whatever a consumer has read). */
async function written(topic) {
  const admin = h.kafka().admin()
  await admin.connect()
  try {
    const offsets = await admin.fetchTopicOffsets(topic)
    return offsets.reduce((sum, { high, low }) => sum + Number(high) - Number(low), 0)
  } finally {
    await admin.disconnect()
  }
}

test('kafkajs Producer (send({ topic, messages }))', async () => {
  const producer = await h.producer()
  try {
    await roundTrip('kafkajs', inProcess(producer))
  } finally {
    await producer.disconnect()
  }
})

test("the seed's produce(topic, key, value, headers) wrapper", async () => {
  const kafkajs = await h.producer()
  try {
    const wrapper = { produce: (topic, key, value, headers) => kafkajs.send({ topic, messages: [{ key, value, headers }] }) }
    await roundTrip('wrapper', inProcess(wrapper))
  } finally {
    await kafkajs.disconnect()
  }
})

test('@platformatic/kafka Producer with its default serializers (send({ messages: [{ topic, ... }] }), Buffers)', async () => {
  await roundTrip('platformatic', inChild('platformatic'))
})

// Its README's producer: before, key, value and header names went as Buffers, which its string
// serializers turn into null; the broker refused every send (INVALID_RECORD, a null header name).
test('@platformatic/kafka Producer with serializers: stringSerializers (strings)', async () => {
  await roundTrip('platformatic-strings', inChild('platformatic-strings'))
})

// Bytes that are not UTF-8 cannot pass through a serializer that takes strings: the publish fails
// with an error retrying cannot fix, and the message is dead-lettered with the reason (before, a
// null header was sent, refused by the broker, and retried forever).
test('@platformatic/kafka Producer with stringSerializers: a header value that is not UTF-8 is dead-lettered with the reason', async () => {
  const topic = h.unique('producers-plt-binary')
  const prefix = h.unique('producers-plt-binary')
  await h.createTopics(topic)
  const options = { ...OPTIONS, blob: Buffer.from([0xff, 0x00]) }
  const child = inChild('platformatic-strings', { OPTIONS: JSON.stringify(options), EXPECT: 'dead-lettered', WAIT_MS: '20000' })
  const stats = await child(topic, prefix)
  expect(stats).toMatchObject({ deadLetteredTotal: 1, published: 0, inflight: 0, scheduled: 0 })
  const retry = new KafkaRetry({ keyPrefix: prefix })
  try {
    const { items } = await retry.deadLetters(`${prefix}-dlq`)
    expect(items).toHaveLength(1)
    expect(items[0].error.message).toMatch(/header "blob" is a Buffer that is not UTF-8 text.*headerValue serializer takes strings/)
  } finally {
    await retry.close()
  }
  expect(await written(topic)).toBe(0)
})

const NATIVE = {
  'node-rdkafka': ['KAFKA_RETRY_NODE_RDKAFKA', 'node-rdkafka.sh'],
  'confluent': ['KAFKA_RETRY_CONFLUENT_KAFKA', 'confluent-kafka.sh'],
}
/** Fails (never skips) when the script that builds a native client was not run. */
function requireBuilt(client) {
  const [variable, script] = NATIVE[client]
  if (!process.env[variable]) {
    throw new Error(`${variable} is not set: run \`export ${variable}=$(bash scripts/${script})\` (scripts/test.sh does)`)
  }
}

test('node-rdkafka Producer (produce(topic, partition, value, key, timestamp, opaque, headers), dr_cb: true, setPollInterval)', async () => {
  requireBuilt('node-rdkafka')
  await roundTrip('node-rdkafka', inChild('node-rdkafka'))
})

test('@confluentinc/kafka-javascript rdkafka-API Producer (dr_cb: true, connected, polled by nobody)', async () => {
  requireBuilt('confluent')
  await roundTrip('confluent', inChild('confluent-unpolled'))
})

test('@confluentinc/kafka-javascript KafkaJS-API Producer (send({ topic, messages }))', async () => {
  requireBuilt('confluent')
  await roundTrip('confluent-kafkajs', inChild('confluent-kafkajs'))
})

// A node-rdkafka-style Producer emits delivery reports only from poll(). Created as the clients'
// READMEs create it (dr_cb: true, connected, no setPollInterval), nobody polls it: before, the
// listener polled once right after produce, before the broker answered, so the messages reached the
// topic, their publishes stayed pending, close() put them back on the schedule and the next
// listener published every one a second time. Read back from the broker: each once.
test.each([
  ['node-rdkafka', 'node-rdkafka-unpolled'],
  ['confluent', 'confluent-unpolled'],
])('%s Producer polled by nobody: every message published once across close() and a second listener, nothing left pending', async (client, kind) => {
  requireBuilt(client)
  const COUNT = 50
  const topic = h.unique(`producers-unpolled-${client}`)
  const prefix = h.unique(`producers-unpolled-${client}`)
  await h.createTopics(topic)
  // The first listener, in a child: COUNT retries due now; it waits up to 20 s for all to be
  // published with nothing in flight, then closes (a pending publish goes back after leaseMs).
  const first = await inChild(kind, { COUNT: String(COUNT), WAIT_MS: '20000', LEASE_MS: '3000' })(topic, prefix)
  // A second listener on the same schedule publishes whatever the first left on it.
  const second = new KafkaRetry({ keyPrefix: prefix })
  let after
  try {
    await second.queueListener(null, `${prefix}-dlq`)
    after = await h.waitFor(async () => {
      const s = await second.stats()
      return s.scheduled === 0 && s.inflight === 0 && s
    }, 30000)
  } finally {
    await second.close()
  }
  const total = await written(topic)
  const { consumer, seen } = await h.consume(topic)
  try {
    await h.waitFor(() => seen.length >= total, 30000)
  } finally {
    await consumer.disconnect()
  }
  const ids = seen.map((m) => m.value.id).sort((a, b) => a - b)
  expect({ total, ids }).toEqual({ total: COUNT, ids: [...Array(COUNT).keys()] })
  expect(first).toMatchObject({ published: COUNT, inflight: 0, scheduled: 0, idlePolls: 0 })
  expect(first.polls).toBeGreaterThan(0)
  expect(after).toMatchObject({ published: 0, inflight: 0, scheduled: 0 })
})

test.each([
  ['an object with neither produce nor send', () => ({ publish() {} }), /produce\(topic, key, value, headers\).*got an object with neither/],
  ['a kafkajs Kafka client instead of its producer', () => h.kafka(), /got a Kafka client: pass kafka\.producer\(\) after connect\(\)/],
  [
    'a node-rdkafka-style Producer without dr_cb (its deliveries cannot be confirmed)',
    () => ({ produce() {}, setPollInterval() {}, getMetadata() {}, on() {}, _cb_configs: { global: {}, topic: {}, event: {} } }),
    /without dr_cb: true/,
  ],
  ['a number', () => 7, /got number 7/],
])('refused with ERR_INVALID_ARG saying what to pass: %s', async (name, make, message) => {
  const retry = new KafkaRetry({ keyPrefix: h.unique('producers-refused') })
  try {
    const err = await retry.queueListener(make(), 'dlq').then(() => null, (e) => e)
    expect(err).not.toBeNull()
    expect(err.code).toBe('ERR_INVALID_ARG')
    expect(err.message).toMatch(message)
  } finally {
    await retry.close()
  }
})

// Confluent's client, both APIs (docs/confluent.md): a retry keeps its key, so the client's
// partitioner puts it where the same producer put the key's original (partition left to the
// client); eight keys over three partitions, so a retry sent to a fixed or random partition fails.
test.each([
  ['rdkafka API', 'confluent-unpolled'],
  ['KafkaJS API', 'confluent-kafkajs'],
])("@confluentinc/kafka-javascript %s Producer: a retry lands on its key's partition", async (api, kind) => {
  requireBuilt('confluent')
  const topic = h.unique('producers-keys')
  const prefix = h.unique('producers-keys')
  const admin = h.kafka().admin()
  await admin.connect()
  try {
    await admin.createTopics({ topics: [{ topic, numPartitions: 3, replicationFactor: 1 }], waitForLeaders: true })
  } finally {
    await admin.disconnect()
  }
  const keys = Array.from({ length: 8 }, (_, i) => `account-${i}`)
  const stats = await inChild(kind, { KEYS: keys.join(','), WAIT_MS: '30000' })(topic, prefix)
  expect(stats).toMatchObject({ published: keys.length, inflight: 0, scheduled: 0 })
  const { consumer, seen } = await h.consume(topic)
  try {
    await h.waitFor(() => seen.length >= 2 * keys.length, 30000)
  } finally {
    await consumer.disconnect()
  }
  const partitions = {}
  for (const { key, partition, value } of seen) (partitions[key] ||= { original: [], retry: [] })[value.original ? 'original' : 'retry'].push(partition)
  for (const key of keys) {
    expect({ key, retry: partitions[key].retry }).toEqual({ key, retry: partitions[key].original })
  }
  expect(new Set(Object.values(partitions).map((p) => p.original[0])).size).toBeGreaterThan(1)
})

// A delivery the client reports failed (the topic does not exist yet and the producer may not
// create it) leaves the retry scheduled; once the topic exists it is published, once.
test.each([
  ['rdkafka API', 'confluent-unpolled'],
  ['KafkaJS API', 'confluent-kafkajs'],
])('@confluentinc/kafka-javascript %s Producer: a failed delivery is retried, not lost', async (api, kind) => {
  requireBuilt('confluent')
  const topic = h.unique('producers-failed')
  const prefix = h.unique('producers-failed')
  const config = { 'allow.auto.create.topics': false, 'message.timeout.ms': 2000, 'topic.metadata.propagation.max.ms': 500 }
  const stats = await inChild(kind, { CREATE_AFTER_FAILURE: '1', PRODUCER_CONFIG: JSON.stringify(config), WAIT_MS: '60000' })(topic, prefix)
  expect(stats.created).toEqual({ publishFailures: expect.any(Number) })
  expect(stats).toMatchObject({ published: 1, deadLetteredTotal: 0, inflight: 0, scheduled: 0 })
  expect(await written(topic)).toBe(1)
})
