// A service consuming through retry.retrying() (MODE=each) or retry.retryingBatch() (MODE=batch)
// with the client CLIENT: `kafkajs`, or `confluent` (@confluentinc/kafka-javascript's KafkaJS API,
// built by scripts/confluent-kafka.sh: a native client jest cannot load), each configured as its
// README configures it, its own producer handed to queueListener. Produces the messages of
// consumer/consumer.test.js to TOPIC, consumes them until the expected outcome or WAIT_MS, prints
// `RESULT <JSON>` (what the handler handled, the dead letters, the order of pushes and resolved
// offsets, stats), then closes everything.
//
// With ORDERED=1 (options.ordered) one key's three messages, the first failing once: handled in
// their order all the same.
// With REDIS_DOWN=1 the instance points at a Redis that does not answer: every push fails, and
// the result says whether the consumer committed anything (it must not).
// Env: CLIENT, MODE, TOPIC, PREFIX, GROUP, KAFKA_BROKERS, WAIT_MS, REDIS_DOWN, ORDERED.
import { createRequire } from 'node:module'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const require = createRequire(import.meta.url)
const { KafkaRetry } = require(path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..'))
const brokers = (process.env.KAFKA_BROKERS || '127.0.0.1:9092').split(',')
const { CLIENT, MODE, TOPIC, PREFIX, GROUP } = process.env
const redisDown = process.env.REDIS_DOWN === '1'
const ordered = process.env.ORDERED === '1'

const clients = {
  kafkajs() {
    const { Kafka, logLevel } = require('kafkajs')
    const kafka = new Kafka({ clientId: `consumer-${process.pid}`, brokers, logLevel: logLevel.NOTHING })
    return { producer: kafka.producer(), consumer: kafka.consumer({ groupId: GROUP }), subscribe: { topic: TOPIC, fromBeginning: true }, admin: kafka.admin() }
  },
  confluent() {
    if (!process.env.KAFKA_RETRY_CONFLUENT_KAFKA) throw new Error('KAFKA_RETRY_CONFLUENT_KAFKA is not set: run `export KAFKA_RETRY_CONFLUENT_KAFKA=$(bash scripts/confluent-kafka.sh)` (scripts/test.sh does)')
    const { Kafka, logLevel } = require(process.env.KAFKA_RETRY_CONFLUENT_KAFKA).KafkaJS
    const kafka = new Kafka({ kafkaJS: { brokers, logLevel: logLevel.NOTHING } })
    return { producer: kafka.producer(), consumer: kafka.consumer({ kafkaJS: { groupId: GROUP, fromBeginning: true } }), subscribe: { topics: [TOPIC] }, admin: kafka.admin() }
  },
}

class CardDeclined extends Error {
  name = 'CardDeclined'
}

const { producer, consumer, subscribe, admin } = clients[CLIENT]()
const retry = new KafkaRetry(redisDown ? { keyPrefix: PREFIX, redisUrl: 'redis://127.0.0.1:1', redisTimeoutMs: 500 } : { keyPrefix: PREFIX })
const dlq = `${PREFIX}-dlq`
// The order of what reached Redis and what the consumer was told to commit.
const log = []
for (const name of ['pushToQueue', 'pushMany', 'pushToDlq']) {
  const method = retry[name].bind(retry)
  retry[name] = async (...args) => {
    const result = await method(...args)
    log.push([name, name === 'pushMany' ? args[0].length : 1])
    return result
  }
}
const handled = []
let rejections = 0
/** The service's handler: flaky-* fail on first delivery, perm-* for good, text-* too (its value is not JSON). */
async function handler({ message }) {
  const key = message.key.toString()
  // Confluent's client gives no headers object to a message without headers.
  const headers = message.headers || {}
  const retryCount = headers.retryCount && headers.retryCount.toString()
  if (key.startsWith('flaky') && !retryCount) throw new Error('database timeout')
  if (ordered) {
    const { v } = JSON.parse(message.value.toString())
    if (v === 1 && !retryCount) throw new Error('database timeout')
    handled.push({ key, v, retryCount })
    return
  }
  if (key.startsWith('perm')) throw new CardDeclined('card declined')
  if (key.startsWith('text')) throw new Error('cannot parse')
  handled.push({ key, retryCount, tenant: headers.tenant && headers.tenant.toString() })
}
const options = { delay: '0.001', maxRetry: 3, isPermanent: (err) => err instanceof CardDeclined, dlqName: dlq, keepHeaders: ['tenant'], ordered }

await producer.connect()
const messages = redisDown
  ? [{ key: 'flaky-1', value: '{"id":1}' }]
  : ordered
  ? [1, 2, 3].map((v) => ({ key: 'account-7', value: JSON.stringify({ v }) }))
  : [
      { key: 'ok-1', value: '{"id":1}' },
      { key: 'flaky-1', value: '{"id":2}', headers: { tenant: 'acme' } },
      { key: 'perm-1', value: '{"id":3}' },
      { key: 'flaky-2', value: '{"id":4}' },
      { key: 'text-1', value: 'not json' },
    ]
await producer.send({ topic: TOPIC, messages })
if (!redisDown) await retry.queueListener(producer, dlq)
await consumer.connect()
await consumer.subscribe(subscribe)
if (MODE === 'batch') {
  const eachBatch = retry.retryingBatch(handler, options)
  await consumer.run({
    eachBatch: async (payload) => {
      log.push(['batch', payload.batch.messages.length])
      const resolveOffset = (offset) => {
        log.push(['resolve', offset])
        return payload.resolveOffset(offset)
      }
      try {
        await eachBatch({ ...payload, resolveOffset })
      } catch (err) {
        rejections++
        throw err
      }
    },
  })
} else {
  const eachMessage = retry.retrying(handler, options)
  await consumer.run({
    eachMessage: async (payload) => {
      try {
        await eachMessage(payload)
      } catch (err) {
        rejections++
        throw err
      }
      log.push(['resolve', payload.message.offset])
    },
  })
}

const deadline = Date.now() + Number(process.env.WAIT_MS || 60000)
const done = async () => {
  if (redisDown) return rejections >= 2
  if (ordered) return handled.length >= 3
  if (handled.length < 3) return false
  return (await retry.deadLetters(dlq)).items.length >= 2
}
while (!(await done()) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100))
// Anything handled twice would show up meanwhile.
await new Promise((resolve) => setTimeout(resolve, 1000))
const result = { handled, log, rejections }
if (redisDown) {
  await consumer.disconnect()
  await admin.connect()
  const [{ partitions }] = await admin.fetchOffsets({ groupId: GROUP, topics: [TOPIC] })
  result.committed = partitions.map((p) => p.offset)
  await admin.disconnect()
} else {
  result.deadLetters = (await retry.deadLetters(dlq)).items.map(({ event, value, error, options }) => ({ event, value, error, tenant: options.tenant }))
  result.stats = await retry.stats()
  await consumer.disconnect()
}
console.log(`RESULT ${JSON.stringify(result)}`)
await retry.close()
await producer.disconnect()
