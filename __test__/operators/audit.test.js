// The audit log (issue 30, item 4): every operator action of the API and the CLI recorded in
// Redis with its actor, target, count and outcome; auditLog() paged by cursor and since; the
// stream held to 10,000 entries and 30 days. Real Redis.
const os = require('os')
const { KafkaRetry } = require('../..')
const h = require('../helpers')
const cli = require('../helpers/cli')

beforeAll(h.requireServers)

const instances = []
const redis = h.redisClient()
afterAll(async () => {
  await Promise.all(instances.map((r) => r.close().catch(() => {})))
  await redis.quit()
})

function schedule(label) {
  const prefix = h.unique(`audit-${label}`)
  const retry = new KafkaRetry({ keyPrefix: prefix })
  instances.push(retry)
  return { prefix, dlq: `${prefix}:dlq`, retry, key: `{${prefix}}:audit` }
}

/** `n` dead letters of `topic` written as a listener would (pushToDlq). */
async function deadLetters(s, topic, n) {
  const ids = []
  for (let i = 0; i < n; i++) {
    ids.push(await s.retry.pushToDlq(s.dlq, { topic, event: `${topic}-${i}`, value: { i }, options: { delay: '0', maxRetry: '1', retryCount: '2' }, keyPrefix: s.prefix, error: { name: 'Error', message: 'boom' } }))
  }
  return ids
}

/** The whole log, newest first, through the cursor. */
async function whole(retry, options = {}) {
  const entries = []
  let cursor
  do {
    const page = await retry.auditLog({ ...options, cursor })
    entries.push(...page.entries)
    cursor = page.cursor ?? undefined
  } while (cursor)
  return entries
}

test('each operator action of the API lands with its actor, target, count and outcome, newest first', async () => {
  const s = schedule('api')
  const [first] = await deadLetters(s, 'orders', 3)
  await deadLetters(s, 'payments', 2)
  const before = Date.now()
  expect(await s.retry.requeueDeadLetters(s.dlq, { topic: 'orders' }, { dryRun: true, actor: 'alice' })).toBe(3)
  expect(await s.retry.removeDeadLetters(s.dlq, { topic: 'payments' }, { dryRun: true, actor: 'alice' })).toBe(2)
  // Dry runs change nothing and are not recorded.
  expect((await s.retry.auditLog()).entries).toEqual([])

  expect(await s.retry.requeueDeadLetter(s.dlq, first, { actor: 'bob' })).toBe(true)
  expect(await s.retry.requeueDeadLetters(s.dlq, { topic: 'orders' }, { actor: 'alice' })).toBe(2)
  expect(await s.retry.removeDeadLetters(s.dlq, { topic: 'payments' }, { actor: 'carol' })).toBe(2)
  const [again] = await deadLetters(s, 'mail', 2)
  expect(await s.retry.removeDeadLetter(s.dlq, again, { actor: 'dave' })).toBe(true)
  expect(await s.retry.requeueAllDeadLetters(s.dlq, { actor: 'erin' })).toBe(1)
  expect(await s.retry.pause('orders', { actor: 'frank', untilMs: Date.now() + 60_000 })).toBe(true)
  expect(await s.retry.pause(null)).toBe(true)
  expect(await s.retry.resume('orders', { actor: 'grace' })).toBe(true)
  expect(await s.retry.resume(null, { actor: 'grace' })).toBe(true)
  expect(await s.retry.resume('orders', { actor: 'heidi' })).toBe(false)

  const { entries, cursor } = await s.retry.auditLog()
  expect(cursor).toBeNull()
  const got = entries.map(({ actor, action, target, count, outcome, error }) => ({ actor, action, target, count, outcome, error }))
  expect(got).toEqual([
    { actor: 'heidi', action: 'resume', target: { topic: 'orders' }, count: 0, outcome: 'ok', error: null },
    { actor: 'grace', action: 'resume', target: { topic: null }, count: 1, outcome: 'ok', error: null },
    { actor: 'grace', action: 'resume', target: { topic: 'orders' }, count: 1, outcome: 'ok', error: null },
    { actor: 'api', action: 'pause', target: { topic: null }, count: 1, outcome: 'ok', error: null },
    { actor: 'frank', action: 'pause', target: { topic: 'orders' }, count: 1, outcome: 'ok', error: null },
    { actor: 'erin', action: 'requeue', target: { dlq: s.dlq, filter: {} }, count: 1, outcome: 'ok', error: null },
    { actor: 'dave', action: 'remove', target: { dlq: s.dlq, id: again }, count: 1, outcome: 'ok', error: null },
    { actor: 'carol', action: 'remove', target: { dlq: s.dlq, filter: { topic: 'payments' } }, count: 2, outcome: 'ok', error: null },
    { actor: 'alice', action: 'requeue', target: { dlq: s.dlq, filter: { topic: 'orders' } }, count: 2, outcome: 'ok', error: null },
    { actor: 'bob', action: 'requeue', target: { dlq: s.dlq, id: first }, count: 1, outcome: 'ok', error: null },
  ])
  // Times by Redis's clock, newest first, ids unique.
  const at = entries.map((e) => e.at)
  expect(at).toEqual([...at].sort((a, b) => b - a))
  expect(Math.abs(at[at.length - 1] - before)).toBeLessThan(5000)
  expect(new Set(entries.map((e) => e.id)).size).toBe(entries.length)
  // One stream under the schedule's hash tag.
  expect(await redis.type(s.key)).toBe('stream')
  expect(await redis.xlen(s.key)).toBe(10)
  expect(await redis.pttl(s.key)).toBeGreaterThan(29 * 24 * 3600 * 1000)
})

test('a failing action is recorded with its error code and what it did before failing', async () => {
  const s = schedule('fail')
  // A dead letter queue name that holds another type: Redis refuses every command on it.
  await redis.set(s.dlq, 'not a hash')
  try {
    const err = await h.rejection(s.retry.removeDeadLetters(s.dlq, { topic: 'orders' }, { actor: 'mallory' }))
    expect(err.code).toBe('ERR_REDIS_UNAVAILABLE')
    // A bad option the core refuses is recorded as refused.
    await expect(s.retry.requeueDeadLetters(s.dlq, {}, { ratePerSec: -1, actor: 'mallory' })).rejects.toMatchObject({ code: 'ERR_INVALID_ARG' })
    const { entries } = await s.retry.auditLog()
    expect(entries.map(({ actor, action, count, outcome }) => ({ actor, action, count, outcome }))).toEqual([
      { actor: 'mallory', action: 'requeue', count: 0, outcome: 'ERR_INVALID_ARG' },
      { actor: 'mallory', action: 'remove', count: 0, outcome: err.code },
    ])
    expect(entries[0].error).toMatch(/ratePerSec/)
    expect(entries[1].error).toBe(err.message)
  } finally {
    await redis.del(s.dlq)
  }
})

test('a bad actor is refused with ERR_INVALID_ARG before anything is done, and nothing is recorded', async () => {
  const s = schedule('bad')
  await deadLetters(s, 'orders', 1)
  for (const actor of ['', 'x'.repeat(201), 'a\nb', 42, {}, true]) {
    for (const call of [
      () => s.retry.requeueDeadLetters(s.dlq, {}, { actor }),
      () => s.retry.removeDeadLetters(s.dlq, {}, { actor }),
      () => s.retry.requeueAllDeadLetters(s.dlq, { actor }),
      () => s.retry.pause('orders', { actor }),
      () => s.retry.resume(null, { actor }),
      () => s.retry.stopJob(1, { actor }),
    ]) {
      const err = await h.rejection(call())
      expect(err).toMatchObject({ code: 'ERR_INVALID_ARG', message: expect.stringContaining('actor') })
    }
  }
  expect((await s.retry.stats(s.dlq)).deadLettered).toBe(1)
  expect(await s.retry.paused()).toEqual([])
  expect((await s.retry.auditLog()).entries).toEqual([])
  // The longest actor allowed is kept whole.
  await s.retry.pause('orders', { actor: 'é'.repeat(200) })
  expect((await s.retry.auditLog()).entries[0].actor).toBe('é'.repeat(200))
  for (const options of [{ limit: 0 }, { limit: 1001 }, { limit: 2.5 }, { since: -1 }, { cursor: 'nope' }, { cursor: 5 }, 'x']) {
    await expect(s.retry.auditLog(options)).rejects.toMatchObject({ code: 'ERR_INVALID_ARG' })
  }
})

test('auditLog pages with its cursor and since, newest first, each entry once', async () => {
  const s = schedule('pages')
  for (let i = 0; i < 7; i++) await s.retry.pause(`t${i}`, { actor: `op${i}` })
  await h.sleep(20)
  const middle = Date.now()
  await h.sleep(20)
  for (let i = 7; i < 12; i++) await s.retry.pause(`t${i}`, { actor: `op${i}` })

  const pages = []
  let cursor
  do {
    const page = await s.retry.auditLog({ limit: 5, cursor })
    pages.push(page.entries.map((e) => e.actor))
    cursor = page.cursor ?? undefined
  } while (cursor && pages.length < 10)
  expect(pages.flat()).toEqual(Array.from({ length: 12 }, (_, i) => `op${11 - i}`))
  expect(pages.map((p) => p.length).slice(0, 2)).toEqual([5, 5])

  const recent = await whole(s.retry, { since: middle, limit: 2 })
  expect(recent.map((e) => e.actor)).toEqual(['op11', 'op10', 'op9', 'op8', 'op7'])
  expect((await s.retry.auditLog({ since: Date.now() + 60_000 })).entries).toEqual([])
})

test('the log holds at most 10,000 entries and none older than 30 days', async () => {
  const s = schedule('bounds')
  const now = Number((await redis.time())[0]) * 1000
  const old = now - 31 * 24 * 3600 * 1000
  // 100 entries past the age bound and 10,000 within it, written as the script writes them.
  const pipe = redis.pipeline()
  for (let i = 0; i < 100; i++) pipe.xadd(s.key, `${old + i}-0`, 'at', old + i, 'actor', 'ancient', 'action', 'pause', 'target', '{"topic":"x"}', 'count', '1', 'outcome', 'ok', 'error', '')
  for (let i = 0; i < 10000; i++) pipe.xadd(s.key, `${now - 20000 + i}-0`, 'at', now - 20000 + i, 'actor', `bulk${i}`, 'action', 'pause', 'target', '{"topic":"x"}', 'count', '1', 'outcome', 'ok', 'error', '')
  await pipe.exec()
  expect(await redis.xlen(s.key)).toBe(10100)
  // Entries past the age are not shown even before a write trims them.
  const oldest = (await s.retry.auditLog({ since: 0, limit: 1000 })).entries
  expect(oldest.every((e) => e.actor !== 'ancient')).toBe(true)

  await s.retry.pause('orders', { actor: 'newest' })
  expect(await redis.xlen(s.key)).toBe(10000)
  const all = await whole(s.retry, { limit: 1000 })
  expect(all.length).toBe(10000)
  expect(all[0].actor).toBe('newest')
  // The oldest kept are the newest 9,999 of the bulk: the rest were trimmed, oldest first.
  expect(all[all.length - 1].actor).toBe('bulk1')
  expect(all.some((e) => e.actor === 'ancient')).toBe(false)
  await redis.del(s.key)
})

test('the CLI records user@host as the actor of its actions; audit prints the log (--limit, --since, --json)', async () => {
  const s = schedule('cli')
  await deadLetters(s, 'orders', 2)
  const actor = `${os.userInfo().username}@${os.hostname()}`
  const base = ['--prefix', s.prefix]
  expect((await cli.run([...base, 'pause', '--topic', 'orders'])).code).toBe(0)
  expect((await cli.run([...base, 'dlq', 'requeue', s.dlq, '--topic', 'orders'])).code).toBe(0)
  expect((await cli.run([...base, 'resume', '--topic', 'orders'])).code).toBe(0)
  expect((await cli.run([...base, 'dlq', 'remove', s.dlq, '--topic', 'orders', '--dry-run'])).code).toBe(0)

  const { entries } = await s.retry.auditLog()
  expect(entries.map(({ actor: a, action, count }) => [a, action, count])).toEqual([
    [actor, 'resume', 1],
    [actor, 'requeue', 2],
    [actor, 'pause', 1],
  ])

  const json = await cli.run([...base, 'audit', '--json', '--limit', '2'])
  expect(json.code).toBe(0)
  const page = JSON.parse(json.stdout)
  expect(page.entries.map((e) => e.action)).toEqual(['resume', 'requeue'])
  expect(page.cursor).toBe(page.entries[1].id)
  const next = JSON.parse((await cli.run([...base, 'audit', '--json', '--cursor', page.cursor])).stdout)
  expect(next.entries.map((e) => e.action)).toEqual(['pause'])

  const text = await cli.run([...base, 'audit'])
  expect(text.code).toBe(0)
  const lines = text.stdout.trim().split('\n')
  expect(lines).toHaveLength(3)
  expect(lines[1]).toContain(actor)
  expect(lines[1]).toMatch(/requeue {2}dlq .*, filter \{"topic":"orders"\} {2}count 2 {2}ok$/)
  expect(lines[0]).toMatch(/resume {2}topic orders {2}count 1 {2}ok$/)
  const more = await cli.run([...base, 'audit', '--limit', '1'])
  expect(more.stdout).toMatch(/more: kafka-redis-retry audit --cursor \S+ --limit 1/)
  const none = await cli.run([...base, 'audit', '--since', '1m'])
  expect(none.stdout.trim().split('\n')).toHaveLength(3)
  const future = await cli.run([...base, 'audit', '--since', String(Date.now() + 3_600_000)])
  expect(future.stdout).toMatch(/no operator actions recorded/)
  const bad = await cli.run([...base, 'audit', '--limit', '5000'])
  expect(bad.code).toBe(2)
  expect(bad.stderr).toMatch(/--limit/)
})
