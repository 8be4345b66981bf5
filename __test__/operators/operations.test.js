// Operator controls (issue 19): dead letters searched by filter, requeued or removed by filter,
// pause and resume, the publish rate cap, per-topic counts and history. Real Redis and broker.
const { spawn } = require('child_process')
const path = require('path')
const { KafkaRetry } = require('../..')
const h = require('../helpers')

beforeAll(h.requireServers)
const children = h.killChildrenAfterEach()

/** Runs `script` in a child Node process (cwd: the package root) with `OPS` = JSON of `config`. */
function spawnNode(script, config) {
  const child = spawn(process.execPath, ['-e', script], {
    cwd: path.join(__dirname, '..', '..'),
    env: { ...process.env, OPS: JSON.stringify(config) },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  children.add(child)
  child.out = ''
  child.stdout.on('data', (d) => (child.out += d.toString()))
  child.stderr.on('data', (d) => (child.out += d.toString()))
  return child
}

/** A listener whose JS producer records what it publishes. */
async function recordingListener(config, dlq) {
  const published = []
  const retry = new KafkaRetry({ pollIntervalMs: 100, ...config })
  await retry.queueListener({ produce: async (topic, key, value) => published.push({ topic, key, value: JSON.parse(value), at: Date.now() }) }, dlq)
  return { retry, published }
}

/** How many times each key was published. */
function timesByKey(published) {
  const times = {}
  for (const p of published) times[p.key] = (times[p.key] || 0) + 1
  return times
}

const TOPICS = ['orders', 'payments', 'mail']
const TIMEOUT = { name: 'TimeoutError', message: 'Downstream timed out after 30s' }
const REFUSED = { name: 'Error', message: 'connect ECONNREFUSED 10.0.0.7:443' }

/** 30 dead letters: three topics, two errors, two tenants (a header), two times of death. */
async function deadLetters(retry, dlq, prefix) {
  const written = []
  for (let i = 0; i < 30; i++) {
    if (i === 15) {
      await h.sleep(30)
      written.middle = Date.now()
      await h.sleep(30)
    }
    const record = {
      topic: TOPICS[i % 3],
      event: `ev-${i}`,
      value: { n: i, tier: i % 5 === 0 ? 'vip' : 'std' },
      options: { delay: '0.001', maxRetry: '3', retryCount: '4', tenant: i < 10 ? 'acme' : 'globex' },
      error: i % 2 ? TIMEOUT : REFUSED,
      keyPrefix: prefix,
    }
    const id = await retry.pushToDlq(dlq, record)
    written.push({ id, i, ...record })
  }
  return written
}

/** Every item of a filtered listing, page by page (each page checked against its bounds). */
async function all(retry, dlq, query, limit = 4) {
  const items = []
  let cursor = null
  let pages = 0
  do {
    const page = await retry.deadLetters(dlq, { ...query, limit, cursor })
    expect(page.items.length).toBeLessThanOrEqual(limit)
    expect(page.scanned).toBeLessThanOrEqual(5000)
    items.push(...page.items)
    cursor = page.cursor
    if (++pages > 100) throw new Error('the listing does not end')
  } while (cursor)
  return items
}

const ids = (items) => items.map((d) => d.id).sort()

describe('dead letter search', () => {
  test('each filter returns exactly its dead letters, across pages, filters combined with AND', async () => {
    const prefix = h.unique('search')
    const dlq = h.unique('dlq')
    const retry = new KafkaRetry({ keyPrefix: prefix })
    try {
      const written = await deadLetters(retry, dlq, prefix)
      const expectIds = async (query, keep) => {
        const got = await all(retry, dlq, query)
        expect(ids(got)).toEqual(ids(written.filter(keep)))
        // Newest first.
        const died = got.map((d) => d.diedAt)
        expect(died).toEqual([...died].sort((a, b) => b - a))
      }
      await expectIds({}, () => true)
      await expectIds({ topic: 'payments' }, (d) => d.topic === 'payments')
      await expectIds({ errorContains: 'timed OUT' }, (d) => d.error === TIMEOUT)
      await expectIds({ errorContains: 'timeouterror' }, (d) => d.error === TIMEOUT)
      await expectIds({ errorContains: 'econnrefused' }, (d) => d.error === REFUSED)
      await expectIds({ search: '"tier":"vip"' }, (d) => d.value.tier === 'vip')
      await expectIds({ search: 'ev-2' }, (d) => d.event.startsWith('ev-2'))
      await expectIds({ search: 'acme' }, (d) => d.options.tenant === 'acme')
      await expectIds({ until: written.middle }, (d) => d.i < 15)
      await expectIds({ since: written.middle }, (d) => d.i >= 15)
      await expectIds({ topic: 'mail', errorContains: 'timeout', since: written.middle }, (d) => d.topic === 'mail' && d.error === TIMEOUT && d.i >= 15)
      await expectIds({ topic: 'nope' }, () => false)
      await expect(retry.deadLetters(dlq, { since: 10, until: 5 })).rejects.toMatchObject({ code: 'ERR_INVALID_ARG' })
      await expect(retry.deadLetters(dlq, { since: -1 })).rejects.toMatchObject({ code: 'ERR_INVALID_ARG' })
      await expect(retry.deadLetters(dlq, { topic: 5 })).rejects.toMatchObject({ code: 'ERR_INVALID_ARG' })
    } finally {
      await retry.close()
    }
  })

  test('a filtered page reads a bounded number of records, however many dead letters there are', async () => {
    const dlq = h.unique('dlq-big')
    const redis = h.redisClient()
    const retry = new KafkaRetry({ keyPrefix: h.unique('big') })
    try {
      const pipe = redis.pipeline()
      for (let i = 0; i < 12000; i++) {
        const id = `big-${i}`
        pipe.hset(dlq, id, JSON.stringify({ topic: 't', event: `e${i}`, value: { i }, diedAt: 1000 + i }))
        pipe.zadd(`${dlq}:index`, 1000 + i, id)
      }
      await pipe.exec()
      const scanned = []
      let cursor = null
      let found = []
      do {
        const page = await retry.deadLetters(dlq, { search: 'e7', limit: 10000, cursor })
        scanned.push(page.scanned)
        found.push(...page.items)
        cursor = page.cursor
      } while (cursor)
      for (const n of scanned) expect(n).toBeLessThanOrEqual(5000)
      expect(scanned.reduce((a, b) => a + b, 0)).toBe(12000)
      expect(found.length).toBe(new Array(12000).fill(0).filter((_, i) => `e${i}`.includes('e7')).length)
    } finally {
      await redis.del(dlq, `${dlq}:index`)
      redis.disconnect()
      await retry.close()
    }
  })
})

describe('requeue and remove what a filter matches', () => {
  test('a dry run moves nothing; a filtered requeue publishes exactly the matched once; remove takes exactly its matches', async () => {
    const prefix = h.unique('bulk')
    const dlq = h.unique('dlq')
    const { retry, published } = await recordingListener({ keyPrefix: prefix }, h.unique('dlq-listener'))
    try {
      const written = await deadLetters(retry, dlq, prefix)
      const matched = written.filter((d) => d.topic === 'orders' && d.error === TIMEOUT)
      const filter = { topic: 'orders', errorContains: 'timeout' }
      expect(await retry.requeueDeadLetters(dlq, filter, { dryRun: true })).toBe(matched.length)
      expect(await retry.removeDeadLetters(dlq, filter, { dryRun: true })).toBe(matched.length)
      expect((await all(retry, dlq, {})).length).toBe(30)
      expect((await retry.stats()).scheduled).toBe(0)

      expect(await retry.requeueDeadLetters(dlq, filter)).toBe(matched.length)
      await h.waitFor(() => published.length === matched.length, 5000)
      await h.sleep(300)
      expect(timesByKey(published)).toEqual(Object.fromEntries(matched.map((d) => [d.event, 1])))
      // Requeued with retryCount reset, the payload as it was.
      expect(published.map((p) => p.value.n).sort((a, b) => a - b)).toEqual(matched.map((d) => d.i))
      const left = await all(retry, dlq, {}, 100)
      expect(ids(left)).toEqual(ids(written.filter((d) => !matched.includes(d))))
      expect(await retry.requeueDeadLetters(dlq, filter)).toBe(0)

      // Remove: exactly the matches go; the others stay.
      const refused = left.filter((d) => d.error.message.includes('ECONNREFUSED'))
      expect(await retry.removeDeadLetters(dlq, { errorContains: 'econnrefused' })).toBe(refused.length)
      expect(ids(await all(retry, dlq, {}, 100))).toEqual(ids(left.filter((d) => !refused.includes(d))))

      await expect(retry.requeueDeadLetters(dlq, {}, { ratePerSec: 0 })).rejects.toMatchObject({ code: 'ERR_INVALID_ARG' })
      await expect(retry.requeueDeadLetters(dlq, {}, { delayMs: -5 })).rejects.toMatchObject({ code: 'ERR_INVALID_ARG' })
      await expect(retry.removeDeadLetters(dlq, { until: 'x' })).rejects.toMatchObject({ code: 'ERR_INVALID_ARG' })
    } finally {
      await retry.close()
    }
  })

  test('delayMs schedules the requeued messages later; ratePerSec paces the requeue', async () => {
    const prefix = h.unique('pace')
    const dlq = h.unique('dlq')
    const retry = new KafkaRetry({ keyPrefix: prefix })
    const redis = h.redisClient()
    try {
      await deadLetters(retry, dlq, prefix)
      const started = Date.now()
      expect(await retry.requeueDeadLetters(dlq, { topic: 'mail' }, { ratePerSec: 20, delayMs: 60000 })).toBe(10)
      const took = Date.now() - started
      // 10 moves at 20/s: the 10th starts 450 ms after the first.
      expect(took).toBeGreaterThanOrEqual(450)
      const keys = h.scheduleKeys(prefix)
      const due = await redis.zrange(keys.due, 0, -1, 'WITHSCORES')
      expect(due.length).toBe(20)
      for (let i = 1; i < due.length; i += 2) expect(Number(due[i])).toBeGreaterThan(started + 59000)
      expect((await retry.stats()).due).toBe(0)
    } finally {
      redis.disconnect()
      await retry.close()
    }
  })

  test('an AbortSignal stops a paced requeue before its next move; onProgress counts as it goes; the same requeue again finishes it', async () => {
    const prefix = h.unique('abort')
    const dlq = h.unique('dlq')
    const retry = new KafkaRetry({ keyPrefix: prefix })
    try {
      const written = await deadLetters(retry, dlq, prefix)
      const matched = written.filter((d) => d.error === REFUSED)
      const controller = new AbortController()
      const reports = []
      setTimeout(() => controller.abort(), 700)
      const moved = await retry.requeueDeadLetters(dlq, { errorContains: 'refused' }, {
        ratePerSec: 10, signal: controller.signal, onProgress: (n) => reports.push(n),
      })
      // At 10/s, 7 or 8 of the 15 have moved after 700 ms.
      expect(moved).toBeGreaterThanOrEqual(5)
      expect(moved).toBeLessThan(matched.length)
      await h.sleep(300)
      expect((await retry.stats()).scheduled).toBe(moved)
      expect(reports.length).toBeGreaterThan(1)
      expect(reports).toEqual([...reports].sort((a, b) => a - b))
      expect(reports[reports.length - 1]).toBe(moved)
      // Aborted before it starts: nothing moves.
      expect(await retry.requeueDeadLetters(dlq, {}, { signal: AbortSignal.abort() })).toBe(0)
      // Run again in a process of its own whose progress function throws: the rest, and a
      // process warning, not an uncaught exception.
      const child = spawnNode(
        `const { KafkaRetry } = require('.')
        const c = JSON.parse(process.env.OPS)
        const retry = new KafkaRetry({ keyPrefix: c.prefix })
        retry.requeueDeadLetters(c.dlq, { errorContains: 'refused' }, {
          onProgress: () => { throw new Error('progress display broke') },
        }).then((n) => { console.log('done', n); return retry.close() })`,
        { prefix, dlq },
      )
      expect(await h.exited(child, 10000)).toEqual({ code: 0, signal: null })
      expect(child.out).toMatch(/KafkaRetryWarning: requeueDeadLetters onProgress threw: Error: progress display broke/)
      expect(child.out).toContain(`done ${matched.length - moved}`)
      expect((await retry.stats()).scheduled).toBe(matched.length)

      await expect(retry.requeueDeadLetters(dlq, {}, { signal: { aborted: false } })).rejects.toMatchObject({ code: 'ERR_INVALID_ARG', message: expect.stringMatching(/options.signal must be an AbortSignal/) })
      await expect(retry.requeueDeadLetters(dlq, {}, { onProgress: 5 })).rejects.toMatchObject({ code: 'ERR_INVALID_ARG', message: expect.stringMatching(/options.onProgress must be a function, got number 5/) })
    } finally {
      await retry.close()
    }
  })

  test('an AbortSignal stops a removal between removals; onProgress counts as it goes; the same removal again takes the rest', async () => {
    const prefix = h.unique('abort-remove')
    const dlq = h.unique('dlq')
    const retry = new KafkaRetry({ keyPrefix: prefix })
    try {
      const total = 5000
      for (let i = 0; i < total; i += 1000) {
        await Promise.all(Array.from({ length: 1000 }, (_, j) => retry.pushToDlq(dlq, { topic: 'orders', event: `k${i + j}`, value: { n: i + j } })))
      }
      const controller = new AbortController()
      const reports = []
      // Stopped at its first report (after about 100 ms of removals).
      const removed = await retry.removeDeadLetters(dlq, {}, {
        signal: controller.signal,
        onProgress: (n) => {
          reports.push(n)
          controller.abort()
        },
      })
      expect(removed).toBeGreaterThan(0)
      expect(removed).toBeLessThan(total)
      expect(reports[reports.length - 1]).toBe(removed)
      await h.sleep(300)
      expect((await retry.stats(dlq)).deadLettered).toBe(total - removed)
      expect(await retry.removeDeadLetters(dlq, {}, { signal: AbortSignal.abort() })).toBe(0)
      expect(await retry.removeDeadLetters(dlq, {})).toBe(total - removed)
      await expect(retry.removeDeadLetters(dlq, {}, { onProgress: 'x' })).rejects.toMatchObject({ code: 'ERR_INVALID_ARG' })
    } finally {
      await retry.close()
    }
  })

  test('close() stops a paced requeue still running before its next move, and resolves once its last move is done', async () => {
    const prefix = h.unique('close')
    const dlq = h.unique('dlq')
    const retry = new KafkaRetry({ keyPrefix: prefix })
    const other = new KafkaRetry({ keyPrefix: prefix })
    try {
      await deadLetters(retry, dlq, prefix)
      const requeue = retry.requeueDeadLetters(dlq, {}, { ratePerSec: 10 })
      await h.sleep(500)
      const started = Date.now()
      await retry.close()
      // Without the stop, 30 moves at 10/s would hold close() (and the process) for 2.5 s more.
      expect(Date.now() - started).toBeLessThan(1000)
      const moved = await requeue
      expect(moved).toBeGreaterThanOrEqual(3)
      expect(moved).toBeLessThan(30)
      await h.sleep(300)
      expect(await other.stats(dlq)).toMatchObject({ scheduled: moved, deadLettered: 30 - moved })
      await expect(retry.requeueDeadLetters(dlq, {})).rejects.toMatchObject({ code: 'ERR_CLOSED' })
    } finally {
      await Promise.all([retry.close(), other.close()])
    }
  })

  test('a requeue process SIGKILLed midway, then run again: every matched message published once, the others untouched', async () => {
    const prefix = h.unique('killed')
    const dlq = h.unique('dlq')
    const { retry, published } = await recordingListener({ keyPrefix: prefix }, h.unique('dlq-listener'))
    try {
      const written = await deadLetters(retry, dlq, prefix)
      const matched = written.filter((d) => d.error === REFUSED)
      const child = spawnNode(
        `const { KafkaRetry } = require('.')
        const c = JSON.parse(process.env.OPS)
        const retry = new KafkaRetry({ keyPrefix: c.prefix })
        retry.requeueDeadLetters(c.dlq, { errorContains: 'refused' }, { ratePerSec: 10 }).then((n) => console.log('done', n))`,
        { prefix, dlq },
      )
      // At 10/s, about 5 of the 15 have moved when it dies.
      await h.waitFor(() => published.length >= 3, 10000)
      child.kill('SIGKILL')
      await h.exited(child, 5000)
      expect(child.out).not.toMatch(/done/)
      const before = published.length
      expect(before).toBeLessThan(matched.length)
      expect(await retry.requeueDeadLetters(dlq, { errorContains: 'refused' })).toBe(matched.length - before)
      await h.waitFor(() => published.length === matched.length, 5000)
      await h.sleep(300)
      expect(timesByKey(published)).toEqual(Object.fromEntries(matched.map((d) => [d.event, 1])))
      expect(ids(await all(retry, dlq, {}, 100))).toEqual(ids(written.filter((d) => d.error !== REFUSED)))
    } finally {
      await retry.close()
    }
  })
})

describe('pause and resume', () => {
  test('a pause from a second process stops that topic within 1 s, the others go on; resume publishes what waited, once', async () => {
    const prefix = h.unique('pause')
    const { retry, published } = await recordingListener({ keyPrefix: prefix }, h.unique('dlq'))
    const pushed = { a: [], b: [] }
    let pushing = true
    const pusher = (async () => {
      for (let n = 0; pushing; n++) {
        for (const topic of ['a', 'b']) {
          await retry.pushToQueue(topic, { event: `${topic}-${n}`, value: JSON.stringify({ n }) }, { delay: '0', maxRetry: '3', retryCount: '0' })
          pushed[topic].push(`${topic}-${n}`)
        }
        await h.sleep(20)
      }
    })()
    const run = (script) => {
      const child = spawnNode(`const { KafkaRetry } = require('.')
        const c = JSON.parse(process.env.OPS)
        const retry = new KafkaRetry({ keyPrefix: c.prefix })
        ;(async () => { ${script} })().then(() => retry.close()).catch((e) => { console.error(e); process.exit(1) })`, { prefix })
      return h.exited(child, 10000).then((r) => ({ ...r, out: child.out }))
    }
    try {
      await h.waitFor(() => published.some((p) => p.topic === 'a'), 5000)
      const done = await run(`await retry.pause('a'); console.log(JSON.stringify(await retry.paused()))`)
      expect(done.code).toBe(0)
      const pausedAt = Date.now()
      expect(JSON.parse(done.out)).toEqual([{ topic: 'a', untilMs: null }])
      expect((await retry.stats()).paused).toEqual([{ topic: 'a', untilMs: null }])
      await h.sleep(2000)
      const late = published.filter((p) => p.topic === 'a' && p.at > pausedAt + 1000)
      expect(late).toEqual([])
      // b goes on.
      expect(published.filter((p) => p.topic === 'b' && p.at > pausedAt + 1000).length).toBeGreaterThan(10)
      const waiting = pushed.a.length - published.filter((p) => p.topic === 'a').length
      expect(waiting).toBeGreaterThan(10)
      expect((await run(`console.log(await retry.resume('a'))`)).out.trim()).toBe('true')
      const resumedAt = Date.now()
      pushing = false
      await pusher
      await h.waitFor(() => published.filter((p) => p.topic === 'a').length === pushed.a.length, 5000)
      // Resumed at once: the waiting messages went out within a second of the resume.
      expect(Math.max(...published.filter((p) => p.topic === 'a').map((p) => p.at)) - resumedAt).toBeLessThan(1000)
      await h.waitFor(() => published.length === pushed.a.length + pushed.b.length, 5000)
      await h.sleep(300)
      expect(Object.values(timesByKey(published)).every((n) => n === 1)).toBe(true)
      expect(published.length).toBe(pushed.a.length + pushed.b.length)
      expect(await retry.paused()).toEqual([])
    } finally {
      pushing = false
      await pusher
      await retry.close()
    }
  })

  test('untilMs: a pause of the whole schedule ends by itself', async () => {
    const prefix = h.unique('until')
    const { retry, published } = await recordingListener({ keyPrefix: prefix }, h.unique('dlq'))
    try {
      const until = Date.now() + 1500
      expect(await retry.pause(null, { untilMs: until })).toBe(true)
      expect(await retry.paused()).toEqual([{ topic: null, untilMs: until }])
      for (let n = 0; n < 20; n++) await retry.pushToQueue(`t${n % 2}`, { event: `e${n}`, value: '{}' }, { delay: '0', maxRetry: '3', retryCount: '0' })
      await h.sleep(1000)
      expect(published).toEqual([])
      await h.waitFor(() => published.length === 20, 3000)
      expect(Math.min(...published.map((p) => p.at))).toBeGreaterThanOrEqual(until - 50)
      expect(await retry.paused()).toEqual([])
      expect(await retry.pause('t0', { untilMs: Date.now() - 10 })).toBe(false)
      await expect(retry.pause('', {})).rejects.toMatchObject({ code: 'ERR_INVALID_ARG' })
      await expect(retry.pause('x', { untilMs: -1 })).rejects.toMatchObject({ code: 'ERR_INVALID_ARG' })
    } finally {
      await retry.close()
    }
  })
})

describe('maxPublishRate', () => {
  test('two listeners, 1,000 due messages, maxPublishRate 200: between 4.5 and 5.5 s', async () => {
    const prefix = h.unique('rate')
    const seed = new KafkaRetry({ keyPrefix: prefix })
    const published = []
    const listeners = []
    try {
      await Promise.all(Array.from({ length: 1000 }, (_, n) => seed.pushToQueue('r', { event: `e${n}`, value: '{}' }, { delay: '0', maxRetry: '3', retryCount: '0' })))
      const started = Date.now()
      for (let i = 0; i < 2; i++) {
        const retry = new KafkaRetry({ keyPrefix: prefix, maxPublishRate: 200, pollIntervalMs: 100 })
        listeners.push(retry)
        await retry.queueListener({ produce: async (topic, key) => published.push({ key, at: Date.now(), by: i }) }, h.unique('dlq'))
      }
      await h.waitFor(() => published.length === 1000, 10000)
      const took = (Math.max(...published.map((p) => p.at)) - started) / 1000
      console.log(`maxPublishRate 200, two listeners, 1000 messages: ${took.toFixed(2)} s`)
      expect(took).toBeGreaterThanOrEqual(4.5)
      expect(took).toBeLessThanOrEqual(5.5)
      // Both listeners took part.
      expect(new Set(published.map((p) => p.by)).size).toBe(2)
      expect(() => new KafkaRetry({ maxPublishRate: 0 })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG' }))
    } finally {
      for (const retry of listeners) await retry.close()
      await seed.close()
    }
  })
})

describe('per topic counts and history', () => {
  test('stats().topics, history() and the per topic gauges equal what the test did, a duplicate push counted once', async () => {
    const prefix = h.unique('per-topic')
    const dlq = h.unique('dlq')
    const published = []
    let failOnce = true
    const retry = new KafkaRetry({ keyPrefix: prefix, pollIntervalMs: 100 })
    try {
      await retry.queueListener(
        {
          produce: async (topic, key) => {
            if (key === 'pay-flaky' && failOnce) {
              failOnce = false
              throw new Error('broker down once')
            }
            published.push({ topic, key })
          },
        },
        dlq,
      )
      const push = (topic, event, options, value = {}) => retry.pushToQueue(topic, { event, value }, options)
      const now = { delay: '0' }
      const later = { delay: '60' }
      const exhausted = { delay: '0', retryCount: '3', maxRetry: '3' }
      for (let i = 0; i < 4; i++) await push('orders', `ord-${i}`, now)
      for (let i = 0; i < 2; i++) await push('orders', `ord-later-${i}`, later)
      // A consumer redelivery: the same msgId pushed twice is stored, and counted, once.
      await push('orders', 'ord-dup', later, { msgId: 'dup-1' })
      await push('orders', 'ord-dup', later, { msgId: 'dup-1' })
      for (const key of ['pay-0', 'pay-1', 'pay-flaky']) await push('payments', key, now)
      await push('payments', 'pay-later', later)
      for (let i = 0; i < 2; i++) await push('mail', `mail-dead-${i}`, exhausted)
      await push('mail', 'mail-later', later)
      await h.waitFor(async () => published.length === 7 && (await retry.stats(dlq)).deadLetteredTotal === 2, 15000)

      let { topics } = await retry.stats(dlq)
      expect(topics).toEqual({
        orders: { scheduled: 3, due: 0, leased: 0, deadLetters: 0 },
        payments: { scheduled: 1, due: 0, leased: 0, deadLetters: 0 },
        mail: { scheduled: 1, due: 0, leased: 0, deadLetters: 2 },
      })

      // One mail dead letter requeued for later, the other removed; two orders due while paused.
      expect(await retry.requeueDeadLetters(dlq, { search: 'mail-dead-0' }, { delayMs: 3_600_000 })).toBe(1)
      const [left] = (await retry.deadLetters(dlq)).items
      expect(await retry.removeDeadLetter(dlq, left.id)).toBe(true)
      await retry.pause('orders')
      for (let i = 0; i < 2; i++) await push('orders', `ord-held-${i}`, now)
      await h.sleep(300) // a claim or two: they are parked, still scheduled and due
      topics = (await retry.stats(dlq)).topics
      expect(topics.orders).toEqual({ scheduled: 5, due: 2, leased: 0, deadLetters: 0 })
      expect(topics.mail).toEqual({ scheduled: 2, due: 0, leased: 0, deadLetters: 0 })
      // The schedule's own counts hold the held two as well (not late: holding them was asked).
      expect(await retry.stats(dlq)).toMatchObject({ scheduled: 5 + 1 + 2, due: 2, lateMs: 0 })
      const metrics = await retry.metrics(dlq)
      expect(metrics).toContain(`kafka_retry_topic_due{prefix="${prefix}",topic="orders"} 2\n`)
      expect(metrics).toContain(`kafka_retry_topic_scheduled{prefix="${prefix}",topic="mail"} 2\n`)
      expect(metrics).toContain(`kafka_retry_topic_dead_letters{prefix="${prefix}",topic="mail"} 0\n`)
      await retry.resume('orders')
      await h.waitFor(() => published.length === 9, 10000)
      expect((await retry.stats(dlq)).topics.orders).toEqual({ scheduled: 3, due: 0, leased: 0, deadLetters: 0 })

      const history = await retry.history({ minutes: 10 })
      expect(history.minutes).toBe(10)
      expect(history.pushed).toHaveLength(10)
      expect(history.from % 60_000).toBe(0)
      const sum = (series) => series.reduce((a, b) => a + b, 0)
      const totals = (s) => ({ pushed: sum(s.pushed), published: sum(s.published), failed: sum(s.failed), deadLettered: sum(s.deadLettered) })
      expect(totals(history.topics.orders)).toEqual({ pushed: 9, published: 6, failed: 0, deadLettered: 0 })
      expect(totals(history.topics.payments)).toEqual({ pushed: 4, published: 3, failed: 1, deadLettered: 0 })
      // The requeued dead letter is stored on the schedule again: counted as pushed.
      expect(totals(history.topics.mail)).toEqual({ pushed: 4, published: 0, failed: 0, deadLettered: 2 })
      expect(totals(history)).toEqual({ pushed: 17, published: 9, failed: 1, deadLettered: 2 })
      // Everything happened within the last minutes: nothing before them.
      expect(sum(history.pushed.slice(0, 5))).toBe(0)
      await expect(retry.history({ minutes: 2881 })).rejects.toMatchObject({ code: 'ERR_INVALID_ARG' })
      await expect(retry.history({ minutes: 0 })).rejects.toMatchObject({ code: 'ERR_INVALID_ARG' })
      expect((await retry.history()).minutes).toBe(60)
    } finally {
      await retry.close()
    }
  })
})

describe('the operator CLI lines', () => {
  const { execFile } = require('child_process')
  const BIN = path.join(__dirname, '..', '..', 'bin', 'kafka-redis-retry.js')
  const cli = (args) =>
    new Promise((resolve, reject) =>
      execFile(process.execPath, [BIN, ...args], { env: { ...process.env, REDIS_URL: h.REDIS_URL }, timeout: 20000, encoding: 'utf8' }, (err, stdout, stderr) => {
        if (err && typeof err.code !== 'number') return reject(err)
        resolve({ code: err ? err.code : 0, stdout, stderr })
      }),
    )

  test('stats shows the topics; history --minutes prints the minutes with counts', async () => {
    const prefix = h.unique('cli-history')
    const retry = new KafkaRetry({ keyPrefix: prefix })
    try {
      for (let i = 0; i < 3; i++) await retry.pushToQueue('orders', { event: `e${i}`, value: {} }, { delay: '60' })
      await retry.pushToQueue('mail', { event: 'm', value: {} }, { delay: '60' })
      const p = ['--prefix', prefix]
      const stats = await cli(['stats', ...p])
      expect(stats.stdout).toMatch(/\n {2}topic +scheduled +due +leased +deadLetters\n {2}mail +1 +0 +0 +0\n {2}orders +3 +0 +0 +0\n/)
      const text = await cli(['history', '--minutes', '10', ...p])
      expect(text.code).toBe(0)
      const rows = text.stdout.split('\n').filter((l) => /^ {2}20/.test(l))
      const pushed = rows.reduce((n, l) => n + Number(l.trim().split(/ +/)[2]), 0)
      expect(pushed).toBe(4)
      const json = JSON.parse((await cli(['history', '--minutes', '10', '--topic', 'mail', '--json', ...p])).stdout)
      expect(json.topic).toBe('mail')
      expect(json.pushed.reduce((a, b) => a + b, 0)).toBe(1)
      expect((await cli(['history', '--minutes', '0', ...p])).code).toBe(2)
    } finally {
      await retry.close()
    }
  })

  test('dlq list/requeue/remove with filters, --dry-run, --rate; pause --topic --for; resume', async () => {
    const prefix = h.unique('cli-ops')
    const dlq = h.unique('dlq')
    const retry = new KafkaRetry({ keyPrefix: prefix })
    try {
      const written = await deadLetters(retry, dlq, prefix)
      const p = ['--prefix', prefix]
      const listed = JSON.parse((await cli(['dlq', 'list', dlq, '--all', '--topic', 'orders', '--error', 'timeout', '--json', ...p])).stdout)
      const matched = written.filter((d) => d.topic === 'orders' && d.error === TIMEOUT)
      expect(ids(listed.items)).toEqual(ids(matched))
      const text = await cli(['dlq', 'list', dlq, '--search', 'ev-1', '--limit', '2', ...p])
      expect(text.code).toBe(0)
      expect(text.stdout).toMatch(/more: kafka-redis-retry dlq list .* --search "ev-1"/)
      const dry = await cli(['dlq', 'requeue', dlq, '--topic', 'orders', '--error', 'timeout', '--dry-run', ...p])
      expect(dry.stdout).toMatch(new RegExp(`^${matched.length} dead letters .* match \\(dry run`))
      expect((await retry.stats()).scheduled).toBe(0)
      const moved = await cli(['dlq', 'requeue', dlq, '--topic', 'orders', '--error', 'timeout', '--rate', '100', '--delay', '10m', '--json', ...p])
      expect(JSON.parse(moved.stdout)).toEqual({ requeued: matched.length })
      expect((await retry.stats()).scheduled).toBe(matched.length)
      const removed = await cli(['dlq', 'remove', dlq, '--error', 'econnrefused', '--since', '1h', '--json', ...p])
      expect(JSON.parse(removed.stdout)).toEqual({ removed: written.filter((d) => d.error === REFUSED).length })

      const paused = await cli(['pause', '--topic', 'orders', '--for', '10m', ...p])
      expect(paused.stdout).toMatch(/^paused: topic orders until 20/)
      expect((await retry.paused()).map((x) => x.topic)).toEqual(['orders'])
      expect((await cli(['stats', ...p])).stdout).toMatch(/paused +topic orders until/)
      expect((await cli(['pause', ...p])).code).toBe(0)
      expect((await retry.paused()).length).toBe(2)
      expect((await cli(['resume', '--topic', 'orders', ...p])).stdout).toMatch(/resumed topic orders\nstill paused: the whole schedule/)
      expect((await cli(['resume', ...p])).stdout).toMatch(/resumed everything/)
      expect(await retry.paused()).toEqual([])

      for (const bad of [['pause', '--for', 'soon'], ['dlq', 'requeue', dlq, 'id', '--topic', 't'], ['dlq', 'remove', dlq], ['dlq', 'list', dlq, '--since', 'yesterday'], ['dlq', 'requeue', dlq, '--topic', 't', '--rate', '0']]) {
        const r = await cli([...bad, ...p])
        expect({ bad, code: r.code }).toEqual({ bad, code: 2 })
      }
    } finally {
      await retry.close()
    }
  })

  test('Ctrl-C stops a paced dlq requeue before its next move: exit code 130, the count moved, the rest still dead letters', async () => {
    const prefix = h.unique('cli-stop')
    const dlq = h.unique('dlq')
    const retry = new KafkaRetry({ keyPrefix: prefix })
    try {
      const written = await deadLetters(retry, dlq, prefix)
      const matched = written.filter((d) => d.error === REFUSED)
      const child = spawn(process.execPath, [BIN, 'dlq', 'requeue', dlq, '--error', 'refused', '--rate', '5', '--json', '--prefix', prefix], {
        env: { ...process.env, REDIS_URL: h.REDIS_URL },
        stdio: ['ignore', 'pipe', 'pipe'],
      })
      children.add(child)
      let stdout = ''
      child.stdout.on('data', (d) => (stdout += d))
      expect(await h.waitFor(async () => (await retry.stats()).scheduled >= 2, 10000, 100)).toBe(true)
      child.kill('SIGINT')
      expect(await h.exited(child, 10000)).toEqual({ code: 130, signal: null })
      const { requeued, stopped } = JSON.parse(stdout)
      expect(stopped).toBe(true)
      expect(requeued).toBeGreaterThanOrEqual(2)
      expect(requeued).toBeLessThan(matched.length)
      expect(await retry.stats(dlq)).toMatchObject({ scheduled: requeued, deadLettered: 30 - requeued })
    } finally {
      await retry.close()
    }
  })
})
