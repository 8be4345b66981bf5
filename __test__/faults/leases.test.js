// Per-message leases (issue 18): a batch is a unit of work, not of ownership. A publish that
// finished is settled (acknowledged, released to its backoff, counted) while the rest of its
// batch is still publishing, each message by the token it holds its lease with, however many
// times the batch renewed. Real Redis; the producer is a JavaScript one whose speed per message
// the test sets (one slow `send`, as a partition without a leader makes it).
const { KafkaRetry } = require('../..')
const h = require('../helpers')
const s = require('../helpers/servers')

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

describe('waitReplicas with the replica stopped', () => {
  afterAll(() => s.stopAll())

  test('claims and other commands go on during the WAITs, and the dead letter topic gets each message once', async () => {
    const master = await s.startServer([])
    const replicaPort = await h.freePort()
    const replicas = () => Number(/connected_slaves:(\d+)/.exec(s.cli(master.port, 'info', 'replication'))[1])
    let replica = await s.startServer(['--replicaof', '127.0.0.1', String(master.port)], { port: replicaPort })
    await h.waitFor(() => replicas() === 1, 10000, 50)
    replica.kill('SIGKILL')
    await h.exited(replica.proc, 5000)
    await h.waitFor(() => replicas() === 0, 10000, 50)

    const redisUrl = `redis://127.0.0.1:${master.port}`
    const keyPrefix = h.unique('replica')
    const dlq = h.unique('dlq')
    const DLT = 'dead-letters'
    const WAIT_MS = 1500
    const published = []
    const producer = {
      async produce(topic, key, value) {
        published.push({ topic, n: JSON.parse(value).n })
      },
    }
    const quiet = { warn() {}, error() {} }
    const listener = new KafkaRetry({
      redisUrl, keyPrefix, waitReplicas: 1, waitTimeoutMs: WAIT_MS, redisTimeoutMs: 5000, leaseMs: 4000, pollIntervalMs: 100,
      deadLetterTopic: DLT, logger: quiet, onEvent: () => {},
    })
    // Same URL, same process: without waitReplicas, on the connection the listener claims on.
    const pusher = new KafkaRetry({ redisUrl, keyPrefix })
    try {
      for (let n = 0; n < 3; n += 1) {
        await pusher.pushToQueue('t', { event: 'e', value: JSON.stringify({ n }) }, { delay: '0', maxRetry: '0', retryCount: '0' })
      }
      await listener.queueListener(producer, dlq)
      // While the dead letters' writes wait for the missing replica: other messages are claimed
      // and published, and the shared connection answers at once (a WAIT on it held every
      // command behind it for up to waitTimeoutMs).
      let slowest = 0
      for (let n = 100; n < 115; n += 1) {
        await pusher.pushToQueue('t', { event: 'e', value: JSON.stringify({ n }) }, { delay: '0' })
        const started = Date.now()
        await pusher.stats(dlq)
        slowest = Math.max(slowest, Date.now() - started)
        await h.sleep(300)
      }
      await h.waitFor(() => published.filter((p) => p.n >= 100).length >= 15, 10000, 50)
      expect(slowest).toBeLessThan(WAIT_MS / 3)
      // Unconfirmed dead letters: not on the topic yet (they were published at every attempt).
      expect(published.filter((p) => p.topic === DLT)).toEqual([])

      replica = await s.startServer(['--replicaof', '127.0.0.1', String(master.port)], { port: replicaPort })
      await h.waitFor(() => replicas() === 1, 10000, 50)
      await h.waitFor(async () => (await pusher.deadLetters(dlq)).items.length === 3, 60000, 100)
      await h.waitFor(() => published.filter((p) => p.topic === DLT).length >= 3, 10000, 50)
      await h.sleep(1000)
      const toDlt = published.filter((p) => p.topic === DLT).map((p) => p.n).sort()
      expect(toDlt).toEqual([0, 1, 2])
      const others = published.filter((p) => p.topic === 't').map((p) => p.n).sort((a, b) => a - b)
      expect(others).toEqual(Array.from({ length: 15 }, (_, i) => 100 + i))
    } finally {
      await Promise.all([listener.close(), pusher.close()])
    }
  }, 120000)
})
