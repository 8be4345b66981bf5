'use strict'
// Where the time went in the last `npm run bench`: per case, the median rate and the CPU each side
// used (% of one core: the JS thread, the addon's tokio workers, redis-server, the broker, other
// processes), the CPU per message that implies, and the EVALSHA calls Redis counted.
//
//   node bench/diagnose.js [bench/results/latest.json]

const path = require('path')

const file = process.argv[2] || path.join(__dirname, 'results', 'latest.json')
const { runs } = require(path.resolve(file))

const median = (xs) => {
  const s = xs.filter((x) => typeof x === 'number').sort((a, b) => a - b)
  if (!s.length) return null
  const m = s.length >> 1
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2
}
const cell = (x, width, digits = 0) => (x == null ? '–' : x.toFixed(digits)).padStart(width)

const header =
  'case'.padEnd(18) +
  'msgs/s'.padStart(9) +
  ' | CPU % of a core:' +
  'js'.padStart(5) +
  'tokio'.padStart(6) +
  'node'.padStart(6) +
  'redis'.padStart(6) +
  'broker'.padStart(7) +
  'others'.padStart(7) +
  ' | µs CPU/msg:' +
  'node'.padStart(6) +
  'redis'.padStart(6) +
  ' | evalsha calls, µs/call'
console.log(header)
console.log('-'.repeat(header.length))
for (const [name, results] of Object.entries(runs)) {
  const rate = median(results.map((r) => r.perSec))
  const cpu = (f) => median(results.map((r) => (r.cpu ? f(r.cpu) : null)))
  const js = cpu((c) => c.threads && c.threads.js)
  const tokio = cpu((c) => c.threads && c.threads.tokio)
  const node = cpu((c) => c.node)
  const redis = cpu((c) => c.redis)
  const broker = cpu((c) => c.broker)
  const others = cpu((c) => c.others)
  const perMsg = (pct) => (pct == null || !rate ? null : ((pct / 100) * 1e6) / rate)
  const calls = median(results.map((r) => r.evalsha && r.evalsha.calls))
  const usec = median(results.map((r) => r.evalsha && r.evalsha.usecPerCall))
  console.log(
    name.padEnd(18) +
      cell(rate, 9) +
      ' |'.padEnd(18) +
      cell(js, 5) +
      cell(tokio, 6) +
      cell(node, 6) +
      cell(redis, 6) +
      cell(broker, 7) +
      cell(others, 7) +
      ' |'.padEnd(13) +
      cell(perMsg(node), 6, 1) +
      cell(perMsg(redis), 6, 1) +
      ' | ' +
      (calls == null ? '' : `${Math.round(calls)} × ${usec} µs`),
  )
}
