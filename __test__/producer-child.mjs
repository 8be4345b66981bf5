// A service whose producer is an ES module (or a native client jest cannot load): creates the
// producer named by argv[2], hands it to queueListener, pushes one retry due now, waits for the
// publish to be acknowledged, and prints the stats. Run by producers.test.js, which reads the
// message back from the broker. Env: TOPIC, PREFIX, KAFKA_BROKERS, OPTIONS (JSON).
import { createRequire } from 'node:module'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const require = createRequire(import.meta.url)
const { KafkaRetry } = require(path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'index.js'))
const brokers = (process.env.KAFKA_BROKERS || '127.0.0.1:9092').split(',')

/** Resolves once a node-rdkafka-style client emitted 'ready' (or rejects on its error). */
const connected = (client) =>
  new Promise((resolve, reject) => {
    client.connect({}, (err) => (err ? reject(err) : resolve()))
  })

const producers = {
  // node-rdkafka, from the directory scripts/node-rdkafka.sh built it in (KAFKA_RETRY_NODE_RDKAFKA).
  async 'node-rdkafka'() {
    const Kafka = require(process.env.KAFKA_RETRY_NODE_RDKAFKA)
    const producer = new Kafka.Producer({ 'metadata.broker.list': brokers.join(','), dr_cb: true })
    await connected(producer)
    producer.setPollInterval(20)
    return { producer, close: () => new Promise((resolve) => producer.disconnect(() => resolve())) }
  },
  async platformatic() {
    const { Producer } = await import('@platformatic/kafka')
    const producer = new Producer({ clientId: `child-${process.pid}`, bootstrapBrokers: brokers })
    return { producer, close: () => producer.close() }
  },
}

const { producer, close } = await producers[process.argv[2]]()
const retry = new KafkaRetry({ keyPrefix: process.env.PREFIX })
try {
  await retry.queueListener(producer, `${process.env.PREFIX}-dlq`)
  await retry.pushToQueue(process.env.TOPIC, { event: 'Created', value: '{"id":7,"name":"ü"}' }, JSON.parse(process.env.OPTIONS))
  const deadline = Date.now() + 30000
  let stats = await retry.stats()
  while (!(stats.published && !stats.inflight && !stats.scheduled) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 50))
    stats = await retry.stats()
  }
  console.log(JSON.stringify(stats))
} finally {
  await retry.close()
  await close()
}
