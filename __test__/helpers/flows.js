// The seed's whole flow, shared by the single-server and the Redis Cluster tests: a kafkajs
// consumer fails a message, pushes it with KafkaRetry, the listener re-publishes it with
// retryCount 1, 2, 3 in the headers, and then it lands in the dead letter hash.
const { randomUUID } = require('crypto')
const { KafkaRetry } = require('../..')
const h = require('.')

/** The seed's producer wrapper: produce(topic, key, value, headers). */
function seedProducer(kafkaProducer, calls) {
  return {
    async produce(topic, key, value, headers = {}) {
      calls.push({ topic, key, value, headers })
      await kafkaProducer.send({ topic, messages: [{ key, value, headers }] })
    },
  }
}

/**
 * Runs the seed's flow; `redisConfig` (e.g. a cluster) is merged into every KafkaRetry config and
 * `redis` is an ioredis client (or Cluster) for the checks.
 */
async function runSeedFlow(makeProducer, redisConfig = {}, redisClient = h.redisClient) {
  const topic = h.unique('seed-topic')
  const prefix = h.unique('seed')
  const dlq = h.unique('DEAD_LETTER_QUEUE')
  await h.createTopics(topic)
  const kafkaProducer = await h.producer()
  const redis = redisClient()
  const listener = new KafkaRetry({ ...redisConfig, keyPrefix: prefix, pollIntervalMs: 200 })
  const calls = []
  // The seed's consumer, unchanged but for awaiting the push: every failure goes back to the queue.
  const { consumer, seen } = await h.consume(topic, async ({ key, value, rawHeaders }) => {
    if (key === 'KafkaRetry' && !value.success) {
      await new KafkaRetry({ ...redisConfig, keyPrefix: prefix }).pushToQueue(
        topic,
        { event: key, value: JSON.stringify(value) },
        KafkaRetry.headers(rawHeaders),
      )
    }
  })
  try {
    await listener.queueListener(makeProducer(kafkaProducer, calls), dlq)
    const msgId = randomUUID()
    const payload = JSON.stringify({ msgId, success: false, order: 1 })
    // delay '0.005' minutes = 300 ms between attempts keeps the test short.
    await kafkaProducer.send({
      topic,
      messages: [{ key: 'KafkaRetry', value: payload, headers: { delay: '0.005', maxRetry: '3', retryCount: '0' } }],
    })
    const dead = await h.waitFor(async () => (await redis.hlen(dlq)) > 0, 60000)
    expect(dead).toBe(true)
    // First delivery + 3 retries were consumed.
    await h.waitFor(() => seen.length >= 4, 10000)
    expect(seen.map((m) => m.headers.retryCount)).toEqual(['0', '1', '2', '3'])
    for (const retried of seen.slice(1)) {
      expect(retried.key).toBe('KafkaRetry')
      expect(retried.headers.delay).toBe('0.005')
      expect(retried.headers.maxRetry).toBe('3')
      expect(Number(retried.headers.executeAt)).toBeGreaterThan(0)
      // Same payload, same key order, but a fresh msgId each time.
      expect(Object.keys(retried.value)).toEqual(['msgId', 'success', 'order'])
      expect(retried.value.success).toBe(false)
    }
    const ids = new Set(seen.map((m) => m.value.msgId))
    expect(ids.size).toBe(4)
    // Exactly one dead letter, holding the message after its 4th failure.
    const letters = await redis.hgetall(dlq)
    expect(Object.keys(letters)).toHaveLength(1)
    const letter = JSON.parse(Object.values(letters)[0])
    expect(letter.topic).toBe(topic)
    expect(letter.event).toBe('KafkaRetry')
    // The payload as an object, as the original class wrote it: the consumer pushed text
    // (JSON.stringify(value)), and a tool reading the hash does JSON.parse(entry).value.msgId.
    expect(letter.value).toEqual({ msgId: seen[3].value.msgId, success: false, order: 1 })
    expect(JSON.parse(Object.values(letters)[0]).value.msgId).toBe(seen[3].value.msgId)
    expect(letter.options).toMatchObject({ delay: '0.005', maxRetry: '3', retryCount: '4' })
    expect(letter.diedAt).toBeGreaterThan(Date.now() - 60000)
    // Nothing is left in the schedule.
    for (const keys of h.shardKeys(prefix, redisConfig.shards || 1)) {
      expect(await redis.zcard(keys.due)).toBe(0)
      expect(await redis.zcard(keys.lease)).toBe(0)
      expect(await redis.hlen(keys.entries)).toBe(0)
    }
    return calls
  } finally {
    await listener.close()
    await consumer.disconnect()
    await kafkaProducer.disconnect()
    redis.disconnect()
  }
}

module.exports = { seedProducer, runSeedFlow }
