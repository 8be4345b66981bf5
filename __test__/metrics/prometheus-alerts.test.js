// The alert rules of observability/ in a real Prometheus: Debian's prometheus server loads
// observability/alerts.yml (its `for:` durations cut to seconds, the expressions as shipped) and
// scrapes the package's own endpoint every second: the dashboard's GET /prometheus (its handler on
// an http server, as a service mounts it, with a token that the scrape config sends as a bearer
// token, as observability/README.md says). Each test makes a dashboard for its schedule and
// puts it behind the one address Prometheus scrapes; it makes an alert's cause happen and reads
// Prometheus's own /api/v1/alerts until it is firing, having seen it not firing before.
// PROMETHEUS_BIN (scripts/test.sh sets it: `bash scripts/services.sh prometheus-bin` installs
// Debian's prometheus) or `prometheus` on PATH; without it the suite fails and says how to get it.
const fs = require('fs')
const http = require('http')
const path = require('path')
const { spawn, execFileSync } = require('child_process')
const { KafkaRetry } = require('../..')
const dashboard = require('../../dashboard')
const h = require('../helpers')
const servers = require('../helpers/servers')


const ROOT = path.join(__dirname, '..', '..')
const SCRAPE_MS = 1000
/** The dashboard's token: Prometheus sends it as `Authorization: Bearer` (scrape config `authorization`). */
const TOKEN = 'prometheus-scrape-token-0123'

function prometheusBin() {
  if (process.env.PROMETHEUS_BIN) return process.env.PROMETHEUS_BIN
  try {
    return execFileSync('sh', ['-c', 'command -v prometheus'], { encoding: 'utf8' }).trim()
  } catch {
    throw new Error("prometheus not found: run `bash scripts/services.sh prometheus-bin` (installs Debian's prometheus) or set PROMETHEUS_BIN")
  }
}

const open = []
let endpoint // the http server the dashboard handler answers on
let endpointUrl
let current = null // the dashboard handler of the running test
let prometheus // { proc, url }

/** Shipped rules with `for:` in seconds: the expressions are what is tested, not the waits. */
function fastRules() {
  return fs.readFileSync(path.join(ROOT, 'observability', 'alerts.yml'), 'utf8').replace(/^(\s+for:) \S+$/gm, '$1 2s')
}

beforeAll(async () => {
  const bin = prometheusBin()
  endpoint = http.createServer((req, res) => {
    // Between tests nothing is served: the scrape fails (up 0), which no test reads.
    if (!current) return res.writeHead(503).end()
    current(req, res)
  })
  await new Promise((resolve) => endpoint.listen(0, '127.0.0.1', resolve))
  endpointUrl = `http://127.0.0.1:${endpoint.address().port}`
  const dir = servers.tempDir('prometheus')
  fs.writeFileSync(path.join(dir, 'alerts.yml'), fastRules())
  // The scrape must outlast an unreachable Redis's redisTimeoutMs (500 below).
  fs.writeFileSync(path.join(dir, 'prometheus.yml'), [
    'global:',
    `  scrape_interval: ${SCRAPE_MS}ms`,
    `  scrape_timeout: ${SCRAPE_MS}ms`,
    '  evaluation_interval: 1s',
    'rule_files: [alerts.yml]',
    'scrape_configs:',
    '  - job_name: kafka-redis-retry',
    '    metrics_path: /prometheus',
    `    authorization: { type: Bearer, credentials: ${TOKEN} }`,
    `    static_configs: [{ targets: ['127.0.0.1:${endpoint.address().port}'] }]`,
    '',
  ].join('\n'))
  const port = await h.freePort()
  const proc = spawn(bin, [
    `--config.file=${path.join(dir, 'prometheus.yml')}`,
    `--storage.tsdb.path=${path.join(dir, 'data')}`,
    `--web.listen-address=127.0.0.1:${port}`,
    '--log.level=warn',
  ], { stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  proc.stderr.on('data', (d) => (stderr += d))
  prometheus = { proc, url: `http://127.0.0.1:${port}` }
  const ready = await h.waitFor(async () => {
    try {
      return (await fetch(`${prometheus.url}/-/ready`)).ok
    } catch {
      return false
    }
  }, 30000, 200)
  if (!ready) throw new Error(`prometheus did not get ready: ${stderr}`)
})

afterAll(async () => {
  await Promise.all(open.splice(0).map((retry) => retry.close().catch(() => {})))
  if (prometheus) {
    prometheus.proc.kill('SIGTERM')
    await h.exited(prometheus.proc, 10000)
  }
  if (endpoint) await new Promise((resolve) => endpoint.close(resolve))
  await servers.stopAll()
})

/**
 * Serves the dashboard of `source` ({ retry, dlqName }) at the scraped address, as a service
 * mounts it: `handler(options)` on its http server, with a token. Returns a function that stops it.
 */
function serveDashboard(source) {
  current = dashboard.handler({ ...source, token: TOKEN })
  return () => {
    current = null
  }
}

async function api(pathAndQuery) {
  const res = await fetch(`${prometheus.url}${pathAndQuery}`)
  const body = await res.json()
  if (body.status !== 'success') throw new Error(`${pathAndQuery}: ${JSON.stringify(body)}`)
  return body.data
}

/** The value Prometheus last scraped for `query` (one series), or null. */
async function scraped(query) {
  const data = await api(`/api/v1/query?query=${encodeURIComponent(query)}`)
  return data.result.length ? Number(data.result[0].value[1]) : null
}

/** Prometheus's alerts named `name` whose labels include `labels`. */
async function alerts(name, labels) {
  const { alerts: all } = await api('/api/v1/alerts')
  return all.filter((a) => a.labels.alertname === name && Object.entries(labels).every(([k, v]) => a.labels[k] === v))
}

async function waitFiring(name, labels, timeoutMs = 45000) {
  let seen = []
  const ok = await h.waitFor(async () => {
    seen = await alerts(name, labels)
    return seen.some((a) => a.state === 'firing')
  }, timeoutMs, 250)
  if (!ok) throw new Error(`${name} ${JSON.stringify(labels)} not firing after ${timeoutMs} ms: ${JSON.stringify(seen)}`)
  return seen.find((a) => a.state === 'firing')
}

test('Redis unreachable: the scrape keeps succeeding, says kafka_retry_redis_up 0, and KafkaRetryRedisUnreachable fires', async () => {
  const redis = await servers.startServer([])
  const prefix = h.unique('alert-redis')
  const retry = new KafkaRetry({ redisUrl: `redis://127.0.0.1:${redis.port}`, keyPrefix: prefix, redisTimeoutMs: 500 })
  open.push(retry)
  await retry.pushToQueue('t', { event: 'e', value: '{}' }, { delay: '60' })
  const remove = serveDashboard({ retry })
  try {
    // The route needs the token: Prometheus's scrapes below succeed only through its bearer.
    expect((await fetch(`${endpointUrl}/prometheus`)).status).toBe(401)
    // Up, scraped, and not alerting (a few evaluations, longer than the shortened `for:`).
    expect(await h.waitFor(async () => (await scraped(`kafka_retry_redis_up{prefix="${prefix}"}`)) === 1, 20000, 200)).toBe(true)
    expect(await scraped(`kafka_retry_scheduled{prefix="${prefix}"}`)).toBe(1)
    await new Promise((resolve) => setTimeout(resolve, 3000))
    expect(await alerts('KafkaRetryRedisUnreachable', { prefix })).toEqual([])

    redis.kill('SIGKILL')
    const alert = await waitFiring('KafkaRetryRedisUnreachable', { prefix })
    expect(alert.labels).toMatchObject({ severity: 'critical', job: 'kafka-redis-retry' })
    expect(alert.annotations.summary).toBe(`kafka-redis-retry cannot reach Redis (schedule ${prefix}, ${alert.labels.instance})`)
    // The scrape itself still succeeds: Prometheus's `up` says the endpoint answered.
    expect(await scraped('up{job="kafka-redis-retry"}')).toBe(1)
    expect(await scraped(`kafka_retry_redis_up{prefix="${prefix}"}`)).toBe(0)
  } finally {
    remove()
  }
})

test('dead letters rising: 3 dead letters stay quiet, 15 more make KafkaRetryDeadLettersRising fire for the schedule', async () => {
  const prefix = h.unique('alert-dlq')
  const dlq = `${prefix}-dlq`
  const retry = new KafkaRetry({ keyPrefix: prefix, pollIntervalMs: 100 })
  open.push(retry)
  await retry.queueListener({ produce: async () => {} }, dlq)
  const remove = serveDashboard({ retry, dlqName: dlq })
  try {
    // Prometheus has seen the schedule with no dead letters (twice: increase() needs two samples).
    const samples = async () => (await api(`/api/v1/query?query=${encodeURIComponent(`count_over_time(kafka_retry_dead_letters{prefix="${prefix}"}[1m])`)}`)).result
    expect(await h.waitFor(async () => { const r = await samples(); return r.length > 0 && Number(r[0].value[1]) >= 2 }, 20000, 200)).toBe(true)
    expect(await scraped(`kafka_retry_dead_letters{prefix="${prefix}"}`)).toBe(0)

    // A few dead letters stay under the threshold (more than 10 in 10 minutes).
    const deadLetter = (n) => retry.pushToQueue('orders', { event: `e${n}`, value: { n } }, { delay: '0', retryCount: '3', maxRetry: '3' })
    for (let n = 0; n < 3; n += 1) await deadLetter(n)
    await h.waitFor(async () => (await scraped(`kafka_retry_dead_letters{prefix="${prefix}"}`)) === 3, 20000, 200)
    await new Promise((resolve) => setTimeout(resolve, 4000))
    expect(await alerts('KafkaRetryDeadLettersRising', { prefix })).toEqual([])

    for (let n = 3; n < 18; n += 1) await deadLetter(n)
    await h.waitFor(async () => (await retry.stats(dlq)).deadLettered === 18, 20000)
    const alert = await waitFiring('KafkaRetryDeadLettersRising', { prefix })
    expect(alert.labels).toMatchObject({ severity: 'warning', prefix })
    expect(alert.annotations.description).toMatch(/^About \S+ messages were dead-lettered in the last 10 minutes/)
    expect(Number(alert.value)).toBeGreaterThan(10)
  } finally {
    remove()
  }
})

test('a breaker opens: KafkaRetryBreakerOpen fires for its topic, and stops once resume(topic) closes it', async () => {
  const prefix = h.unique('alert-breaker')
  const dlq = `${prefix}-dlq`
  const retry = new KafkaRetry({
    keyPrefix: prefix,
    pollIntervalMs: 100,
    breaker: { minFailures: 5, failureRatio: 0.5, windowMs: 10000, probeIntervalMs: 60000, probeCount: 1 },
  })
  open.push(retry)
  // The downstream is down: every retry the listener publishes comes straight back, one attempt later.
  await retry.queueListener({
    produce: async (topic, key, value, headers) => {
      const retryCount = Number(headers.retryCount) + 1
      setTimeout(() => retry.pushToQueue(topic, { event: key, value: JSON.parse(value) }, { delay: '1', retryCount: String(retryCount), maxRetry: '10' }).catch(() => {}), 10)
    },
  }, dlq)
  const remove = serveDashboard({ retry, dlqName: dlq })
  try {
    // Scraped and evaluated with the breaker closed first: not firing. (Once retries come back
    // failed it opens within a second or two, faster than a scrape and an evaluation.)
    expect(await h.waitFor(async () => (await scraped(`kafka_retry_redis_up{prefix="${prefix}"}`)) === 1, 20000, 200)).toBe(true)
    await h.sleep(2500)
    expect(await alerts('KafkaRetryBreakerOpen', { prefix })).toEqual([])
    for (let n = 0; n < 20; n += 1) await retry.pushToQueue('invoices', { event: `e${n}`, value: { n } }, { delay: '0', retryCount: '0', maxRetry: '10' })
    await h.waitFor(async () => (await retry.stats(dlq)).topics.invoices?.breaker === 'open', 30000, 200)
    const alert = await waitFiring('KafkaRetryBreakerOpen', { prefix, topic: 'invoices' })
    expect(alert.labels).toMatchObject({ severity: 'warning', prefix, topic: 'invoices' })

    await retry.resume('invoices')
    expect(await h.waitFor(async () => (await alerts('KafkaRetryBreakerOpen', { prefix })).length === 0, 20000, 250)).toBe(true)
  } finally {
    remove()
  }
})
