// The dashboard's GET /prometheus: the schedules' metrics as Prometheus text for a scrape, read
// from real Redis, behind the dashboard's token as a bearer token (never a cookie or `?token=`).
// Without a browser: a scrape is plain HTTP. The alert rules against a real Prometheus scraping
// this route are in __test__/metrics/prometheus-alerts.test.js.
const path = require('path')
const http = require('http')
const { spawn } = require('child_process')
const { KafkaRetry } = require('../..')
const { handler } = require('../../dashboard')
const { METRICS, REDIS_UP, parseMetrics } = require('../../prometheus')
const h = require('../helpers')
const servers = require('../helpers/servers')

const BIN = path.join(__dirname, '..', '..', 'bin', 'kafka-redis-retry.js')
const TOKEN = 'scrape-token-0123456789'
const children = h.killChildrenAfterEach()
const instances = []
const stops = []
const prefixes = []

beforeAll(() => h.requireServers())

afterEach(async () => {
  await Promise.all(stops.splice(0).map((stop) => stop()))
})

afterAll(async () => {
  await Promise.all(instances.map((r) => r.close().catch(() => {})))
  const redis = h.redisClient()
  for (const prefix of prefixes) {
    const keys = await redis.keys(`*${prefix}*`)
    if (keys.length) await redis.del(...keys)
  }
  await redis.quit()
  await servers.stopAll()
})

function instance(label, config = {}) {
  const prefix = h.unique(`scrape-${label}`)
  prefixes.push(prefix)
  const retry = new KafkaRetry({ keyPrefix: prefix, ...config })
  instances.push(retry)
  return { prefix, retry }
}

async function listen(handle) {
  const server = http.createServer(handle)
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  stops.push(() => new Promise((r) => server.close(r)))
  return `http://127.0.0.1:${server.address().port}`
}

/** Dead letters in `dlq` as a listener makes them: pushed exhausted, then dead-lettered. */
async function deadLetters(prefix, retry, dlq, topic, n) {
  for (let i = 0; i < n; i += 1) {
    await retry.pushToQueue(topic, { event: `k${i}`, value: '{}' }, { delay: '0', maxRetry: '1', retryCount: '2' })
  }
  const listener = new KafkaRetry({ keyPrefix: prefix })
  await listener.queueListener({ produce: async () => {} }, dlq)
  const done = await h.waitFor(async () => (await retry.stats(dlq)).deadLettered >= n, 20000)
  await listener.close()
  expect(done).toBe(true)
}

const value = (text, name, labels) => {
  const found = parseMetrics(text).filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s[k] === v))
  return found.length === 1 ? found[0].value : found.length === 0 ? undefined : NaN
}

test('GET /prometheus with the token as a bearer: 200, Prometheus text of every metric for the schedule, dead letters of all its queues', async () => {
  const { prefix, retry } = instance('ok')
  const [dlqA, dlqB] = [`${prefix}:dlq-a`, `${prefix}:dlq-b`]
  await deadLetters(prefix, retry, dlqA, 'orders', 2)
  await deadLetters(prefix, retry, dlqB, 'payments', 3)
  for (let i = 0; i < 4; i += 1) await retry.pushToQueue('orders', { event: `w${i}`, value: '{}' }, { delay: '60' })
  const url = await listen(handler({ retry, dlqName: [dlqA, dlqB], token: TOKEN, basePath: '/ops' }))

  const res = await fetch(`${url}/ops/prometheus`, { headers: { authorization: `Bearer ${TOKEN}` } })
  expect(res.status).toBe(200)
  expect(res.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8')
  expect(res.headers.get('cache-control')).toBe('no-store')
  expect(res.headers.get('set-cookie')).toBeNull()
  const text = await res.text()
  for (const [name, [type]] of Object.entries(METRICS)) expect(text).toContain(`# TYPE ${name} ${type}\n`)
  expect(text).toContain(`# TYPE ${REDIS_UP} gauge\n`)
  expect(value(text, REDIS_UP, { prefix })).toBe(1)
  expect(value(text, 'kafka_retry_scheduled', { prefix })).toBe(4)
  expect(value(text, 'kafka_retry_topic_scheduled', { prefix, topic: 'orders' })).toBe(4)
  // Both queues of the schedule, summed: one schedule, one sample.
  expect(value(text, 'kafka_retry_dead_letters', { prefix })).toBe(5)
  expect(value(text, 'kafka_retry_topic_dead_letters', { prefix, topic: 'payments' })).toBe(3)

  const head = await fetch(`${url}/ops/prometheus`, { method: 'HEAD', headers: { authorization: `Bearer ${TOKEN}` } })
  expect(head.status).toBe(200)
  expect(await head.text()).toBe('')
  const post = await fetch(`${url}/ops/prometheus`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` } })
  expect(post.status).toBe(405)
  expect(post.headers.get('allow')).toBe('GET, HEAD')
})

test('without the bearer token: 401, also with ?token= or the browser cookie (no login redirect, no cookie); metricsWithoutToken opens only this route', async () => {
  const { prefix, retry } = instance('auth')
  const url = await listen(handler({ retry, token: TOKEN }))
  const none = await fetch(`${url}/prometheus`)
  expect(none.status).toBe(401)
  expect(none.headers.get('www-authenticate')).toMatch(/^Bearer /)
  expect(await none.text()).not.toContain('kafka_retry_')
  expect((await fetch(`${url}/prometheus`, { headers: { authorization: 'Bearer wrong-token-000000' } })).status).toBe(401)
  const query = await fetch(`${url}/prometheus?token=${TOKEN}`, { redirect: 'manual' })
  expect(query.status).toBe(401)
  expect(query.headers.get('set-cookie')).toBeNull()
  // A browser logged into the pages: its cookie opens the pages, not the scrape.
  const login = await fetch(`${url}/?token=${TOKEN}`, { redirect: 'manual' })
  const cookie = login.headers.get('set-cookie').split(';')[0]
  expect((await fetch(`${url}/`, { headers: { cookie } })).status).toBe(200)
  expect((await fetch(`${url}/prometheus`, { headers: { cookie } })).status).toBe(401)

  const open = await listen(handler({ retry, token: TOKEN, metricsWithoutToken: true }))
  const scraped = await fetch(`${open}/prometheus`)
  expect(scraped.status).toBe(200)
  expect(value(await scraped.text(), REDIS_UP, { prefix })).toBe(1)
  expect((await fetch(`${open}/`)).status).toBe(401)
})

test('Redis down: the scrape still answers 200 in time, kafka_retry_redis_up 0 and no other sample of the schedule', async () => {
  const redis = await servers.startServer([])
  const { prefix, retry } = instance('down', { redisUrl: `redis://127.0.0.1:${redis.port}`, redisTimeoutMs: 500 })
  await retry.pushToQueue('orders', { event: 'k', value: '{}' }, { delay: '60' })
  const url = await listen(handler({ retry, token: TOKEN }))
  const scrape = async () => {
    const res = await fetch(`${url}/prometheus`, { headers: { authorization: `Bearer ${TOKEN}` } })
    return { status: res.status, text: await res.text() }
  }
  const up = await scrape()
  expect(up.status).toBe(200)
  expect(value(up.text, REDIS_UP, { prefix })).toBe(1)
  expect(value(up.text, 'kafka_retry_scheduled', { prefix })).toBe(1)

  redis.kill('SIGKILL')
  await h.exited(redis, 5000)
  const started = Date.now()
  const down = await scrape()
  expect(Date.now() - started).toBeLessThan(5000)
  expect(down.status).toBe(200)
  expect(value(down.text, REDIS_UP, { prefix })).toBe(0)
  expect(parseMetrics(down.text).filter((s) => s.prefix === prefix && s.name !== REDIS_UP)).toEqual([])
})

test('the CLI: `dashboard` with a token serves /prometheus to the bearer only; --metrics-without-token to anyone', async () => {
  const { prefix, retry } = instance('cli')
  await retry.pushToQueue('orders', { event: 'k', value: '{}' }, { delay: '60' })
  const start = async (args) => {
    const port = await h.freePort()
    const child = spawn(process.execPath, [BIN, 'dashboard', '--port', String(port), '--prefix', prefix, ...args], {
      env: { ...process.env, REDIS_URL: h.REDIS_URL, DASHBOARD_TOKEN: TOKEN },
    })
    children.add(child)
    let stdout = ''
    child.stdout.on('data', (d) => (stdout += d))
    expect(await h.waitFor(() => stdout.includes('http://'), 15000)).toBe(true)
    return `http://127.0.0.1:${port}`
  }
  const guarded = await start([])
  expect((await fetch(`${guarded}/prometheus`)).status).toBe(401)
  const res = await fetch(`${guarded}/prometheus`, { headers: { authorization: `Bearer ${TOKEN}` } })
  expect(res.status).toBe(200)
  expect(value(await res.text(), 'kafka_retry_scheduled', { prefix })).toBe(1)

  const open = await start(['--metrics-without-token'])
  const scraped = await fetch(`${open}/prometheus`)
  expect(scraped.status).toBe(200)
  expect(value(await scraped.text(), REDIS_UP, { prefix })).toBe(1)
  expect((await fetch(`${open}/`)).status).toBe(401)
})
