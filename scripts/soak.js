#!/usr/bin/env node
'use strict'
// `npm run soak`: pushes and a listener at a steady rate for a given time, with a fault every
// interval (rotating: Redis restart, broker restart, listener SIGKILL), then every message read
// back from the topic: pushed, published, lost, duplicated, Node RSS and Redis memory at the start
// and the end. Not part of `npm test` (issue 18 item 5).
//
//   npm run soak -- [--minutes 10] [--rate 1000] [--fault-every 60] [--faults redis,broker,listener]
//
// It starts servers of its own on free ports, in a temporary directory, and stops them at the end,
// so it never touches the Redis and broker at REDIS_URL / KAFKA_BROKERS:
// - Redis: redis-server with appendonly (fsync every second); "Redis restart" is SIGTERM (Redis
//   writes its append-only file and exits) and a start on the same port and directory.
// - Kafka: one Apache Kafka node (KRaft) from the jars `scripts/services.sh apache-kafka-jars`
//   fetches (scripts/services/kafka-cluster.js with one node); "broker restart" is SIGKILL and a
//   start on the same data directory (the broker is down meanwhile).
// - the listener: a child Node process (internal producer, default leaseMs), SIGKILLed and started
//   again at once; the messages it had claimed are published by the next one when their lease runs
//   out (duplicates when it had published them already: the at-least-once case after a crash).
// The pushes run in this process (one KafkaRetry); a push that rejects (Redis restarting) counts as
// rejected, not pushed: the caller was told. Needs redis-server on PATH, Java 17+.
const fs = require('fs')
const os = require('os')
const path = require('path')
const { spawn, execFileSync } = require('child_process')
const { parseArgs } = require('util')

const ROOT = path.resolve(__dirname, '..')
const { startKafkaCluster } = require('./services/kafka-cluster')
const { freePort } = require('./services/ports')

const { values: args } = parseArgs({
  options: {
    minutes: { type: 'string', default: process.env.SOAK_MINUTES || '10' },
    rate: { type: 'string', default: process.env.SOAK_RATE || '1000' },
    'fault-every': { type: 'string', default: process.env.SOAK_FAULT_EVERY || '60' },
    faults: { type: 'string', default: 'redis,broker,listener' },
    help: { type: 'boolean', default: false },
  },
})
if (args.help) {
  process.stdout.write('usage: npm run soak -- [--minutes 10] [--rate 1000] [--fault-every 60] [--faults redis,broker,listener]\n')
  process.exit(0)
}
const MINUTES = Number(args.minutes)
const RATE = Number(args.rate)
const FAULT_EVERY_S = Number(args['fault-every'])
const FAULTS = args.faults.split(',').filter(Boolean)
for (const [name, v] of [['minutes', MINUTES], ['rate', RATE], ['fault-every', FAULT_EVERY_S]]) {
  if (!(v > 0)) {
    process.stderr.write(`soak: --${name} must be a positive number\n`)
    process.exit(2)
  }
}
for (const f of FAULTS) {
  if (!['redis', 'broker', 'listener'].includes(f)) {
    process.stderr.write(`soak: unknown fault '${f}' (redis, broker, listener)\n`)
    process.exit(2)
  }
}

const { KafkaRetry } = require(ROOT)
const Redis = require('ioredis')
const { Kafka, logLevel } = require('kafkajs')

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
const t0 = Date.now()
const stamp = () => `[${((Date.now() - t0) / 1000).toFixed(0).padStart(5)} s]`
const say = (line) => process.stdout.write(`${stamp()} ${line}\n`)
const mib = (bytes) => `${(bytes / 1048576).toFixed(1)} MiB`

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kafka-redis-retry-soak-'))
const children = new Set()
let cluster

// ----------------------------------------------------------------------------------- Redis --

function redisServerPath() {
  try {
    return execFileSync('bash', ['-c', 'command -v redis-server'], { encoding: 'utf8' }).trim()
  } catch {
    throw new Error('redis-server is not installed (scripts/services.sh start installs it)')
  }
}

function startRedis(port) {
  const server = spawn(redisServerPath(), [
    '--port', String(port), '--bind', '127.0.0.1', '--dir', path.join(dir, 'redis'),
    '--appendonly', 'yes', '--appendfsync', 'everysec', '--save', '',
  ], { stdio: ['ignore', 'ignore', 'inherit'] })
  children.add(server)
  server.on('exit', () => children.delete(server))
  return server
}

async function redisUp(client, timeoutMs = 20000) {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    try {
      if ((await client.ping()) === 'PONG') return
    } catch {
      // not up yet
    }
    await sleep(100)
  }
  throw new Error('the soak Redis did not answer')
}

function exited(child) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve()
  return new Promise((resolve) => child.once('exit', resolve))
}

// -------------------------------------------------------------------------------- listener --

const LISTENER = `
const { KafkaRetry } = require('.')
const cfg = JSON.parse(process.env.SOAK_CONFIG)
const retry = new KafkaRetry({ redisUrl: cfg.redisUrl, keyPrefix: cfg.prefix, brokers: cfg.brokers })
retry.queueListener(null, cfg.dlq).catch((err) => { console.error(err); process.exit(1) })
const report = () => process.stdout.write(JSON.stringify({ rss: process.memoryUsage().rss }) + '\\n')
report()
setInterval(report, 2000)
`

let listenerRss = 0
function startListener(config) {
  const child = spawn(process.execPath, ['-e', LISTENER], {
    cwd: ROOT,
    env: { ...process.env, SOAK_CONFIG: JSON.stringify(config) },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  children.add(child)
  child.on('exit', () => children.delete(child))
  let buf = ''
  child.stdout.on('data', (d) => {
    buf += d
    let i
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i)
      buf = buf.slice(i + 1)
      try {
        listenerRss = JSON.parse(line).rss
      } catch {
        // not a report line
      }
    }
  })
  return child
}

// ------------------------------------------------------------------------------- read back --

/** Reads `topic` from the beginning to its end offsets into `counts` (a count per message n). */
async function readBack(kafka, topic, counts) {
  const admin = kafka.admin()
  await admin.connect()
  const ends = await admin.fetchTopicOffsets(topic)
  await admin.disconnect()
  const remaining = new Map(ends.filter((p) => Number(p.high) > 0).map((p) => [p.partition, Number(p.high)]))
  let read = 0
  let outside = 0
  if (remaining.size === 0) return { read, outside }
  const consumer = kafka.consumer({ groupId: `soak-read-${process.pid}-${Date.now()}`, maxWaitTimeInMs: 200, maxBytes: 10485760 })
  await consumer.connect()
  await consumer.subscribe({ topic, fromBeginning: true })
  let done
  const finished = new Promise((resolve) => { done = resolve })
  await consumer.run({
    eachBatchAutoResolve: true,
    eachBatch: async ({ batch }) => {
      for (const message of batch.messages) {
        const n = JSON.parse(message.value.toString()).n
        if (n >= 0 && n < counts.length) counts[n] = Math.min(255, counts[n] + 1)
        else outside += 1
        read += 1
        if (Number(message.offset) + 1 >= remaining.get(batch.partition)) remaining.delete(batch.partition)
      }
      if (remaining.size === 0) done()
    },
  })
  const timer = setTimeout(done, 600000)
  await finished
  clearTimeout(timer)
  await consumer.disconnect()
  if (remaining.size) throw new Error(`read back stopped short on partitions ${[...remaining.keys()]}`)
  return { read, outside }
}

// ------------------------------------------------------------------------------------ main --

async function redisMemory(client) {
  const info = await client.info('memory')
  return Number(/used_memory:(\d+)/.exec(info)[1])
}

async function main() {
  fs.mkdirSync(path.join(dir, 'redis'))
  say(`soak: ${MINUTES} min, ${RATE} pushes/s, a fault every ${FAULT_EVERY_S} s (${FAULTS.join(', ')}), servers in ${dir}`)
  const redisPort = await freePort()
  const redisUrl = `redis://127.0.0.1:${redisPort}`
  let redisServer = startRedis(redisPort)
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 1, retryStrategy: () => 200 })
  redis.on('error', () => {})
  await redisUp(redis)
  cluster = await startKafkaCluster({ dir: path.join(dir, 'kafka'), size: 1 })
  say(`Redis ${redisUrl} (pid ${redisServer.pid}), Apache Kafka ${cluster.brokers} (pid ${cluster.nodes[0].pid})`)

  const topic = 'soak'
  const prefix = 'soak'
  const dlq = 'soak:dead-letters'
  const entriesKey = `{${prefix}}:entries`
  const leaseKey = `{${prefix}}:lease`
  await cluster.createTopic(topic, { partitions: 3, leader: 1 })
  const config = { redisUrl, prefix, brokers: cluster.brokers, dlq }
  let listener = startListener(config)

  const total = Math.round(MINUTES * 60 * RATE)
  const state = new Uint8Array(total) // 1 pushed, 2 rejected
  let pushed = 0
  let rejected = 0
  let inFlight = 0
  const pusher = new KafkaRetry({ redisUrl, keyPrefix: prefix })
  const faults = []
  let start
  const sample = async () => ({ listenerRss, pusherRss: process.memoryUsage().rss, redisMemory: await redisMemory(redis).catch(() => NaN), keys: await redis.dbsize().catch(() => NaN) })

  const progress = async () => {
    const s = await sample()
    const scheduled = await redis.hlen(entriesKey).catch(() => '?')
    const leased = await redis.zcard(leaseKey).catch(() => '?')
    say(`pushed ${pushed}, rejected ${rejected}, in flight ${inFlight}, scheduled ${scheduled} (leased ${leased}); listener RSS ${mib(s.listenerRss)}, pusher RSS ${mib(s.pusherRss)}, Redis ${mib(s.redisMemory)}`)
  }

  // Faults, one every FAULT_EVERY_S, rotating.
  let faultIndex = 0
  const injectFault = async () => {
    const kind = FAULTS[faultIndex % FAULTS.length]
    faultIndex += 1
    const at = Date.now()
    if (kind === 'redis') {
      redisServer.kill('SIGTERM')
      await exited(redisServer)
      redisServer = startRedis(redisPort)
      await redisUp(redis)
    } else if (kind === 'broker') {
      await cluster.kill(1, 'SIGKILL')
      await cluster.start(1)
    } else {
      listener.kill('SIGKILL')
      await exited(listener)
      listener = startListener(config)
    }
    const ms = Date.now() - at
    faults.push({ kind, ms })
    say(`fault ${faults.length}: ${kind} ${kind === 'listener' ? 'SIGKILLed and started again' : 'restarted'}, down ${ms} ms`)
  }

  const endAt = Date.now() + MINUTES * 60000
  let nextFault = Date.now() + FAULT_EVERY_S * 1000
  let nextProgress = Date.now() + 30000
  let faultRunning = null
  const tickMs = 100
  const perTick = RATE * tickMs / 1000
  const pushStart = Date.now()
  let n = 0
  while (n < total) {
    if (!start && Date.now() - pushStart >= 10000) start = await sample()
    const due = Math.min(total, Math.round(((Date.now() - pushStart) / 1000) * RATE) + perTick)
    for (; n < due; n += 1) {
      const i = n
      inFlight += 1
      pusher.pushToQueue(topic, { event: `e${i}`, value: JSON.stringify({ n: i }) }, { delay: '0', maxRetry: '3', retryCount: '0' })
        .then(() => { state[i] = 1; pushed += 1 }, () => { state[i] = 2; rejected += 1 })
        .finally(() => { inFlight -= 1 })
    }
    const now = Date.now()
    if (!faultRunning && now >= nextFault && now < endAt - 5000) {
      nextFault += FAULT_EVERY_S * 1000
      faultRunning = injectFault().catch((err) => say(`fault failed: ${err.stack}`)).finally(() => { faultRunning = null })
    }
    if (now >= nextProgress) {
      nextProgress += 30000
      await progress()
    }
    await sleep(tickMs)
  }
  if (!start) start = await sample()
  await faultRunning
  while (inFlight > 0) await sleep(100)
  const pushEnd = await sample()
  say(`pushing done: ${pushed} pushed, ${rejected} rejected in ${((Date.now() - pushStart) / 1000).toFixed(0)} s; waiting for the schedule to empty`)

  // Drain: every pushed message published and acknowledged (the lease of a killed listener's
  // claims is 30 s).
  const drainStart = Date.now()
  for (;;) {
    const left = await redis.hlen(entriesKey).catch(() => -1)
    if (left === 0) break
    if (Date.now() - drainStart > 300000) {
      say(`${left} still scheduled 300 s after the last push: reading back anyway`)
      break
    }
    await sleep(1000)
  }
  const drainedMs = Date.now() - drainStart
  const end = await sample()
  const deadLettered = await redis.hlen(dlq)
  listener.kill('SIGTERM')
  await exited(listener)

  const kafka = new Kafka({ clientId: 'soak-read', brokers: cluster.brokers.split(','), logLevel: logLevel.NOTHING })
  const counts = new Uint8Array(total)
  const readStart = Date.now()
  const { read, outside } = await readBack(kafka, topic, counts)
  let published = 0
  let lost = 0
  let duplicated = 0
  let extraCopies = 0
  let rejectedButPublished = 0
  for (let i = 0; i < total; i += 1) {
    if (counts[i] > 0) published += 1
    if (state[i] === 1 && counts[i] === 0) lost += 1
    if (state[i] === 2 && counts[i] > 0) rejectedButPublished += 1
    if (counts[i] > 1) {
      duplicated += 1
      extraCopies += counts[i] - 1
    }
  }
  const byKind = {}
  for (const f of faults) (byKind[f.kind] = byKind[f.kind] || []).push(f.ms)
  const summary = {
    minutes: MINUTES,
    rate: RATE,
    pushed,
    rejected,
    published,
    readBack: read,
    lost,
    duplicated,
    extraCopies,
    rejectedButPublished,
    outside,
    deadLettered,
    faults: Object.fromEntries(Object.entries(byKind).map(([k, ms]) => [k, { count: ms.length, downMs: [Math.min(...ms), Math.max(...ms)] }])),
    drainedMs,
    readMs: Date.now() - readStart,
    start,
    pushEnd,
    end,
  }
  say(`read back ${read} messages in ${summary.readMs} ms`)
  process.stdout.write('\n== soak result\n')
  process.stdout.write(`duration        ${MINUTES} min at ${RATE}/s (${total} pushes attempted)\n`)
  process.stdout.write(`faults          ${Object.entries(summary.faults).map(([k, v]) => `${k} x${v.count} (down ${v.downMs[0]} to ${v.downMs[1]} ms)`).join(', ') || 'none'}\n`)
  process.stdout.write(`pushed          ${pushed} (rejected ${rejected}: Redis restarting; of those, published anyway ${rejectedButPublished})\n`)
  process.stdout.write(`published       ${published} distinct (${read} read back), dead-lettered ${deadLettered}\n`)
  process.stdout.write(`lost            ${lost}\n`)
  process.stdout.write(`duplicated      ${duplicated} messages (${extraCopies} extra copies)\n`)
  process.stdout.write(`schedule empty  ${drainedMs} ms after the last push\n`)
  process.stdout.write(`listener RSS    ${mib(start.listenerRss)} at 10 s, ${mib(pushEnd.listenerRss)} at the end of the pushes (the listener was restarted ${summary.faults.listener ? summary.faults.listener.count : 0} times)\n`)
  process.stdout.write(`pusher RSS      ${mib(start.pusherRss)} at 10 s, ${mib(pushEnd.pusherRss)} at the end of the pushes, ${mib(end.pusherRss)} after the drain\n`)
  process.stdout.write(`Redis memory    ${mib(start.redisMemory)} at 10 s, ${mib(pushEnd.redisMemory)} at the end of the pushes, ${mib(end.redisMemory)} after the drain (keys ${start.keys} / ${pushEnd.keys} / ${end.keys})\n`)
  process.stdout.write(`${JSON.stringify(summary)}\n`)

  await pusher.close()
  redis.disconnect()
  return lost === 0 && outside === 0 ? 0 : 1
}

async function cleanup() {
  for (const child of children) child.kill('SIGKILL')
  if (cluster) await cluster.stop().catch(() => {})
  fs.rmSync(dir, { recursive: true, force: true })
}

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    say(`${signal}: stopping the soak's servers`)
    cleanup().finally(() => process.exit(130))
  })
}

main().then(async (code) => {
  await cleanup()
  process.exit(code)
}, async (err) => {
  process.stderr.write(`soak: ${err.stack}\n`)
  await cleanup()
  process.exit(1)
})
