// kafka-redis-retry/nestjs in a real Nest application (__test__/children/nest-app.js, a child
// process: Nest 12 is an ES module, which jest's require() does not load): a Kafka microservice
// on the test broker whose failing @EventPattern handler retries through Redis and the module's
// listener, a permanent error dead-lettered, the instance closed with the application, a push that
// fails leaving the offset uncommitted, and forRootAsync.
const path = require('path')
const { fork } = require('child_process')
const h = require('../helpers')
const { KafkaRetry } = require('../..')

const CHILD = path.join(__dirname, '..', 'children', 'nest-app.js')
const children = []
const retries = []

/** Starts the Nest application; `next(predicate)` resolves to the first report (seen or to come) it matches. */
function startApp(env) {
  const child = fork(CHILD, [], {
    env: { ...process.env, KAFKA_BROKERS: h.KAFKA_BROKERS.join(','), REDIS_URL: h.REDIS_URL, ...env },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  children.push(child)
  const reports = []
  const waiting = []
  child.on('message', (message) => {
    reports.push(message)
    for (const wait of waiting.slice()) {
      if (wait.predicate(message)) {
        waiting.splice(waiting.indexOf(wait), 1)
        wait.resolve(message)
      }
    }
  })
  const exited = new Promise((resolve) => child.on('exit', resolve))
  function next(predicate, what, timeoutMs = 60000) {
    const seen = reports.find(predicate)
    if (seen) return Promise.resolve(seen)
    return new Promise((resolve, reject) => {
      const wait = { predicate, resolve }
      waiting.push(wait)
      const timer = setTimeout(() => reject(new Error(`no ${what} from the Nest app within ${timeoutMs} ms; reports: ${JSON.stringify(reports)}`)), timeoutMs)
      exited.then((code) => reject(new Error(`the Nest app exited (${code}) before ${what}; reports: ${JSON.stringify(reports)}`)))
      const settle = wait.resolve
      wait.resolve = (message) => {
        clearTimeout(timer)
        settle(message)
      }
    })
  }
  return { child, reports, next, exited }
}

async function produce(topic, messages) {
  const producer = h.kafka().producer()
  await producer.connect()
  try {
    await producer.send({ topic, messages })
  } finally {
    await producer.disconnect()
  }
}

beforeAll(async () => {
  await h.requireServers()
})

afterAll(async () => {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL')
  for (const retry of retries) await retry.close()
})

test.each([
  ['@RetryThroughQueue on the handler', 'flow'],
  ['the interceptor installed with app.useGlobalInterceptors', 'global'],
])('%s: a failing @EventPattern handler retries through Redis until it succeeds; a permanent error and a payload that is not JSON are dead-lettered; app.close() closes the instance', async (_how, mode) => {
  const topic = h.unique('nest-orders')
  const prefix = h.unique('nest')
  const dlq = h.unique('nest-dlq')
  await h.createTopics(topic)
  const app = startApp({ NEST_MODE: mode, NEST_TOPIC: topic, NEST_PREFIX: prefix, NEST_DLQ: dlq, NEST_GROUP: h.unique('nest-group'), NEST_FAIL_TIMES: '2' })
  const ready = await app.next((m) => m.type === 'ready', 'ready')
  expect(ready).toEqual({ type: 'ready', isKafkaRetry: true, sameInControllers: true, keyPrefix: prefix })

  await produce(topic, [
    { key: 'order-1', value: JSON.stringify({ msgId: 'm-1', id: 'o1', total: 12.5 }) },
    { key: 'order-2', value: JSON.stringify({ msgId: 'm-2', id: 'o2', kind: 'permanent' }) },
    { key: 'order-3', value: 'not json' },
  ])

  const handled = await app.next((m) => m.type === 'handled', 'the retried order handled')
  expect(handled).toEqual({ type: 'handled', id: 'o1', key: 'order-1', attempts: 3 })
  // Each attempt after the first is a re-publish by the listener, carrying the retry count.
  const o1 = app.reports.filter((m) => m.type === 'attempt' && m.id === 'o1')
  expect(o1.map((m) => m.retryCount)).toEqual(['0', '1', '2'])
  expect(new Set(o1.map((m) => m.offset)).size).toBe(3)

  const retry = new KafkaRetry({ redisUrl: h.REDIS_URL, keyPrefix: prefix })
  retries.push(retry)
  let page
  await h.waitFor(async () => {
    page = await retry.deadLetters(dlq)
    return page.items.length === 2
  }, 20000)
  page.items.sort((a, b) => a.event.localeCompare(b.event))
  expect(page.items[0]).toMatchObject({
    topic,
    event: 'order-2',
    value: { msgId: 'm-2', id: 'o2', kind: 'permanent' },
    error: expect.objectContaining({ message: 'order o2 is malformed' }),
  })
  // A payload that is not JSON cannot be pushed: dead-lettered, with the handler's error.
  expect(page.items[1]).toMatchObject({ topic, event: 'order-3', value: 'not json', error: expect.objectContaining({ message: 'attempt 1 of not json failed' }) })
  expect(app.reports.filter((m) => m.type === 'attempt' && m.id === 'o2')).toHaveLength(1)
  expect(app.reports.filter((m) => m.type === 'attempt' && m.id === 'not json')).toHaveLength(1)
  expect((await retry.stats()).scheduled).toBe(0)

  app.child.send({ type: 'close' })
  expect(await app.next((m) => m.type === 'closed', 'the probe after close')).toEqual({ type: 'closed', code: 'ERR_CLOSED' })
  expect(await app.exited).toBe(0)
})

test('when the push fails the handler error propagates: the offset is not committed and Kafka redelivers the message', async () => {
  const topic = h.unique('nest-unreachable')
  await h.createTopics(topic)
  const app = startApp({ NEST_MODE: 'unreachable', NEST_TOPIC: topic, NEST_PREFIX: h.unique('nest'), NEST_GROUP: h.unique('nest-group') })
  await app.next((m) => m.type === 'ready', 'ready')
  await produce(topic, [{ key: 'k', value: JSON.stringify({ msgId: 'u-1', id: 'u1' }) }])
  await app.next((m) => m.type === 'attempt' && m.id === 'u1' && app.reports.filter((r) => r.type === 'attempt').length >= 2, 'a redelivery')
  const attempts = app.reports.filter((m) => m.type === 'attempt')
  // The same offset again, and no retry count: Kafka redelivered it, nothing was re-published.
  expect(attempts[1]).toEqual(attempts[0])
  app.child.kill('SIGKILL')
  await app.exited
})

test('forRootAsync takes its config from an injected provider; bad options are ERR_INVALID_ARG', async () => {
  const prefix = h.unique('nest-async')
  const app = startApp({ NEST_MODE: 'async', NEST_TOPIC: h.unique('nest-async-topic'), NEST_PREFIX: prefix })
  const ready = await app.next((m) => m.type === 'ready', 'ready')
  expect(ready.keyPrefix).toBe(prefix)
  expect(ready.scheduled).toBe(1)
  expect(ready.invalid.map((e) => e && e.code)).toEqual(['ERR_INVALID_ARG', 'ERR_INVALID_ARG', 'ERR_INVALID_ARG', 'ERR_INVALID_ARG'])
  expect(ready.invalid[0].message).toMatch(/config must be an object, got "redis:\/\/x"/)
  expect(await app.next((m) => m.type === 'closed', 'the probe after close')).toEqual({ type: 'closed', code: 'ERR_CLOSED' })
  expect(await app.exited).toBe(0)
  const redis = h.redisClient()
  try {
    // Not left behind for other suites: the one scheduled message of this prefix.
    const keys = await redis.keys(`*${prefix}*`)
    if (keys.length) await redis.del(...keys)
  } finally {
    redis.disconnect()
  }
})
