// Per-message leases (issue 18): a batch is a unit of work, not of ownership. A publish that
// finished is settled (acknowledged, released to its backoff, counted) while the rest of its
// batch is still publishing, each message by the token it holds its lease with, however many
// times the batch renewed. Real Redis; the producer is a JavaScript one whose speed per message
// the test sets (one slow `send`, as a partition without a leader makes it).
const { KafkaRetry } = require('..')
const h = require('./helpers')

beforeAll(h.requireServers)

const LEASE = 1500
const opts = { delay: '0', maxRetry: '3', retryCount: '0' }

/**
 * Pushes `n` messages, then starts listener `a` and, once it has claimed them all in one batch,
 * listener `b` beside it on the same schedule. `behave(n, call)` is what the producer does for
 * message `n` on its `call`th publish (1-based): resolves (published) or throws.
 */
async function mixedBatch(N, behave, extra = {}) {
  const keyPrefix = h.unique('lease')
  const calls = new Map()
  const log = []
  const events = []
  const makeProducer = (who) => ({
    async produce(topic, key, value) {
      const { n } = JSON.parse(value)
      const call = (calls.get(n) || 0) + 1
      calls.set(n, call)
      log.push({ n, call, who, at: Date.now(), what: 'start' })
      try {
        await behave(n, call)
        log.push({ n, call, who, at: Date.now(), what: 'published' })
      } catch (e) {
        log.push({ n, call, who, at: Date.now(), what: 'failed' })
        throw e
      }
    },
  })
  const config = { keyPrefix, leaseMs: LEASE, pollIntervalMs: 50, batchSize: 100, onEvent: (e) => events.push(e), ...extra }
  const a = new KafkaRetry(config)
  const b = new KafkaRetry(config)
  const pusher = new KafkaRetry({ keyPrefix })
  const dlq = h.unique('dlq')
  const close = () => Promise.all([a.close(), b.close(), pusher.close()])
  await Promise.all(Array.from({ length: N }, (_, n) => pusher.pushToQueue('lease-topic', { event: `e${n}`, value: JSON.stringify({ n }) }, opts)))
  await a.queueListener(makeProducer('a'), dlq)
  await h.waitFor(() => log.filter((l) => l.call === 1 && l.what === 'start').length === N, 10000, 10)
  // All N were claimed by a, in one batch (batchSize 100): b finds nothing until a lease runs out.
  await b.queueListener(makeProducer('b'), dlq)
  return { calls, log, events, pusher, dlq, close }
}

const settledAll = (pusher) => async () => {
  const stats = await pusher.stats()
  return stats.scheduled === 0 && stats.inflight === 0
}

test('one publish 2.5 x leaseMs slow, the others instant, a second listener beside: nothing published twice', async () => {
  const N = 40
  const run = await mixedBatch(N, (n) => (n === 7 ? h.sleep(LEASE * 2.5) : undefined))
  try {
    await h.waitFor(settledAll(run.pusher), 20000)
    // A duplicate would be claimed once the lease of the finished ones ran out: wait past it.
    await h.sleep(LEASE)
    expect(run.calls.size).toBe(N)
    expect([...run.calls].filter(([, c]) => c > 1)).toEqual([])
    expect(run.log.filter((l) => l.who === 'b')).toEqual([])
    expect(await run.pusher.stats()).toMatchObject({ scheduled: 0, inflight: 0 })
  } finally {
    await run.close()
  }
})

test('a refusal retrying cannot fix, after the batch renewed its lease, is counted and dead-lettered at maxPublishFailures', async () => {
  const refusal = () => Object.assign(new Error('the broker refuses this message'), { type: 'MESSAGE_TOO_LARGE' })
  const run = await mixedBatch(
    10,
    async (n) => {
      if (n === 3) return h.sleep(LEASE * 2.5)
      if (n === 5) {
        await h.sleep(LEASE * 0.6) // after the first renewal (every leaseMs / 3)
        throw refusal()
      }
    },
    { maxPublishFailures: 2 },
  )
  try {
    await h.waitFor(() => run.events.some((e) => e.type === 'deadLetter'), 20000, 50)
    await h.waitFor(settledAll(run.pusher), 20000)
    const { items } = await run.pusher.deadLetters(run.dlq)
    expect(items.map((i) => i.value.n)).toEqual([5])
    expect(items[0].error.name).toBe('KafkaPublishError')
    expect(items[0].error.message).toMatch(/MESSAGE_TOO_LARGE/)
    // Refused exactly maxPublishFailures times, each counted; nobody else published twice.
    expect(run.calls.get(5)).toBe(2)
    expect([...run.calls].filter(([n, c]) => n !== 5 && c > 1)).toEqual([])
    // The first refusal was counted while the slow publish of its batch was still pending.
    const firstRefusal = run.log.find((l) => l.n === 5 && l.what === 'failed')
    const slowDone = run.log.find((l) => l.n === 3 && l.what === 'published')
    expect(firstRefusal.at).toBeLessThan(slowDone.at)
  } finally {
    await run.close()
  }
})

test('a failed publish, after the batch renewed its lease, goes to its backoff while the rest of the batch is pending', async () => {
  const run = await mixedBatch(10, async (n, call) => {
    if (n === 3) return h.sleep(LEASE * 4)
    if (n === 5 && call === 1) {
      await h.sleep(LEASE * 0.6) // after the first renewal (every leaseMs / 3)
      throw new Error('the leader of this partition is gone')
    }
  })
  try {
    await h.waitFor(settledAll(run.pusher), 30000)
    await h.sleep(LEASE)
    // Failed once, then published once: released to its backoff (500 ms for a first failure),
    // so it was tried again while n = 3 was still publishing, not once a lease ran out.
    expect(run.calls.get(5)).toBe(2)
    const retried = run.log.find((l) => l.n === 5 && l.call === 2 && l.what === 'published')
    const slowDone = run.log.find((l) => l.n === 3 && l.what === 'published')
    expect(retried.at).toBeLessThan(slowDone.at)
    expect([...run.calls].filter(([n, c]) => n !== 5 && c > 1)).toEqual([])
  } finally {
    await run.close()
  }
})
