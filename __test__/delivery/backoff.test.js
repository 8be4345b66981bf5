// Retry policies: exponential, a list of delays, a cap, jitter; each attempt waits what its policy
// says. Real Redis (JavaScript producers record when each retry is published).
const { KafkaRetry } = require('../..')
const h = require('../helpers')

beforeAll(h.requireServers)

const opts = (delay, retryCount = '0', maxRetry = '3', extra = {}) => ({ delay, maxRetry, retryCount, ...extra })

/** A listener whose JS producer records what it is asked to publish. */
async function recordingListener(config, dlq) {
  const published = []
  const retry = new KafkaRetry({ pollIntervalMs: 100, ...config })
  await retry.queueListener({ produce: async (topic, key, value, headers) => published.push({ topic, key, value: JSON.parse(value), headers, at: Date.now() }) }, dlq)
  return { retry, published }
}

describe('backoff policies', () => {
  test('exponential: attempt k waits base × multiplier^(k-1); the delay header keeps the base', async () => {
    const prefix = h.unique('exp')
    const { retry, published } = await recordingListener({ keyPrefix: prefix, backoff: { type: 'exponential', multiplier: 2 } }, h.unique('dlq'))
    try {
      const pushedAt = {}
      for (const retryCount of ['0', '1', '2']) {
        pushedAt[retryCount] = Date.now()
        // base 0.003 min = 180 ms: attempts 1, 2, 3 wait 180, 360, 720 ms.
        await retry.pushToQueue('t', { event: 'e', value: JSON.stringify({ retryCount }) }, opts('0.003', retryCount, '5'))
      }
      await h.waitFor(() => published.length === 3, 5000)
      const byAttempt = Object.fromEntries(published.map((p) => [p.headers.retryCount, p]))
      expect(byAttempt['1'].headers.retryDelayMs).toBe('180')
      expect(byAttempt['2'].headers.retryDelayMs).toBe('360')
      expect(byAttempt['3'].headers.retryDelayMs).toBe('720')
      for (const p of published) expect(p.headers.delay).toBe('0.003')
      expect(Number(byAttempt['3'].headers.executeAt) - pushedAt['2']).toBeGreaterThanOrEqual(720)
      expect(byAttempt['3'].at - pushedAt['2']).toBeGreaterThanOrEqual(700)
    } finally {
      await retry.close()
    }
  })

  test('list: attempt k waits delaysMs[k-1], the last repeating; maxDelayMs caps exponential', async () => {
    const list = await recordingListener({ keyPrefix: h.unique('list'), backoff: { type: 'list', delaysMs: [50, 400] } }, h.unique('dlq'))
    const capped = await recordingListener({ keyPrefix: h.unique('cap'), backoff: { type: 'exponential', multiplier: 10, maxDelayMs: 250 } }, h.unique('dlq'))
    try {
      for (const retryCount of ['0', '1', '4']) {
        await list.retry.pushToQueue('t', { event: 'e', value: '{}' }, opts('60', retryCount, '9'))
        await capped.retry.pushToQueue('t', { event: 'e', value: '{}' }, opts('0.001', retryCount, '9'))
      }
      await h.waitFor(() => list.published.length === 3 && capped.published.length === 3, 5000)
      const delays = (p) => Object.fromEntries(p.map((m) => [m.headers.retryCount, m.headers.retryDelayMs]))
      // The base (60 minutes) is not used by a list.
      expect(delays(list.published)).toEqual({ 1: '50', 2: '400', 5: '400' })
      expect(delays(capped.published)).toEqual({ 1: '60', 2: '250', 5: '250' })
    } finally {
      await list.retry.close()
      await capped.retry.close()
    }
  })

  test('equal jitter waits between half and all of the computed delay, and varies', async () => {
    const { retry, published } = await recordingListener({ keyPrefix: h.unique('jitter'), backoff: { type: 'fixed', jitter: 'equal' } }, h.unique('dlq'))
    try {
      await Promise.all(Array.from({ length: 30 }, (_, n) => retry.pushToQueue('t', { event: 'e', value: JSON.stringify({ n }) }, opts('0.005'))))
      await h.waitFor(() => published.length === 30, 5000)
      const waited = published.map((p) => Number(p.headers.retryDelayMs))
      expect(waited.every((w) => w >= 150 && w <= 300)).toBe(true)
      expect(new Set(waited).size).toBeGreaterThan(5)
    } finally {
      await retry.close()
    }
  })
})
