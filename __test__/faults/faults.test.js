// Fault injection against real processes and real servers (no mocks): a listener killed mid-batch,
// four listener processes on one schedule, a Redis outage, a Kafka broker outage, and close()
// under load. Every test is bounded in time and asserts that nothing is lost and, where no crash
// happened, that nothing is published twice.
const { spawn } = require('child_process')
const fs = require('fs')
const os = require('os')
const path = require('path')
const Redis = require('ioredis')
const { Kafka, logLevel } = require('kafkajs')
const { KafkaRetry } = require('../..')
const h = require('../helpers')
const servers = require('../helpers/servers')
const { portOpen } = require('../../scripts/services/ports')

const ROOT = path.resolve(__dirname, '../..')
const TANSU_BIN = servers.tansuBinary()

beforeAll(h.requireServers)

// Every child process and throwaway server a test starts, so a failing test cannot leak one.
const started = h.killChildrenAfterEach()

const opts = (delay, retryCount = '0', maxRetry = '3') => ({ delay, maxRetry, retryCount })

/** Fails (never skips) when a binary a test needs is not installed. */
function requireBinary(file, hint) {
  const found = file.includes('/')
    ? fs.existsSync(file) && file
    : process.env.PATH.split(':').map((dir) => path.join(dir, file)).find((p) => fs.existsSync(p))
  if (!found) throw new Error(`${file} is not installed: ${hint}`)
  return found
}

/**
 * Runs `script` in a child Node process (cwd: the package root, so `require('.')` loads the
 * addon) with `config` in FAULT_CONFIG. Calls `onLine(obj)` for each JSON line it prints; keeps
 * its stderr for failure messages.
 */
function spawnNode(script, config, onLine = () => {}) {
  const child = spawn(process.execPath, ['-e', script], {
    cwd: ROOT,
    env: { ...process.env, FAULT_CONFIG: JSON.stringify(config) },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  started.add(child)
  child.stderrText = ''
  child.stderr.on('data', (d) => {
    child.stderrText += d.toString()
  })
  h.jsonLines(child.stdout, onLine)
  return child
}

/** Waits for `check()`; on timeout throws `message()` (with context) instead of returning. */
async function mustWait(check, timeoutMs, message) {
  const ok = await h.waitFor(check, timeoutMs, 25)
  if (!ok) throw new Error(typeof message === 'function' ? await message() : message)
  return ok
}

/** Counts per `n`: the numbers seen more than once, and the expected ones never seen. */
function tally(ns, total) {
  const counts = new Map()
  for (const n of ns) counts.set(n, (counts.get(n) || 0) + 1)
  const missing = []
  for (let n = 0; n < total; n += 1) if (!counts.has(n)) missing.push(n)
  const duplicated = [...counts].filter(([, c]) => c > 1).map(([n, c]) => ({ n, times: c }))
  const extra = [...counts.keys()].filter((n) => !(n >= 0 && n < total))
  return { counts, missing, duplicated, extra, duplicates: ns.length - counts.size }
}

async function pushAll(retry, total, topic, delayOf, chunk = 500) {
  for (let start = 0; start < total; start += chunk) {
    const batch = []
    for (let n = start; n < Math.min(total, start + chunk); n += 1) {
      batch.push(retry.pushToQueue(topic, { event: `e${n}`, value: JSON.stringify({ n }) }, opts(delayOf(n))))
    }
    await Promise.all(batch)
  }
}

// ---------------------------------------------------------------------------------------------
// 1. A listener process is SIGKILLed after claiming a batch and before acknowledging it.

const HANGING_LISTENER = `
const { KafkaRetry } = require('.')
const cfg = JSON.parse(process.env.FAULT_CONFIG)
const retry = new KafkaRetry({ keyPrefix: cfg.prefix, leaseMs: cfg.leaseMs, batchSize: cfg.batchSize })
retry.queueListener({
  produce(topic, key, value) {
    // "Publishing" never finishes: the batch is claimed and never acknowledged.
    process.stdout.write(JSON.stringify({ received: JSON.parse(value).n }) + '\\n')
    return new Promise(() => {})
  },
}, cfg.dlq).catch((err) => { console.error(err); process.exit(2) })
`

test('a listener killed mid-batch loses nothing: its claim comes back after the lease, once', async () => {
  const prefix = h.unique('crash')
  const keys = h.scheduleKeys(prefix)
  const N = 1000
  const LEASE_MS = 1500
  const CHILD_BATCH = 100
  // A listener publishes up to 4 claimed batches at once, so the child may hold up to 4 claims.
  const MAX_CLAIMS = 4
  const redis = h.redisClient()
  const pusher = new KafkaRetry({ keyPrefix: prefix })
  let second
  try {
    await pushAll(pusher, N, 't', () => '0')
    expect(await redis.hlen(keys.entries)).toBe(N)

    let firstReceivedAt = 0
    const child = spawnNode(HANGING_LISTENER, { prefix, leaseMs: LEASE_MS, batchSize: CHILD_BATCH, dlq: h.unique('dlq') }, (line, at) => {
      if (line.received !== undefined && !firstReceivedAt) {
        firstReceivedAt = at
        child.kill('SIGKILL')
      }
    })
    await mustWait(() => firstReceivedAt, 15000, () => `the child listener never received a message; stderr: ${child.stderrText}`)
    const { signal } = await h.exited(child, 5000)
    expect(signal).toBe('SIGKILL')
    const killedAt = Date.now()

    // What the dead listener left: a few claims of CHILD_BATCH ids, each under its lease deadline,
    // the rest still due, every entry still stored.
    const leased = await h.leasedIds(redis, keys)
    const deadlineOf = new Map()
    for (let i = 0; i < leased.length; i += 2) deadlineOf.set(leased[i], Number(leased[i + 1]))
    // Whole batches only. Two claims in the same millisecond share a deadline, so the number of
    // claims is the count over the batch size, not the number of distinct deadlines.
    const leasedCount = deadlineOf.size
    expect(leasedCount % CHILD_BATCH).toBe(0)
    const claims = leasedCount / CHILD_BATCH
    expect(claims).toBeGreaterThanOrEqual(1)
    expect(claims).toBeLessThanOrEqual(MAX_CLAIMS)
    expect(new Set(deadlineOf.values()).size).toBeLessThanOrEqual(claims)
    expect(await redis.zcard(keys.due)).toBe(N - leasedCount)
    expect(await redis.hlen(keys.entries)).toBe(N)
    const deadline = Math.min(...deadlineOf.values())
    const claimedAt = deadline - LEASE_MS
    expect(claimedAt).toBeLessThanOrEqual(firstReceivedAt)
    const nOfId = new Map()
    for (const [id, stored] of Object.entries(await redis.hgetall(keys.entries))) {
      nOfId.set(id, JSON.parse(h.decodeEntry(stored).value).n)
    }
    const leasedNs = new Set([...deadlineOf.keys()].map((id) => nOfId.get(id)))
    const deadlineOfN = new Map([...deadlineOf].map(([id, d]) => [nOfId.get(id), d]))

    // A second listener takes over.
    const published = []
    second = new KafkaRetry({ keyPrefix: prefix, leaseMs: 10000 })
    await second.queueListener({
      async produce(topic, key, value) {
        published.push({ n: JSON.parse(value).n, at: Date.now() })
      },
    }, h.unique('dlq'))
    await mustWait(() => new Set(published.map((p) => p.n)).size >= N, 15000,
      () => `second listener published ${new Set(published.map((p) => p.n)).size} of ${N} distinct messages`)
    await h.sleep(700) // a duplicate would show up by now

    const { missing, duplicated, extra } = tally(published.map((p) => p.n), N)
    expect(missing).toEqual([])
    expect(extra).toEqual([])
    // The dead listener never acknowledged anything, so the survivor publishes each exactly once.
    expect(duplicated).toEqual([])
    // The dead listener's claim stays invisible until its lease runs out; the rest is not held up.
    const early = published.filter((p) => leasedNs.has(p.n) && p.at < deadlineOfN.get(p.n))
    expect(early).toEqual([])
    const unleased = published.filter((p) => !leasedNs.has(p.n))
    expect(unleased.every((p) => p.at < deadline)).toBe(true)
    const firstLeasedBack = Math.min(...published.filter((p) => leasedNs.has(p.n)).map((p) => p.at))
    expect(firstLeasedBack - claimedAt).toBeGreaterThanOrEqual(LEASE_MS)
    expect(await redis.hlen(keys.entries)).toBe(0)
    expect(await redis.zcard(keys.lease)).toBe(0)
    console.log(
      `crash: ${N} messages, child claimed ${leasedCount} in ${claims} batch(es) and was SIGKILLed ${killedAt - claimedAt} ms after its first claim; ` +
        `${N - leasedCount} unclaimed published by the survivor within ${Math.max(...unleased.map((p) => p.at)) - killedAt} ms of the kill; ` +
        `the ${leasedCount} leased came back ${firstLeasedBack - claimedAt} ms after the first claim (lease ${LEASE_MS} ms); ` +
        `lost ${missing.length}, duplicated ${duplicated.length}`,
    )
  } finally {
    if (second) await second.close()
    await pusher.close()
    redis.disconnect()
  }
}, 40000)

// ---------------------------------------------------------------------------------------------
// 2. Four listener processes share one schedule.

const COUNTING_LISTENER = `
const { KafkaRetry } = require('.')
const cfg = JSON.parse(process.env.FAULT_CONFIG)
const retry = new KafkaRetry({ keyPrefix: cfg.prefix, batchSize: cfg.batchSize, pollIntervalMs: cfg.pollIntervalMs })
let pending = []
const flush = () => {
  if (pending.length) {
    process.stdout.write(JSON.stringify({ pid: process.pid, ns: pending }) + '\\n')
    pending = []
  }
}
const timer = setInterval(flush, 50)
process.on('SIGTERM', async () => {
  try {
    await retry.close()
    clearInterval(timer)
    flush()
    process.stdout.write(JSON.stringify({ pid: process.pid, closed: true }) + '\\n', () => process.exit(0))
  } catch (err) {
    console.error('close failed', err)
    process.exit(3)
  }
})
retry.queueListener({
  async produce(topic, key, value) {
    await new Promise((resolve) => setTimeout(resolve, 1))
    pending.push(JSON.parse(value).n)
  },
}, cfg.dlq).then(
  () => process.stdout.write(JSON.stringify({ pid: process.pid, ready: true }) + '\\n'),
  (err) => { console.error(err); process.exit(2) },
)
`

test('four listener processes on one schedule publish 10,000 messages exactly once between them', async () => {
  const prefix = h.unique('many')
  const keys = h.scheduleKeys(prefix)
  const N = 10000
  const CHILDREN = 4
  const redis = h.redisClient()
  const pusher = new KafkaRetry({ keyPrefix: prefix })
  const byPid = new Map()
  const ready = new Set()
  const closed = new Set()
  const all = []
  const children = []
  try {
    for (let i = 0; i < CHILDREN; i += 1) {
      const child = spawnNode(COUNTING_LISTENER, { prefix, batchSize: 64, pollIntervalMs: 100, dlq: h.unique('dlq') }, (line) => {
        if (line.ready) ready.add(line.pid)
        if (line.closed) closed.add(line.pid)
        if (line.ns) {
          byPid.set(line.pid, (byPid.get(line.pid) || 0) + line.ns.length)
          for (const n of line.ns) all.push(n)
        }
      })
      children.push(child)
    }
    await mustWait(() => ready.size === CHILDREN, 20000,
      () => `only ${ready.size} of ${CHILDREN} listeners started; stderr: ${children.map((c) => c.stderrText).join(' | ')}`)

    // Due times from now to ~2 s from now, as decimal minutes.
    const t0 = Date.now()
    await pushAll(pusher, N, 't', (n) => String(((n * 7919) % 2001) / 60000))
    const pushMs = Date.now() - t0
    await mustWait(async () => all.length >= N && (await redis.hlen(keys.entries)) === 0, 60000,
      async () => `reported ${all.length} of ${N}; ${await redis.hlen(keys.entries)} still stored`)
    const drainMs = Date.now() - t0
    await h.sleep(700) // a duplicate would be reported by now

    for (const child of children) child.kill('SIGTERM')
    const exits = await Promise.all(children.map((c) => h.exited(c, 15000)))
    expect(exits.map((e) => e.code)).toEqual(children.map(() => 0))
    expect(closed.size).toBe(CHILDREN)

    const { missing, duplicated, extra } = tally(all, N)
    const shares = children.map((c) => byPid.get(c.pid) || 0)
    console.log(
      `4 listeners: ${N} messages pushed in ${pushMs} ms, all published ${drainMs} ms after the first push; ` +
        `shares ${shares.join(' / ')}; lost ${missing.length}, duplicated ${duplicated.length}`,
    )
    expect(missing).toEqual([])
    expect(duplicated).toEqual([])
    expect(extra).toEqual([])
    expect(all).toHaveLength(N)
    for (const share of shares) expect(share).toBeGreaterThanOrEqual(N * 0.05)
    expect(await redis.zcard(keys.lease)).toBe(0)
    expect(await redis.zcard(keys.due)).toBe(0)
  } finally {
    await pusher.close()
    redis.disconnect()
  }
}, 90000)

// ---------------------------------------------------------------------------------------------
// 3. Redis goes away (SIGKILL) and comes back on the same port with its append-only file.

function startRedis(port, dir) {
  const server = spawn('redis-server', [
    '--port', String(port), '--bind', '127.0.0.1', '--dir', dir,
    '--appendonly', 'yes', '--appendfsync', 'always', '--save', '',
  ], { stdio: ['ignore', 'pipe', 'pipe'] })
  started.add(server)
  server.log = ''
  server.stdout.on('data', (d) => { server.log += d.toString() })
  server.stderr.on('data', (d) => { server.log += d.toString() })
  return server
}

async function redisReady(port, server) {
  const client = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null })
  client.on('error', () => {})
  try {
    await mustWait(async () => {
      try {
        if (client.status !== 'ready') await client.connect()
        return (await client.ping()) === 'PONG'
      } catch {
        client.disconnect()
        return false
      }
    }, 10000, () => `redis-server on port ${port} did not answer: ${server.log}`)
  } finally {
    client.disconnect()
  }
}

test('a Redis outage: pushes fail fast with ERR_REDIS_UNAVAILABLE, the listener resumes by itself, nothing is lost', async () => {
  requireBinary('redis-server', 'apt-get install redis-server (scripts/services.sh start does it)')
  const port = await h.freePort()
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kafka-redis-retry-redis-'))
  const prefix = h.unique('outage')
  const keys = h.scheduleKeys(prefix)
  const N = 200
  const redisUrl = `redis://127.0.0.1:${port}`
  // An unhandled rejection (from this realm or the addon's) fails the running test in jest, so
  // none may happen while Redis is down.
  let server = startRedis(port, dir)
  let retry
  let direct
  try {
    await redisReady(port, server)
    direct = new Redis(redisUrl, { maxRetriesPerRequest: 1, lazyConnect: true })
    direct.on('error', () => {})

    const published = []
    // A claim that ran on the restarted server but whose reply was lost (the first call after a
    // restart reconnects and reloads the scripts; on a loaded machine it can miss redisTimeoutMs)
    // leaves its messages leased until the lease runs out: a short lease keeps that within the wait.
    retry = new KafkaRetry({ redisUrl, keyPrefix: prefix, redisTimeoutMs: 1000, pollIntervalMs: 200, leaseMs: 3000 })
    await retry.queueListener({
      async produce(topic, key, value) {
        published.push({ n: JSON.parse(value).n, at: Date.now() })
      },
    }, h.unique('dlq'))
    const pushedAt = Date.now()
    await pushAll(retry, N, 't', (n) => String((2000 + (n % 11) * 100) / 60000)) // due in 2-3 s
    await direct.connect()
    expect(await direct.hlen(keys.entries)).toBe(N)
    direct.disconnect()

    // appendfsync always: every acknowledged write is on disk, so SIGKILL loses nothing.
    server.kill('SIGKILL')
    await h.exited(server, 5000)
    const downAt = Date.now()
    expect(published).toHaveLength(0)

    // While Redis is down: a push rejects with the coded error, and quickly.
    const failures = []
    for (let i = 0; i < 3; i += 1) {
      const t = Date.now()
      let err
      try {
        await retry.pushToQueue('t', { event: 'e', value: JSON.stringify({ n: 1000 + i }) }, opts('0'))
      } catch (e) {
        err = e
      }
      failures.push({ ms: Date.now() - t, code: err && err.code, message: err && err.message })
    }
    for (const f of failures) {
      expect(f.code).toBe('ERR_REDIS_UNAVAILABLE')
      expect(f.ms).toBeLessThan(3000)
    }
    // Stay down past every due time, so the listener is polling a dead server when they fall due.
    await h.sleep(Math.max(0, pushedAt + 3500 - Date.now()))
    expect(published).toHaveLength(0)

    server = startRedis(port, dir)
    await redisReady(port, server)
    const upAt = Date.now()
    const downMs = upAt - downAt

    await mustWait(() => new Set(published.map((p) => p.n)).size >= N, 20000,
      () => `after the restart only ${new Set(published.map((p) => p.n)).size} of ${N} were published; redis log: ${server.log.slice(-2000)}`)
    // The same instance pushes again once Redis is back.
    const pushAgainAt = Date.now()
    await retry.pushToQueue('t', { event: 'e', value: JSON.stringify({ n: N }) }, opts('0'))
    const pushAgainMs = Date.now() - pushAgainAt
    await mustWait(() => published.some((p) => p.n === N), 5000, 'the message pushed after the restart was not published')
    const resumedMs = Math.min(...published.map((p) => p.at)) - upAt
    const allMs = Math.max(...published.map((p) => p.at)) - upAt
    await h.sleep(700)
    const { missing, duplicated, extra } = tally(published.map((p) => p.n), N + 1)
    direct = new Redis(redisUrl, { maxRetriesPerRequest: 1 })
    direct.on('error', () => {})
    const left = await direct.hlen(keys.entries)
    console.log(
      `redis outage: ${N} messages, redis SIGKILLed and down ${downMs} ms; pushes while down rejected in ` +
        `${failures.map((f) => f.ms).join('/')} ms (${failures[0].code}); listener resumed ${resumedMs} ms after the restart, ` +
        `all published within ${allMs} ms; a push after the restart took ${pushAgainMs} ms; lost ${missing.length}, duplicated ${duplicated.length}`,
    )
    expect(missing).toEqual([])
    expect(extra).toEqual([]) // none of the rejected pushes was stored after all
    expect(duplicated).toEqual([])
    expect(left).toBe(0)
  } finally {
    if (retry) await retry.close().catch(() => {})
    if (direct) direct.disconnect()
    if (server.exitCode === null && server.signalCode === null) {
      server.kill('SIGKILL')
      await h.exited(server, 5000).catch(() => {})
    }
    fs.rmSync(dir, { recursive: true, force: true })
  }
}, 60000)

test('a hung Redis (SIGSTOP): every push of a burst rejects within redisTimeoutMs of its call, however many wait', async () => {
  requireBinary('redis-server', 'apt-get install redis-server (scripts/services.sh start does it)')
  const port = await h.freePort()
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kafka-redis-retry-redis-'))
  const server = startRedis(port, dir)
  const TIMEOUT = 1000
  // Far more than the 4 calls in flight can carry at once (4 x 512). A push counts its wait in
  // the queue against the timeout: before, one taken into a call near its timeout waited another
  // whole timeout for that call (the longest waited 2.0-2.2 s here).
  const N = 40000
  let retry
  try {
    await redisReady(port, server)
    retry = new KafkaRetry({ redisUrl: `redis://127.0.0.1:${port}`, keyPrefix: h.unique('hung'), redisTimeoutMs: TIMEOUT })
    // Connected, script loaded.
    await retry.pushToQueue('t', { event: 'e', value: JSON.stringify({ n: -1 }) }, opts('60'))
    server.kill('SIGSTOP')
    const started = Date.now()
    const outcomes = await Promise.all(
      Array.from({ length: N }, (_, n) => {
        const at = Date.now()
        return retry
          .pushToQueue('t', { event: 'e', value: JSON.stringify({ n }) }, opts('60'))
          .then(() => ({ code: 'stored', ms: Date.now() - at }), (err) => ({ code: err.code, ms: Date.now() - at }))
      }),
    )
    const allMs = Date.now() - started
    server.kill('SIGCONT')
    const codes = {}
    let longest = 0
    for (const o of outcomes) {
      codes[o.code] = (codes[o.code] || 0) + 1
      longest = Math.max(longest, o.ms)
    }
    console.log(
      `hung redis: ${N} pushes while redis-server was stopped, redisTimeoutMs ${TIMEOUT}: ${JSON.stringify(codes)}, ` +
        `the longest waited ${longest} ms, all settled ${allMs} ms after the first`,
    )
    expect(codes).toEqual({ ERR_REDIS_UNAVAILABLE: N })
    expect(longest).toBeLessThan(1.6 * TIMEOUT)
  } finally {
    if (server.exitCode === null && server.signalCode === null) server.kill('SIGCONT')
    if (retry) await retry.close().catch(() => {})
    server.kill('SIGKILL')
    await h.exited(server, 5000).catch(() => {})
    fs.rmSync(dir, { recursive: true, force: true })
  }
}, 90000)

// ---------------------------------------------------------------------------------------------
// 4. The Kafka broker goes away and comes back (internal rdkafka producer).

function startTansu(port) {
  const broker = servers.spawnTansu(port)
  started.add(broker)
  return broker
}

async function tansuReady(port, broker) {
  await mustWait(() => portOpen(port), 15000, () => `tansu did not listen on ${port}: ${broker.log.slice(-2000)}`)
}

async function createTopic(kafka, topic) {
  const admin = kafka.admin()
  await admin.connect()
  try {
    // false when it already existed (e.g. auto-created by the producer's metadata request)
    return await admin.createTopics({ topics: [{ topic, numPartitions: 1, replicationFactor: 1 }], waitForLeaders: true })
  } finally {
    await admin.disconnect()
  }
}

test('a Kafka outage: nothing is dead-lettered or spent while the broker is down, all arrive after it returns', async () => {
  requireBinary(TANSU_BIN, 'run `scripts/services.sh start` (installs Tansu into .services/) or set TANSU_BIN')
  const port = await h.freePort()
  const brokers = `127.0.0.1:${port}`
  const kafka = new Kafka({ clientId: h.unique('faults'), brokers: [brokers], logLevel: logLevel.NOTHING, retry: { retries: 3 } })
  const topic = h.unique('outage-topic')
  const prefix = h.unique('kafka-outage')
  const dlq = h.unique('dlq')
  const keys = h.scheduleKeys(prefix)
  const N = 20
  const redis = h.redisClient()
  let broker = startTansu(port)
  let retry
  let consumer
  try {
    await tansuReady(port, broker)
    await createTopic(kafka, topic)
    retry = new KafkaRetry({ keyPrefix: prefix, brokers, kafka: { 'message.timeout.ms': '3000' }, pollIntervalMs: 200 })
    await retry.queueListener(null, dlq)

    broker.kill('SIGTERM')
    await h.exited(broker, 10000)
    const downAt = Date.now()
    await pushAll(retry, N, topic, () => '0')

    await h.sleep(5000)
    expect(await redis.hlen(dlq)).toBe(0)
    expect(await redis.hlen(keys.entries)).toBe(N)
    const stored = Object.values(await redis.hgetall(keys.entries)).map(h.decodeEntry)
    // Pushed with retryCount '0', stored as 1; failed publishes must not have spent any retry.
    expect(stored.map((e) => e.retryCount)).toEqual(stored.map(() => 1))
    const whileDown = { leased: await redis.zcard(keys.lease), due: await redis.zcard(keys.due) }

    broker = startTansu(port)
    await tansuReady(port, broker)
    const upAt = Date.now()
    const downMs = upAt - downAt
    // Memory storage: the restarted broker has no topics. Create it again (if the producer's
    // metadata request did not auto-create it first).
    const recreated = await createTopic(kafka, topic)

    // When the schedule empties, every publish was acknowledged by the broker.
    let ackedAt = 0
    const watchAcks = (async () => {
      await h.waitFor(async () => (await redis.hlen(keys.entries)) === 0, 40000, 50)
      ackedAt = Date.now()
    })()
    const seen = []
    consumer = kafka.consumer({ groupId: h.unique('group'), sessionTimeout: 6000, rebalanceTimeout: 3000, heartbeatInterval: 500, maxWaitTimeInMs: 100 })
    await consumer.connect()
    await consumer.subscribe({ topic, fromBeginning: true })
    await consumer.run({
      eachMessage: async ({ message }) => {
        seen.push({ n: JSON.parse(message.value.toString()).n, retryCount: message.headers.retryCount.toString(), at: Date.now() })
      },
    })
    await mustWait(async () => new Set(seen.map((s) => s.n)).size >= N && (await redis.hlen(keys.entries)) === 0, 40000,
      async () => `after the broker restart ${new Set(seen.map((s) => s.n)).size} of ${N} arrived, ${await redis.hlen(keys.entries)} still stored; tansu: ${broker.log.slice(-1500)}`)
    const allMs = Math.max(...seen.map((s) => s.at)) - upAt
    await watchAcks
    const ackedMs = ackedAt - upAt
    await h.sleep(1000)
    const { missing, duplicated, extra } = tally(seen.map((s) => s.n), N)
    console.log(
      `kafka outage: ${N} messages, broker down ${downMs} ms (topic ${recreated ? 'recreated by the test' : 'auto-created by the producer'}); ` +
        `5 s into the outage ${whileDown.leased} were claimed (a publish attempt in flight) and ${whileDown.due} waiting, 0 dead-lettered; ` +
        `all acknowledged ${ackedMs} ms and consumed ${allMs} ms after the restart; lost ${missing.length}, duplicated ${duplicated.length}`,
    )
    expect(missing).toEqual([])
    expect(extra).toEqual([])
    expect(seen.every((s) => s.retryCount === '1')).toBe(true)
    expect(await redis.hlen(dlq)).toBe(0)
    expect(await redis.zcard(keys.lease)).toBe(0)
    expect(await redis.zcard(keys.due)).toBe(0)
  } finally {
    if (consumer) await consumer.disconnect().catch(() => {})
    if (retry) await retry.close().catch(() => {})
    redis.disconnect()
  }
}, 90000)

// ---------------------------------------------------------------------------------------------
// 5. close() while the listener is busy.

test('close() under load finishes or returns the batch in flight: nothing leased, nothing lost', async () => {
  const prefix = h.unique('shutdown')
  const keys = h.scheduleKeys(prefix)
  const N = 500
  const redis = h.redisClient()
  const pusher = new KafkaRetry({ keyPrefix: prefix })
  const first = []
  const second = []
  const calls = { first: 0, second: 0 }
  const CLOSE_AT_CALL = 120 // in the middle of the third batch of 50
  let closing
  let closeAt
  let inFlightAtClose
  let publishedAtClose
  const slow = (sink, which) => ({
    async produce(topic, key, value) {
      calls[which] += 1
      if (which === 'first' && calls.first === CLOSE_AT_CALL) {
        // Close while this listener is busy: this publish and the rest of its batch are in flight.
        closeAt = Date.now()
        publishedAtClose = first.length
        inFlightAtClose = calls.first - first.length
        closing = a.close()
      }
      await h.sleep(50)
      sink.push(JSON.parse(value).n)
    },
  })
  let a
  let b
  try {
    await pushAll(pusher, N, 't', () => '0')
    a = new KafkaRetry({ keyPrefix: prefix, batchSize: 50 })
    await a.queueListener(slow(first, 'first'), h.unique('dlq'))
    await mustWait(() => closing !== undefined, 10000, () => `the listener published only ${first.length}`)
    await closing
    const closeMs = Date.now() - closeAt
    const publishedByClose = first.length
    // close() waited for every publish it had started, and starts none afterwards.
    expect(calls.first).toBe(publishedByClose)
    await h.sleep(300)
    expect(calls.first).toBe(publishedByClose)
    expect(first).toHaveLength(publishedByClose)

    expect(await redis.zcard(keys.lease)).toBe(0)
    const remaining = await redis.hlen(keys.entries)
    expect(first.length + remaining).toBe(N)
    expect(await redis.zcard(keys.due)).toBe(remaining)
    expect(remaining).toBeGreaterThan(0)

    b = new KafkaRetry({ keyPrefix: prefix, batchSize: 50 })
    await b.queueListener(slow(second, 'second'), h.unique('dlq'))
    await mustWait(() => second.length >= remaining, 20000, () => `the new listener published ${second.length} of ${remaining}`)
    await h.sleep(300)
    const { missing, duplicated, extra } = tally([...first, ...second], N)
    console.log(
      `shutdown: ${N} messages; close() called with ${publishedAtClose} published and ${inFlightAtClose} in flight, resolved in ${closeMs} ms ` +
        `with ${first.length} published and ${remaining} back on the schedule; the next listener published ${second.length}; ` +
        `lost ${missing.length}, duplicated ${duplicated.length}`,
    )
    expect(missing).toEqual([])
    expect(duplicated).toEqual([])
    expect(extra).toEqual([])
    expect(await redis.hlen(keys.entries)).toBe(0)
  } finally {
    if (a) await a.close()
    if (b) await b.close()
    await pusher.close()
    redis.disconnect()
  }
}, 30000)
