// The README's five-minute start, run as written against the real Redis and Kafka: its start.js
// (the topic, group, dead letter queue and keyPrefix made unique, the requires pointed at this
// checkout) fails the order three times and dead-letters it; the CLI lines that follow list the
// dead letter and requeue it, and the requeued order fails three more times; SIGTERM closes the
// listener's instance and the process exits by itself (nothing calls process.exit).
const fs = require('fs')
const os = require('os')
const path = require('path')
const { spawn, execFileSync } = require('child_process')
const Redis = require('ioredis')

/** The repository root: the nearest folder above this file with a package.json (this file may move). */
function repoRoot() {
  let dir = __dirname
  while (!fs.existsSync(path.join(dir, 'package.json'))) dir = path.dirname(dir)
  return dir
}
const ROOT = repoRoot()
const { KafkaRetry } = require(ROOT)
const REDIS_URL = process.env.REDIS_URL || 'redis://127.0.0.1:6379'
const KAFKA_BROKERS = process.env.KAFKA_BROKERS || 'localhost:9092'

/** The README's section under `heading`, up to the next `## ` heading. */
function readmeSection(heading) {
  const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8')
  const start = readme.indexOf(`\n${heading}\n`)
  if (start < 0) throw new Error(`README has no heading ${heading}`)
  const rest = readme.slice(start + heading.length + 2)
  const end = rest.search(/^## /m)
  return end < 0 ? rest : rest.slice(0, end)
}

/** `text` with every `from` replaced by `to`; fails when `from` is not in it (the README changed). */
function replaceAll(text, from, to) {
  expect({ from, found: text.includes(from) }).toEqual({ from, found: true })
  return text.split(from).join(to)
}

/** Polls `fn` every 100 ms until it returns true or `ms` pass. */
async function waitFor(fn, ms) {
  const end = Date.now() + ms
  while (Date.now() < end) {
    if (await fn()) return true
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  return false
}

test("the README's five-minute start: three failed attempts, a dead letter, the CLI lists and requeues it", async () => {
  const section = readmeSection('## Five-minute start')
  const unique = `five-minute-${process.pid}-${Date.now()}`
  const dlq = `${unique}-dlq`
  let script = /```js\n([\s\S]*?)```/.exec(section)[1]
  script = replaceAll(script, "require('kafka-redis-retry')", `require(${JSON.stringify(ROOT)})`)
  script = replaceAll(script, "require('kafkajs')", `require(${JSON.stringify(require.resolve('kafkajs'))})`)
  script = replaceAll(script, "'orders'", `'${unique}'`)
  script = replaceAll(script, "'retry-start'", `'${unique}'`)
  script = replaceAll(script, "'DEAD_LETTER_QUEUE'", `'${dlq}'`)
  script = replaceAll(script, 'new KafkaRetry()', `new KafkaRetry({ keyPrefix: '${unique}' })`)
  // The CLI lines as the README gives them, with this run's dead letter queue and schedule.
  const cli = /```sh\n(npx kafka-redis-retry dlq list[\s\S]*?)```/.exec(section)[1]
    .split('\n').filter((l) => l.startsWith('npx kafka-redis-retry dlq '))
    .map((l) => l.replace(/\s+#.*$/, '').split(/\s+/).slice(2).map((a) => (a === 'DEAD_LETTER_QUEUE' ? dlq : a)))
  expect(cli.map((args) => args.slice(0, 2).join(' '))).toEqual(['dlq list', 'dlq requeue'])

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'five-minute-'))
  fs.writeFileSync(path.join(dir, 'start.js'), script)
  const env = { ...process.env, REDIS_URL, KAFKA_BROKERS }
  const child = spawn(process.execPath, ['start.js'], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  const seen = [] // when each attempt line arrived
  child.stdout.on('data', (d) => {
    out += d
    for (const line of String(d).split('\n')) if (/^attempt \d+ failed/.test(line)) seen.push(Date.now())
  })
  child.stderr.on('data', () => {}) // kafkajs's own log lines
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })))
  const attempts = () => out.split('\n').filter((l) => /^attempt \d+ failed: payment service unavailable$/.test(l))
  const retry = new KafkaRetry({ redisUrl: REDIS_URL, keyPrefix: unique })
  const deadLetters = async () => (await retry.deadLetters(dlq, { limit: 10 })).items
  try {
    // Delay '0.05' minutes: attempt 2 about 3 s after attempt 1, attempt 3 3 s later, then the dead letter.
    expect(await waitFor(async () => attempts().length >= 3 && (await deadLetters()).length === 1, 60000)).toBe(true)
    expect(attempts()).toEqual([1, 2, 3].map((n) => `attempt ${n} failed: payment service unavailable`))
    // A retry visible within seconds: the README's delay '0.05' min is 3 s, not the default 2 minutes.
    const gap = seen[1] - seen[0]
    expect({ gap, within: gap >= 2500 && gap < 10000 }).toEqual({ gap, within: true })
    const [dead] = await deadLetters()
    expect(dead).toMatchObject({ topic: unique, event: 'order-created', value: { orderId: 'A-1001', amount: 42 } })
    expect(dead.error).toMatchObject({ message: 'payment service unavailable' })

    const bin = path.join(ROOT, 'bin', 'kafka-redis-retry.js')
    const listed = execFileSync(process.execPath, [bin, ...cli[0], '--prefix', unique], { env, encoding: 'utf8' })
    expect(listed).toContain(dead.id)
    const requeued = execFileSync(process.execPath, [bin, ...cli[1], '--prefix', unique], { env, encoding: 'utf8' })
    expect(requeued).toContain('requeued 1 dead letter')
    // retryCount back to 0: the still running start.js fails it three more times, then it is dead again.
    expect(await waitFor(async () => attempts().length >= 6 && (await deadLetters()).length === 1, 60000)).toBe(true)
    expect(attempts().slice(3)).toEqual([1, 2, 3].map((n) => `attempt ${n} failed: payment service unavailable`))

    // SIGTERM (docker stop, systemd, Kubernetes): the README's handler disconnects the consumer,
    // closes the listener's instance and the producer; with nothing left on the event loop the
    // process exits 0 by itself, within seconds.
    const termAt = Date.now()
    child.kill('SIGTERM')
    expect(await Promise.race([exited, new Promise((resolve) => setTimeout(() => resolve('still running after 20 s'), 20000))]))
      .toEqual({ code: 0, signal: null })
    expect(Date.now() - termAt).toBeLessThan(20000)
  } finally {
    child.kill('SIGKILL')
    await retry.removeDeadLetters(dlq, {}).catch(() => {})
    await retry.close()
    const redis = new Redis(REDIS_URL)
    for (const match of [`{${unique}}*`, `${dlq}*`]) {
      for await (const keys of redis.scanStream({ match, count: 1000 })) if (keys.length) await redis.del(...keys)
    }
    redis.disconnect()
    fs.rmSync(dir, { recursive: true, force: true })
  }
})
