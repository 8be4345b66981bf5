// retry.retrying() and retry.retryingBatch() in real consumers against the real Redis and broker:
// kafkajs, and Confluent's KafkaJS API (@confluentinc/kafka-javascript, a native client jest
// cannot load, so each runs in children/consumer.mjs), each as its README configures it. A failing
// handler's messages come back through the schedule and are handled once they succeed; an error
// isPermanent marks and a value that is not JSON go straight to the dead letters; a batch's
// failures go with one pushMany before its offset is resolved; a push Redis does not take leaves
// the offset uncommitted. Then the kafkajs example of docs/consumer.md, run as written.
const fs = require('fs')
const path = require('path')
const { execFile, spawn } = require('child_process')
const { KafkaRetry } = require('../..')
const h = require('../helpers')

beforeAll(h.requireServers)

const ROOT = path.join(__dirname, '..', '..')

/** Runs children/consumer.mjs with `env` and resolves with its RESULT. */
function child(env) {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [path.join(__dirname, '..', 'children', 'consumer.mjs')], { env: { ...process.env, ...env }, timeout: 120000 }, (err, stdout, stderr) => {
      const result = stdout.split('\n').find((line) => line.startsWith('RESULT '))
      if (err || !result) reject(new Error(`${err ? err.message : 'no RESULT line'}\n${stdout}\n${stderr}`))
      else resolve(JSON.parse(result.slice('RESULT '.length)))
    })
  })
}

/** Fails (never skips) when the script that builds Confluent's client was not run. */
function requireBuilt(client) {
  if (client === 'confluent' && !process.env.KAFKA_RETRY_CONFLUENT_KAFKA) {
    throw new Error('KAFKA_RETRY_CONFLUENT_KAFKA is not set: run `export KAFKA_RETRY_CONFLUENT_KAFKA=$(bash scripts/confluent-kafka.sh)` (scripts/test.sh does)')
  }
}

async function run(client, mode, more = {}) {
  requireBuilt(client)
  const name = h.unique(`consumer-${client}-${mode}`)
  await h.createTopics(name)
  return child({ CLIENT: client, MODE: mode, TOPIC: name, PREFIX: name, GROUP: name, WAIT_MS: '60000', ...more })
}

describe.each(['kafkajs', 'confluent'])('%s consumer', (client) => {
  const MODES = [
    ['retrying (eachMessage)', 'each'],
    ['retryingBatch (eachBatch)', 'batch'],
  ]
  test.each(MODES)('%s: failures retried and handled once, isPermanent and a non-JSON value dead-lettered with the reason', async (label, mode) => {
    const { handled, deadLetters, stats, log } = await run(client, mode)
    // Handled once each: ok-1 at once, the flaky ones on their first retry, with the header kept.
    const byKey = (a, b) => a.key.localeCompare(b.key)
    expect(handled.sort(byKey)).toEqual([
      { key: 'flaky-1', retryCount: '1', tenant: 'acme' },
      { key: 'flaky-2', retryCount: '1' },
      { key: 'ok-1' },
    ])
    // Straight to the dead letters: no retry was published for them (2 publishes: the flaky ones).
    expect(deadLetters.sort((a, b) => a.event.localeCompare(b.event))).toEqual([
      { event: 'perm-1', value: { id: 3 }, error: { name: 'CardDeclined', message: 'card declined' } },
      { event: 'text-1', value: 'not json', error: { name: 'Error', message: 'the message value is not JSON text, so it cannot be retried; the handler failed with: cannot parse' } },
    ])
    expect(stats).toMatchObject({ published: 2, scheduled: 0, inflight: 0 })
    const pushes = log.filter(([what]) => what.startsWith('push'))
    if (mode === 'each') {
      expect(pushes).toEqual([['pushToQueue', 1], ['pushToDlq', 1], ['pushToQueue', 1], ['pushToDlq', 1]])
    } else {
      // Per batch: the retries of its failures in one pushMany, and its offset resolved after it.
      const batches = []
      for (const entry of log) {
        if (entry[0] === 'batch') batches.push([])
        else batches[batches.length - 1].push(entry)
      }
      for (const batch of batches) {
        const many = batch.filter(([what]) => what === 'pushMany')
        expect(many.length).toBeLessThanOrEqual(1)
        if (many.length) expect(batch.indexOf(many[0])).toBeLessThan(batch.findIndex(([what]) => what === 'resolve'))
      }
      expect(pushes.filter(([what]) => what === 'pushMany').reduce((sum, [, n]) => sum + n, 0)).toBe(2)
      // kafkajs hands the five messages over as one batch: one pushMany of both failures.
      if (client === 'kafkajs') expect(pushes.filter(([what]) => what === 'pushMany')).toEqual([['pushMany', 2]])
    }
  })

  test.each(MODES)("%s with ordered: true: a key's later messages wait for its failed one", async (label, mode) => {
    const { handled, stats } = await run(client, mode, { ORDERED: '1' })
    expect(handled).toEqual([
      { key: 'account-7', v: 1, retryCount: '1' },
      { key: 'account-7', v: 2, retryCount: expect.any(String) },
      { key: 'account-7', v: 3, retryCount: expect.any(String) },
    ])
    expect(stats).toMatchObject({ blockedKeys: 0, parkedMessages: 0, scheduled: 0 })
  })

  test.each(MODES)('%s: a push Redis does not take rejects, and the offset is not committed', async (label, mode) => {
    const { rejections, committed, log } = await run(client, mode, { REDIS_DOWN: '1', WAIT_MS: '30000' })
    expect(rejections).toBeGreaterThanOrEqual(2)
    expect(log.filter(([what]) => what === 'resolve')).toEqual([])
    // Nothing past the failed message (offset 0): -1 (nothing committed) or 0 (read 0 next).
    expect(committed.map(Number).every((offset) => offset <= 0)).toBe(true)
  })
})

test('docs/consumer.md: the kafkajs example as written', async () => {
  const page = fs.readFileSync(path.join(ROOT, 'docs', 'consumer.md'), 'utf8')
  let script = /```js\n(\/\/ orders-service\.js[\s\S]*?)```/.exec(page)[1]
  const unique = h.unique('consumer-doc')
  const replace = (from, to) => {
    expect({ from, found: script.includes(from) }).toEqual({ from, found: true })
    script = script.split(from).join(to)
  }
  replace("require('kafka-redis-retry')", `require(${JSON.stringify(ROOT)})`)
  replace("require('kafkajs')", `require(${JSON.stringify(require.resolve('kafkajs'))})`)
  replace("'localhost:9092'", JSON.stringify(process.env.KAFKA_BROKERS || '127.0.0.1:9092'))
  replace("'orders'", `'${unique}'`)
  replace("'orders-service'", `'${unique}'`)
  replace("'DEAD_LETTER_QUEUE'", `'${unique}-dlq'`)
  replace('new KafkaRetry()', `new KafkaRetry({ keyPrefix: '${unique}' })`)
  replace("delay: '0.5'", "delay: '0.001'")
  await h.createTopics(unique)
  const file = path.join(require('os').tmpdir(), `${unique}.js`)
  fs.writeFileSync(file, script)
  const service = spawn(process.execPath, [file], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  service.stdout.on('data', (d) => (out += d))
  service.stderr.on('data', (d) => (out += d))
  const producer = await h.producer()
  const retry = new KafkaRetry({ keyPrefix: unique })
  try {
    await producer.send({ topic: unique, messages: [{ key: 'order-1', value: '{"id":1,"amount":5}' }, { key: 'order-2', value: '{"id":2}' }] })
    // Order 1: its first charge fails, its retry is charged; order 2 has no amount: a dead letter.
    await h.waitFor(() => out.includes('charged order 1'), 60000)
    const { items } = await h.waitFor(async () => {
      const page = await retry.deadLetters(`${unique}-dlq`)
      return page.items.length > 0 && page
    }, 30000)
    expect(items.map(({ event, error }) => ({ event, error }))).toEqual([{ event: 'order-2', error: { name: 'ValidationError', message: 'order has no amount' } }])
    expect(out.match(/charged order \d/g)).toEqual(['charged order 1'])
  } finally {
    service.kill('SIGTERM')
    await new Promise((resolve) => service.once('exit', resolve))
    await retry.close()
    await producer.disconnect()
    fs.rmSync(file, { force: true })
  }
})
