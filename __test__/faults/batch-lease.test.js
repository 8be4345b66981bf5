// One lease per claimed batch (issue 29): a listener killed in the middle of a batch leaves every
// message of it that was not acknowledged due again once the lease runs out, and each is then
// published once; the ones it had published are not published again. Real Redis; the dying
// listener is a child process killed with SIGKILL (children/lease-holder.js).
const path = require('path')
const { fork } = require('child_process')
const { KafkaRetry } = require('../..')
const h = require('../helpers')

beforeAll(h.requireServers)
const children = h.killChildrenAfterEach()

const LEASE = 1500
const N = 20
const opts = { delay: '0', maxRetry: '3', retryCount: '0' }

test('a listener killed mid-batch: its unsettled messages are due again after the lease and published once', async () => {
  const keyPrefix = h.unique('batch-lease')
  const keys = h.scheduleKeys(keyPrefix)
  const redis = h.redisClient()
  const pusher = new KafkaRetry({ keyPrefix })
  let b
  try {
    await Promise.all(
      Array.from({ length: N }, (_, n) => pusher.pushToQueue('lease-topic', { event: `e${n}`, value: JSON.stringify({ n }) }, opts)),
    )
    const config = { keyPrefix, leaseMs: LEASE, pollIntervalMs: 50, batchSize: 100 }
    const child = fork(path.join(__dirname, '..', 'children', 'lease-holder.js'), [], {
      env: { ...process.env, LEASE_CONFIG: JSON.stringify(config) },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    })
    children.add(child)
    let started = []
    let allStartedAt = null
    let published = []
    child.on('message', (m) => {
      if (m.started) started = m.started
      if (started.length === N && allStartedAt === null) allStartedAt = Date.now()
      if (m.published) published = m.published
    })
    // All N claimed in one batch, the even half published and acknowledged (inflight N / 2).
    expect(await h.waitFor(async () => started.length === N && published.length === N / 2 && (await pusher.stats()).inflight === N / 2, 15000)).toBe(true)
    expect(await redis.zcard(keys.lease)).toBe(1)
    child.kill('SIGKILL')
    await h.exited(child, 5000)

    const calls = new Map()
    b = new KafkaRetry(config)
    await b.queueListener(
      {
        async produce(topic, key, value) {
          const { n } = JSON.parse(value)
          calls.set(n, [...(calls.get(n) || []), Date.now()])
        },
      },
      `${keyPrefix}:dlq`,
    )
    expect(await h.waitFor(async () => calls.size === N / 2, 15000)).toBe(true)
    // Only once the lease ran out (it began before every publish had started), and only the
    // unsettled (odd) ones.
    expect(Math.min(...[...calls.values()].flat())).toBeGreaterThanOrEqual(allStartedAt + LEASE - 200)
    expect([...calls.keys()].sort((x, y) => x - y)).toEqual(Array.from({ length: N / 2 }, (_, i) => 2 * i + 1))
    expect(await h.waitFor(async () => {
      const stats = await pusher.stats()
      return stats.scheduled === 0 && stats.inflight === 0
    }, 10000)).toBe(true)
    // Past another lease: nothing is published twice, and no lease record is left.
    await h.sleep(LEASE + 500)
    expect([...calls.values()].filter((at) => at.length > 1)).toEqual([])
    expect(await redis.zcard(keys.lease)).toBe(0)
    expect(await redis.hlen(keys.entries)).toBe(0)
  } finally {
    await Promise.all([b && b.close(), pusher.close()])
    redis.disconnect()
  }
}, 60000)
