// A service whose producer is an ES module (or a native client jest cannot load): creates the
// producer named by argv[2] the way its README does, hands it to queueListener, pushes COUNT
// retries due now (1 by default: the one producers/producers.test.js reads back with its key, value and
// headers; more: values {"id":<i>}), waits up to WAIT_MS for them to be published and nothing
// to be left pending, prints `RESULT <stats JSON>` (for an rdkafka-style producer with how often
// it was polled, and how often once idle), then closes the listener (LEASE_MS its leaseMs) and the
// producer. With EXPECT=dead-lettered it waits for them to be dead-lettered instead (config
// maxPublishFailures: 1). With KEYS (comma separated) it first sends one message per key through
// the producer itself, then pushes one retry per key (partitioning by key). With
// CREATE_AFTER_FAILURE=1 TOPIC does not exist yet: the child creates it once the listener counted
// a failed publish (a failed delivery retried). PRODUCER_CONFIG (JSON) is more librdkafka config
// for the Confluent and node-rdkafka producers. Env: TOPIC, PREFIX, KAFKA_BROKERS, OPTIONS (JSON, a
// Buffer as JSON.stringify writes it), COUNT, WAIT_MS, LEASE_MS, EXPECT, KEYS,
// CREATE_AFTER_FAILURE, PRODUCER_CONFIG.
import { createRequire } from 'node:module'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const require = createRequire(import.meta.url)
const { KafkaRetry } = require(path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..'))
const brokers = (process.env.KAFKA_BROKERS || '127.0.0.1:9092').split(',')

/** Resolves once a node-rdkafka-style client emitted 'ready' (or rejects on its error). */
const connected = (client) =>
  new Promise((resolve, reject) => {
    client.connect({}, (err) => (err ? reject(err) : resolve()))
  })

/** The directory a script built a native client in (fails, never skips, when it is not set). */
const built = (variable, script) => {
  if (!process.env[variable]) throw new Error(`${variable} is not set: run \`export ${variable}=$(bash scripts/${script})\` (scripts/test.sh does)`)
  return require(process.env[variable])
}

/**
 * A node-rdkafka-style Producer as its README creates one: dr_cb: true, connected; polled every
 * 20 ms when `pollInterval`, else by nobody.
 */
const more = JSON.parse(process.env.PRODUCER_CONFIG || '{}')
const rdkafka = async (Kafka, pollInterval) => {
  const producer = new Kafka.Producer({ 'metadata.broker.list': brokers.join(','), dr_cb: true, ...more })
  await connected(producer)
  if (pollInterval) producer.setPollInterval(pollInterval)
  return { producer, close: () => new Promise((resolve) => producer.disconnect(() => resolve())) }
}

const platformatic = async (strings) => {
  const { Producer, stringSerializers } = await import('@platformatic/kafka')
  const options = { clientId: `child-${process.pid}`, bootstrapBrokers: brokers }
  const producer = new Producer(strings ? { ...options, serializers: stringSerializers } : options)
  return { producer, close: () => producer.close() }
}

const producers = {
  // node-rdkafka, from the directory scripts/node-rdkafka.sh built it in (KAFKA_RETRY_NODE_RDKAFKA).
  'node-rdkafka': () => rdkafka(built('KAFKA_RETRY_NODE_RDKAFKA', 'node-rdkafka.sh'), 20),
  'node-rdkafka-unpolled': () => rdkafka(built('KAFKA_RETRY_NODE_RDKAFKA', 'node-rdkafka.sh'), 0),
  // @confluentinc/kafka-javascript's rdkafka API, built by scripts/confluent-kafka.sh.
  'confluent-unpolled': () => rdkafka(built('KAFKA_RETRY_CONFLUENT_KAFKA', 'confluent-kafka.sh'), 0),
  // Its KafkaJS API: the client built as above, its producer as its README creates one.
  async 'confluent-kafkajs'() {
    const { Kafka } = built('KAFKA_RETRY_CONFLUENT_KAFKA', 'confluent-kafka.sh').KafkaJS
    const producer = new Kafka({ kafkaJS: { brokers } }).producer(more)
    await producer.connect()
    return { producer, close: () => producer.disconnect() }
  },
  platformatic: () => platformatic(false),
  'platformatic-strings': () => platformatic(true),
}

const revive = (key, value) =>
  value && value.type === 'Buffer' && Array.isArray(value.data) ? Buffer.from(value.data) : value
const count = Number(process.env.COUNT || 1)
const { producer, close } = await producers[process.argv[2]]()
// The calls of an rdkafka-style poll(), to tell whether the listener still polls once idle.
let polls = 0
if (typeof producer.poll === 'function' && typeof producer.setPollInterval === 'function') {
  const poll = producer.poll
  producer.poll = function (...args) {
    polls++
    return poll.apply(this, args)
  }
}
const config = { keyPrefix: process.env.PREFIX }
if (process.env.LEASE_MS) config.leaseMs = Number(process.env.LEASE_MS)
const deadLettered = process.env.EXPECT === 'dead-lettered'
if (deadLettered) config.maxPublishFailures = 1
const retry = new KafkaRetry(config)
/** Sends one message through the producer itself (not the listener), as the service would. */
async function direct(key, value) {
  if (typeof producer.send === 'function') return producer.send({ topic: process.env.TOPIC, messages: [{ key, value }] })
  await new Promise((resolve, reject) => {
    producer.once('delivery-report', (err) => (err ? reject(err) : resolve()))
    producer.produce(process.env.TOPIC, null, Buffer.from(value), key)
    producer.poll()
    const timer = setInterval(() => producer.poll(), 20)
    producer.once('delivery-report', () => clearInterval(timer))
  })
}
const keys = process.env.KEYS ? process.env.KEYS.split(',') : null
let created = null
try {
  // The originals first, before the listener shares the producer's delivery reports.
  if (keys) for (const key of keys) await direct(key, JSON.stringify({ key, original: true }))
  await retry.queueListener(producer, `${process.env.PREFIX}-dlq`)
  const options = JSON.parse(process.env.OPTIONS, revive)
  if (keys) {
    await retry.pushMany(keys.map((key) => ({ topic: process.env.TOPIC, message: { event: key, value: JSON.stringify({ key }) }, options })))
  } else if (count === 1) await retry.pushToQueue(process.env.TOPIC, { event: 'Created', value: '{"id":7,"name":"ü"}' }, options)
  else {
    const items = Array.from({ length: count }, (_, id) => ({ topic: process.env.TOPIC, message: { event: 'Created', value: JSON.stringify({ id }) }, options }))
    await retry.pushMany(items)
  }
  const deadline = Date.now() + Number(process.env.WAIT_MS || 30000)
  let stats = await retry.stats()
  const expected = keys ? keys.length : count
  const done = (s) => (deadLettered ? s.deadLetteredTotal : s.published) === expected && !s.inflight && !s.scheduled
  while (!done(stats) && Date.now() < deadline) {
    if (process.env.CREATE_AFTER_FAILURE === '1' && !created && stats.publishFailures > 0) {
      created = { publishFailures: stats.publishFailures }
      const { Kafka, logLevel } = require('kafkajs')
      const admin = new Kafka({ brokers, logLevel: logLevel.NOTHING }).admin()
      await admin.connect()
      await admin.createTopics({ topics: [{ topic: process.env.TOPIC, numPartitions: 1, replicationFactor: 1 }], waitForLeaders: true })
      await admin.disconnect()
    }
    await new Promise((resolve) => setTimeout(resolve, 50))
    stats = await retry.stats()
  }
  // Polls made while nothing is pending (over 500 ms once done): none is wanted.
  const before = polls
  await new Promise((resolve) => setTimeout(resolve, 500))
  // On a line of its own after a marker: a client may log to stdout too.
  console.log(`RESULT ${JSON.stringify({ ...stats, polls: before, idlePolls: polls - before, created })}`)
} finally {
  await retry.close()
  await close()
}
