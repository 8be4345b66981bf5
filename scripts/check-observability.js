#!/usr/bin/env node
'use strict'
// observability/ (shipped in the package) holds what it claims: the alert rules pass
// `promtool check rules` and their unit tests `promtool test rules`, and every expression of the
// rules and of the Grafana dashboard names a metric the package exports (crates/engine's
// Prometheus text, prometheus.js). Part of `npm run lint`; exits 1 listing each problem.
// promtool (Debian's prometheus package; `scripts/services.sh prometheus-bin` installs it) is
// found through PROMTOOL or PATH; without it the promtool part is skipped with a note, unless
// KAFKA_RETRY_REQUIRE_PROMTOOL=1 (CI) makes that an error.

const fs = require('fs')
const path = require('path')
const { spawnSync } = require('child_process')

const ROOT = path.join(__dirname, '..')
const DIR = path.join(ROOT, 'observability')

/**
 * Names the rules and the dashboard use ahead of the code that exports them (another branch
 * adds them). A name here must not be exported yet: once it is, it leaves this list.
 */
const COMING = []

/** Every metric name the package exports: the engine's Prometheus text and prometheus.js's own gauge. */
function exportedMetrics(root = ROOT) {
  const names = new Set()
  const stats = fs.readFileSync(path.join(root, 'crates/engine/src/observe/stats.rs'), 'utf8')
  for (const m of stats.matchAll(/"(kafka_retry_[a-z_]+)"/g)) names.add(m[1])
  const prometheus = require(path.join(root, 'prometheus.js'))
  for (const name of Object.keys(prometheus.METRICS)) names.add(name)
  names.add(prometheus.REDIS_UP)
  return names
}

/** The kafka_retry_* names a PromQL expression reads. */
function metricNames(expr) {
  return [...new Set(expr.match(/\bkafka_retry_[a-z_]+\b/g) || [])]
}

/** Problems of the Grafana dashboard (parsed JSON) against the exported names. */
function checkDashboard(dashboard, exported, coming = COMING) {
  const problems = []
  const known = (name) => exported.has(name) || coming.includes(name)
  if (!(dashboard.schemaVersion >= 36)) problems.push(`schemaVersion ${dashboard.schemaVersion}: expected 36 or later`)
  const variables = (dashboard.templating && dashboard.templating.list) || []
  const source = variables.find((v) => v.type === 'datasource')
  if (!source || source.query !== 'prometheus') problems.push('no datasource variable of type prometheus in templating')
  const ids = new Set()
  const panels = (dashboard.panels || []).flatMap((p) => [p, ...(p.panels || [])])
  for (const panel of panels) {
    if (ids.has(panel.id)) problems.push(`panel id ${panel.id} twice`)
    ids.add(panel.id)
    if (panel.type === 'row') continue
    const where = `panel "${panel.title}"`
    if (!panel.datasource || panel.datasource.uid !== `\${${source ? source.name : 'datasource'}}`) problems.push(`${where}: its datasource is not the datasource variable`)
    if (!Array.isArray(panel.targets) || panel.targets.length === 0) problems.push(`${where}: no query`)
    for (const target of panel.targets || []) {
      const names = metricNames(target.expr || '')
      if (names.length === 0) problems.push(`${where}: query ${target.refId} names no kafka_retry_ metric`)
      for (const name of names) if (!known(name)) problems.push(`${where}: ${name} is not a metric the package exports`)
    }
  }
  return problems
}

/** Problems of the alert rules' text: each kafka_retry_* name must be exported. */
function checkRuleNames(text, exported, coming = COMING) {
  const problems = []
  for (const name of metricNames(text)) {
    if (!exported.has(name) && !coming.includes(name)) problems.push(`alerts.yml: ${name} is not a metric the package exports`)
  }
  return problems
}

/** promtool's path: PROMTOOL, else the one on PATH, else null. */
function findPromtool() {
  if (process.env.PROMTOOL) return process.env.PROMTOOL
  for (const dir of (process.env.PATH || '').split(path.delimiter)) {
    const file = path.join(dir, 'promtool')
    if (dir && fs.existsSync(file)) return file
  }
  return null
}

/** Runs `promtool check rules` and `promtool test rules` in observability/: problems (their output). */
function runPromtool(promtool, dir = DIR) {
  const problems = []
  for (const args of [['check', 'rules', 'alerts.yml'], ['test', 'rules', 'alerts.test.yml']]) {
    const run = spawnSync(promtool, args, { cwd: dir, encoding: 'utf8' })
    if (run.status !== 0) problems.push(`promtool ${args.join(' ')} failed:\n${run.stdout}${run.stderr}${run.error ? run.error.message : ''}`)
  }
  return problems
}

function main() {
  const exported = exportedMetrics()
  const problems = [
    ...checkDashboard(JSON.parse(fs.readFileSync(path.join(DIR, 'grafana-dashboard.json'), 'utf8')), exported),
    ...checkRuleNames(fs.readFileSync(path.join(DIR, 'alerts.yml'), 'utf8'), exported),
  ]
  for (const name of COMING) {
    if (exported.has(name)) problems.push(`${name} is exported now: remove it from COMING in scripts/check-observability.js`)
  }
  const promtool = findPromtool()
  if (promtool) problems.push(...runPromtool(promtool))
  else if (process.env.KAFKA_RETRY_REQUIRE_PROMTOOL === '1') problems.push('promtool not found (set PROMTOOL, or run `bash scripts/services.sh prometheus-bin` to install Debian\'s prometheus)')
  else console.error('check-observability: promtool not found, rules not run (`bash scripts/services.sh prometheus-bin` installs it)')
  if (problems.length) {
    for (const p of problems) console.error(`observability/: ${p}`)
    process.exit(1)
  }
}

if (require.main === module) main()

module.exports = { COMING, exportedMetrics, metricNames, checkDashboard, checkRuleNames, findPromtool, runPromtool }
