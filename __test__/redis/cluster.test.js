// The core flows against a local three-master Redis Cluster (started here, on loopback ports):
// every script touches one slot, and `shards` spreads one schedule over the masters.
const fs = require('fs')
const os = require('os')
const path = require('path')
const net = require('net')
const { spawn, execFileSync } = require('child_process')
const Redis = require('ioredis')
const { KafkaRetry } = require('../..')
const h = require('../helpers')
const { seedProducer, runSeedFlow } = require('../helpers/flows')

let dir
let ports = []
const servers = []


beforeAll(async () => {
  await h.requireServers()
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kafka-redis-retry-cluster-'))
  ports.push(...await h.freePorts(3))
  for (const port of ports) {
    const server = spawn('redis-server', [
      '--port', String(port), '--bind', '127.0.0.1', '--cluster-enabled', 'yes',
      '--cluster-config-file', `nodes-${port}.conf`, '--dir', dir,
      '--save', '', '--appendonly', 'no', '--maxmemory-policy', 'noeviction',
    ], { stdio: 'ignore' })
    server.once('error', (err) => {
      throw new Error(`redis-server could not start (install redis-server): ${err.message}`)
    })
    servers.push(server)
  }
  for (const port of ports) {
    await h.waitFor(() => new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => { s.destroy(); resolve(true) })
      s.once('error', () => resolve(false))
    }), 10000)
  }
  execFileSync('redis-cli', ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes'], { stdio: 'ignore' })
  const ok = await h.waitFor(() => ports.every((p) => execFileSync('redis-cli', ['-p', String(p), 'cluster', 'info'], { encoding: 'utf8' }).includes('cluster_state:ok')), 20000, 200)
  if (!ok) throw new Error('the local Redis Cluster did not reach cluster_state:ok')
}, 60000)

afterAll(async () => {
  for (const server of servers) server.kill('SIGKILL')
  if (dir) fs.rmSync(dir, { recursive: true, force: true })
})

const clusterConfig = () => ({ redisUrl: ports.map((p) => `redis://127.0.0.1:${p}`).join(','), cluster: true })
const clusterClient = () => new Redis.Cluster(ports.map((port) => ({ host: '127.0.0.1', port })))

test('the seed flow runs unchanged on a Redis Cluster (3 shards)', async () => {
  const calls = await runSeedFlow(seedProducer, { ...clusterConfig(), shards: 3 }, clusterClient)
  expect(calls).toHaveLength(3)
})

test('a sharded schedule spreads over the masters; two listeners publish 3,000 pushes exactly once', async () => {
  const prefix = h.unique('cluster')
  const config = { ...clusterConfig(), keyPrefix: prefix, shards: 6, batchSize: 50, pollIntervalMs: 50 }
  const pusher = new KafkaRetry(config)
  const N = 3000
  await Promise.all(Array.from({ length: N }, (_, n) =>
    pusher.pushToQueue('t', { event: 'e', value: JSON.stringify({ msgId: `m${n}`, n }) }, { delay: '0.02' })))
  // Each master holds part of the schedule.
  const perMaster = ports.map((p) => Number(execFileSync('redis-cli', ['-p', String(p), 'dbsize'], { encoding: 'utf8' }).trim()))
  expect(perMaster.filter((keys) => keys > 0).length).toBeGreaterThanOrEqual(2)
  // A redelivery is still stored once: the same id maps to the same shard.
  await pusher.pushToQueue('t', { event: 'e', value: JSON.stringify({ msgId: 'm7', n: 7 }) }, { delay: '0.02' })

  const published = new Map()
  const listeners = [new KafkaRetry(config), new KafkaRetry(config)]
  const byListener = [0, 0]
  try {
    for (const [i, listener] of listeners.entries()) {
      await listener.queueListener({
        produce: async (topic, key, value) => {
          const { n } = JSON.parse(value)
          published.set(n, (published.get(n) || 0) + 1)
          byListener[i] += 1
        },
      }, h.unique('dlq'))
    }
    await h.waitFor(() => published.size >= N, 30000)
    await h.sleep(500)
    expect(published.size).toBe(N)
    expect([...published.values()].filter((c) => c !== 1)).toEqual([])
    expect(byListener[0] + byListener[1]).toBe(N)
    console.log(`cluster: keys per master ${perMaster.join(' / ')}; listeners ${byListener.join(' + ')}`)
    const redis = clusterClient()
    for (const keys of h.shardKeys(prefix, 6)) expect(await redis.hlen(keys.entries)).toBe(0)
    redis.disconnect()
    // The per topic counts and the history, summed over the six shards (on three masters): the
    // redelivery counted once.
    expect((await pusher.stats()).topics).toEqual({})
    const history = await pusher.history({ minutes: 10 })
    const sum = (series) => series.reduce((a, b) => a + b, 0)
    expect([sum(history.topics.t.pushed), sum(history.topics.t.published), sum(history.published)]).toEqual([N, N, N])
  } finally {
    await Promise.all([pusher, ...listeners].map((r) => r.close()))
  }
})

test('exhausted messages are dead-lettered on a cluster, one field each', async () => {
  const prefix = h.unique('cluster-dlq')
  const dlq = h.unique('cluster-dlq-hash')
  const retry = new KafkaRetry({ ...clusterConfig(), keyPrefix: prefix, shards: 3 })
  const redis = clusterClient()
  try {
    await retry.queueListener({ produce: async () => {} }, dlq)
    await Promise.all(Array.from({ length: 20 }, (_, n) =>
      retry.pushToQueue('t', { event: 'Same', value: JSON.stringify({ n }) }, { delay: '0', maxRetry: '1', retryCount: '1' })))
    expect(await h.waitFor(async () => (await redis.hlen(dlq)) === 20, 5000)).toBe(true)
    // Dead letters per topic: beside the hash, in a slot of their own.
    expect(await h.waitFor(async () => (await retry.stats(dlq)).topics.t?.deadLetters === 20, 5000)).toBe(true)
    expect((await retry.stats(dlq)).topics.t).toEqual({ scheduled: 0, due: 0, leased: 0, deadLetters: 20 })
  } finally {
    await retry.close()
    redis.disconnect()
  }
})

test('a push from another process wakes a listener on a cluster, whichever master its shard is on', async () => {
  const prefix = h.unique('cluster-wake')
  // Without a wake-up this listener would look again only after 60 s.
  const config = { ...clusterConfig(), keyPrefix: prefix, shards: 6, pollIntervalMs: 60000 }
  const publishedAt = new Map()
  const listener = new KafkaRetry(config)
  const pushedAt = new Map()
  // The pushes come from a second Node process: only Redis carries the wake-ups.
  const pushes = `
    const { KafkaRetry } = require('.')
    const retry = new KafkaRetry(${JSON.stringify(config)})
    ;(async () => {
      for (let n = 0; n < 12; n++) {
        console.log(JSON.stringify({ n, at: Date.now() }))
        await retry.pushToQueue('t', { event: 'e', value: JSON.stringify({ n }) }, { delay: String(300 / 60000) })
      }
      await retry.close()
    })().catch((e) => { console.error(e); process.exit(2) })`
  try {
    await listener.queueListener({ produce: async (topic, key, value) => publishedAt.set(JSON.parse(value).n, Date.now()) }, h.unique('dlq'))
    await h.sleep(300) // every shard claimed once; the listener is asleep
    const child = spawn(process.execPath, ['-e', pushes], { cwd: path.resolve(__dirname, '../..'), stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    child.stdout.on('data', (d) => (out += d))
    await new Promise((resolve) => child.once('exit', resolve))
    for (const line of out.trim().split('\n')) {
      const { n, at } = JSON.parse(line)
      pushedAt.set(n, at)
    }
    expect(pushedAt.size).toBe(12)
    await h.waitFor(() => publishedAt.size >= 12, 20000)
    // Far sooner than the 60 s poll, on every shard.
    const late = [...pushedAt].map(([n, at]) => publishedAt.get(n) - (at + 300))
    expect(late.every((ms) => ms >= -5 && ms < 10000)).toBe(true)
  } finally {
    await listener.close()
  }
})

test('operator controls on a cluster: filtered search and requeue, a pause over every shard, resume', async () => {
  const prefix = h.unique('cluster-ops')
  const dlq = h.unique('cluster-ops-dlq')
  const published = []
  const retry = new KafkaRetry({ ...clusterConfig(), keyPrefix: prefix, shards: 3, pollIntervalMs: 100 })
  try {
    await retry.queueListener({ produce: async (topic, key) => published.push({ topic, key, at: Date.now() }) }, h.unique('cluster-ops-listener'))
    for (let i = 0; i < 12; i++) {
      await retry.pushToDlq(dlq, { topic: i % 2 ? 'a' : 'b', event: `d${i}`, value: { i }, options: { delay: '0', maxRetry: '3', retryCount: '4' }, error: { name: 'Error', message: i % 3 ? 'timeout' : 'refused' }, keyPrefix: prefix })
    }
    const page = await retry.deadLetters(dlq, { topic: 'a', errorContains: 'TIMEOUT', limit: 100 })
    expect(page.items.map((d) => d.event).sort()).toEqual(['d1', 'd11', 'd5', 'd7'])
    expect(page.scanned).toBe(12)

    await retry.pause('a')
    expect(await retry.requeueDeadLetters(dlq, { topic: 'a' })).toBe(6)
    for (let n = 0; n < 9; n++) await retry.pushToQueue(n % 2 ? 'a' : 'b', { event: `p${n}`, value: JSON.stringify({ msgId: `p${n}` }) }, { delay: '0', maxRetry: '3', retryCount: '0' })
    await h.waitFor(() => published.filter((p) => p.topic === 'b').length === 5, 5000)
    await h.sleep(1000)
    expect(published.filter((p) => p.topic === 'a')).toEqual([])
    await retry.resume('a')
    await h.waitFor(() => published.filter((p) => p.topic === 'a').length === 10, 5000)
    const times = {}
    for (const p of published) times[p.key] = (times[p.key] || 0) + 1
    expect(Object.values(times).every((n) => n === 1)).toBe(true)
  } finally {
    await retry.close()
  }
})

test('the breaker on a cluster: failures pushed open it, its messages are held, resume(topic) releases them', async () => {
  const prefix = h.unique('cluster-breaker')
  const published = []
  const events = []
  const retry = new KafkaRetry({
    ...clusterConfig(),
    keyPrefix: prefix,
    pollIntervalMs: 100,
    breaker: { minFailures: 3, probeIntervalMs: 60000 },
    onEvent: (e) => events.push(e),
  })
  try {
    // Retries that came back failed (retryCount 1): a breaker failure each.
    for (let n = 0; n < 4; n++) await retry.pushToQueue('down', { event: `f${n}`, value: '{}' }, { delay: '0', maxRetry: '5', retryCount: '1' })
    await retry.pushToQueue('up', { event: 'u0', value: '{}' }, { delay: '0', maxRetry: '5', retryCount: '0' })
    await retry.queueListener({ produce: async (topic, key) => published.push({ topic, key }) }, h.unique('cluster-breaker-dlq'))
    await h.waitFor(() => events.some((e) => e.type === 'breakerOpen') && published.length === 1, 5000)
    await h.sleep(500)
    expect(published).toEqual([{ topic: 'up', key: 'u0' }])
    expect((await retry.stats()).topics.down.breaker).toBe('open')
    expect(await retry.resume('down')).toBe(true)
    await h.waitFor(() => published.length === 5, 5000)
    expect(published.filter((p) => p.topic === 'down')).toHaveLength(4)
  } finally {
    await retry.close()
  }
})
