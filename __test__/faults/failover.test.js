// A Kafka broker failover (issue 18 item 4): a three-node Apache Kafka cluster of this file's own
// (KRaft, replication factor 3, min.insync.replicas 2, scripts/services/kafka-cluster.js) on free
// ports. While the listener publishes 10,000 messages, the node that leads every partition of the
// topic is SIGKILLed, and started again once the others have taken over. Everything is then read
// back from the topic: nothing may be lost that the producer did not confirm (the listener
// acknowledges a message only then), nor at all with the internal producer and kafkajs without
// idempotence; the duplicates are counted, and asserted where the producer's design excludes
// them. Once with the internal producer, once with a kafkajs producer (idempotent) and once with
// a kafkajs producer (not idempotent) handed to queueListener.
const os = require('os')
const fs = require('fs')
const path = require('path')
const { Kafka, logLevel, Partitioners } = require('kafkajs')
const { KafkaRetry } = require('../..')
const { startKafkaCluster } = require('../../scripts/services/kafka-cluster')
const h = require('../helpers')

beforeAll(h.requireServers)

const N = 10000
const RATE = 1000 // pushes per second: the 10,000 go out over 10 s, the kill lands in the middle
const KILL_AFTER_MS = 3000

let cluster
beforeAll(async () => {
  cluster = await startKafkaCluster({ dir: fs.mkdtempSync(path.join(os.tmpdir(), 'kafka-redis-retry-failover-')) })
}, 180000)
afterAll(async () => {
  if (cluster) await cluster.stop()
})

const mustWait = async (check, timeoutMs, describe) => {
  if (!(await h.waitFor(check, timeoutMs, 100))) throw new Error(await describe())
}

/** Reads `topic` from the beginning up to its end offsets; returns each message's `n`. */
async function readBack(kafka, topic) {
  const admin = kafka.admin()
  await admin.connect()
  const ends = await admin.fetchTopicOffsets(topic)
  await admin.disconnect()
  const remaining = new Map(ends.filter((p) => Number(p.high) > 0).map((p) => [p.partition, Number(p.high)]))
  const ns = []
  const consumer = kafka.consumer({ groupId: h.unique('failover-read'), maxWaitTimeInMs: 100, sessionTimeout: 10000, heartbeatInterval: 1000 })
  await consumer.connect()
  await consumer.subscribe({ topic, fromBeginning: true })
  let done
  const finished = new Promise((resolve) => { done = resolve })
  if (remaining.size === 0) done()
  await consumer.run({
    eachMessage: async ({ partition, message }) => {
      ns.push(JSON.parse(message.value.toString()).n)
      if (Number(message.offset) + 1 >= remaining.get(partition)) remaining.delete(partition)
      if (remaining.size === 0) done()
    },
  })
  const timer = setTimeout(done, 60000)
  await finished
  clearTimeout(timer)
  await consumer.disconnect()
  if (remaining.size) throw new Error(`read back stopped short on partitions ${[...remaining.keys()]}`)
  return ns
}

/**
 * Pushes N messages at RATE/s to a listener publishing through `producer` (null: the internal
 * one); SIGKILLs the topic's leader KILL_AFTER_MS in, starts it again once every partition has a
 * new leader. Returns the figures.
 */
async function failover(label, makeProducer) {
  const topic = h.unique(`failover-${label}`)
  const prefix = h.unique(`failover-${label}`)
  const keys = h.scheduleKeys(prefix)
  const dlq = h.unique('dlq')
  const redis = h.redisClient()
  const kafka = new Kafka({ clientId: h.unique('failover'), brokers: cluster.brokers.split(','), logLevel: logLevel.NOTHING })
  await cluster.createTopic(topic, { partitions: 3, leader: 1 })
  const leaders = await h.waitFor(async () => {
    const l = await cluster.leaders(topic).catch(() => null)
    return l && Object.values(l).length === 3 && l
  }, 20000)
  const leader = Object.values(leaders)[0]
  expect(Object.values(leaders)).toEqual([leader, leader, leader])

  const producer = await makeProducer(kafka)
  // A user's producer is observed: `confirmed[n]` counts the sends of message n it resolved, to
  // tell a message the listener acknowledged without a confirmed publish (the package's fault)
  // from one the producer confirmed and the broker does not hold (the producer's).
  const confirmed = new Uint8Array(N)
  const handed = producer && {
    async send(record) {
      const result = await producer.send(record)
      for (const m of record.messages) confirmed[JSON.parse(m.value.toString()).n] += 1
      return result
    },
  }
  const pusher = new KafkaRetry({ keyPrefix: prefix })
  const listener = new KafkaRetry({ keyPrefix: prefix, brokers: cluster.brokers })
  let rejected = 0
  try {
    await listener.queueListener(handed, dlq)
    const t0 = Date.now()
    const pushes = []
    let killed
    let failedOverMs
    let restarted
    for (let n = 0; n < N; n += RATE / 10) {
      for (let i = n; i < n + RATE / 10; i += 1) {
        pushes.push(pusher.pushToQueue(topic, { event: `e${i}`, value: JSON.stringify({ n: i }) }, { delay: '0', maxRetry: '3', retryCount: '0' }).catch(() => { rejected += 1 }))
      }
      if (!killed && Date.now() - t0 >= KILL_AFTER_MS) {
        killed = (async () => {
          const at = Date.now()
          await cluster.kill(leader)
          // the others fence it and elect new leaders for its partitions
          await mustWait(async () => {
            const now = await cluster.leaders(topic).catch(() => null)
            return now && Object.values(now).every((l) => l !== leader && l >= 0)
          }, 30000, () => `no new leader for ${topic} within 30 s of killing node ${leader}`)
          failedOverMs = Date.now() - at
          await h.sleep(2000)
          restarted = Date.now()
          await cluster.start(leader)
        })()
      }
      await h.sleep(Math.max(0, t0 + ((n + RATE / 10) * 1000) / RATE - Date.now()))
    }
    await Promise.all(pushes)
    await killed
    const backMs = Date.now() - restarted
    // Every message acknowledged (published and its entry removed), then read back.
    await mustWait(async () => (await redis.hlen(keys.entries)) === 0, 90000,
      async () => `${await redis.hlen(keys.entries)} of ${N} still scheduled 90 s after the pushes (${await redis.zcard(keys.lease)} leased)`)
    const ns = await readBack(kafka, topic)
    const counts = new Map()
    for (const n of ns) counts.set(n, (counts.get(n) || 0) + 1)
    const lost = []
    for (let n = 0; n < N; n += 1) if (!counts.has(n)) lost.push(n)
    const duplicated = [...counts.values()].filter((c) => c > 1).length
    const unconfirmed = producer ? [...confirmed.keys()].filter((n) => confirmed[n] === 0) : []
    const figures = { pushed: N - rejected, rejected, published: counts.size, read: ns.length, lost: lost.length, duplicated, deadLettered: await redis.hlen(dlq), failedOverMs, backMs, totalMs: Date.now() - t0, lostIds: lost.slice(0, 10) }
    console.log(
      `broker failover (${label}): ${figures.pushed} pushed at ${RATE}/s, leader node ${leader} of 3 SIGKILLed ${KILL_AFTER_MS} ms in, ` +
        `new leaders after ${failedOverMs} ms, node restarted 2 s later (back in ${backMs} ms); ` +
        `${figures.published} published (${figures.read} read back), lost ${figures.lost}${lost.length ? ` (${lost.slice(0, 10)}, each confirmed by the producer)` : ''}, ` +
        `duplicated ${figures.duplicated}, dead-lettered ${figures.deadLettered}, ${figures.totalMs} ms in all`,
    )
    expect(rejected).toBe(0)
    // The listener acknowledged nothing its producer had not confirmed.
    expect(unconfirmed).toEqual([])
    expect(figures.deadLettered).toBe(0)
    expect([...counts.keys()].every((n) => n >= 0 && n < N)).toBe(true)
    return figures
  } finally {
    await listener.close().catch(() => {})
    await pusher.close().catch(() => {})
    if (producer) await producer.disconnect().catch(() => {})
    redis.disconnect()
  }
}

test('broker failover, the internal producer (idempotent, acks=all): nothing lost, nothing published twice', async () => {
  const figures = await failover('internal', async () => null)
  expect(figures.lost).toBe(0)
  // librdkafka resends what the dead leader did not acknowledge to the new one; idempotence (the
  // producer id and sequence numbers are replicated with the log) makes the new leader drop a
  // batch it already has. The failover is far shorter than message.timeout.ms (30 s), so no
  // publish is reported failed and retried by the listener.
  expect(figures.duplicated).toBe(0)
}, 240000)

test('broker failover, a kafkajs producer (idempotent) handed to queueListener: nothing acknowledged that kafkajs did not confirm', async () => {
  await failover('kafkajs-idempotent', async (kafka) => {
    const p = kafka.producer({ idempotent: true, maxInFlightRequests: 1, createPartitioner: Partitioners.DefaultPartitioner })
    await p.connect()
    return p
  })
  // Neither lost nor duplicated is asserted here, only (in failover()) that every message was
  // confirmed by kafkajs before the listener acknowledged it. kafkajs 2.2.4's idempotent producer
  // rolls a partition's sequence number back when a produce request fails
  // (producer/sendMessages.js), also when the dead leader had written and replicated it: the
  // listener retries that message (a duplicate), and the next message reuses the sequence, which
  // the new leader takes for a duplicate and answers with success without writing it (lost,
  // confirmed). Seen once in three runs (1 of 10,000 lost, 1 duplicated); see the README.
}, 240000)

test('broker failover, a kafkajs producer (not idempotent) handed to queueListener: nothing lost', async () => {
  const figures = await failover('kafkajs', async (kafka) => {
    const p = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner })
    await p.connect()
    return p
  })
  expect(figures.lost).toBe(0)
  // A request the dead leader wrote (and replicated) but did not answer is sent again by kafkajs
  // and written twice: duplicates are possible here, counted, not asserted.
}, 240000)
