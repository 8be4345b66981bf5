// The smaller defects of issue 18, each with the test that would have caught it: passwords in
// every URL form are hidden (the addon's errors and the CLI), headers() never throws and keeps
// only what pushToQueue accepts, read-only calls write nothing, prometheus.js counts each
// schedule once. Real Redis.
const path = require('path')
const { execFile } = require('child_process')
const { KafkaRetry } = require('../..')
const h = require('../helpers')
const s = require('../helpers/servers')

const BIN = path.join(__dirname, '..', '..', 'bin', 'kafka-redis-retry.js')

beforeAll(h.requireServers)
afterAll(() => s.stopAll())

/** Runs the CLI; resolves to { code, stdout, stderr } (never rejects on a non-zero exit). */
function runCli(args, env = {}) {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, timeout: 20000, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number') return reject(err)
      resolve({ code: err ? err.code : 0, stdout, stderr })
    })
  })
}

describe('passwords are never shown', () => {
  const SECRET = 'p@ss'
  const forms = (port) => [
    `redis://user:${SECRET}@127.0.0.1:${port}`,
    `redis://:${SECRET}@127.0.0.1:${port}/0`,
    `redis://127.0.0.1:${port}/0?password=${encodeURIComponent('s3cret')}`,
    `redis+unix:///tmp/${h.unique('nosock')}.sock?pass=s3cret`,
  ]
  const leaks = (text) => ['p@ss', 'ss@', 'user:p', 's3cret'].filter((part) => text.includes(part))

  test('in the error of a failed push, whatever the URL form', async () => {
    const port = await h.freePort() // nothing listens
    for (const redisUrl of forms(port)) {
      const retry = new KafkaRetry({ redisUrl, keyPrefix: h.unique('redact'), redisTimeoutMs: 500 })
      try {
        const err = await retry.pushToQueue('t', { event: 'e', value: '{}' }, { delay: '1' }).catch((e) => e)
        expect(err.code).toBe('ERR_REDIS_UNAVAILABLE')
        expect(err.message).toMatch(/127\.0\.0\.1|\.sock/) // it does say where
        expect({ redisUrl, leaks: leaks(`${err.message} ${err.stack}`) }).toEqual({ redisUrl, leaks: [] })
      } finally {
        await retry.close()
      }
    }
  })

  test('by the CLI, failing or not', async () => {
    const port = await h.freePort()
    for (const url of forms(port)) {
      const r = await runCli(['stats', '--prefix', h.unique('redact')], { REDIS_URL: url })
      expect(r.code).not.toBe(0)
      expect({ url, leaks: leaks(r.stdout + r.stderr) }).toEqual({ url, leaks: [] })
    }
    // A server with that password: the CLI prints where it looked, without the password.
    const server = await s.startServer(['--requirepass', SECRET])
    const r = await runCli(['stats', '--prefix', h.unique('redact')], { REDIS_URL: `redis://default:${SECRET}@127.0.0.1:${server.port}` })
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' })
    expect(r.stdout).toContain(`at redis://***@127.0.0.1:${server.port}`)
    expect(leaks(r.stdout)).toEqual([])
  })
})

describe('KafkaRetry.headers()', () => {
  test('never throws on a header name with NUL, and keeps only what pushToQueue accepts', async () => {
    const consumed = {
      retryCount: Buffer.from('1'),
      'bad\0name': Buffer.from('x'),
      traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
      ['n'.repeat(256)]: 'too long a name',
      many: Array.from({ length: 60 }, (_, i) => Buffer.from(String(i))),
      overflow: Array.from({ length: 10 }, () => 'x'), // 1 + 60 + 10 values: past 64
      big: Buffer.alloc(70 * 1024), // past 64 KiB alone
      after: 'still fits',
    }
    const kept = KafkaRetry.headers(consumed, true)
    expect(Object.keys(kept).sort()).toEqual(['after', 'delay', 'many', 'maxRetry', 'retryCount', 'traceparent'])
    expect(kept.retryCount).toBe('1')
    expect(kept.many).toHaveLength(60)
    // What it returned can be pushed: the retry keeps its headers.
    const retry = new KafkaRetry({ keyPrefix: h.unique('headers') })
    try {
      await retry.pushToQueue('t', { event: 'e', value: '{}' }, kept)
      expect((await retry.stats()).scheduled).toBe(1)
    } finally {
      await retry.close()
    }
  })
})

describe('read-only calls write nothing', () => {
  test('stats(), metrics() and the CLI stats on an unused schedule leave no shard record; a service with shards: 4 starts after them', async () => {
    const keyPrefix = h.unique('readonly')
    const redis = h.redisClient()
    const reader = new KafkaRetry({ keyPrefix })
    const service = new KafkaRetry({ keyPrefix, shards: 4 })
    try {
      expect((await reader.stats()).scheduled).toBe(0)
      expect(await reader.metrics()).toContain('kafka_retry_scheduled')
      const cli = await runCli(['stats', '--prefix', keyPrefix, '--json'], { REDIS_URL: h.REDIS_URL })
      expect(cli.code).toBe(0)
      expect(await redis.keys(`{${keyPrefix}}*`)).toEqual([])
      await service.pushToQueue('t', { event: 'e', value: '{}' }, { delay: '1' })
      expect(await redis.get(`{${keyPrefix}}:shards`)).toBe('4')
      // Now recorded: a reader with another shard count is told.
      const err = await reader.stats().catch((e) => e)
      expect(err.code).toBe('ERR_INVALID_ARG')
      expect(err.message).toMatch(/created with shards: 4/)
    } finally {
      await Promise.all([reader.close(), service.close()])
      redis.disconnect()
    }
  })
})

describe('prometheus.js', () => {
  test('two sources on one keyPrefix with different dlqNames: each schedule counted once, dead letters of both', async () => {
    const { Registry } = require('prom-client')
    const { registerMetrics, parseMetrics } = require('../../prometheus')
    const keyPrefix = h.unique('prom-twice')
    const [dlqA, dlqB] = [h.unique('dlq-a'), h.unique('dlq-b')]
    const a = new KafkaRetry({ keyPrefix, pollIntervalMs: 100 })
    const b = new KafkaRetry({ keyPrefix, pollIntervalMs: 100 })
    try {
      const published = []
      await a.queueListener({ produce: async (topic, key) => published.push(key) }, dlqA)
      for (let n = 0; n < 3; n += 1) await a.pushToQueue('t', { event: `e${n}`, value: '{}' }, { delay: '0' })
      await a.pushToQueue('t', { event: 'later', value: '{}' }, { delay: '60' })
      await h.waitFor(() => published.length === 3, 10000)
      await a.pushToDlq(dlqA, { topic: 't', event: 'x', value: '{}' })
      await b.pushToDlq(dlqB, { topic: 't', event: 'y', value: '{}' })
      await b.pushToDlq(dlqB, { topic: 't', event: 'z', value: '{}' })
      const registry = new Registry()
      registerMetrics(registry, [{ retry: a, dlqName: dlqA }, { retry: b, dlqName: dlqB }])
      const samples = parseMetrics(await registry.metrics()).filter((s) => s.prefix === keyPrefix)
      const value = (name) => samples.filter((s) => s.name === name).map((s) => s.value)
      expect(value('kafka_retry_published_total')).toEqual([3])
      expect(value('kafka_retry_scheduled')).toEqual([1])
      expect(value('kafka_retry_dead_letters')).toEqual([3])
      // Per topic too: the schedule's gauges once, the dead letters of both hashes.
      expect(samples.filter((s) => s.name === 'kafka_retry_topic_scheduled')).toEqual([{ name: 'kafka_retry_topic_scheduled', prefix: keyPrefix, topic: 't', value: 1 }])
      expect(value('kafka_retry_topic_dead_letters')).toEqual([3])
    } finally {
      await Promise.all([a.close(), b.close()])
    }
  })
})
