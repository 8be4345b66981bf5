// Shared helpers for the integration tests: real Redis and a real Kafka-protocol broker.
const Redis = require('ioredis')
const { Kafka, logLevel } = require('kafkajs')
const { execFileSync } = require('child_process')
const { freePort, freePorts, reachable } = require('../../scripts/services/ports')

const REDIS_URL = process.env.REDIS_URL || 'redis://127.0.0.1:6379'
const KAFKA_BROKERS = (process.env.KAFKA_BROKERS || '127.0.0.1:9092').split(',').map((s) => s.trim())

let counter = 0
/** A name no other test (or earlier run) uses: tests share servers. */
function unique(name) {
  counter += 1
  return `${name}-${process.pid}-${Date.now().toString(36)}-${counter}`
}

/** Fails (never skips) with instructions when a server the tests need is down. */
async function requireServers() {
  const redis = new URL(REDIS_URL)
  if (!(await reachable(redis.hostname, Number(redis.port || 6379)))) {
    throw new Error(`Redis is not reachable at ${REDIS_URL}: run \`scripts/services.sh start\` (or set REDIS_URL)`)
  }
  const [host, port] = KAFKA_BROKERS[0].split(':')
  if (!(await reachable(host, Number(port || 9092)))) {
    throw new Error(`No Kafka broker at ${KAFKA_BROKERS[0]}: run \`scripts/services.sh start\` (or set KAFKA_BROKERS)`)
  }
}

function redisClient() {
  return new Redis(REDIS_URL, { lazyConnect: false, maxRetriesPerRequest: 1 })
}

function kafka() {
  return new Kafka({ clientId: unique('test'), brokers: KAFKA_BROKERS, logLevel: logLevel.NOTHING })
}

async function createTopics(...topics) {
  const admin = kafka().admin()
  await admin.connect()
  try {
    await admin.createTopics({
      topics: topics.map((topic) => ({ topic, numPartitions: 1, replicationFactor: 1 })),
      waitForLeaders: true,
    })
  } finally {
    await admin.disconnect()
  }
}

/**
 * Starts a consumer on `topic` from the beginning; `onMessage` sees each message with its key,
 * parsed value and string headers. Returns the consumer (disconnect it) and the messages seen.
 */
async function consume(topic, onMessage = async () => {}) {
  const consumer = kafka().consumer({
    groupId: unique('group'),
    sessionTimeout: 6000,
    rebalanceTimeout: 3000,
    heartbeatInterval: 500,
    maxWaitTimeInMs: 100,
  })
  const seen = []
  await consumer.connect()
  await consumer.subscribe({ topic, fromBeginning: true })
  await consumer.run({
    eachMessage: async ({ topic: from, partition, message }) => {
      const headers = {}
      for (const [k, v] of Object.entries(message.headers || {})) headers[k] = v && v.toString()
      const record = {
        topic: from,
        partition,
        key: message.key && message.key.toString(),
        raw: message.value.toString(),
        value: JSON.parse(message.value.toString()),
        headers,
        rawHeaders: message.headers,
        at: Date.now(),
      }
      seen.push(record)
      await onMessage(record)
    },
  })
  return { consumer, seen }
}

async function producer() {
  const p = kafka().producer({ allowAutoTopicCreation: true })
  await p.connect()
  return p
}

/** Polls `check` until it returns truthy or `timeoutMs` passes; returns the last value. */
async function waitFor(check, timeoutMs = 30000, everyMs = 50) {
  const deadline = Date.now() + timeoutMs
  let value
  while (Date.now() < deadline) {
    value = await check()
    if (value) return value
    await sleep(everyMs)
  }
  return check()
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/** Keys of a schedule, as the package names them. */
function scheduleKeys(prefix) {
  return {
    due: `{${prefix}}:due`,
    lease: `{${prefix}}:lease`,
    batches: `{${prefix}}:batches`,
    entries: `{${prefix}}:entries`,
    seen: `{${prefix}}:seen`,
  }
}

/**
 * Every id leased on the schedule with `keys` and its lease deadline, flat as `ZRANGE lease 0 -1
 * WITHSCORES` gave them when the lease set held ids: the ids of each claimed batch (its name in
 * the lease set, its record in the batches hash: claim time, then ids, one a line) whose entry is
 * still stored (docs/storage-format.md), and ids leased one by one (0.3).
 */
async function leasedIds(redis, keys) {
  const members = await redis.zrange(keys.lease, 0, -1, 'WITHSCORES')
  const out = []
  for (let i = 0; i < members.length; i += 2) {
    const [member, deadline] = [members[i], members[i + 1]]
    if (!member.startsWith('b:')) {
      out.push(member, deadline)
      continue
    }
    const ids = ((await redis.hget(keys.batches, member)) || '').split('\n').slice(1)
    for (const id of ids) if (await redis.hexists(keys.entries, id)) out.push(id, deadline)
  }
  return out
}

/**
 * Reads a stored schedule entry, written independently of the Rust reader from the format the
 * README documents (ten newline-terminated fields, then the payload verbatim). Throws when the
 * text is not in that format.
 */
function decodeEntry(text) {
  const fields = []
  let at = 0
  for (let i = 0; i < 10; i++) {
    const end = text.indexOf('\n', at)
    if (end < 0) throw new Error(`entry has ${i} of 10 fields: ${JSON.stringify(text)}`)
    fields.push(text.slice(at, end))
    at = end + 1
  }
  const unescape = (s) => s.replace(/\\(.)/g, (_, c) => {
    if (c === 'n') return '\n'
    if (c === '\\') return '\\'
    throw new Error(`bad escape in ${JSON.stringify(s)}`)
  })
  const time = (s, name) => {
    if (!/^[0-9a-z]+$/.test(s)) throw new Error(`${name} ${JSON.stringify(s)} is not base 36`)
    return parseInt(s, 36)
  }
  const [due, waited, first, maxRetry, retryCount, topic, event, delay, errorName, errorMessage] = fields
  const dueAt = time(due, 'dueAt')
  const waitedMs = waited === '' ? undefined : time(waited, 'waitedMs')
  let firstFailedAt
  if (first === '') firstFailedAt = waitedMs === undefined ? undefined : dueAt - waitedMs
  else if (first !== '-') firstFailedAt = time(first, 'firstFailedAt')
  // The caller's headers section (U+0001, count, then kind+name and value lines), if any.
  const headers = []
  if (text[at] === '\u0001') {
    const line = () => {
      const end = text.indexOf('\n', at)
      if (end < 0) throw new Error(`headers section cut short: ${JSON.stringify(text)}`)
      const got = text.slice(at, end)
      at = end + 1
      return got
    }
    at += 1
    const count = Number(line())
    for (let i = 0; i < count; i++) {
      const head = line()
      const raw = line()
      const kind = head[0]
      const value = { s: () => unescape(raw), u: () => Buffer.from(unescape(raw), 'utf8'), b: () => Buffer.from(raw, 'base64') }[kind.toLowerCase()]
      if (!value) throw new Error(`unknown header kind ${kind}`)
      headers.push({ name: unescape(head.slice(1)), value: value(), inArray: kind !== kind.toLowerCase() })
    }
  }
  const entry = {
    topic: unescape(topic),
    event: unescape(event),
    value: text.slice(at),
    delay: unescape(delay),
    maxRetry: Number(maxRetry),
    retryCount: Number(retryCount),
    dueAt,
  }
  if (firstFailedAt !== undefined) entry.firstFailedAt = firstFailedAt
  if (waitedMs !== undefined) entry.waitedMs = waitedMs
  if (errorName !== '' || errorMessage !== '') entry.lastError = { name: unescape(errorName), message: unescape(errorMessage) }
  if (headers.length) entry.headers = headers
  return entry
}

/** Keys of every shard of a schedule (shard 0 is `{prefix}`, shard n `{prefix#n}`). */
function shardKeys(prefix, shards = 1) {
  return Array.from({ length: shards }, (_, n) => scheduleKeys(n === 0 ? prefix : `${prefix}#${n}`))
}

/** Resolves to { code, signal } once `child` exits; rejects after `timeoutMs`. */
function exited(child, timeoutMs) {
  if (child.exitCode !== null || child.signalCode !== null) {
    return Promise.resolve({ code: child.exitCode, signal: child.signalCode })
  }
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`pid ${child.pid} did not exit within ${timeoutMs} ms`)), timeoutMs)
    child.once('exit', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal })
    })
  })
}

/**
 * The set of child processes a test file starts: after each test, whatever still runs is killed,
 * so a failing test cannot leak one. Add every child to it.
 */
function killChildrenAfterEach() {
  const started = new Set()
  afterEach(async () => {
    for (const child of started) {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    }
    await Promise.all([...started].map((child) => exited(child, 5000).catch(() => {})))
    started.clear()
  })
  return started
}

/**
 * Calls `onLine(value, receivedAt)` with each line a child writes to `stream`, parsed as JSON, as
 * the lines arrive (a line may come in several chunks).
 */
function jsonLines(stream, onLine) {
  let buffered = ''
  stream.on('data', (d) => {
    buffered += d.toString()
    let nl
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, nl)
      buffered = buffered.slice(nl + 1)
      if (line.trim()) onLine(JSON.parse(line), Date.now())
    }
  })
}

/** Debian's chromium (scripts/browser.sh installs it), or $CHROMIUM_PATH, for the browser tests. */
function chromiumPath() {
  if (process.env.CHROMIUM_PATH) return process.env.CHROMIUM_PATH
  try {
    return execFileSync('sh', ['-c', 'command -v chromium || command -v chromium-browser'], { encoding: 'utf8' }).trim()
  } catch {
    throw new Error('No chromium found: run `bash scripts/browser.sh` (apt-get install -y chromium) or set CHROMIUM_PATH')
  }
}

/** The error `promise` rejects with; fails the test when it resolves. */
async function rejection(promise) {
  try {
    await promise
  } catch (err) {
    return err
  }
  throw new Error('expected a rejection')
}

/**
 * Schedules of this test file's own: `schedule(label, config?)` gives `{ prefix, dlq, retry }`, a
 * KafkaRetry on a unique prefix named after `name` and `label` (`config` over `defaults`), its
 * dead letter hash `prefix:<dlqSuffix>`. After the file each instance is closed and every key
 * of each prefix (`{prefix}*`, `prefix:*`) deleted.
 */
function schedulesForFile(name, { dlqSuffix = 'dead-letters', defaults = {} } = {}) {
  const { KafkaRetry } = require('../..')
  const made = []
  afterAll(async () => {
    await Promise.all(made.map(({ retry }) => retry.close().catch(() => {})))
    const redis = redisClient()
    for (const { prefix } of made) {
      const keys = [...(await redis.keys(`{${prefix}}*`)), ...(await redis.keys(`${prefix}:*`))]
      if (keys.length) await redis.del(...keys)
    }
    await redis.quit()
  })
  return (label, config = {}) => {
    const prefix = unique(`${name}-${label}`)
    const one = { prefix, dlq: `${prefix}:${dlqSuffix}`, retry: new KafkaRetry({ keyPrefix: prefix, ...defaults, ...config }) }
    made.push(one)
    return one
  }
}

module.exports = {
  schedulesForFile,
  rejection,
  exited,
  killChildrenAfterEach,
  freePort,
  freePorts,
  shardKeys,
  REDIS_URL,
  KAFKA_BROKERS,
  unique,
  requireServers,
  redisClient,
  kafka,
  createTopics,
  consume,
  producer,
  waitFor,
  sleep,
  scheduleKeys,
  leasedIds,
  decodeEntry,
  chromiumPath,
  jsonLines,
}
