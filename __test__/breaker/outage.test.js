// The breaker through a downstream outage (issue 30): a kafkajs consumer whose downstream is down
// for 25 s, 300 messages, 3 retries 1.2 s apart. Without the breaker most are dead-lettered; with
// it at most 5 % are (probes that failed) and the rest are handled within a minute of the
// downstream's return, once each. Both runs at once, on topics and schedules of their own.
const { KafkaRetry } = require('../..')
const { requireServers, unique, createTopics, kafka, producer, redisClient, waitFor, sleep } = require('../helpers')

jest.setTimeout(150000)

const MESSAGES = 300
const OUTAGE_MS = 25000

async function run({ breaker }) {
  const topic = unique('breaker-outage')
  const dlq = unique('breaker-dlq')
  await createTopics(topic)
  const events = []
  const retry = new KafkaRetry({
    keyPrefix: unique('breaker'),
    pollIntervalMs: 200,
    ...(breaker ? { breaker } : {}),
    onEvent: (e) => {
      if (e.type.startsWith('breaker')) events.push({ ...e, at: Date.now() })
    },
  })
  const handled = new Map()
  let downUntil = Infinity
  let failures = 0
  const consumer = kafka().consumer({ groupId: unique('group'), maxWaitTimeInMs: 100, heartbeatInterval: 500 })
  await consumer.connect()
  await consumer.subscribe({ topic, fromBeginning: true })
  await consumer.run({
    eachMessage: async ({ message }) => {
      const { n } = JSON.parse(message.value.toString())
      if (Date.now() < downUntil) {
        failures += 1
        await retry.pushToQueue(
          topic,
          { event: message.key.toString(), value: message.value.toString() },
          { ...KafkaRetry.headers(message.headers), delay: '0.02', maxRetry: '3' },
        )
        return
      }
      handled.set(n, (handled.get(n) || 0) + 1)
    },
  })
  await retry.queueListener(null, dlq)
  const p = await producer()
  downUntil = Date.now() + OUTAGE_MS
  await p.send({ topic, messages: Array.from({ length: MESSAGES }, (_, n) => ({ key: `k${n}`, value: JSON.stringify({ n }) })) })
  await p.disconnect()
  return { topic, dlq, retry, consumer, handled, events, downUntil: () => downUntil, failures: () => failures }
}

beforeAll(requireServers)

test('without the breaker most messages are dead-lettered; with it at most 5 % and the rest are handled once each within a minute of the return', async () => {
  const redis = redisClient()
  const [plain, guarded] = await Promise.all([run({ breaker: false }), run({ breaker: { rampMs: 10000 } })])
  try {
    const dead = (r) => redis.hlen(r.dlq)
    const done = async (r) => (await dead(r)) + r.handled.size >= MESSAGES
    // Without the breaker: 3 retries 1.2 s apart are spent long before the downstream returns.
    await waitFor(async () => (await dead(plain)) > MESSAGES / 2, OUTAGE_MS)
    const plainDead = await dead(plain)
    expect(Date.now()).toBeLessThan(plain.downUntil())
    expect(plainDead).toBeGreaterThan(MESSAGES / 2)

    // With it: the breaker opened during the outage and held the retries.
    await waitFor(() => guarded.events.some((e) => e.type === 'breakerOpen'), OUTAGE_MS)
    expect(guarded.events[0]).toMatchObject({ type: 'breakerOpen', topic: guarded.topic })
    const stats = await guarded.retry.stats(guarded.dlq)
    expect(['open', 'halfOpen']).toContain(stats.topics[guarded.topic].breaker)
    const metrics = await guarded.retry.metrics(guarded.dlq)
    expect(metrics).toMatch(new RegExp(`kafka_retry_topic_breaker_open\\{prefix="[^"]+",topic="${guarded.topic}"\\} 1\\n`))

    const returned = guarded.downUntil()
    await waitFor(() => done(guarded), returned + 60000 - Date.now(), 250)
    const guardedDead = await dead(guarded)
    const finished = Date.now()
    expect(guardedDead).toBeLessThanOrEqual(MESSAGES * 0.05)
    expect(guardedDead + guarded.handled.size).toBe(MESSAGES)
    expect(finished - returned).toBeLessThan(60000)
    // Once each: no message handled twice (give redeliveries a moment to show up).
    await sleep(2000)
    expect([...guarded.handled.values()].every((c) => c === 1)).toBe(true)
    expect(guarded.handled.size + (await dead(guarded))).toBe(MESSAGES)
    const close = guarded.events.find((e) => e.type === 'breakerClose')
    expect(close).toMatchObject({ topic: guarded.topic, byHand: false })
    expect(close.at).toBeGreaterThanOrEqual(returned)
    expect((await guarded.retry.stats(guarded.dlq)).topics[guarded.topic]?.breaker ?? 'closed').toBe('closed')
    console.log(
      `outage: without the breaker ${plainDead}/${MESSAGES} dead-lettered; with it ${guardedDead}/${MESSAGES}, ` +
        `all handled ${finished - returned} ms after the return, ${guarded.events.length} breaker events`,
    )
  } finally {
    for (const r of [plain, guarded]) {
      await r.consumer.disconnect()
      await r.retry.close()
    }
    redis.disconnect()
  }
})
