// A child process of __test__/ordered/ordered.test.js: a consumer running handleInOrder around a handler
// that fails a seeded fraction of its attempts, or a listener that republishes. Configured by
// ORDERED_CONFIG (JSON); talks to the test over IPC (`process.send`).
const { KafkaRetry } = require('../..')
const { Kafka, logLevel } = require('kafkajs')

const config = JSON.parse(process.env.ORDERED_CONFIG)
const brokers = (process.env.KAFKA_BROKERS || '127.0.0.1:9092').split(',')

/** A number in [0, 1) from `text` (FNV-1a, then a mulberry32 step): the same attempt always draws the same number. */
function draw (text) {
  let h = 0x811c9dc5
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i)
    h = Math.imul(h, 0x01000193) >>> 0
  }
  let t = (h + 0x6d2b79f5) >>> 0
  t = Math.imul(t ^ (t >>> 15), t | 1)
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

async function consumer () {
  const retry = new KafkaRetry({ keyPrefix: config.prefix })
  const kafka = new Kafka({ clientId: `ordered-${process.pid}`, brokers, logLevel: logLevel.NOTHING })
  const consumer = kafka.consumer({ groupId: config.group, sessionTimeout: 10000, heartbeatInterval: 500, maxWaitTimeInMs: 50 })
  consumer.on(consumer.events.GROUP_JOIN, (event) => {
    const partitions = Object.values(event.payload.memberAssignment).reduce((n, list) => n + list.length, 0)
    process.send({ type: 'joined', partitions })
  })
  await consumer.connect()
  await consumer.subscribe({ topic: config.topic, fromBeginning: true })
  await consumer.run({
    partitionsConsumedConcurrently: 3,
    eachMessage: async ({ topic, message }) => {
      const outcome = await retry.handleInOrder(topic, message, async (m) => {
        const value = JSON.parse(m.value.toString())
        const attempt = m.headers.retryCount ? m.headers.retryCount.toString() : '0'
        if (value.key === config.stuckKey) {
          // The stuck key's head fails until the test heals it; the rest of it never fails.
          if (value.seq === 0 && !healed) {
            process.send({ type: 'failed', key: value.key, seq: value.seq })
            throw new Error(`${value.key}#0 fails until healed`)
          }
          process.send({ type: 'handled', key: value.key, seq: value.seq })
          return
        }
        if (draw(`${config.seed}:${value.key}:${value.seq}:${attempt}`) < config.failRate) {
          process.send({ type: 'failed', key: value.key, seq: value.seq })
          throw new Error(`seeded failure of ${value.key}#${value.seq} attempt ${attempt}`)
        }
        process.send({ type: 'handled', key: value.key, seq: value.seq })
      })
      if (outcome === 'duplicate') process.send({ type: 'duplicate' })
    },
  })
  process.on('message', async (message) => {
    if (message === 'stop') {
      await consumer.disconnect()
      await retry.close()
      process.exit(0)
    }
  })
}

// The test says when the stuck key's head may succeed (before it requeues its dead letter).
let healed = false

async function listener () {
  const retry = new KafkaRetry({ keyPrefix: config.prefix, brokers: brokers.join(','), leaseMs: config.leaseMs, pollIntervalMs: 100 })
  await retry.queueListener(null, config.dlq)
  process.send({ type: 'listening' })
  process.on('message', async (message) => {
    if (message === 'stop') {
      await retry.close()
      process.exit(0)
    }
  })
}

process.on('message', (message) => {
  if (message === 'heal') healed = true
})
;(config.role === 'consumer' ? consumer() : listener()).catch((err) => {
  process.stderr.write(`${err.stack}\n`)
  process.exit(1)
})
