// Visibility: stats(), metrics(), onEvent and the logger report what the listener did; a throwing
// onEvent or logger harms nothing. Real Redis.
const { KafkaRetry } = require('../..')
const h = require('../helpers')

beforeAll(h.requireServers)

const opts = (delay, retryCount = '0', maxRetry = '3', extra = {}) => ({ delay, maxRetry, retryCount, ...extra })

test('stats, metrics, onEvent and logger report what the listener did', async () => {
  const events = []
  const logged = { warn: [], error: [] }
  const logger = { warn: (m) => logged.warn.push(m), error: (m) => logged.error.push(m) }
  const dlq = h.unique('dlq')
  const prefix = h.unique('stats')
  let failOnce = true
  const retry = new KafkaRetry({ keyPrefix: prefix, onEvent: (e) => events.push(e), logger })
  try {
    const before = await retry.stats()
    await retry.queueListener({
      produce: async () => {
        if (failOnce) {
          failOnce = false
          throw new Error('broker hiccup')
        }
      },
    }, dlq)
    await retry.pushToQueue('t', { event: 'ok', value: '{}' }, opts('0'))
    await retry.pushToQueue('t', { event: 'dead', value: '{}' }, opts('0', '1', '1'))
    await retry.pushToQueue('t', { event: 'later', value: '{}' }, opts('10'))
    await h.waitFor(() => events.some((e) => e.type === 'retry') && events.some((e) => e.type === 'deadLetter'), 5000)
    const stats = await retry.stats()
    expect(stats).toMatchObject({ scheduled: 1, due: 0, inflight: 0, deadLettered: 1, deadLetterCapExceeded: false })
    expect(stats.published - before.published).toBe(1)
    expect(stats.publishFailures - before.publishFailures).toBe(1)
    expect(stats.deadLetteredTotal - before.deadLetteredTotal).toBe(1)
    expect(events.find((e) => e.type === 'retry')).toMatchObject({ topic: 't', event: 'ok', retryCount: 1 })
    expect(events.find((e) => e.type === 'deadLetter')).toMatchObject({ event: 'dead', dlqName: dlq })
    expect(events.find((e) => e.type === 'error')).toMatchObject({ code: 'ERR_KAFKA_PUBLISH' })
    expect(logged.error.some((m) => m.includes('broker hiccup'))).toBe(true)
    const text = await retry.metrics()
    expect(text).toContain(`kafka_retry_scheduled{prefix="${prefix}"} 1`)
    expect(text).toContain(`kafka_retry_dead_letters{prefix="${prefix}"} 1`)
    expect(text).toMatch(/# TYPE kafka_retry_published_total counter/)
  } finally {
    await retry.close()
  }
})

test('a throwing onEvent or logger does not crash the process or stop the listener', async () => {
  const published = []
  const retry = new KafkaRetry({
    keyPrefix: h.unique('throwing'),
    onEvent: () => { throw new Error('bug in the metrics code') },
    logger: { error: () => { throw new Error('bug in the logger') } },
  })
  try {
    let first = true
    await retry.queueListener({ produce: async (t, k, v) => { if (first) { first = false; throw new Error('x') } published.push(v) } })
    await retry.pushToQueue('t', { event: 'e', value: '{"a":1}' }, opts('0'))
    await h.waitFor(() => published.length === 1, 5000)
    expect(published).toHaveLength(1)
  } finally {
    await retry.close()
  }
})
