// The Redis setups production runs, each on real servers started here on loopback ports: TLS with
// a CA made by the test and a password or ACL user; Sentinel (master, replica, three sentinels)
// through a failover and a SIGKILL of the master; a cluster with a replica per master, its dead
// letter operations and a master killed during pushes, with and without waitReplicas. Every
// message is counted: pushed, acknowledged, published, lost, duplicated.
const path = require('path')
const { execFile } = require('child_process')
const Redis = require('ioredis')
const { KafkaRetry } = require('../..')
const h = require('../helpers')
const s = require('../helpers/servers')

const CLI = path.join(__dirname, '..', '..', 'bin', 'kafka-redis-retry.js')

jest.setTimeout(60000)

afterAll(() => s.stopAll())

function runCli(args, env = {}) {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, timeout: 30000 }, (err, stdout, stderr) => {
      resolve({ code: err ? err.code : 0, stdout, stderr })
    })
  })
}

/** Pushes due `delayMs` from now, from `workers` sequential callers, for `durationMs`; `during` runs at `atMs`. */
async function pushThrough({ pusher, durationMs, atMs, during, workers = 4, delayMs = 1500 }) {
  const acknowledged = new Set()
  const rejected = new Map()
  let pushed = 0
  let next = 0
  const end = Date.now() + durationMs
  let trigger
  const triggered = new Promise((resolve) => {
    trigger = setTimeout(() => resolve(during()), atMs)
  })
  await Promise.all(Array.from({ length: workers }, async () => {
    while (Date.now() < end) {
      const n = next++
      pushed += 1
      try {
        await pusher.pushToQueue('t', { event: 'e', value: JSON.stringify({ msgId: `m${n}`, n }) }, { delay: String(delayMs / 60000) })
        acknowledged.add(n)
      } catch (err) {
        rejected.set(n, err.code)
        await h.sleep(20)
      }
      await h.sleep(2)
    }
  }))
  clearTimeout(trigger)
  const triggerOutcome = await triggered
  return { pushed, acknowledged, rejected, triggerOutcome }
}

/** Counts what a run delivered once nothing new arrives: lost = acknowledged and never published. */
async function settle({ published, acknowledged, rejected, pushed, settleMs = 20000 }) {
  let last = -1
  const deadline = Date.now() + settleMs
  while (Date.now() < deadline) {
    const done = [...acknowledged].every((n) => published.has(n))
    if (done && published.size === last) break
    last = published.size
    await h.sleep(done ? 1000 : 250)
  }
  const lost = [...acknowledged].filter((n) => !published.has(n))
  const duplicated = [...published.values()].filter((c) => c > 1).length
  const rejectedCodes = [...new Set(rejected.values())]
  const publishedRejected = [...rejected.keys()].filter((n) => published.has(n)).length
  return { pushed, acknowledged: acknowledged.size, rejected: rejected.size, rejectedCodes, publishedRejected, published: published.size, lost: lost.length, duplicated }
}

function countingProducer(published) {
  return {
    produce: async (topic, key, value) => {
      const { n } = JSON.parse(value)
      published.set(n, (published.get(n) || 0) + 1)
    },
  }
}

describe('TLS and passwords', () => {
  let certs
  let port
  const password = 'pa55-w0rd-never-shown'
  const admin = () => new Redis({ port, host: '127.0.0.1', password, tls: { ca: certs.ca }, maxRetriesPerRequest: 1 })

  beforeAll(async () => {
    certs = s.makeCerts()
    port = await h.freePort()
    await s.startServer(['--port', '0', '--tls-port', String(port), '--tls-cert-file', certs.certFile,
      '--tls-key-file', certs.keyFile, '--tls-ca-cert-file', certs.caFile, '--tls-auth-clients', 'optional',
      '--requirepass', password])
    // The README's ACL rule, as written there (this server is the test's own: the default
    // keyPrefix and dead letter hash name are free).
    const redis = admin()
    const rule = 'on >retry-secret ~{kafka-retry}* ~{kafka-retry#*}* ~DEAD_LETTER_QUEUE* &{kafka-retry}* &{kafka-retry#*}* +@read +@write +@scripting +@pubsub +time +ping +wait'
    await redis.call('ACL', 'SETUSER', 'retry', ...rule.split(' '))
    redis.disconnect()
  })

  test('rediss:// with the CA and the password in the URL: push, listen, publish, stats', async () => {
    const published = new Map()
    const config = { redisUrl: `rediss://:${password}@127.0.0.1:${port}`, tls: { ca: certs.ca }, keyPrefix: h.unique('tls'), pollIntervalMs: 50 }
    const retry = new KafkaRetry(config)
    try {
      await retry.queueListener(countingProducer(published), h.unique('dlq'))
      await Promise.all(Array.from({ length: 50 }, (_, n) =>
        retry.pushToQueue('t', { event: 'e', value: JSON.stringify({ n }) }, { delay: '0' })))
      expect(await h.waitFor(() => published.size === 50, 10000)).toBe(true)
      // Each message is acknowledged once its publish settled, just after the producer saw it.
      let stats
      expect(await h.waitFor(async () => (stats = await retry.stats()).inflight === 0, 10000)).toBe(true)
      expect(stats).toMatchObject({ scheduled: 0, inflight: 0 })
      // What the server holds is what the package wrote: read back over TLS by ioredis.
      const redis = admin()
      expect(await redis.get(`{${config.keyPrefix}}:shards`)).toBe('1')
      redis.disconnect()
    } finally {
      await retry.close()
    }
  })

  test('config username/password (an ACL user with the README\'s rule), the CA as a Buffer, and a client certificate', async () => {
    const retry = new KafkaRetry({
      redisUrl: `redis://127.0.0.1:${port}`, // tls turns TLS on, as with ioredis
      username: 'retry',
      password: 'retry-secret',
      tls: { ca: Buffer.from(certs.ca), cert: Buffer.from(certs.clientCert), key: certs.clientKey },
      pollIntervalMs: 60000, // wake-ups come through the channel the rule allows
      waitReplicas: 0,
    })
    const published = []
    try {
      await retry.queueListener({ produce: async (topic, key, value) => published.push(JSON.parse(value).n) }, 'DEAD_LETTER_QUEUE')
      await h.sleep(200)
      await retry.pushToQueue('t', { event: 'e', value: JSON.stringify({ n: 1 }) }, { delay: String(200 / 60000) })
      await retry.pushToQueue('t', { event: 'e', value: JSON.stringify({ n: 2 }) }, { delay: '0', maxRetry: '0' })
      expect(await h.waitFor(() => published.length === 1, 5000)).toBe(true)
      expect(await h.waitFor(async () => (await retry.stats('DEAD_LETTER_QUEUE')).deadLettered === 1, 5000)).toBe(true)
      const { items } = await retry.deadLetters('DEAD_LETTER_QUEUE')
      expect(await retry.requeueDeadLetter('DEAD_LETTER_QUEUE', items[0].id)).toBe(true)
      expect(await h.waitFor(() => published.length === 2, 5000)).toBe(true)
      expect(published.sort()).toEqual([1, 2])
      // Outside the rule's keys the user is refused: the rule is what the test ran under.
      const err = await new KafkaRetry({ redisUrl: `rediss://retry:retry-secret@127.0.0.1:${port}`, tls: { ca: certs.ca }, keyPrefix: 'elsewhere' })
        .stats().catch((e) => e)
      expect(err.code).toBe('ERR_REDIS_UNAVAILABLE')
      expect(err.message).toMatch(/NOPERM|permission/i)
    } finally {
      await retry.close()
    }
  })

  test('a server that requires client certificates (tls-auth-clients yes): refused without one, served with one', async () => {
    const mtlsPort = await h.freePort()
    await s.startServer(['--port', '0', '--tls-port', String(mtlsPort), '--tls-cert-file', certs.certFile,
      '--tls-key-file', certs.keyFile, '--tls-ca-cert-file', certs.caFile, '--tls-auth-clients', 'yes'])
    const url = `rediss://127.0.0.1:${mtlsPort}`
    const without = new KafkaRetry({ redisUrl: url, tls: { ca: certs.ca }, redisTimeoutMs: 2000 })
    const err = await without.stats().catch((e) => e)
    await without.close()
    expect(err.code).toBe('ERR_REDIS_UNAVAILABLE')
    expect(err.message).toMatch(/requires a client certificate/)
    const retry = new KafkaRetry({ redisUrl: url, tls: { ca: certs.ca, cert: certs.clientCert, key: certs.clientKey }, keyPrefix: h.unique('mtls') })
    try {
      await retry.pushToQueue('t', { event: 'e', value: '{"n":1}' }, { delay: '60' })
      expect(await retry.stats()).toMatchObject({ scheduled: 1 })
    } finally {
      await retry.close()
    }
  })

  test('a wrong password rejects with ERR_REDIS_UNAVAILABLE saying authentication failed, without the password', async () => {
    const cases = [
      { redisUrl: `rediss://:wrong-${password}@127.0.0.1:${port}`, tls: { ca: certs.ca } },
      { redisUrl: `rediss://127.0.0.1:${port}`, username: 'retry', password: `not-${password}`, tls: { ca: certs.ca } },
      { redisUrl: `rediss://127.0.0.1:${port}`, tls: { ca: certs.ca } }, // no password at all
    ]
    for (const config of cases) {
      const retry = new KafkaRetry({ ...config, redisTimeoutMs: 2000, keyPrefix: h.unique('auth') })
      const started = Date.now()
      const err = await retry.pushToQueue('t', { event: 'e', value: '{}' }).catch((e) => e)
      const took = Date.now() - started
      await retry.close()
      expect(err.code).toBe('ERR_REDIS_UNAVAILABLE')
      expect(err.message).toMatch(/authentication failed/)
      expect(err.message).not.toMatch(/no answer|timed out/)
      expect(err.message).not.toContain(password)
      expect(took).toBeLessThan(4000)
    }
  })

  test('a certificate the CA did not sign rejects, saying it is not trusted; rejectUnauthorized: false connects anyway', async () => {
    for (const tls of [{ ca: certs.otherCa }, {}]) {
      const retry = new KafkaRetry({ redisUrl: `rediss://:${password}@127.0.0.1:${port}`, tls, redisTimeoutMs: 2000, keyPrefix: h.unique('ca') })
      const err = await retry.pushToQueue('t', { event: 'e', value: '{}' }).catch((e) => e)
      await retry.close()
      expect(err.code).toBe('ERR_REDIS_UNAVAILABLE')
      expect(err.message).toMatch(/certificate is not trusted/)
      expect(err.message).not.toContain(password)
    }
    const insecure = new KafkaRetry({ redisUrl: `rediss://:${password}@127.0.0.1:${port}`, tls: { rejectUnauthorized: false }, keyPrefix: h.unique('insecure') })
    try {
      await insecure.pushToQueue('t', { event: 'e', value: '{}' }, { delay: '1' })
    } finally {
      await insecure.close()
    }
  })

  test('bad TLS settings are ERR_INVALID_ARG at construction', () => {
    const url = `rediss://127.0.0.1:${port}`
    const bad = [
      [{ redisUrl: url, tls: { cert: certs.clientCert } }, /config\.tls\.cert and config\.tls\.key go together/],
      [{ redisUrl: url, tls: { ca: 'not a certificate' } }, /config\.tls\.ca must be PEM/],
      [{ redisUrl: url, tls: { ca: 42 } }, /config\.tls\.ca must be PEM text/],
      [{ redisUrl: url, tls: { ca: certs.ca, servername: 'redis.example.com' } }, /config\.tls\.servername "redis\.example\.com" is not supported/],
      [{ redisUrl: url, password: 17 }, /config\.password must be a string/],
      [{ sentinel: { sentinels: [{ host: '127.0.0.1', port: 1 }], name: 'm' }, cluster: true }, /config\.sentinel and config\.cluster/],
      [{ sentinel: { sentinels: [], name: 'm' } }, /config\.sentinel\.sentinels must list/],
    ]
    for (const [config, message] of bad) {
      let err
      try {
        new KafkaRetry(config)
      } catch (e) {
        err = e
      }
      expect(err && err.code).toBe('ERR_INVALID_ARG')
      expect(err.message).toMatch(message)
    }
    // servername equal to the host connected to is accepted (nothing to change).
    new KafkaRetry({ redisUrl: url, tls: { ca: certs.ca, servername: '127.0.0.1' } }).close()
  })

  test('the CLI takes --tls-ca and a rediss:// URL; an untrusted CA fails with exit 1', async () => {
    const prefix = h.unique('tls-cli')
    const retry = new KafkaRetry({ redisUrl: `rediss://:${password}@127.0.0.1:${port}`, tls: { ca: certs.ca }, keyPrefix: prefix })
    await retry.pushToQueue('t', { event: 'e', value: '{}' }, { delay: '1' })
    await retry.close()
    const ok = await runCli(['stats', '--redis', `rediss://:${password}@127.0.0.1:${port}`, '--tls-ca', certs.caFile, '--prefix', prefix, '--json'])
    expect(ok.stderr).toBe('')
    expect(ok.code).toBe(0)
    expect(JSON.parse(ok.stdout).scheduled).toBe(1)
    const untrusted = await runCli(['stats', '--redis', `rediss://:${password}@127.0.0.1:${port}`, '--tls-ca', certs.otherCaFile, '--prefix', prefix])
    expect(untrusted.code).toBe(1)
    expect(untrusted.stderr).toMatch(/ERR_REDIS_UNAVAILABLE: .*certificate is not trusted/)
    expect(untrusted.stderr + untrusted.stdout).not.toContain(password)
    const insecure = await runCli(['stats', '--redis', `rediss://:${password}@127.0.0.1:${port}`, '--tls-insecure', '--prefix', prefix, '--json'])
    expect(insecure.code).toBe(0)
    const missing = await runCli(['stats', '--redis', `rediss://127.0.0.1:${port}`, '--tls-ca', '/nonexistent/ca.pem'])
    expect(missing.code).toBe(2)
  })
})

describe('the shard count is recorded', () => {
  test('an instance with another shards value is refused, naming both values', async () => {
    const prefix = h.unique('shards')
    const four = new KafkaRetry({ keyPrefix: prefix, shards: 4 })
    const one = new KafkaRetry({ keyPrefix: prefix })
    const published = []
    try {
      await Promise.all(Array.from({ length: 40 }, (_, n) =>
        four.pushToQueue('t', { event: 'e', value: JSON.stringify({ n }) }, { delay: '0.01' })))
      for (const call of [
        () => one.pushToQueue('t', { event: 'e', value: '{}' }),
        () => one.queueListener({ produce: async () => {} }, h.unique('dlq')),
        () => one.stats(),
      ]) {
        const err = await call().catch((e) => e)
        expect(err.code).toBe('ERR_INVALID_ARG')
        expect(err.message).toMatch(/config\.shards is 1, but the schedule .* was created with shards: 4/)
      }
      // The instance configured like the schedule serves every shard.
      await four.queueListener({ produce: async (topic, key, value) => published.push(JSON.parse(value).n) }, h.unique('dlq'))
      expect(await h.waitFor(() => published.length === 40, 10000)).toBe(true)
      const redis = h.redisClient()
      expect(await redis.get(`{${prefix}}:shards`)).toBe('4')
      redis.disconnect()
      const cli = await runCli(['stats', '--prefix', prefix], { REDIS_URL: h.REDIS_URL })
      expect(cli.code).toBe(2)
      expect(cli.stderr).toMatch(/shards: 4/)
      expect((await runCli(['stats', '--prefix', prefix, '--shards', '4', '--json'], { REDIS_URL: h.REDIS_URL })).code).toBe(0)
    } finally {
      await Promise.all([four.close(), one.close()])
    }
  })

  test('waitReplicas on a server without replicas: the push rejects after waitTimeoutMs, stored once', async () => {
    const prefix = h.unique('wait')
    const retry = new KafkaRetry({ keyPrefix: prefix, waitReplicas: 1, waitTimeoutMs: 300 })
    try {
      const message = { event: 'e', value: JSON.stringify({ msgId: 'only-once' }) }
      const started = Date.now()
      const err = await retry.pushToQueue('t', message, { delay: '1' }).catch((e) => e)
      expect(err.code).toBe('ERR_REDIS_UNAVAILABLE')
      expect(err.message).toMatch(/0 of the 1 replicas asked for \(waitReplicas\) confirmed it within 300 ms/)
      expect(Date.now() - started).toBeGreaterThanOrEqual(280)
      // The caller retries: the message is stored once.
      await retry.pushToQueue('t', message, { delay: '1' }).catch(() => {})
      expect((await retry.stats()).scheduled).toBe(1)
    } finally {
      await retry.close()
    }
  })
})

test('waitReplicas covers the dead letter: unconfirmed, the exhausted message stays on the schedule', async () => {
  // The default server has no replica: every WAIT confirms 0. Before the dead letter was waited
  // for, the message left the schedule once the record was written, confirmed or not.
  const prefix = h.unique('waitdlq')
  const dlq = h.unique('waitdlq-dlq')
  const errors = []
  const pusher = new KafkaRetry({ keyPrefix: prefix })
  const listener = new KafkaRetry({
    keyPrefix: prefix, waitReplicas: 1, waitTimeoutMs: 100, pollIntervalMs: 100,
    onEvent: (e) => { if (e.type === 'error') errors.push(e.message) },
    logger: { warn() {}, error() {} },
  })
  try {
    await pusher.pushToQueue('t', { event: 'e', value: '{"n":1}' }, { delay: '0', maxRetry: '0' })
    await listener.queueListener({ produce: async () => {} }, dlq)
    expect(await h.waitFor(() => errors.some((m) => /write of a dead letter .*0 of the 1 replicas/.test(m)), 5000)).toBe(true)
    const stats = await pusher.stats(dlq)
    expect(stats.scheduled + stats.inflight).toBe(1)
  } finally {
    await listener.close()
    await pusher.close()
  }
})

describe('Sentinel', () => {
  let set

  beforeAll(async () => {
    set = await s.startSentinelSet()
  }, 60000)

  async function run(trigger) {
    const published = new Map()
    const config = { sentinel: set.config, keyPrefix: h.unique('sentinel'), pollIntervalMs: 100, leaseMs: 2000, redisTimeoutMs: 1000 }
    const listener = new KafkaRetry(config)
    const pusher = new KafkaRetry(config)
    // After the previous test's failover the old master must have become the new one's
    // replica, or everything written before the next failover is lost with the master.
    await set.replicaLinked()
    const before = set.masterPort()
    try {
      await listener.queueListener(countingProducer(published), h.unique('dlq'))
      const run = await pushThrough({ pusher, durationMs: 7000, atMs: 1500, during: trigger })
      const after = await h.waitFor(() => set.masterPort() !== before && set.masterPort(), 10000, 100)
      const counts = await settle({ published, ...run })
      return { ...counts, before, after }
    } finally {
      await Promise.all([listener.close(), pusher.close()])
    }
  }

  test('the CLI finds the master through --sentinel', async () => {
    const prefix = h.unique('sentinel-cli')
    const retry = new KafkaRetry({ sentinel: set.config, keyPrefix: prefix })
    await retry.pushToQueue('t', { event: 'e', value: '{}' }, { delay: '1' })
    await retry.close()
    const sentinels = set.sentinels.map((x) => `127.0.0.1:${x.port}`).join(',')
    const r = await runCli(['stats', '--sentinel', sentinels, '--sentinel-name', set.name, '--prefix', prefix, '--json'])
    expect(r.stderr).toBe('')
    expect(JSON.parse(r.stdout).scheduled).toBe(1)
    const unknown = await runCli(['stats', '--sentinel', sentinels, '--sentinel-name', 'nosuchmaster', '--prefix', prefix])
    expect(unknown.code).toBe(1)
    expect(unknown.stderr).toMatch(/ERR_REDIS_UNAVAILABLE: cannot connect to Redis at Sentinel master "nosuchmaster"[\s\S]*the sentinel knows no master of this name/)
  })

  test('SENTINEL FAILOVER while pushes and a listener run: the listener follows the new master', async () => {
    const counts = await run(() => s.cli(set.sentinels[0].port, 'sentinel', 'failover', set.name))
    console.log(`sentinel failover: ${JSON.stringify(counts)}`)
    expect(counts.after).not.toBe(counts.before)
    expect(counts.acknowledged).toBeGreaterThan(500)
    expect(counts.rejectedCodes.every((code) => code === 'ERR_REDIS_UNAVAILABLE')).toBe(true)
    expect(counts.lost).toBe(0)
    expect(counts.duplicated).toBe(0)
  })

  test('SIGKILL of the master while pushes and a listener run: pushes resume on the promoted replica', async () => {
    const master = set.masterPort()
    const node = set.servers.find((server) => server.port === master)
    const counts = await run(() => node.kill('SIGKILL'))
    console.log(`sentinel SIGKILL: ${JSON.stringify(counts)}`)
    expect(counts.after).not.toBe(master)
    expect(counts.rejectedCodes.every((code) => code === 'ERR_REDIS_UNAVAILABLE')).toBe(true)
    // The listener published what was pushed after the failover, on the new master by itself.
    expect(counts.published).toBeGreaterThan(counts.acknowledged - counts.lost - 1)
    // Without waitReplicas a push the dead master acknowledged and had not yet sent its replica
    // is lost: reported, not asserted to be zero (see the README's fault table).
    expect(counts.lost).toBeLessThan(counts.acknowledged / 10)
  })
})

test('Sentinel with TLS and passwords everywhere (sentinels, master, replica): push, listen, failover', async () => {
  const certs = s.makeCerts()
  const password = 'data-pa55'
  const sentinelPassword = 'sentinel-pa55'
  const set = await s.startSentinelSet('securemaster', { tls: certs, password, sentinelPassword })
  const published = new Map()
  const config = {
    sentinel: { ...set.config, password: sentinelPassword, tls: { ca: certs.ca } },
    password,
    tls: { ca: certs.ca },
    keyPrefix: h.unique('stls'),
    pollIntervalMs: 100,
    redisTimeoutMs: 1000,
  }
  const retry = new KafkaRetry(config)
  try {
    await retry.queueListener(countingProducer(published), h.unique('dlq'))
    await Promise.all(Array.from({ length: 20 }, (_, n) =>
      retry.pushToQueue('t', { event: 'e', value: JSON.stringify({ n }) }, { delay: '0' })))
    expect(await h.waitFor(() => published.size === 20, 10000)).toBe(true)
    const before = set.masterPort()
    set.sentinelCli(set.sentinels[0].port, 'sentinel', 'failover', set.name)
    expect(await h.waitFor(() => set.masterPort() !== before, 10000, 100)).toBe(true)
    // Pushes go on to the new master (over TLS, found through the TLS sentinels).
    await h.waitFor(() => retry.pushToQueue('t', { event: 'e', value: JSON.stringify({ n: 20 }) }, { delay: '0' }).then(() => true, () => false), 10000, 200)
    expect(await h.waitFor(() => published.has(20), 10000)).toBe(true)
    // A wrong sentinel password: authentication failed, neither password shown.
    const wrong = new KafkaRetry({ ...config, sentinel: { ...config.sentinel, password: 'nope' }, redisTimeoutMs: 2000 })
    const err = await wrong.stats().catch((e) => e)
    await wrong.close()
    expect(err.code).toBe('ERR_REDIS_UNAVAILABLE')
    expect(err.message).toMatch(/authentication failed/)
    expect(err.message).not.toContain(password)
    expect(err.message).not.toContain(sentinelPassword)
  } finally {
    await retry.close()
  }
}, 60000)

describe('a replica behind when its master dies', () => {
  // The replica reaches its master through a relay. For 1 s while pushes run the relay holds back
  // what the master sends (a congested link), then the master is SIGKILLed: the sentinels promote
  // the replica without what the master acknowledged meanwhile. Redis replicates asynchronously;
  // waitReplicas makes a push wait for the replica.
  async function run(waitReplicas) {
    const set = await s.startSentinelSet('mymaster', { relay: true })
    await set.replicaLinked()
    // The sentinels and the package reach the master through the relay too (they must name it
    // as the replica does, or the sentinels point the replica at it directly).
    const [master, replica] = set.servers
    const published = new Map()
    const config = {
      sentinel: set.config, keyPrefix: h.unique('lag'), pollIntervalMs: 100, leaseMs: 2000,
      redisTimeoutMs: 1000, waitReplicas, waitTimeoutMs: 300,
    }
    const listener = new KafkaRetry(config)
    const pusher = new KafkaRetry(config)
    try {
      await listener.queueListener(countingProducer(published), h.unique('dlq'))
      const run = await pushThrough({
        pusher,
        durationMs: 6000,
        atMs: 1000,
        delayMs: 3000,
        during: async () => {
          set.relay.hold()
          await h.sleep(1000)
          master.kill('SIGKILL')
          set.relay.close()
        },
      })
      expect(await h.waitFor(() => set.masterPort() === replica.port, 15000, 100)).toBe(true)
      return await settle({ published, ...run, settleMs: 10000 })
    } finally {
      await Promise.all([listener.close(), pusher.close()])
    }
  }

  test('without waitReplicas: what the master acknowledged while its replica was behind is lost', async () => {
    const counts = await run(0)
    console.log(`replica behind, master SIGKILLed, waitReplicas 0: ${JSON.stringify(counts)}`)
    expect(counts.acknowledged).toBeGreaterThan(500)
    // Reported as measured; the README's fault table holds the figures.
    expect(counts.lost).toBeGreaterThan(0)
    expect(counts.duplicated).toBe(0)
  })

  test('with waitReplicas: 1: pushes the replica did not confirm reject, and nothing acknowledged is lost', async () => {
    const counts = await run(1)
    console.log(`replica behind, master SIGKILLed, waitReplicas 1: ${JSON.stringify(counts)}`)
    // Only the second before the hold acknowledges (each push waits for the replica): about 1,100
    // on a quiet machine, 620-660 with two busy loops beside it, 467 once in CI. The bound only
    // shows the pushes ran; what the test is about is the loss and the rejections.
    expect(counts.acknowledged).toBeGreaterThan(100)
    expect(counts.rejected).toBeGreaterThan(0)
    expect(counts.rejectedCodes).toEqual(['ERR_REDIS_UNAVAILABLE'])
    expect(counts.lost).toBe(0)
  })
})

describe('Cluster', () => {
  test('every dead letter operation, stats and the CLI on a three-master cluster', async () => {
    const cluster = await s.startCluster(3, 1)
    const prefix = h.unique('cdlq')
    const dlq = h.unique('cdlq-hash')
    const config = { redisUrl: cluster.url, cluster: true, keyPrefix: prefix, shards: 3, pollIntervalMs: 50 }
    const retry = new KafkaRetry(config)
    const published = new Map()
    let failing = true
    try {
      await retry.queueListener({
        produce: async (topic, key, value) => {
          const { n } = JSON.parse(value)
          published.set(n, (published.get(n) || 0) + 1)
        },
      }, dlq)
      // 30 exhausted messages: dead-lettered at once.
      await Promise.all(Array.from({ length: 30 }, (_, n) =>
        retry.pushToQueue('t', { event: 'e', value: JSON.stringify({ n }) }, { delay: '0', maxRetry: '1', retryCount: '1' })))
      expect(await h.waitFor(async () => (await retry.stats(dlq)).deadLettered === 30, 10000)).toBeTruthy()
      failing = false
      const first = await retry.deadLetters(dlq, { limit: 12 })
      expect(first.items).toHaveLength(12)
      const all = [...first.items]
      let cursor = first.cursor
      while (cursor) {
        const page = await retry.deadLetters(dlq, { limit: 12, cursor })
        all.push(...page.items)
        cursor = page.cursor
      }
      expect(new Set(all.map((i) => i.id)).size).toBe(30)
      expect(await retry.removeDeadLetter(dlq, all[0].id)).toBe(true)
      expect(await retry.removeDeadLetter(dlq, all[0].id)).toBe(false)
      expect(await retry.requeueDeadLetter(dlq, all[1].id)).toBe(true)
      expect(await retry.requeueAllDeadLetters(dlq)).toBe(28)
      expect(await h.waitFor(() => published.size === 29, 10000)).toBe(true)
      expect([...published.values()].every((c) => c === 1)).toBe(true)
      expect(await retry.stats(dlq)).toMatchObject({ deadLettered: 0, scheduled: 0, inflight: 0 })

      // The CLI on the same cluster: schedule some, dead-letter some, list, requeue, count.
      const paused = new KafkaRetry({ ...config })
      await Promise.all(Array.from({ length: 9 }, (_, n) =>
        paused.pushToQueue('t', { event: 'e', value: JSON.stringify({ n: 100 + n }) }, { delay: '1' })))
      await paused.close()
      for (let n = 0; n < 5; n++) await retry.pushToDlq(dlq, { topic: 't', event: 'e', value: JSON.stringify({ n: 200 + n }) })
      const cli = (...args) => runCli([...args, '--redis', cluster.url, '--cluster', '--prefix', prefix, '--shards', '3'])
      const stats = await cli('stats', '--dlq', dlq, '--json')
      expect(stats.code).toBe(0)
      expect(JSON.parse(stats.stdout)).toMatchObject({ scheduled: 9, deadLettered: 5 })
      const list = await cli('dlq', 'list', dlq, '--all', '--json', '--limit', '2')
      expect(list.code).toBe(0)
      expect(JSON.parse(list.stdout).items).toHaveLength(5)
      const requeue = await cli('dlq', 'requeue', dlq, '--all', '--json')
      expect(requeue.code).toBe(0)
      expect(JSON.parse(requeue.stdout).requeued).toBe(5)
      expect(await h.waitFor(() => published.size === 34, 10000)).toBe(true)
    } finally {
      expect(failing).toBe(false)
      await retry.close()
    }
  }, 90000)

  test('a requeue run twice at once, or again after a crash between schedule and removal, schedules each dead letter once', async () => {
    // On a cluster the dead letter hash and the schedule are in different slots: a requeue
    // schedules, then removes. Both runs must end with one scheduled message per dead letter.
    const cluster = await s.startCluster(3, 0)
    const config = { redisUrl: cluster.url, cluster: true, keyPrefix: h.unique('creq'), shards: 3, pollIntervalMs: 50 }
    const dlq = h.unique('creq-hash')
    const a = new KafkaRetry(config)
    const b = new KafkaRetry(config)
    const raw = new Redis.Cluster(cluster.ports.map((port) => ({ host: '127.0.0.1', port })))
    const published = new Map()
    try {
      const ids = []
      for (let n = 0; n < 20; n++) ids.push(await a.pushToDlq(dlq, { topic: 't', event: 'e', value: JSON.stringify({ n }) }))

      // Two operators requeue the same ten at once: each is moved by exactly one of them.
      const raced = await Promise.all(ids.slice(0, 10).map((id) =>
        Promise.all([a.requeueDeadLetter(dlq, id), b.requeueDeadLetter(dlq, id)])))
      expect(raced.map(([x, y]) => Number(x) + Number(y))).toEqual(Array(10).fill(1))
      expect(await a.stats(dlq)).toMatchObject({ scheduled: 10, deadLettered: 10 })

      // The other ten are requeued, then written back as a crash before the removal leaves them
      // (record and index entry); running the requeue again finishes them and stores nothing more.
      const left = []
      for (const id of ids.slice(10)) {
        left.push({ id, record: await raw.hget(dlq, id), score: await raw.zscore(`${dlq}:index`, id) })
        expect(await a.requeueDeadLetter(dlq, id)).toBe(true)
      }
      const restore = async ({ id, record, score }) => {
        await raw.hset(dlq, id, record)
        await raw.zadd(`${dlq}:index`, score, id)
      }
      for (const item of left) await restore(item)
      expect(await a.stats(dlq)).toMatchObject({ scheduled: 20, deadLettered: 10 })
      expect(await b.requeueAllDeadLetters(dlq)).toBe(10)
      expect(await a.stats(dlq)).toMatchObject({ scheduled: 20, deadLettered: 0 })

      await a.queueListener(countingProducer(published), dlq)
      expect(await h.waitFor(() => published.size === 20, 10000)).toBe(true)
      // Run again after the publish: the seen window still knows it.
      await restore(left[0])
      expect(await b.requeueDeadLetter(dlq, left[0].id)).toBe(true)
      await h.sleep(1000)
      expect([...published.values()]).toEqual(Array(20).fill(1))
      expect(await a.stats(dlq)).toMatchObject({ scheduled: 0, inflight: 0, deadLettered: 0 })
    } finally {
      raw.disconnect()
      await Promise.all([a.close(), b.close()])
    }
  }, 90000)

  test('TLS and a password on every node: push, listen, dead letters, stats', async () => {
    const certs = s.makeCerts()
    const password = 'cluster-pa55'
    const cluster = await s.startCluster(3, 0, { tls: certs, password })
    const dlq = h.unique('ctls-dlq')
    const published = new Map()
    const retry = new KafkaRetry({
      redisUrl: cluster.url, cluster: true, password, tls: { ca: certs.ca }, keyPrefix: h.unique('ctls'), shards: 3, pollIntervalMs: 50,
    })
    try {
      await retry.queueListener(countingProducer(published), dlq)
      await Promise.all(Array.from({ length: 30 }, (_, n) =>
        retry.pushToQueue('t', { event: 'e', value: JSON.stringify({ n }) }, { delay: '0', maxRetry: n < 10 ? '0' : '3' })))
      expect(await h.waitFor(() => published.size === 20, 10000)).toBe(true)
      expect(await h.waitFor(async () => (await retry.stats(dlq)).deadLettered === 10, 10000)).toBeTruthy()
      expect((await retry.deadLetters(dlq, { limit: 100 })).items).toHaveLength(10)
      expect(await retry.requeueAllDeadLetters(dlq)).toBe(10)
      expect(await h.waitFor(() => published.size === 30, 10000)).toBe(true)
      const wrong = new KafkaRetry({ redisUrl: cluster.url, cluster: true, password: 'nope', tls: { ca: certs.ca }, redisTimeoutMs: 2000 })
      const err = await wrong.stats().catch((e) => e)
      await wrong.close()
      expect(err.code).toBe('ERR_REDIS_UNAVAILABLE')
      expect(err.message).toMatch(/authentication failed/)
      expect(err.message).not.toContain(password)
    } finally {
      await retry.close()
    }
  }, 60000)

  async function killDuringPushes(waitReplicas) {
    const cluster = await s.startCluster(3, 1)
    const published = new Map()
    const config = {
      redisUrl: cluster.url, cluster: true, keyPrefix: h.unique('ckill'), shards: 6,
      pollIntervalMs: 100, leaseMs: 2000, redisTimeoutMs: 1000, waitReplicas, waitTimeoutMs: 500,
    }
    const listener = new KafkaRetry(config)
    const pusher = new KafkaRetry(config)
    try {
      await listener.queueListener(countingProducer(published), h.unique('dlq'))
      // Kill the master holding shard 0 (the first seed is spared, so the cluster is found again).
      const victim = cluster.masters().find((n) => n.port !== cluster.ports[0])
      const run = await pushThrough({ pusher, durationMs: 7000, atMs: 1500, during: () => victim.kill('SIGKILL') })
      const counts = await settle({ published, ...run })
      return counts
    } finally {
      await Promise.all([listener.close(), pusher.close()])
    }
  }

  test('a master SIGKILLed during pushes, without waitReplicas', async () => {
    const counts = await killDuringPushes(0)
    console.log(`cluster SIGKILL, waitReplicas 0: ${JSON.stringify(counts)}`)
    expect(counts.acknowledged).toBeGreaterThan(500)
    expect(counts.rejectedCodes.every((code) => code === 'ERR_REDIS_UNAVAILABLE')).toBe(true)
    expect(counts.lost).toBeLessThan(counts.acknowledged / 10)
  }, 90000)

  test('a master SIGKILLed during pushes, with waitReplicas: 1: nothing acknowledged is lost', async () => {
    const counts = await killDuringPushes(1)
    console.log(`cluster SIGKILL, waitReplicas 1: ${JSON.stringify(counts)}`)
    expect(counts.acknowledged).toBeGreaterThan(500)
    expect(counts.rejectedCodes.every((code) => code === 'ERR_REDIS_UNAVAILABLE')).toBe(true)
    expect(counts.lost).toBe(0)
  }, 90000)
})
