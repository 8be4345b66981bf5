// Every producer a service hands to queueListener(producer), against the real broker: a retry is
// re-published through it and read back with its key, value and headers (the retry headers and a
// caller's own, one of them with two values). A producer the package cannot drive is refused with
// ERR_INVALID_ARG saying what to pass. Which producer is which is decided in
// src/binding/producer_shape.js.
const path = require('path')
const { execFile } = require('child_process')
const { KafkaRetry } = require('../index.js')
const h = require('./helpers')

beforeAll(h.requireServers)

const OPTIONS = { ...KafkaRetry.headers({ delay: Buffer.from('0') }), tenant: 'acme', tag: ['a', 'b'] }

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
    expect(message.headers).toMatchObject({ delay: '0', maxRetry: '3', retryCount: '1', tenant: 'acme' })
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

/** The producer made in a child process (an ES module client, which jest cannot load). */
const inChild = (kind) => (topic, prefix) =>
  new Promise((resolve, reject) => {
    const env = { ...process.env, TOPIC: topic, PREFIX: prefix, OPTIONS: JSON.stringify(OPTIONS) }
    execFile(process.execPath, [path.join(__dirname, 'producer-child.mjs'), kind], { env, timeout: 60000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${err.message}\n${stderr}`))
      else resolve(JSON.parse(stdout))
    })
  })

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

test('@platformatic/kafka Producer (send({ messages: [{ topic, ... }] }), Buffers)', async () => {
  await roundTrip('platformatic', inChild('platformatic'))
})

test('node-rdkafka Producer (produce(topic, partition, value, key, timestamp, opaque, headers), dr_cb: true)', async () => {
  if (!process.env.KAFKA_RETRY_NODE_RDKAFKA) {
    throw new Error('KAFKA_RETRY_NODE_RDKAFKA is not set: run `export KAFKA_RETRY_NODE_RDKAFKA=$(bash scripts/node-rdkafka.sh)` (scripts/test.sh does)')
  }
  await roundTrip('node-rdkafka', inChild('node-rdkafka'))
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
