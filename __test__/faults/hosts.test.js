// Correct on many hosts: Redis is the only clock (a listener whose host clock runs 40 s ahead
// publishes nothing early and nothing twice), a publish never outlives its lease (a producer
// slower than the lease is not called twice), every push wakes a listener in another process,
// and the races a code read found (close during start, thenables, per-instance settings, a push
// that timed out on the client but ran on the server). Real Redis, real broker, real processes.
const { spawn, execFileSync } = require('child_process')
const fs = require('fs')
const path = require('path')
const { KafkaRetry } = require('../..')
const h = require('../helpers')

const ROOT = path.resolve(__dirname, '../..')

beforeAll(h.requireServers)

const started = h.killChildrenAfterEach()

const opts = (delay, retryCount = '0', maxRetry = '3') => ({ delay, maxRetry, retryCount })

/** libfaketime from Debian's `faketime` package (scripts/test.sh installs it and sets KAFKA_RETRY_LIBFAKETIME). */
function libfaketime() {
  const candidates = ['/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1', '/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1']
  if (process.env.KAFKA_RETRY_LIBFAKETIME) candidates.unshift(process.env.KAFKA_RETRY_LIBFAKETIME)
  try {
    const listed = execFileSync('dpkg', ['-L', 'libfaketime'], { encoding: 'utf8' })
      .split('\n')
      .filter((f) => f.endsWith('/libfaketime.so.1'))
    candidates.unshift(...listed)
  } catch {
    // dpkg missing or the package not installed: the fixed paths below are the last resort.
  }
  const found = candidates.find((f) => fs.existsSync(f))
  if (!found) throw new Error('libfaketime not found: install Debian\'s faketime package (bash scripts/services.sh faketime-lib does)')
  return found
}


// A listener in its own process, with the internal producer, or a kafkajs producer when
// LISTENER_PRODUCER=kafkajs; prints {"ready":true,"now":Date.now()}.
const LISTENER = `
const { KafkaRetry } = require('.')
const retry = new KafkaRetry(JSON.parse(process.env.LISTENER_CONFIG))
const producer = async () => {
  if (process.env.LISTENER_PRODUCER !== 'kafkajs') return null
  const { Kafka, logLevel } = require('kafkajs')
  const kafka = new Kafka({ clientId: 'skewed-listener', brokers: (process.env.KAFKA_BROKERS || '127.0.0.1:9092').split(','), logLevel: logLevel.NOTHING })
  const p = kafka.producer()
  await p.connect()
  return p
}
producer().then((p) => retry.queueListener(p, process.env.LISTENER_DLQ)).then(
  () => console.log(JSON.stringify({ ready: true, now: Date.now() })),
  (err) => { console.error(err); process.exit(2) },
)
process.on('SIGTERM', () => retry.close().then(() => process.exit(0)))
`

function spawnListener(config, dlq, extraEnv = {}) {
  const child = spawn(process.execPath, ['-e', LISTENER], {
    cwd: ROOT,
    env: { ...process.env, LISTENER_CONFIG: JSON.stringify(config), LISTENER_DLQ: dlq, ...extraEnv },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  started.add(child)
  child.stderrText = ''
  child.stderr.on('data', (d) => {
    child.stderrText += d.toString()
  })
  child.ready = new Promise((resolve, reject) => {
    let out = ''
    child.stdout.on('data', (d) => {
      out += d.toString()
      const line = out.split('\n').find((l) => l.includes('"ready"'))
      if (line) resolve(JSON.parse(line))
    })
    child.once('exit', (code) => reject(new Error(`listener exited with ${code}: ${child.stderrText}`)))
  })
  return child
}

function tally(values) {
  const counts = new Map()
  for (const n of values) counts.set(n, (counts.get(n) || 0) + 1)
  return { counts, duplicated: [...counts].filter(([, c]) => c > 1) }
}

test('a listener whose clock runs 40 s ahead publishes nothing early and nothing twice', async () => {
  const topic = h.unique('skew-topic')
  const keyPrefix = h.unique('skew')
  const dlq = h.unique('skew-dlq')
  await h.createTopics(topic)
  const { consumer, seen } = await h.consume(topic)
  const config = { keyPrefix, pollIntervalMs: 200 }
  // The shifted listener publishes through kafkajs: libfaketime shifts the clock of this process
  // only, not the kernel's, so librdkafka's timed waits (absolute deadlines on the shifted
  // clock) would overshoot by the shift, which a host whose clock is really off does not see.
  const ahead = spawnListener(config, dlq, {
    LD_PRELOAD: libfaketime(),
    FAKETIME: '+40s',
    FAKETIME_DONT_RESET: '1',
    LISTENER_PRODUCER: 'kafkajs',
  })
  const normal = spawnListener(config, dlq)
  const pusher = new KafkaRetry({ keyPrefix })
  try {
    const [aheadReady, normalReady] = await Promise.all([ahead.ready, normal.ready])
    // The shift really applies to the listener's process.
    expect(aheadReady.now - normalReady.now).toBeGreaterThan(30000)

    const N = 300
    const DELAY_MS = 4000
    const pushedAt = new Map()
    for (let start = 0; start < N; start += 50) {
      const batch = []
      for (let n = start; n < start + 50; n += 1) {
        pushedAt.set(n, Date.now())
        batch.push(pusher.pushToQueue(topic, { event: `e${n}`, value: JSON.stringify({ n }) }, opts(String(DELAY_MS / 60000))))
      }
      await Promise.all(batch)
    }
    await h.waitFor(() => seen.length >= N, 60000)
    await h.sleep(1500) // a duplicate would arrive by now
    const { counts, duplicated } = tally(seen.map((m) => m.value.n))
    expect(counts.size).toBe(N)
    expect(duplicated).toEqual([])
    // Due = Redis's clock at the push + the delay; Redis and this process share the host's real
    // clock, so a message received before pushedAt + delay was published early. The original
    // scheme published these about 3 s early under a 40 s skew.
    const early = seen.filter((m) => m.at < pushedAt.get(m.value.n) + DELAY_MS - 5)
    expect(early.map((m) => ({ n: m.value.n, earlyMs: pushedAt.get(m.value.n) + DELAY_MS - m.at }))).toEqual([])
  } finally {
    ahead.kill('SIGTERM')
    normal.kill('SIGTERM')
    await Promise.all([h.exited(ahead, 15000), h.exited(normal, 15000)])
    await pusher.close()
    await consumer.disconnect()
  }
})

test('a producer that acknowledges only after the lease ends is not called twice, and nothing is lost', async () => {
  const keyPrefix = h.unique('slow')
  const LEASE = 1000
  const calls = new Map()
  const events = []
  const makeProducer = () => ({
    async produce(topic, key, value) {
      const { n } = JSON.parse(value)
      calls.set(n, (calls.get(n) || 0) + 1)
      await h.sleep(LEASE * 2.5) // longer than the lease: renewed, never handed to the other listener
    },
  })
  const config = { keyPrefix, leaseMs: LEASE, pollIntervalMs: 50, onEvent: (e) => events.push(e) }
  const a = new KafkaRetry(config)
  const b = new KafkaRetry(config)
  const pusher = new KafkaRetry({ keyPrefix })
  try {
    await a.queueListener(makeProducer(), h.unique('dlq'))
    await b.queueListener(makeProducer(), h.unique('dlq'))
    const N = 20
    await Promise.all(Array.from({ length: N }, (_, n) => pusher.pushToQueue('slow-topic', { event: `e${n}`, value: JSON.stringify({ n }) }, opts('0'))))
    await h.waitFor(async () => {
      const stats = await pusher.stats()
      return stats.scheduled === 0 && stats.inflight === 0
    }, 30000)
    const stats = await pusher.stats()
    expect(stats).toMatchObject({ scheduled: 0, inflight: 0 })
    expect(calls.size).toBe(N)
    expect([...calls].filter(([, c]) => c > 1)).toEqual([])
    // The slow publish was reported, once per batch rather than per message.
    expect(events.some((e) => e.type === 'error' && /still pending after leaseMs/.test(e.message))).toBe(true)
  } finally {
    await Promise.all([a.close(), b.close(), pusher.close()])
  }
})

test('a push from another process wakes a listener sleeping towards a far poll', async () => {
  const topic = h.unique('wake-topic')
  const keyPrefix = h.unique('wake')
  await h.createTopics(topic)
  const { consumer, seen } = await h.consume(topic)
  // Without a wake-up this listener would look again only after 60 s.
  const listener = spawnListener({ keyPrefix, pollIntervalMs: 60000 }, h.unique('dlq'))
  const pusher = new KafkaRetry({ keyPrefix })
  try {
    await listener.ready
    await h.sleep(300) // the listener has claimed once and is asleep
    const pushedAt = Date.now()
    await pusher.pushToQueue(topic, { event: 'e', value: JSON.stringify({ n: 1 }) }, opts(String(500 / 60000)))
    await h.waitFor(() => seen.length >= 1, 20000)
    expect(seen).toHaveLength(1)
    const late = seen[0].at - (pushedAt + 500)
    expect(late).toBeGreaterThanOrEqual(-5)
    expect(late).toBeLessThan(10000)
  } finally {
    listener.kill('SIGTERM')
    await h.exited(listener, 15000)
    await pusher.close()
    await consumer.disconnect()
  }
})

test('close() while queueListener() is starting: the listener never runs and Node exits', async () => {
  const keyPrefix = h.unique('close-start')
  const calls = []
  const retry = new KafkaRetry({ keyPrefix, pollIntervalMs: 20 })
  // The outcome is taken at once: the start may reject (ERR_CLOSED) while close() runs.
  const starting = retry.queueListener({ produce: (topic, key) => calls.push(key) }, h.unique('dlq')).then(
    () => 'started',
    (err) => err.code,
  )
  await retry.close()
  const outcome = await starting
  expect(['ERR_CLOSED', 'started']).toContain(outcome)
  const pusher = new KafkaRetry({ keyPrefix })
  try {
    await pusher.pushToQueue('t', { event: 'after-close', value: '{}' }, opts('0'))
    await h.sleep(1000)
    expect(calls).toEqual([])
    expect((await pusher.stats()).scheduled).toBe(1)
  } finally {
    await pusher.close()
  }

  // In a process of its own: nothing keeps Node alive after such a close().
  const child = spawn(
    process.execPath,
    ['-e', `const { KafkaRetry } = require('.'); const r = new KafkaRetry(${JSON.stringify({ keyPrefix })}); const p = r.queueListener(null).catch(() => {}); r.close().then(() => p)`],
    { cwd: ROOT, stdio: 'ignore' },
  )
  started.add(child)
  expect((await h.exited(child, 15000)).code).toBe(0)
})

test('a producer returning a thenable that is not a native promise is awaited like one', async () => {
  const keyPrefix = h.unique('thenable')
  const calls = []
  const producer = {
    produce(topic, key) {
      calls.push(key)
      const fail = calls.length === 1
      // A Bluebird-like thenable: settles later, and rejects the first time.
      return {
        then(resolve, reject) {
          setTimeout(() => (fail ? reject(new Error('first attempt refused')) : resolve()), 100)
        },
      }
    },
  }
  const retry = new KafkaRetry({ keyPrefix, pollIntervalMs: 50 })
  try {
    await retry.queueListener(producer, h.unique('dlq'))
    await retry.pushToQueue('t', { event: 'thenable', value: '{}' }, opts('0'))
    await h.waitFor(async () => (await retry.stats()).published >= 1, 15000)
    const stats = await retry.stats()
    // The rejection counted: the message went back on the schedule and was published again.
    expect(calls).toEqual(['thenable', 'thenable'])
    expect(stats.publishFailures).toBeGreaterThanOrEqual(1)
    expect(stats).toMatchObject({ scheduled: 0, inflight: 0 })
  } finally {
    await retry.close()
  }
})

test('two instances with different settings on one schedule keep their own dedupeWindowMs', async () => {
  const keyPrefix = h.unique('settings')
  const published = []
  const remembering = new KafkaRetry({ keyPrefix, dedupeWindowMs: 3600000 })
  const forgetting = new KafkaRetry({ keyPrefix, dedupeWindowMs: 0 })
  const listener = new KafkaRetry({ keyPrefix, pollIntervalMs: 20 })
  const redis = h.redisClient()
  try {
    await listener.queueListener({ produce: (topic, key, value) => published.push(JSON.parse(value).n) }, h.unique('dlq'))
    const push = (retry, msgId, n) => retry.pushToQueue('t', { event: 'e', value: JSON.stringify({ msgId, n }) }, opts('0'))
    // The remembering instance pushes first, so a shared batcher would carry its window.
    await push(remembering, 'kept', 1)
    await h.waitFor(() => published.includes(1), 10000)
    await push(forgetting, 'forgotten', 2)
    await h.waitFor(() => published.includes(2), 10000)
    await h.sleep(100)
    // Redeliveries of both, after their publish.
    await push(remembering, 'kept', 3)
    await push(forgetting, 'forgotten', 4)
    await h.waitFor(() => published.includes(4), 10000)
    await h.sleep(300)
    expect(published).not.toContain(3) // dropped: within the remembering instance's hour
    expect(published).toContain(4) // stored again: the forgetting instance remembers nothing
  } finally {
    await Promise.all([remembering.close(), forgetting.close(), listener.close()])
    redis.disconnect()
  }
})

test('a push that timed out on the client but ran on the server is stored once when retried', async () => {
  const keyPrefix = h.unique('timeout')
  const retry = new KafkaRetry({ keyPrefix, redisTimeoutMs: 100 })
  const admin = h.redisClient()
  const value = JSON.stringify({ msgId: 'retried-after-timeout', n: 1 })
  try {
    await retry.pushToQueue('t', { event: 'warm-up', value: '{}' }, opts('5')) // connected
    // Redis holds every write for 600 ms: the push times out here, then runs on the server.
    await admin.call('CLIENT', 'PAUSE', '600', 'WRITE')
    const first = await retry.pushToQueue('t', { event: 'e', value }, opts('5')).then(
      () => 'stored',
      (err) => err.code,
    )
    expect(first).toBe('ERR_REDIS_UNAVAILABLE')
    await h.sleep(800)
    // The caller retries, as a consumer would on an error.
    await retry.pushToQueue('t', { event: 'e', value }, opts('5'))
    const entries = await admin.hvals(h.scheduleKeys(keyPrefix).entries)
    expect(entries.filter((e) => e.includes('retried-after-timeout'))).toHaveLength(1)
  } finally {
    await admin.call('CLIENT', 'UNPAUSE').catch(() => {})
    admin.disconnect()
    await retry.close()
  }
})

test('a flood of failing publishes gives a bounded number of events and log lines', async () => {
  const keyPrefix = h.unique('flood')
  const errors = []
  const lines = []
  const N = 3000
  let attempts = 0
  const retry = new KafkaRetry({
    keyPrefix,
    pollIntervalMs: 50,
    onEvent: (e) => e.type === 'error' && errors.push(e),
    logger: { warn: (m) => lines.push(m), error: (m) => lines.push(m) },
  })
  try {
    await retry.queueListener(
      {
        produce() {
          attempts += 1
          throw new Error(`broker says no (${attempts})`)
        },
      },
      h.unique('dlq'),
    )
    const started = Date.now()
    await Promise.all(Array.from({ length: N }, (_, n) => retry.pushToQueue('t', { event: `e${n}`, value: JSON.stringify({ n }) }, opts('0'))))
    await h.waitFor(async () => (await retry.stats()).publishFailures >= N, 30000)
    const stats = await retry.stats()
    const seen = { errors: errors.length, lines: lines.length }
    // Every failure is counted, and nothing is lost or dead-lettered ...
    expect(stats.publishFailures).toBeGreaterThanOrEqual(N)
    expect(stats.scheduled + stats.inflight).toBe(N)
    expect(stats.deadLetteredTotal).toBe(0)
    // ... but events and log lines stay few: at most 20 per 10 s window, plus a sum-up of the rest
    // per window (one error per failed message would be thousands).
    const windows = Math.ceil((Date.now() - started) / 10000) + 1
    expect(seen.errors).toBeLessThanOrEqual(21 * windows)
    expect(seen.lines).toBeLessThanOrEqual(21 * windows)
    expect(seen.errors).toBeGreaterThan(0)
  } finally {
    await retry.close()
  }
  // (The sum-up of what was held back comes when the 10 s window ends: crates/engine/src/observe/events.rs tests it.)
})

test('close() closes the shared Redis connection once no other open instance uses it', async () => {
  const port = await h.freePort()
  const { spawnSync } = require('child_process')
  const server = spawnSync('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'yes'])
  if (server.status !== 0) throw new Error(`redis-server could not start a throwaway server: ${server.stderr}`)
  const Redis = require('ioredis')
  const admin = new Redis(port, '127.0.0.1', { lazyConnect: false, maxRetriesPerRequest: 1 })
  // Clients other than this admin connection.
  const others = async () => (await admin.call('CLIENT', 'LIST')).trim().split('\n').filter((l) => !/ cmd=client/.test(l)).length
  try {
    await h.waitFor(async () => admin.ping().then(() => true, () => false), 5000)
    const redisUrl = `redis://127.0.0.1:${port}`
    const a = new KafkaRetry({ redisUrl, keyPrefix: 'conn' })
    const b = new KafkaRetry({ redisUrl, keyPrefix: 'conn' })
    await a.pushToQueue('t', { event: 'a', value: '{}' }, opts('5'))
    await b.pushToQueue('t', { event: 'b', value: '{}' }, opts('5'))
    expect(await others()).toBe(1) // one shared connection for both
    await a.close()
    await h.sleep(200)
    expect(await others()).toBe(1) // b still uses it
    await b.close()
    expect(await h.waitFor(async () => (await others()) === 0, 5000)).toBe(true)
  } finally {
    admin.disconnect()
    spawnSync('redis-cli', ['-p', String(port), 'shutdown', 'nosave'])
  }
})
