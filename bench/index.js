'use strict'
// Runs every benchmark case (each in a fresh Node process, see bench/cases/) against the Redis and
// broker of REDIS_URL / KAFKA_BROKERS, interleaving the things compared so they share conditions,
// and prints one table of medians. Started by bench/run.sh (`npm run bench`).
//
// Env: BENCH_QUICK=1 for a short run (about 1.5 min instead of about 4); BENCH_REPS=n to change the
// number of runs per figure; BENCH_ONLY=bulk runs only the batch push rows. Raw results go to bench/results/latest.json; `node bench/diagnose.js`
// prints the CPU breakdown behind them.

const fs = require('fs')
const os = require('os')
const path = require('path')
const crypto = require('crypto')
const { spawn, execFileSync } = require('child_process')
const c = require('./lib/common')

const QUICK = process.env.BENCH_QUICK === '1'
const REPS = Number(process.env.BENCH_REPS) || (QUICK ? 3 : 5)
const ONLY = process.env.BENCH_ONLY || ''

const CFG = {
  push: { n1: QUICK ? 3_000 : 10_000, n: QUICK ? 20_000 : 50_000 },
  original: { n: 2_000, lossCallers: 50 },
  fire: { n: QUICK ? 20_000 : 50_000 },
  lateness: { seconds: QUICK ? 5 : 10, rate: 1_000, minMs: 500, maxMs: 3_000, reps: QUICK ? 1 : 3 },
  memory: { n: 100_000, payloadBytes: 100 },
  // Ids remembered after their publish (1,000 retries/s for an hour would be 3.6 million).
  seen: { n: QUICK ? 100_000 : 1_000_000 },
  // Batch push (pushMany vs BullMQ addBulk): messages per run and batches in flight at once.
  bulk: { sizes: [50, 1_000], n: QUICK ? 20_000 : 50_000, callers: 4 },
  scale: {
    small: 10_000,
    big: QUICK ? 200_000 : 1_000_000,
    pushN: QUICK ? 20_000 : 50_000,
    fireN: QUICK ? 20_000 : 50_000,
    reps: QUICK ? 2 : REPS,
  },
}

// Issue 29's table: ratios against the baseline build or a rival in the same run, and the last
// full run's lateness and bytes per message as ceilings ("unchanged or better").
const TARGETS = {
  pushPerSec: 100_000,
  pushVsBull: 8,
  cpuPerPushVsBaseline: 0.5,
  bulkVsBull: 6,
  bulkTargetBatch: 50,
  fireVsPlain: 0.7,
  redisUsPerFire: 4,
  p99: 3,
  max: 8,
  scale: 0.2,
  bytesPerMessage: 346,
  seenBytesPerId: 40,
  rssGrowthMB: 50,
}

// -------------------------------------------------------------------- running --

const t0 = Date.now()
const log = (msg) => process.stderr.write(`[bench ${((Date.now() - t0) / 1000).toFixed(0).padStart(4)} s] ${msg}\n`)

// BENCH_BASELINE_ADDON (bench/run.sh copies it to bench/.snapshot/baseline.node): another build
// whose CPU per push and fire rate are measured interleaved with this one's (args.baseline).
const BASELINE = process.env.BENCH_BASELINE_PATH || ''

function runCase(file, args, nodeArgs = []) {
  const env = args.baseline
    ? { ...process.env, NAPI_RS_NATIVE_LIBRARY_PATH: BASELINE, BENCH_PACKAGE: process.env.BENCH_BASELINE_PACKAGE || '' }
    : process.env
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...nodeArgs, path.join(__dirname, 'cases', file), JSON.stringify(args)], {
      stdio: ['ignore', 'pipe', 'inherit'],
      env,
    })
    let out = ''
    child.stdout.on('data', (d) => (out += d))
    child.on('error', reject)
    child.on('exit', (code) => {
      const line = out.split('\n').find((l) => l.startsWith('@@RESULT '))
      if (code !== 0 || !line) {
        reject(new Error(`bench/cases/${file} ${JSON.stringify(args)} failed (exit ${code})\n${out}`))
      } else {
        resolve(JSON.parse(line.slice('@@RESULT '.length)))
      }
    })
  })
}

// A run during which other processes (another session's build or tests on a shared machine) used
// more than this % of one core is repeated, at most MAX_RERUNS times; the table says how many were.
const DISTURBED = 50
const MAX_RERUNS = 3
const RERUN_PAUSE_MS = 3000
// Keeps a busy machine from stretching the bench far past its ~5 minutes.
const RERUN_BUDGET = QUICK ? 10 : 30
const rerunCounts = { rerun: 0, stillDisturbed: 0 }

async function measure(file, args, nodeArgs) {
  for (let attempt = 0; ; attempt++) {
    const result = await runCase(file, args, nodeArgs)
    const others = result.cpu && result.cpu.others
    if (typeof others !== 'number' || others <= DISTURBED) return result
    if (attempt >= MAX_RERUNS || rerunCounts.rerun >= RERUN_BUDGET) {
      rerunCounts.stillDisturbed++
      result.disturbed = true
      return result
    }
    rerunCounts.rerun++
    log(`  other processes used ${others}% of a core during that run: running it again`)
    await new Promise((resolve) => setTimeout(resolve, RERUN_PAUSE_MS))
  }
}

const median = (xs) => {
  const s = xs.slice().sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2
}
/** Largest distance of a run from the median, in % of the median. */
const spread = (xs) => {
  const m = median(xs)
  return m ? Math.max(...xs.map((x) => Math.abs(x - m))) / m : 0
}

// ------------------------------------------------------------------ machine --

function cpuModel() {
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'))
    return m ? m[1].trim() : os.cpus()[0].model
  } catch {
    return os.cpus()[0] ? os.cpus()[0].model : 'unknown'
  }
}

/** A baseline build's name, hash and file time. */
function fileInfo(source, file) {
  let sha = 'unknown'
  let built = ''
  try {
    sha = crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex').slice(0, 12)
    built = fs.statSync(source).mtime.toISOString().replace(/\.\d+Z$/, 'Z')
  } catch {
    // no file: stays unknown
  }
  return { file: source, sha, built }
}

function addonInfo() {
  const file = process.env.NAPI_RS_NATIVE_LIBRARY_PATH || process.env.BENCH_ADDON_SOURCE
  let sha = 'unknown'
  try {
    sha = crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex').slice(0, 12)
  } catch {
    // no addon file: stays 'unknown'
  }
  let git = 'unknown'
  try {
    const head = execFileSync('git', ['-C', c.ROOT, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim()
    const dirty = execFileSync('git', ['-C', c.ROOT, 'status', '--porcelain', '--', 'src', 'Cargo.toml'], {
      encoding: 'utf8',
    }).trim()
    git = dirty ? `${head} + uncommitted changes in src/` : head
  } catch {
    // no git or not a checkout: stays 'unknown'
  }
  let built = ''
  try {
    built = fs.statSync(process.env.BENCH_ADDON_SOURCE || file).mtime.toISOString().replace(/\.\d+Z$/, 'Z')
  } catch {
    // no file to date: stays empty
  }
  return { file: process.env.BENCH_ADDON_SOURCE || file, sha, git, built }
}

async function machine(redis) {
  const info = await redis.info('server')
  const redisVersion = (/redis_version:(\S+)/.exec(info) || [])[1] || 'unknown'
  // Whichever broker KAFKA_BROKERS names (scripts/services.sh starts Tansu or, with
  // KAFKA_IMPL=apache, Apache Kafka): found by its listening port, so its CPU is counted too.
  const broker = c.brokerProcess().name
  return {
    nproc: os.cpus().length,
    cpu: cpuModel(),
    memGB: Math.round(os.totalmem() / 2 ** 30),
    redis: redisVersion,
    node: process.version,
    broker,
    addon: addonInfo(),
    baseline: BASELINE ? fileInfo(process.env.BENCH_BASELINE_SOURCE || BASELINE, BASELINE) : null,
    loadavgStart: os.loadavg().map((x) => +x.toFixed(2)),
  }
}

// --------------------------------------------------------------- formatting --

const num = (x) => (x == null || Number.isNaN(x) ? '–' : Math.round(x).toLocaleString('en-US'))
const pct = (x) => `${(x * 100).toFixed(0)}%`
const ratio = (x) => `${x.toFixed(2)}x`
const runs = (xs) => `${xs.length} (±${pct(spread(xs))})`
const yesNo = (ok) => (ok ? '**yes**' : '**no**')
const signed = (x) => `${x >= 0 ? '+' : '−'}${pct(Math.abs(x))}`

// --------------------------------------------------------------------- main --

async function main() {
  const redis = c.redisClient()
  const env = await machine(redis)
  const raw = { quick: QUICK, reps: REPS, config: CFG, machine: env, runs: {} }
  const keep = (name, result) => (raw.runs[name] = raw.runs[name] || []).push(result)
  log(`${QUICK ? 'quick' : 'full'} run, ${REPS} runs per figure; addon ${env.addon.sha} (${env.addon.git})`)
  if (env.loadavgStart[0] > env.nproc / 2) {
    log(`warning: load average ${env.loadavgStart[0]} on ${env.nproc} cores: other work will disturb the figures`)
  }

  // 0. Batch push, pushMany vs BullMQ addBulk, interleaved per batch size.
  for (let rep = 1; rep <= REPS; rep++) {
    for (const batch of CFG.bulk.sizes) {
      for (const kind of ['kafka-redis-retry', 'bullmq']) {
        const name = `bulk-${kind === 'bullmq' ? 'bull' : 'kr'}-${batch}`
        log(`bulk ${rep}/${REPS}: ${name}`)
        keep(name, await measure('bulk.js', { kind, batch, n: CFG.bulk.n, callers: CFG.bulk.callers }))
      }
    }
  }
  if (ONLY === 'bulk') return finish(raw, env, redis)

  // 1. Push throughput, interleaved so every implementation sees the same conditions.
  const pushCases = [
    ['kr-1', { kind: 'kafka-redis-retry', callers: 1, n: CFG.push.n1 }],
    ['kr-64', { kind: 'kafka-redis-retry', callers: 64, n: CFG.push.n }],
    ['kr-256', { kind: 'kafka-redis-retry', callers: 256, n: CFG.push.n }],
    ['kr-256-breaker', { kind: 'kafka-redis-retry', callers: 256, n: CFG.push.n, breaker: true }],
    ['kr-new-256', { kind: 'kafka-redis-retry-new', callers: 256, n: CFG.push.n }],
    ['kr-50', { kind: 'kafka-redis-retry', callers: CFG.original.lossCallers, n: CFG.original.n }],
    ['bull-1', { kind: 'bullmq', callers: 1, n: CFG.push.n1 }],
    ['bull-64', { kind: 'bullmq', callers: 64, n: CFG.push.n }],
    ['bull-256', { kind: 'bullmq', callers: 256, n: CFG.push.n }],
    ['orig-1', { kind: 'original', callers: 1, n: CFG.original.n }],
    ['orig-50', { kind: 'original', callers: CFG.original.lossCallers, n: CFG.original.n }],
    ['zadd-256', { kind: 'zadd', callers: 256, n: CFG.push.n }],
  ]
  if (BASELINE) {
    // Right after this build's 256-caller run, so the two share conditions.
    const at = pushCases.findIndex(([name]) => name === 'kr-256') + 1
    pushCases.splice(at, 0, ['kr-256-base', { kind: 'kafka-redis-retry', callers: 256, n: CFG.push.n, baseline: true }])
  }
  for (let rep = 1; rep <= REPS; rep++) {
    for (const [name, args] of pushCases) {
      log(`push ${rep}/${REPS}: ${name}`)
      keep(name, await measure('push.js', args))
    }
  }

  // 2. Fire throughput vs a plain producer.
  for (let rep = 1; rep <= REPS; rep++) {
    log(`fire ${rep}/${REPS}`)
    keep('fire', await measure('fire.js', { n: CFG.fire.n }))
    keep('fire-breaker', await measure('fire.js', { n: CFG.fire.n, breaker: true }))
    if (BASELINE) keep('fire-base', await measure('fire.js', { n: CFG.fire.n, baseline: true }))
    keep('fire-noop', await measure('fire.js', { n: CFG.fire.n, producer: 'noop' }))
    keep('plain', await runCase('plain.js', { n: CFG.fire.n, inFlight: 0 }))
    keep('plain-batch', await runCase('plain.js', { n: CFG.fire.n, inFlight: 1024 }))
  }

  // 3. Lateness: pushes from the listener's process, then from a second process (woken only
  // through Redis).
  for (const [name, pushFrom] of [['lateness', 'same'], ['lateness-xproc', 'process']]) {
    for (let rep = 1; rep <= CFG.lateness.reps; rep++) {
      log(`${name} ${rep}/${CFG.lateness.reps} (${CFG.lateness.seconds} s)`)
      const args = { ...CFG.lateness, pushFrom }
      delete args.reps
      keep(name, await measure('lateness.js', args))
    }
  }

  // 5a. Redis memory per message (deterministic for a given build: one run).
  log(`memory: ${CFG.memory.n} messages`)
  keep('memory', await runCase('memory.js', CFG.memory))
  log(`seen window memory: ${CFG.seen.n} remembered ids`)
  keep('seen-memory', await runCase('seen-memory.js', CFG.seen))

  // 4 + 5b. Scale of the schedule. The big pre-fill is the RSS measurement's pushes.
  const smallPrefix = c.unique('scale-small')
  const bigPrefix = c.unique('scale-big')
  const cleanup = async () => {
    for (const p of [smallPrefix, bigPrefix]) {
      const k = c.scheduleKeys(p)
      await c.unlink(redis, k.due, k.entries, k.seen, k.lease)
    }
  }
  try {
    log(`rss: ${CFG.scale.big} pushes in a fresh process (also the scale pre-fill)`)
    keep('rss', await runCase('rss.js', { n: CFG.scale.big, prefix: bigPrefix }, ['--expose-gc']))
    log(`scale: pre-fill ${CFG.scale.small}`)
    keep('prefill-small', await runCase('rss.js', { n: CFG.scale.small, prefix: smallPrefix }, ['--expose-gc']))
    for (let rep = 1; rep <= CFG.scale.reps; rep++) {
      log(`scale ${rep}/${CFG.scale.reps}`)
      const push = { kind: 'kafka-redis-retry', callers: 256, n: CFG.scale.pushN }
      // Alternate which size goes first, so neither always runs second.
      const sizes = rep % 2 ? [['small', smallPrefix], ['big', bigPrefix]] : [['big', bigPrefix], ['small', smallPrefix]]
      for (const [size, prefix] of sizes) {
        keep(`scale-push-${size}`, await measure('push.js', { ...push, prefix }))
      }
      for (const [size, prefix] of sizes) {
        keep(`scale-fire-${size}`, await measure('fire.js', { n: CFG.scale.fireN, prefix }))
      }
    }
  } finally {
    await cleanup()
  }
  return finish(raw, env, redis)
}

function finish(raw, env, redis) {
  env.loadavgEnd = os.loadavg().map((x) => +x.toFixed(2))
  env.reruns = rerunCounts
  env.seconds = Math.round((Date.now() - t0) / 1000)
  redis.disconnect()

  const table = render(raw)
  const dir = path.join(__dirname, 'results')
  fs.mkdirSync(dir, { recursive: true })
  fs.writeFileSync(path.join(dir, 'latest.json'), JSON.stringify(raw, null, 2))
  fs.writeFileSync(path.join(dir, 'latest.md'), table)
  process.stdout.write(table)
  log(`done in ${env.seconds} s; raw results in bench/results/latest.json`)
}

function render(raw) {
  const R = raw.runs
  const v = (name, field) => R[name].map((r) => r[field])
  const med = (name, field) => median(v(name, field))
  const lostMax = (name) => Math.max(...v(name, 'lost'))
  const rows = []
  const row = (...cells) => rows.push(`| ${cells.join(' | ')} |`)

  // Batch push
  for (const batch of CFG.bulk.sizes) {
    const kr = `bulk-kr-${batch}`
    const bull = `bulk-bull-${batch}`
    if (!R[kr]) continue
    const r = med(kr, 'perSec') / med(bull, 'perSec')
    const isTarget = batch === TARGETS.bulkTargetBatch
    row(
      `messages/s, \`pushMany\` vs BullMQ \`addBulk\`, batches of ${num(batch)} (${num(R[kr][0].n)} messages, ${CFG.bulk.callers} batches in flight)`,
      `${num(med(kr, 'perSec'))} (lost ${lostMax(kr)})`,
      `BullMQ ${num(med(bull, 'perSec'))} (lost ${lostMax(bull)})`,
      ratio(r),
      isTarget ? `≥ ${TARGETS.bulkVsBull}x BullMQ` : '',
      isTarget ? yesNo(r >= TARGETS.bulkVsBull) : '',
      `${runs(v(kr, 'perSec'))} / ${runs(v(bull, 'perSec'))}`,
    )
  }
  if (ONLY === 'bulk') return table(raw, rows)

  // Push
  for (const callers of [1, 64, 256]) {
    const kr = `kr-${callers}`
    const bull = `bull-${callers}`
    const r = med(kr, 'perSec') / med(bull, 'perSec')
    const isTarget = callers === 256
    const ok = med(kr, 'perSec') >= TARGETS.pushPerSec && r >= TARGETS.pushVsBull
    row(
      `push/s, ${callers} caller${callers > 1 ? 's' : ''} (${num(R[kr][0].n)} pushes)`,
      `${num(med(kr, 'perSec'))} (lost ${lostMax(kr)})`,
      `BullMQ ${num(med(bull, 'perSec'))} (lost ${lostMax(bull)})`,
      ratio(r),
      isTarget ? `≥ ${num(TARGETS.pushPerSec)}/s and ≥ ${TARGETS.pushVsBull}x BullMQ` : '',
      isTarget ? yesNo(ok) : '',
      `${runs(v(kr, 'perSec'))} / ${runs(v(bull, 'perSec'))}`,
    )
  }
  row(
    `  reference: one plain ioredis ZADD per message, 256 callers (no entry, no script)`,
    '',
    `ZADD ${num(med('zadd-256', 'perSec'))}`,
    ratio(med('kr-256', 'perSec') / med('zadd-256', 'perSec')),
    '',
    '',
    runs(v('zadd-256', 'perSec')),
  )
  if (R['kr-256-base']) {
    // CPU per push as bench/diagnose.js counts it: this Node process (JS thread, tokio workers)
    // and redis-server, over the timed part, per message; and Redis's own EVALSHA time per message.
    const perPush = (name) => {
      const node = median(R[name].map((r) => (r.cpu.node / 100) * (1e6 / r.perSec)))
      const redisCpu = median(R[name].map((r) => (r.cpu.redis == null ? NaN : (r.cpu.redis / 100) * (1e6 / r.perSec))))
      const evalsha = median(R[name].map((r) => (r.evalsha ? (r.evalsha.usecPerCall * r.evalsha.calls) / r.n : NaN)))
      return { node, redis: redisCpu, total: node + redisCpu, evalsha }
    }
    const now = perPush('kr-256')
    const base = perPush('kr-256-base')
    const fmt = (x) => `${x.total.toFixed(1)} µs (Node ${x.node.toFixed(1)} + Redis ${x.redis.toFixed(1)}; EVALSHA ${x.evalsha.toFixed(1)})`
    row(
      `CPU per push, 256 callers (Node process + redis-server CPU per message; EVALSHA µs per message from INFO commandstats)`,
      fmt(now),
      `baseline build ${fmt(base)}`,
      ratio(now.total / base.total),
      `≤ ${TARGETS.cpuPerPushVsBaseline}x the baseline build`,
      yesNo(now.total / base.total <= TARGETS.cpuPerPushVsBaseline),
      `${runs(R['kr-256'].map((r) => ((r.cpu.node + r.cpu.redis) / 100) * (1e6 / r.perSec)))} / ${runs(R['kr-256-base'].map((r) => ((r.cpu.node + r.cpu.redis) / 100) * (1e6 / r.perSec)))}`,
    )
    row(
      `  push/s, 256 callers, this build vs the baseline build (same runs)`,
      num(med('kr-256', 'perSec')),
      `baseline build ${num(med('kr-256-base', 'perSec'))}`,
      ratio(med('kr-256', 'perSec') / med('kr-256-base', 'perSec')),
      '',
      '',
      `${runs(v('kr-256', 'perSec'))} / ${runs(v('kr-256-base', 'perSec'))}`,
    )
  }
  row(
    `  push/s, 256 callers, with \`breaker: true\`, every push a failure counted (docs/breaker.md)`,
    num(med('kr-256-breaker', 'perSec')),
    `without ${num(med('kr-256', 'perSec'))}`,
    ratio(med('kr-256-breaker', 'perSec') / med('kr-256', 'perSec')),
    '',
    '',
    `${runs(v('kr-256-breaker', 'perSec'))} / ${runs(v('kr-256', 'perSec'))}`,
  )
  row(
    `push/s, 256 callers, \`new KafkaRetry()\` per push`,
    `${num(med('kr-new-256', 'perSec'))} (lost ${lostMax('kr-new-256')})`,
    '',
    '',
    '',
    '',
    runs(v('kr-new-256', 'perSec')),
  )
  row(
    `push/s, 1 caller: original GET+SET scheme (${num(CFG.original.n)} pushes, one minute bucket)`,
    `${num(med('kr-1', 'perSec'))}`,
    `original ${num(med('orig-1', 'perSec'))} (lost ${lostMax('orig-1')})`,
    ratio(med('kr-1', 'perSec') / med('orig-1', 'perSec')),
    '',
    '',
    runs(v('orig-1', 'perSec')),
  )
  row(
    `lost of ${num(CFG.original.n)} pushes at ${CFG.original.lossCallers} callers`,
    `${num(median(v('kr-50', 'lost')))} (${num(med('kr-50', 'perSec'))}/s)`,
    `original ${num(median(v('orig-50', 'lost')))} (min ${num(Math.min(...v('orig-50', 'lost')))}, max ${num(Math.max(...v('orig-50', 'lost')))})`,
    '',
    'none lost',
    yesNo(Math.max(...v('kr-50', 'lost')) === 0),
    `${R['kr-50'].length} / ${R['orig-50'].length}`,
  )

  // Fire
  const fire = med('fire', 'perSec')
  const plain = med('plain', 'perSec')
  row(
    `fire/s, ${num(CFG.fire.n)} due messages, internal producer`,
    `${num(fire)} (${(med('fire', 'ms') / 1000).toFixed(2)} s)`,
    `plain rdkafka ${num(plain)} (${(med('plain', 'ms') / 1000).toFixed(2)} s)`,
    ratio(fire / plain),
    `≥ ${TARGETS.fireVsPlain}x plain`,
    yesNo(fire / plain >= TARGETS.fireVsPlain),
    `${runs(v('fire', 'perSec'))} / ${runs(v('plain', 'perSec'))}`,
  )
  row(
    `  same, with \`breaker: true\` (a healthy topic: acks count attempts, claims read the breaker)`,
    num(med('fire-breaker', 'perSec')),
    `without ${num(fire)}`,
    ratio(med('fire-breaker', 'perSec') / fire),
    '',
    '',
    `${runs(v('fire-breaker', 'perSec'))} / ${runs(v('fire', 'perSec'))}`,
  )
  if (R['fire-base']) {
    row(
      `  same, the baseline build's internal producer`,
      '',
      `baseline build ${num(med('fire-base', 'perSec'))}`,
      ratio(fire / med('fire-base', 'perSec')),
      '',
      '',
      runs(v('fire-base', 'perSec')),
    )
  }
  // Redis CPU per fired message: redis-server's CPU over the timed part (claims, acks, lease
  // renewals, and the case's 5 ms polls) per message fired.
  const redisPerFire = (name) => median(R[name].map((r) => (r.cpu.redis == null ? NaN : (r.cpu.redis / 100) * (1e6 / r.perSec))))
  row(
    `  Redis CPU per fired message (redis-server CPU over the timed part / messages fired)`,
    `${redisPerFire('fire').toFixed(1)} µs`,
    R['fire-base'] ? `baseline build ${redisPerFire('fire-base').toFixed(1)} µs` : '',
    R['fire-base'] ? ratio(redisPerFire('fire') / redisPerFire('fire-base')) : '',
    `≤ ${TARGETS.redisUsPerFire} µs`,
    yesNo(redisPerFire('fire') <= TARGETS.redisUsPerFire),
    runs(R.fire.map((r) => (r.cpu.redis / 100) * (1e6 / r.perSec))),
  )
  row(
    `  same, plain producer with ≤ 1,024 in flight (one claimed batch)`,
    '',
    `plain rdkafka ${num(med('plain-batch', 'perSec'))}`,
    ratio(fire / med('plain-batch', 'perSec')),
    '',
    '',
    runs(v('plain-batch', 'perSec')),
  )

  row(
    '  same, through a JS `produce` that resolves at once (no broker)',
    num(med('fire-noop', 'perSec')),
    '',
    ratio(med('fire-noop', 'perSec') / plain),
    '',
    '',
    runs(v('fire-noop', 'perSec')),
  )

  // Lateness
  const L = CFG.lateness
  for (const [name, from] of [['lateness', 'pushes in the listener\'s process'], ['lateness-xproc', 'pushes from a second process']]) {
    const p99 = med(name, 'p99')
    const max = med(name, 'max')
    row(
      `lateness p50 / p99 / max, ${num(L.rate)}/s for ${L.seconds} s, delays ${L.minMs / 1000}–${L.maxMs / 1000} s, ${from}`,
      `${med(name, 'p50')} / ${p99} / ${max} ms`,
      '',
      '',
      `p99 ≤ ${TARGETS.p99} ms, max ≤ ${TARGETS.max} ms`,
      yesNo(p99 <= TARGETS.p99 && max <= TARGETS.max),
      `${R[name].length} (worst max ${Math.max(...v(name, 'max'))} ms)`,
    )
  }

  // Scale
  const S = CFG.scale
  const big = num(S.big)
  const small = num(S.small)
  const sp = med('scale-push-big', 'perSec') / med('scale-push-small', 'perSec') - 1
  row(
    `push/s, 256 callers, with ${small} vs ${big} scheduled`,
    `${num(med('scale-push-small', 'perSec'))} vs ${num(med('scale-push-big', 'perSec'))}`,
    '',
    signed(sp),
    `within ${pct(TARGETS.scale)}`,
    yesNo(Math.abs(sp) <= TARGETS.scale),
    `${runs(v('scale-push-small', 'perSec'))} / ${runs(v('scale-push-big', 'perSec'))}`,
  )
  const sf = med('scale-fire-big', 'perSec') / med('scale-fire-small', 'perSec') - 1
  row(
    `fire/s, ${num(S.fireN)} due, with ${small} vs ${big} scheduled`,
    `${num(med('scale-fire-small', 'perSec'))} vs ${num(med('scale-fire-big', 'perSec'))}`,
    '',
    signed(sf),
    `within ${pct(TARGETS.scale)}`,
    yesNo(Math.abs(sf) <= TARGETS.scale),
    `${runs(v('scale-fire-small', 'perSec'))} / ${runs(v('scale-fire-big', 'perSec'))}`,
  )

  // Memory
  const mem = R.memory[0]
  const limit = TARGETS.bytesPerMessage
  row(
    `Redis bytes per message (${num(mem.n)} msgs; entries + due + seen)`,
    `${mem.perMessage.toFixed(1)} B (payload ${mem.payloadBytes} B; stored entry ${mem.entryBytes} B, id ${mem.idBytes} B; hash ${num(mem.perMessageParts.entries)} + due ${num(mem.perMessageParts.due)} + seen ${num(mem.perMessageParts.seen)})`,
    '',
    '',
    `≤ ${limit} B (payload ${mem.payloadBytes} B)`,
    yesNo(mem.perMessage <= limit),
    '1',
  )
  const seen = R['seen-memory'][0]
  row(
    `Redis bytes per remembered id, seen window (${num(seen.n)} ids acked 500 per call; MEMORY USAGE)`,
    `${seen.bucketBytesPerId.toFixed(1)} B (seen buckets)`,
    `sorted set (previous format) ${seen.zsetBytesPerId.toFixed(1)} B`,
    ratio(seen.bucketBytesPerId / seen.zsetBytesPerId),
    `≤ ${TARGETS.seenBytesPerId} B`,
    yesNo(seen.bucketBytesPerId <= TARGETS.seenBytesPerId),
    '1',
  )
  const rss = R.rss[0]
  row(
    `Node RSS before → after ${num(rss.n)} pushes (after GC; peak)`,
    `${rss.rssBeforeMB.toFixed(0)} → ${rss.rssAfterGcMB.toFixed(0)} MB (+${rss.growthMB.toFixed(1)} MB; peak ${rss.rssPeakMB.toFixed(0)} MB)`,
    '',
    '',
    `growth < ${TARGETS.rssGrowthMB} MB`,
    yesNo(rss.growthMB < TARGETS.rssGrowthMB),
    '1',
  )
  return table(raw, rows)
}

function table(raw, rows) {
  const R = raw.runs
  const m = raw.machine

  // How busy the rest of the machine was during the timed parts (another session's build or tests
  // on a shared machine): each case reports it as cpu.others.
  const others = Object.values(R)
    .flat()
    .map((r) => r.cpu && r.cpu.others)
    .filter((x) => typeof x === 'number')
  const quiet = others.length
    ? `other processes used median ${median(others)}%, max ${Math.max(...others)}% of one core during the timed parts`
    : 'CPU use of other processes not measured'
  const reruns = m.reruns
    ? `; ${m.reruns.rerun} disturbed run(s) repeated${m.reruns.stillDisturbed ? `, ${m.reruns.stillDisturbed} kept although disturbed (up to ${MAX_RERUNS} repeats, ${RERUN_BUDGET} in all)` : ''}`
    : ''
  const header = [
    `kafka-redis-retry benchmark (${raw.quick ? 'BENCH_QUICK=1' : 'full run'}${ONLY ? `, BENCH_ONLY=${ONLY}` : ''}; medians; ${m.seconds} s)`,
    `machine: ${m.nproc} × ${m.cpu}, ${m.memGB} GB; Redis ${m.redis}; Node ${m.node}; broker ${m.broker}`,
    `addon: ${path.basename(m.addon.file)} sha256 ${m.addon.sha} (file time ${m.addon.built}; git HEAD ${m.addon.git})`,
    ...(m.baseline ? [`baseline build: ${path.basename(m.baseline.file)} sha256 ${m.baseline.sha} (file time ${m.baseline.built})`] : []),
    `load average ${m.loadavgStart.join(' ')} → ${m.loadavgEnd.join(' ')}; ${quiet}${reruns}`,
    '',
    '| measurement | kafka-redis-retry | baseline | ratio | target | met | runs (max dev. from median) |',
    '| --- | --- | --- | --- | --- | --- | --- |',
  ]
  return `${header.join('\n')}\n${rows.join('\n')}\n`
}

main().catch((err) => {
  console.error(err && err.stack ? err.stack : err)
  process.exit(1)
})
