// Healing without a restart, against real faults that leave no trace on the wire:
//
// 1. A Redis connection that dies silently (no FIN, no RST: an expired NAT or conntrack entry, a
//    failed-over firewall, a cut network). Made in a private network namespace (root): its own
//    redis-server, and tc black-holing only the listener process's own connections, at Linux's
//    default tcp_retries2 (the kernel would give up on them after about 15 minutes); one server and
//    a cluster. And the other side: a server that is only slow keeps its connection.
// 2. An internal (idempotent) producer that can publish no more: after a message timeout
//    librdkafka bumps the producer's epoch, and Tansu fences the producer (PRODUCER_FENCED); from
//    then on every publish of that producer fails. The timeout is made by SIGSTOPping the broker
//    for longer than a short message.timeout.ms while publishes are in flight.
const { spawn } = require('child_process')
const path = require('path')
const Redis = require('ioredis')
const { Kafka, logLevel } = require('kafkajs')
const { KafkaRetry } = require('../..')
const h = require('../helpers')
const s = require('../helpers/servers')
const { portOpen } = require('../../scripts/services/ports')

const ROOT = path.resolve(__dirname, '../..')

beforeAll(h.requireServers)

const started = h.killChildrenAfterEach()
afterAll(() => s.stopAll())

/** Waits for `check()`; on timeout throws `message()` (with context) instead of returning. */
async function mustWait(check, timeoutMs, message) {
  const ok = await h.waitFor(check, timeoutMs, 25)
  if (!ok) throw new Error(typeof message === 'function' ? await message() : message)
  return ok
}

// ---------------------------------------------------------------------------------------------
// 1. A silently dead Redis connection.

/**
 * Runs the listener and pusher processes of children/netns/child.js in a network namespace whose Redis
 * listens on `ports` (several: a cluster), black-holes the listener process's connections, and
 * measures how soon its pushes are accepted and it fires again, and whether another process's
 * pushes wake it (the subscription) once the target has passed.
 */
async function silentDrop(ports) {
  const TIMEOUT = 5000 // redisTimeoutMs's default
  const TARGET = TIMEOUT + 5000
  const what = ports.length > 1 ? `a ${ports.length}-master cluster` : 'one server'
  const lines = []
  const child = spawn('bash', [path.join(__dirname, '..', 'children', 'netns', 'run.sh'), process.execPath, path.join(__dirname, '..', 'children', 'netns', 'child.js')], {
    cwd: ROOT,
    env: { ...process.env, REDIS_PORTS: ports.join(' '), PREFIX: h.unique('silent-drop'), REDIS_TIMEOUT_MS: String(TIMEOUT) },
    stdio: ['pipe', 'pipe', 'pipe'],
    // Its own process group: the namespace's redis-server and the pusher process go with it.
    detached: true,
  })
  started.add(child)
  let stderr = ''
  child.stderr.on('data', (d) => {
    stderr = (stderr + d.toString()).slice(-5000)
  })
  h.jsonLines(child.stdout, (line) => lines.push(line))
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })))
  const context = () => `stderr: ${stderr}\nlast lines: ${lines.slice(-15).map((l) => JSON.stringify(l)).join('\n')}`
  const pushes = (src) => lines.filter((l) => l.push === src)
  const pubs = (src) => lines.filter((l) => l.pub === src)
  try {
    const ready = (who) => lines.find((l) => l.ready === who)
    await Promise.race([
      mustWait(() => ready('L') && ready('P'), 120000, () => `the processes in the namespace did not start; ${context()}`),
      exited.then(({ code }) => {
        throw new Error(`the namespace script exited with ${code} before the test ran; ${context()}`)
      }),
    ])
    expect(ready('L').tcpRetries2).toBe(15)
    await mustWait(() => pubs('L').length >= 20 && pubs('P').length >= 3, 20000, () => `nothing was published before the drop; ${context()}`)

    child.stdin.write('drop\n')
    await mustWait(() => lines.find((l) => l.dropped), 10000, () => `the drop was not made; ${context()}`)
    const { dropped, t: droppedAt } = lines.find((l) => l.dropped)
    // The shared connection (one per master on a cluster) and the wake-up subscription.
    expect(dropped.length).toBe(ports.length + 1)

    // Pushed after the drop and accepted; published after being pushed after the drop.
    const pushedAgain = () => pushes('L').find((l) => l.ok && l.at > droppedAt)
    const firedAgain = () => pubs('L').find((l) => l.at > droppedAt)
    await mustWait(() => pushedAgain() && firedAgain(), 40000,
      () => `40 s after the silent drop: ${pushedAgain() ? 'pushes accepted again' : 'no push accepted'}, ${firedAgain() ? 'firing again' : 'nothing fired'}; ${context()}`)
    const pushBackMs = pushedAgain().t - droppedAt
    const fireBackMs = firedAgain().t - droppedAt
    const rejected = pushes('L').filter((l) => l.code && l.at > droppedAt)

    // The listener stops pushing: from then on only the other process's pushes, announced on
    // the wake-up channel, make it fire (pollIntervalMs is 60 s). Those pushed once the target
    // has passed must fire at once: the subscription was made again too.
    child.stdin.write('quiet\n')
    const quietAt = Date.now()
    const checkFrom = Math.max(quietAt + 500, droppedAt + TARGET)
    await h.sleep(checkFrom + 5000 - Date.now())
    child.stdin.write('stop\n')
    await h.sleep(1000)
    const published = new Map()
    for (const l of lines) if (l.pub) published.set(`${l.pub}${l.n}`, Math.min(published.get(`${l.pub}${l.n}`) || Infinity, l.t))
    const remote = pushes('P').filter((l) => l.ok && l.at >= checkFrom)
    const remoteLatency = remote.map((l) => (published.get(`P${l.n}`) || Infinity) - l.at)

    // Nothing accepted is lost.
    const accepted = lines.filter((l) => l.push && l.ok)
    await mustWait(() => {
      const keys = new Set(lines.filter((l) => l.pub).map((l) => `${l.pub}${l.n}`))
      return accepted.every((l) => keys.has(`${l.push}${l.n}`))
    }, 30000, () => `accepted pushes never published: ${accepted.filter((l) => !lines.some((p) => p.pub === l.push && p.n === l.n)).length}; ${context()}`)
    const allPubs = lines.filter((l) => l.pub)
    const duplicates = allPubs.length - new Set(allPubs.map((l) => `${l.pub}${l.n}`)).size
    console.log(
      `silent Redis drop, ${what} (redisTimeoutMs ${TIMEOUT}, tcp_retries2 ${ready('L').tcpRetries2}, ports ${dropped.join(',')}): ` +
        `pushes accepted again ${pushBackMs} ms and firing again ${fireBackMs} ms after the drop; ` +
        `${rejected.length} pushes rejected meanwhile (${[...new Set(rejected.map((l) => l.code))].join(',')}); ` +
        `another process's pushes (wake-up channel) from ${checkFrom - droppedAt} ms after the drop fired within ${Math.max(...remoteLatency)} ms (${remote.length} pushes); ` +
        `${accepted.length} accepted, 0 lost, ${duplicates} published twice`,
    )
    expect(pushBackMs).toBeLessThan(TARGET)
    expect(fireBackMs).toBeLessThan(TARGET)
    expect(rejected.every((l) => l.code === 'ERR_REDIS_UNAVAILABLE')).toBe(true)
    expect(remote.length).toBeGreaterThanOrEqual(5)
    expect(Math.max(...remoteLatency)).toBeLessThan(2000)
  } finally {
    if (child.exitCode === null && child.signalCode === null) {
      child.stdin.write('exit\n')
      let timer
      const done = await Promise.race([exited, new Promise((resolve) => (timer = setTimeout(resolve, 10000, null)))])
      clearTimeout(timer)
      if (!done) {
        try {
          process.kill(-child.pid, 'SIGKILL')
        } catch {
          // the group is gone already
        }
      }
    }
  }
}

test('a Redis connection that dies silently is replaced: pushes accepted and the listener firing again within redisTimeoutMs + 5 s', async () => {
  await silentDrop([6390])
}, 150000)

test('on a Redis Cluster too: connections to every master dropped silently are replaced within redisTimeoutMs + 5 s', async () => {
  await silentDrop([7001, 7002, 7003])
}, 150000)

test('a slow server is not taken for a dead connection: a push that timed out behind a long script keeps the connection', async () => {
  const server = await s.startServer([])
  const redis = new Redis({ port: server.port, maxRetriesPerRequest: 1 })
  const retry = new KafkaRetry({ redisUrl: `redis://127.0.0.1:${server.port}`, keyPrefix: h.unique('slow'), redisTimeoutMs: 500 })
  const pushOne = () => retry.pushToQueue('t', { event: 'e', value: { n: 1 } }, { delay: '1' })
  // The package's connections: every client but this test's own.
  const ids = async () => {
    const own = String(await redis.client('ID'))
    return (await redis.client('LIST')).split('\n').filter(Boolean).map((l) => /^id=(\d+)/.exec(l)[1]).filter((id) => id !== own)
  }
  try {
    await pushOne()
    const before = await ids()
    expect(before.length).toBe(1)
    // Another client's script holds the server for 1.5 s (under busy-reply-threshold, so Redis
    // answers nobody meanwhile): the push times out, the PING that checks the connection waits
    // behind the script and is answered within its own deadline.
    const script = redis.eval("local t = redis.call('TIME') local stop = t[1] * 1e6 + t[2] + 1500000 while true do t = redis.call('TIME') if t[1] * 1e6 + t[2] >= stop then break end end return 1", 0)
    await h.sleep(50)
    const slow = await pushOne().then(() => 'stored', (err) => err.code)
    await script
    await h.sleep(3000)
    await pushOne()
    const after = await ids()
    console.log(`slow server: a push behind a 1.5 s script with redisTimeoutMs 500 -> ${slow}; the package's connection ${before} before, ${after} after`)
    expect(slow).toBe('ERR_REDIS_UNAVAILABLE')
    expect(after).toEqual(before)
  } finally {
    await retry.close()
    redis.disconnect()
  }
}, 60000)

// ---------------------------------------------------------------------------------------------
// 2. A fenced (or fatally failed) internal producer.

/** A Tansu broker of this test's own (helpers/servers.js), killed after the test. */
function startTansu(port) {
  const broker = s.spawnTansu(port)
  started.add(broker)
  return broker
}

test('a fenced or fatally failed producer (PRODUCER_FENCED after an epoch bump) is replaced: all published within 60 s of the heal, none lost', async () => {
  const port = await h.freePort()
  const brokers = `127.0.0.1:${port}`
  const kafka = new Kafka({ clientId: h.unique('heal'), brokers: [brokers], logLevel: logLevel.NOTHING, retry: { retries: 5 } })
  const topic = h.unique('fatal-topic')
  const prefix = h.unique('fatal')
  const keys = h.scheduleKeys(prefix)
  const BEFORE = 100
  const DURING = 900
  const N = BEFORE + DURING
  const MESSAGE_TIMEOUT = 3000
  const redis = h.redisClient()
  const events = []
  const broker = startTansu(port)
  let retry
  let consumer
  try {
    await mustWait(() => portOpen(port), 15000, () => `tansu did not listen on ${port}: ${broker.log.slice(-2000)}`)
    const admin = kafka.admin()
    await admin.connect()
    await admin.createTopics({ topics: [{ topic, numPartitions: 1, replicationFactor: 1 }], waitForLeaders: true })
    await admin.disconnect()
    retry = new KafkaRetry({
      keyPrefix: prefix,
      brokers,
      kafka: { 'message.timeout.ms': String(MESSAGE_TIMEOUT) },
      pollIntervalMs: 200,
      onEvent: (event) => event.type === 'error' && events.push({ ...event, at: Date.now() }),
    })
    await retry.queueListener(null)
    const push = async (from, to) => {
      const all = []
      for (let n = from; n < to; n += 1) {
        all.push(retry.pushToQueue(topic, { event: `e${n % 10}`, value: { n } }, { delay: '0', maxRetry: '3', retryCount: '0' }))
      }
      await Promise.all(all)
    }
    // Published: the producer has its producer id and epoch.
    await push(0, BEFORE)
    await mustWait(async () => (await redis.hlen(keys.entries)) === 0, 30000, 'the first messages were not published')

    // The broker stops answering (its socket still accepts bytes) for longer than
    // message.timeout.ms, while publishes are in flight: they time out, librdkafka bumps the
    // epoch, and the resumed broker fences the producer.
    broker.kill('SIGSTOP')
    const stoppedAt = Date.now()
    await push(BEFORE, N)
    await h.sleep(stoppedAt + 3 * MESSAGE_TIMEOUT - Date.now())
    broker.kill('SIGCONT')
    const healedAt = Date.now()
    await mustWait(async () => (await redis.hlen(keys.entries)) === 0, 75000,
      async () => `70 s after the heal ${await redis.hlen(keys.entries)} of ${N} still scheduled; error events: ${events.slice(-5).map((e) => e.message).join(' | ')}`)
    const publishedMs = Date.now() - healedAt

    const seen = []
    consumer = kafka.consumer({ groupId: h.unique('group'), sessionTimeout: 6000, rebalanceTimeout: 3000, heartbeatInterval: 500, maxWaitTimeInMs: 100 })
    await consumer.connect()
    await consumer.subscribe({ topic, fromBeginning: true })
    await consumer.run({ eachMessage: async ({ message }) => seen.push(JSON.parse(message.value.toString()).n) })
    await mustWait(() => new Set(seen).size >= N, 40000, () => `read back ${new Set(seen).size} of ${N}`)
    await h.sleep(2000)
    const distinct = new Set(seen)
    const missing = [...Array(N).keys()].filter((n) => !distinct.has(n))
    const replaced = events.filter((e) => /can publish no more[\s\S]*replaced by a new one/.test(e.message))
    console.log(
      `fenced producer: broker stopped ${healedAt - stoppedAt} ms (message.timeout.ms ${MESSAGE_TIMEOUT}), ${DURING} pushed meanwhile; ` +
        `${replaced.length} producer replacement(s), the first ${replaced.length ? replaced[0].at - healedAt : '-'} ms after the heal (${replaced.length ? replaced[0].message : 'none'}); ` +
        `all ${N} published ${publishedMs} ms after the heal; read back ${seen.length}: lost ${missing.length}, duplicated ${seen.length - distinct.size}`,
    )
    // The producer was fenced and replaced (else this test proves nothing), and all healed.
    expect(replaced.length).toBeGreaterThanOrEqual(1)
    expect(publishedMs).toBeLessThan(60000)
    expect(missing).toEqual([])
  } finally {
    if (broker.signalCode === null && broker.exitCode === null) broker.kill('SIGCONT')
    if (consumer) await consumer.disconnect().catch(() => {})
    if (retry) await retry.close().catch(() => {})
    redis.disconnect()
  }
}, 180000)
