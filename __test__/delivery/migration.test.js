// Migration from the original class: buckets it wrote are each published once. Real Redis.
const { KafkaRetry } = require('../..')
const h = require('../helpers')

beforeAll(h.requireServers)

/** A listener whose JS producer records what it is asked to publish. */
async function recordingListener(config, dlq) {
  const published = []
  const retry = new KafkaRetry({ pollIntervalMs: 100, ...config })
  await retry.queueListener({ produce: async (topic, key, value, headers) => published.push({ topic, key, value: JSON.parse(value), headers, at: Date.now() }) }, dlq)
  return { retry, published }
}

test('migration: buckets written the way the original class did are each published once', async () => {
  const redis = h.redisClient()
  const topic = h.unique('legacy-topic')
  const minuteKey = (ms) => {
    const d = new Date(ms)
    const two = (n) => String(n).padStart(2, '0')
    return `${d.getUTCFullYear()}${two(d.getUTCMonth() + 1)}${two(d.getUTCDate())}-${two(d.getUTCHours())}${two(d.getUTCMinutes())}`
  }
  // The original's pushToQueue: GET the bucket of the due minute, append, SET it back.
  const originalPush = async (dueMs, entry) => {
    const key = minuteKey(dueMs)
    const list = JSON.parse((await redis.get(key)) || '[]')
    list.push(entry)
    await redis.set(key, JSON.stringify(list), 'EX', 3600)
    return key
  }
  const buckets = new Set()
  const N = 12
  for (let n = 0; n < N; n++) {
    const due = Date.now() - (n % 3) * 60000 // this minute and two past minutes: all due now
    buckets.add(await originalPush(due, { topic, event: `E${n}`, value: JSON.stringify({ msgId: `legacy-${n}`, n }), options: { delay: '2', maxRetry: '3', retryCount: '2' } }))
  }
  const { retry, published } = await recordingListener({ keyPrefix: h.unique('migrate') }, h.unique('dlq'))
  try {
    expect(await retry.migrateLegacy()).toBe(N)
    expect(await retry.migrateLegacy()).toBe(0)
    await h.waitFor(() => published.filter((p) => p.topic === topic).length >= N, 5000)
    await h.sleep(300)
    const mine = published.filter((p) => p.topic === topic)
    expect(mine.map((p) => p.value.n).sort((a, b) => a - b)).toEqual(Array.from({ length: N }, (_, n) => n))
    // The original stored retryCount already incremented: it is published as is.
    expect(mine.every((p) => p.headers.retryCount === '2' && p.headers.delay === '2')).toBe(true)
    for (const key of buckets) expect(await redis.exists(key)).toBe(0)
  } finally {
    await retry.close()
  }
  // With migrateLegacy: true the listener does it by itself.
  const later = await originalPush(Date.now(), { topic, event: 'Late', value: '{"late":true}', options: { delay: '2', maxRetry: '3', retryCount: '1' } })
  const auto = await recordingListener({ keyPrefix: h.unique('migrate-auto'), migrateLegacy: true }, h.unique('dlq'))
  try {
    await h.waitFor(() => auto.published.some((p) => p.key === 'Late'), 5000)
    expect(auto.published.filter((p) => p.key === 'Late')).toHaveLength(1)
    expect(await redis.exists(later)).toBe(0)
  } finally {
    await auto.retry.close()
    redis.disconnect()
  }
})
