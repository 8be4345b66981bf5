// observability/ (the alert rules and the Grafana dashboard shipped in the package): every query
// names a metric the package exports, the dashboard has the shape Grafana imports, the package
// ships the folder, and promtool (when installed; `npm run lint` runs it too, CI requires it)
// passes the rules and their unit tests and catches a broken rule. No server needed.
const fs = require('fs')
const os = require('os')
const path = require('path')

const ROOT = path.join(__dirname, '..', '..')
const check = require('../../scripts/check-observability.js')
const read = (file) => fs.readFileSync(path.join(ROOT, 'observability', file), 'utf8')

test('every metric of the Prometheus text and of prometheus.js counts as exported, kafka_retry_redis_up too', () => {
  const exported = check.exportedMetrics()
  for (const name of ['kafka_retry_due', 'kafka_retry_dead_lettered_total', 'kafka_retry_topic_dead_letters', 'kafka_retry_redis_up']) {
    expect(exported.has(name)).toBe(true)
  }
  expect(exported.has('kafka_retry_nothing')).toBe(false)
})

test('names used ahead of their code (COMING) are not exported yet: once they are, they leave the list', () => {
  const exported = check.exportedMetrics()
  for (const name of check.COMING) expect([name, exported.has(name)]).toEqual([name, false])
})

test('the Grafana dashboard: schemaVersion, a Prometheus datasource variable, every panel querying exported metrics', () => {
  const dashboard = JSON.parse(read('grafana-dashboard.json'))
  expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(39)
  expect(check.checkDashboard(dashboard, check.exportedMetrics())).toEqual([])
  // A panel per concern the alerts watch.
  const exprs = dashboard.panels.flatMap((p) => (p.targets || []).map((t) => t.expr)).join('\n')
  for (const name of ['kafka_retry_redis_up', 'kafka_retry_topic_breaker_open', 'kafka_retry_due', 'kafka_retry_published_total', 'kafka_retry_dead_letters', 'kafka_retry_dead_lettered_total']) {
    expect(exprs).toContain(name)
  }
})

test('the dashboard check fails on an unknown metric, a panel without the datasource variable, no datasource variable', () => {
  const dashboard = JSON.parse(read('grafana-dashboard.json'))
  const panel = dashboard.panels.find((p) => p.type !== 'row')
  panel.targets[0].expr = 'rate(kafka_retry_publishd_total[5m])'
  panel.datasource = { type: 'prometheus', uid: 'abc' }
  const problems = check.checkDashboard(dashboard, check.exportedMetrics())
  expect(problems).toEqual([
    `panel "${panel.title}": its datasource is not the datasource variable`,
    `panel "${panel.title}": kafka_retry_publishd_total is not a metric the package exports`,
  ])
  dashboard.templating.list = dashboard.templating.list.filter((v) => v.type !== 'datasource')
  expect(check.checkDashboard(dashboard, check.exportedMetrics())).toContain('no datasource variable of type prometheus in templating')
})

test('the alert rules name exported metrics only (and the check catches one that is not)', () => {
  const exported = check.exportedMetrics()
  const rules = read('alerts.yml')
  expect(check.checkRuleNames(rules, exported)).toEqual([])
  for (const alert of ['KafkaRetryRedisUnreachable', 'KafkaRetryDeadLettersRising', 'KafkaRetryBreakerOpen', 'KafkaRetryRetriesLate', 'KafkaRetryListenerQuiet']) {
    expect(rules).toContain(`alert: ${alert}`)
    // each alert has promtool tests
    expect(read('alerts.test.yml')).toContain(`alertname: ${alert}`)
  }
  expect(check.checkRuleNames(rules.replace('kafka_retry_redis_up', 'kafka_retry_redis_upp'), exported)).toEqual(['alerts.yml: kafka_retry_redis_upp is not a metric the package exports'])
})

test('the package ships observability/', () => {
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'))
  expect(pkg.files).toContain('observability/')
})

const promtool = check.findPromtool()
// Without promtool this one test cannot run; `npm run lint` with KAFKA_RETRY_REQUIRE_PROMTOOL=1
// (CI, .ci/run) fails instead of skipping.
const withPromtool = promtool ? test : test.skip
withPromtool('promtool passes the rules and their unit tests, and fails a test whose rule changed', () => {
  expect(check.runPromtool(promtool)).toEqual([])
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'alerts-'))
  try {
    fs.writeFileSync(path.join(dir, 'alerts.yml'), read('alerts.yml').replace('kafka_retry_redis_up == 0', 'kafka_retry_redis_up == 2'))
    fs.writeFileSync(path.join(dir, 'alerts.test.yml'), read('alerts.test.yml'))
    const problems = check.runPromtool(promtool, dir)
    expect(problems).toHaveLength(1)
    expect(problems[0]).toContain('promtool test rules alerts.test.yml failed')
    expect(problems[0]).toContain('KafkaRetryRedisUnreachable')
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})
