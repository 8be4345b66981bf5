// kafka-redis-retry/prometheus: the metrics of `retry.metrics()` in a real prom-client Registry, read
// from real Redis.
const { Registry } = require('prom-client')
const { KafkaRetry } = require('../..')
const { registerMetrics, scrapeText, parseMetrics, METRICS, REDIS_UP, CONTENT_TYPE } = require('../../prometheus')
const h = require('../helpers')

// Only Redis: the listeners publish through JavaScript producers (the macOS release job has no broker).
beforeAll(async () => {
  const redis = h.redisClient()
  try {
    await redis.ping()
  } finally {
    redis.disconnect()
  }
})

const open = []
afterEach(async () => {
  await Promise.all(open.splice(0).map((retry) => retry.close().catch(() => {})))
})

/** A KafkaRetry on a fresh schedule whose listener publishes through a JS producer. */
async function schedule(label) {
  const prefix = h.unique(label)
  const dlq = `${prefix}-dlq`
  const published = []
  const retry = new KafkaRetry({ keyPrefix: prefix, pollIntervalMs: 100 })
  open.push(retry)
  await retry.queueListener({ produce: async (topic, key) => published.push(key) }, dlq)
  return { prefix, dlq, retry, published }
}

/** The sample lines and the HELP/TYPE lines of a text exposition, for one prefix. */
function lines(text, prefix) {
  const all = text.split('\n')
  return {
    // kafka_retry_redis_up is the registry's own (metrics() has no such line): compared apart.
    samples: parseMetrics(text).filter((s) => s.prefix === prefix && s.name !== REDIS_UP),
    meta: all.filter((l) => l.startsWith('# ') && l.split(' ')[2].startsWith('kafka_retry_') && l.split(' ')[2] !== REDIS_UP),
  }
}

test('a registry scrape has the same names, labels, types and values as metrics(), for each instance', async () => {
  const a = await schedule('prom-a')
  const b = await schedule('prom-b')
  // a: one published, one dead-lettered, two waiting an hour.
  await a.retry.pushToQueue('t', { event: 'now', value: { n: 1 } }, { delay: '0' })
  await a.retry.pushToQueue('t', { event: 'dead', value: { n: 2 } }, { delay: '0', retryCount: '3', maxRetry: '3' })
  await a.retry.pushToQueue('t', { event: 'later', value: { n: 3 } }, { delay: '60' })
  await a.retry.pushToQueue('t', { event: 'later', value: { n: 4 } }, { delay: '60' })
  await h.waitFor(async () => a.published.length === 1 && (await a.retry.stats(a.dlq)).deadLetteredTotal === 1, 10000)
  // b: one waiting.
  await b.retry.pushToQueue('t', { event: 'later', value: { n: 5 } }, { delay: '60' })

  const registry = new Registry()
  registerMetrics(registry, [{ retry: a.retry, dlqName: a.dlq }, b.retry])
  const scraped = await registry.metrics()

  for (const [{ retry, prefix }, dlq] of [[a, a.dlq], [b, undefined]]) {
    const own = lines(await retry.metrics(dlq), prefix)
    const theirs = lines(scraped, prefix)
    // Every metric but the breaker's gauge, which has samples only for topics the breaker counts.
    expect(own.samples).toHaveLength(Object.keys(METRICS).filter((n) => n !== 'kafka_retry_topic_breaker_open').length)
    expect(theirs.samples.sort((x, y) => x.name.localeCompare(y.name))).toEqual(own.samples.sort((x, y) => x.name.localeCompare(y.name)))
    // Same HELP and TYPE lines (prom-client writes each once, for both instances).
    expect([...new Set(theirs.meta)].sort()).toEqual([...new Set(own.meta)].sort())
  }
  const value = (name, prefix) => parseMetrics(scraped).find((s) => s.name === name && s.prefix === prefix).value
  expect(value('kafka_retry_scheduled', a.prefix)).toBe(2)
  expect(value('kafka_retry_published_total', a.prefix)).toBe(1)
  expect(value('kafka_retry_dead_lettered_total', a.prefix)).toBe(1)
  expect(value('kafka_retry_dead_letters', a.prefix)).toBe(1)
  expect(value('kafka_retry_scheduled', b.prefix)).toBe(1)
  expect(value('kafka_retry_dead_letters', b.prefix)).toBe(0)
  // Per topic gauges, labelled with the topic.
  const topic = (name, prefix) => parseMetrics(scraped).filter((s) => s.name === name && s.prefix === prefix).map((s) => [s.topic, s.value])
  expect(topic('kafka_retry_topic_scheduled', a.prefix)).toEqual([['t', 2]])
  expect(topic('kafka_retry_topic_due', a.prefix)).toEqual([['t', 0]])
  expect(topic('kafka_retry_topic_leased', a.prefix)).toEqual([['t', 0]])
  expect(topic('kafka_retry_topic_dead_letters', a.prefix)).toEqual([['t', 1]])
  expect(topic('kafka_retry_topic_scheduled', b.prefix)).toEqual([['t', 1]])
  expect(scraped).toContain('# TYPE kafka_retry_published_total counter')
  expect(scraped).toContain('# TYPE kafka_retry_scheduled gauge')
  // Redis answered for both.
  expect(value(REDIS_UP, a.prefix)).toBe(1)
  expect(value(REDIS_UP, b.prefix)).toBe(1)
  expect(scraped).toContain('# TYPE kafka_retry_redis_up gauge')

  // Each scrape reads again.
  await b.retry.pushToQueue('t', { event: 'later', value: { n: 6 } }, { delay: '60' })
  expect(parseMetrics(await registry.metrics()).find((s) => s.name === 'kafka_retry_scheduled' && s.prefix === b.prefix).value).toBe(2)
})

test('scrapeText (the dashboard\'s /prometheus) writes what prom-client writes for the same sources, byte for byte, without prom-client', async () => {
  const a = await schedule('prom-text-a')
  const b = await schedule('prom-text-b')
  await a.retry.pushToQueue('t"quoted\\topic', { event: 'later', value: { n: 1 } }, { delay: '60' })
  await a.retry.pushToQueue('t', { event: 'dead', value: { n: 2 } }, { delay: '0', retryCount: '3', maxRetry: '3' })
  await h.waitFor(async () => (await a.retry.stats(a.dlq)).deadLettered === 1, 10000)
  await b.retry.pushToQueue('u', { event: 'later', value: { n: 3 } }, { delay: '60' })
  const sources = [{ retry: a.retry, dlqName: a.dlq }, b.retry]
  const registry = new Registry()
  registerMetrics(registry, sources)
  const [theirs, ours] = await Promise.all([registry.metrics(), scrapeText(sources)])
  expect(ours).toBe(theirs)
  expect(CONTENT_TYPE).toBe(registry.contentType)
  expect(parseMetrics(ours).find((s) => s.name === 'kafka_retry_topic_scheduled' && s.prefix === a.prefix && s.topic !== 't')).toMatchObject({ topic: 't"quoted\\topic', value: 1 })
  // prom-client is not needed by it (the dashboard has no dependencies): a fresh module
  // registry where requiring prom-client throws.
  jest.doMock('prom-client', () => {
    throw new Error('prom-client must not be required')
  })
  try {
    await jest.isolateModulesAsync(async () => {
      const text = await require('../../prometheus').scrapeText(b.retry)
      expect(parseMetrics(text).find((s) => s.name === 'kafka_retry_scheduled' && s.prefix === b.prefix).value).toBe(1)
    })
  } finally {
    jest.dontMock('prom-client')
  }
})

test('a second call adds to the same metrics; the returned function, and close(), remove an instance', async () => {
  const a = await schedule('prom-c')
  const b = await schedule('prom-d')
  const registry = new Registry()
  const removeA = registerMetrics(registry, a.retry)
  registerMetrics(registry, b.retry) // no "already registered" error from prom-client
  let prefixes = new Set(parseMetrics(await registry.metrics()).map((s) => s.prefix))
  expect(prefixes).toEqual(new Set([a.prefix, b.prefix]))

  removeA()
  prefixes = new Set(parseMetrics(await registry.metrics()).map((s) => s.prefix))
  expect(prefixes).toEqual(new Set([b.prefix]))

  await b.retry.close()
  const text = await registry.metrics()
  expect(parseMetrics(text)).toEqual([])
  expect(text).toContain('# HELP kafka_retry_scheduled')
})

test('an instance whose Redis fails is left out of the scrape and reported to onError; the scrape succeeds', async () => {
  const a = await schedule('prom-e')
  const downPrefix = h.unique('prom-down')
  const down = new KafkaRetry({ redisUrl: 'redis://127.0.0.1:1', redisTimeoutMs: 500, keyPrefix: downPrefix })
  open.push(down)
  const errors = []
  const registry = new Registry()
  registerMetrics(registry, [a.retry, down], { onError: (err) => errors.push(err) })
  const text = await registry.metrics()
  // Of the unreachable one, only kafka_retry_redis_up 0 (what an alert needs); 1 for the other.
  const samples = parseMetrics(text)
  expect(samples.filter((s) => s.prefix === downPrefix)).toEqual([{ name: REDIS_UP, prefix: downPrefix, value: 0 }])
  expect(samples.filter((s) => s.name === REDIS_UP)).toEqual([
    { name: REDIS_UP, prefix: a.prefix, value: 1 },
    { name: REDIS_UP, prefix: downPrefix, value: 0 },
  ])
  expect(new Set(samples.filter((s) => s.name !== REDIS_UP).map((s) => s.prefix))).toEqual(new Set([a.prefix]))
  // One read per scrape, however many metrics ask.
  expect(errors).toHaveLength(1)
  expect(errors[0].code).toBe('ERR_REDIS_UNAVAILABLE')
})

test('two instances on one keyPrefix, one naming the dead letter queue its listener writes, the other not: each dead letter counted once', async () => {
  const a = await schedule('prom-same-dlq')
  // A second instance of the same schedule, registered with the dlqName a's listener writes;
  // a is registered without one (metrics() then counts its listener's).
  const b = new KafkaRetry({ keyPrefix: a.prefix })
  open.push(b)
  expect(a.retry.dlqName).toBe(a.dlq)
  await a.retry.pushToQueue('t', { event: 'dead', value: { n: 1 } }, { delay: '0', retryCount: '3', maxRetry: '3' })
  await h.waitFor(async () => (await a.retry.stats(a.dlq)).deadLettered === 1, 10000)
  // And a third source on the same schedule's default queue (<keyPrefix>:dead-letters), with
  // one dead letter of its own: queues that differ add up.
  const c = new KafkaRetry({ keyPrefix: a.prefix })
  open.push(c)
  expect(c.dlqName).toBe(`${a.prefix}:dead-letters`)
  await c.pushToDlq(`${a.prefix}:dead-letters`, { topic: 't', event: 'other', value: '{}' })
  const registry = new Registry()
  registerMetrics(registry, [a.retry, { retry: b, dlqName: a.dlq }, { retry: c, dlqName: `${a.prefix}:dead-letters` }, c])
  const samples = parseMetrics(await registry.metrics()).filter((s) => s.prefix === a.prefix)
  expect(samples.find((s) => s.name === 'kafka_retry_dead_letters').value).toBe(2)
  expect(samples.filter((s) => s.name === 'kafka_retry_topic_dead_letters').map((s) => [s.topic, s.value])).toEqual([['t', 2]])
  const redis = h.redisClient()
  await redis.del(`${a.prefix}:dead-letters`, `${a.prefix}:dead-letters:index`, `${a.prefix}:dead-letters:index:scan`, `${a.prefix}:dead-letters:topics`)
  await redis.quit()
})

describe('prometheus.js', () => {
  test('two sources on one keyPrefix with different dlqNames: each schedule counted once, dead letters of both', async () => {
    const { Registry } = require('prom-client')
    const { registerMetrics, parseMetrics } = require('../../prometheus')
    const keyPrefix = h.unique('prom-twice')
    const [dlqA, dlqB] = [h.unique('dlq-a'), h.unique('dlq-b')]
    const a = new KafkaRetry({ keyPrefix, pollIntervalMs: 100 })
    const b = new KafkaRetry({ keyPrefix, pollIntervalMs: 100 })
    try {
      const published = []
      await a.queueListener({ produce: async (topic, key) => published.push(key) }, dlqA)
      for (let n = 0; n < 3; n += 1) await a.pushToQueue('t', { event: `e${n}`, value: '{}' }, { delay: '0' })
      await a.pushToQueue('t', { event: 'later', value: '{}' }, { delay: '60' })
      await h.waitFor(() => published.length === 3, 10000)
      await a.pushToDlq(dlqA, { topic: 't', event: 'x', value: '{}' })
      await b.pushToDlq(dlqB, { topic: 't', event: 'y', value: '{}' })
      await b.pushToDlq(dlqB, { topic: 't', event: 'z', value: '{}' })
      const registry = new Registry()
      registerMetrics(registry, [{ retry: a, dlqName: dlqA }, { retry: b, dlqName: dlqB }])
      const samples = parseMetrics(await registry.metrics()).filter((s) => s.prefix === keyPrefix)
      const value = (name) => samples.filter((s) => s.name === name).map((s) => s.value)
      expect(value('kafka_retry_published_total')).toEqual([3])
      expect(value('kafka_retry_scheduled')).toEqual([1])
      expect(value('kafka_retry_dead_letters')).toEqual([3])
      // Per topic too: the schedule's gauges once, the dead letters of both hashes.
      expect(samples.filter((s) => s.name === 'kafka_retry_topic_scheduled')).toEqual([{ name: 'kafka_retry_topic_scheduled', prefix: keyPrefix, topic: 't', value: 1 }])
      expect(value('kafka_retry_topic_dead_letters')).toEqual([3])
    } finally {
      await Promise.all([a.close(), b.close()])
    }
  })
})
