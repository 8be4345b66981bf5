// Time filters list the rows they count (issue 28, item 15). Listing walks the dead letter
// index, counting (a bulk action's dry run) reads each record: a dead letter written by
// pushToDlq with its own `diedAt` must be indexed at that time, or "since 90 minutes ago" lists
// one row and counts two. Through the public API (deadLetters, requeueDeadLetters and
// removeDeadLetters dry runs, as the dashboard and the CLI count) and the CLI, real Redis.
'use strict'

const path = require('path')
const { execFile } = require('child_process')
const { KafkaRetry } = require('../..')
const h = require('../helpers')

const MINUTE = 60000
const BIN = path.join(__dirname, '..', '..', 'bin', 'kafka-redis-retry.js')

function cli(args) {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [BIN, ...args, '--json'], { env: { ...process.env, REDIS_URL: h.REDIS_URL }, timeout: 20000, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`${args.join(' ')}: ${stderr || err.message}`))
      resolve(JSON.parse(stdout))
    })
  })
}

const prefix = h.unique('time-filters')
const dlq = `${prefix}:dead-letters`
const topic = h.unique('time-filters-topic')
let retry
let now

beforeAll(async () => {
  await h.requireServers()
  retry = new KafkaRetry({ keyPrefix: prefix })
  now = Date.now()
  // Written in another order than they died: the order of writing must not matter.
  for (const ago of [30, 120, 60]) {
    await retry.pushToDlq(dlq, { topic, event: `died-${ago}-ago`, value: { ago }, diedAt: now - ago * MINUTE })
  }
})

afterAll(async () => {
  await retry.close()
  const redis = h.redisClient()
  try {
    const keys = await redis.keys(`*${prefix}*`)
    if (keys.length) await redis.del(...keys)
  } finally {
    redis.disconnect()
  }
})

/** What a filter lists (every page) and what the dry runs count. */
async function listedAndCounted(filter) {
  const listed = []
  let cursor
  do {
    const page = await retry.deadLetters(dlq, { ...filter, cursor, limit: 1 })
    listed.push(...page.items.map((item) => item.event))
    cursor = page.cursor
  } while (cursor)
  const requeue = await retry.requeueDeadLetters(dlq, filter, { dryRun: true })
  const remove = await retry.removeDeadLetters(dlq, filter, { dryRun: true })
  return { listed, requeue, remove }
}

describe('dead letters written with their own time of death', () => {
  test('are listed newest first at that time', async () => {
    const page = await retry.deadLetters(dlq)
    expect(page.items.map((item) => [item.event, item.diedAt])).toEqual([
      ['died-30-ago', now - 30 * MINUTE],
      ['died-60-ago', now - 60 * MINUTE],
      ['died-120-ago', now - 120 * MINUTE],
    ])
  })

  test.each([
    ['since 90 minutes ago', () => ({ since: now - 90 * MINUTE }), ['died-30-ago', 'died-60-ago']],
    ['until 45 minutes ago', () => ({ until: now - 45 * MINUTE }), ['died-60-ago', 'died-120-ago']],
    ['between 90 and 45 minutes ago', () => ({ since: now - 90 * MINUTE, until: now - 45 * MINUTE }), ['died-60-ago']],
    ['since 10 minutes ago', () => ({ since: now - 10 * MINUTE }), []],
  ])('%s: the rows listed are the rows counted', async (_, filter, expected) => {
    expect(await listedAndCounted(filter())).toEqual({ listed: expected, requeue: expected.length, remove: expected.length })
  })

  test('the CLI lists and counts the same rows', async () => {
    const since = String(now - 90 * MINUTE)
    const listed = await cli(['dlq', 'list', dlq, '--since', since, '--all'])
    expect(listed.items.map((item) => item.event)).toEqual(['died-30-ago', 'died-60-ago'])
    expect(await cli(['dlq', 'remove', dlq, '--since', since, '--dry-run'])).toEqual({ matched: 2 })
    expect(await cli(['dlq', 'requeue', dlq, '--since', since, '--dry-run'])).toEqual({ matched: 2 })
  })

  test('a diedAt that cannot be indexed is refused, and nothing is written', async () => {
    const other = `${dlq}-refused`
    for (const diedAt of ['2024-01-01', 1.5, -5, 1e20, true, { at: 1 }]) {
      await expect(retry.pushToDlq(other, { topic, event: 'x', value: 1, diedAt })).rejects.toMatchObject({
        code: 'ERR_INVALID_ARG',
        message: expect.stringContaining('entry.diedAt'),
      })
    }
    expect((await retry.deadLetters(other)).items).toEqual([])
  })

  test('without a diedAt a dead letter is indexed and listed at the time it was written', async () => {
    const other = `${dlq}-now`
    const before = Date.now()
    await retry.pushToDlq(other, { topic, event: 'no-time', value: 1 })
    const [item] = (await retry.deadLetters(other)).items
    // Redis's clock, close to this host's.
    expect(Math.abs(item.diedAt - before)).toBeLessThan(60000)
    const since = { since: item.diedAt }
    const page = await retry.deadLetters(other, since)
    expect(page.items.map((i) => i.event)).toEqual(['no-time'])
    expect(await retry.removeDeadLetters(other, since, { dryRun: true })).toBe(1)
  })
})
