// The command line tool, bin/kafka-redis-retry.js, run as a child process against real Redis.
const { KafkaRetry } = require('../..')
const h = require('../helpers')

const { run, UNREACHABLE } = require('../helpers/cli')


/** Runs the CLI with --json and expects exit 0; resolves to the parsed stdout. */
async function runJson(args) {
  const result = await run([...args, '--json'])
  expect({ code: result.code, stderr: result.stderr }).toEqual({ code: 0, stderr: '' })
  return JSON.parse(result.stdout)
}

// Every key this file creates, deleted at the end.
const created = []
function names(label) {
  const prefix = h.unique(`cli-${label}`)
  const dlq = `${prefix}-dlq`
  created.push(dlq, `${dlq}:index`, ...Object.values(h.scheduleKeys(prefix)))
  return { prefix, dlq }
}

beforeAll(async () => {
  const redis = h.redisClient()
  try {
    await redis.ping()
  } finally {
    redis.disconnect()
  }
})

afterAll(async () => {
  const redis = h.redisClient()
  try {
    if (created.length) await redis.del(...created)
  } finally {
    redis.disconnect()
  }
})

describe('Redis unreachable', () => {
  test('every command exits 1 with ERR_REDIS_UNAVAILABLE within a few seconds', async () => {
    const commands = [
      ['stats'],
      ['stats', '--metrics'],
      ['stats', '--json'],
      ['dlq', 'list', 'q'],
      ['dlq', 'list', 'q', '--all', '--json'],
      ['dlq', 'requeue', 'q', 'id'],
      ['dlq', 'requeue', 'q', '--all'],
      ['dlq', 'remove', 'q', 'id'],
    ]
    const results = await Promise.all(commands.map((args) => run(['--redis', UNREACHABLE, ...args])))
    results.forEach(({ code, stdout, stderr, ms }, n) => {
      const args = commands[n].join(' ')
      expect({ args, code, stdout }).toEqual({ args, code: 1, stdout: '' })
      expect(stderr).toMatch(/^error: ERR_REDIS_UNAVAILABLE: /)
      expect(ms).toBeLessThan(8000)
    })
  })

  test('the Redis URL defaults to REDIS_URL, and --redis overrides it', async () => {
    const { prefix } = names('env')
    let r = await run(['stats', '--prefix', prefix], { REDIS_URL: UNREACHABLE })
    expect(r.code).toBe(1)
    expect(r.stderr).toMatch(/ERR_REDIS_UNAVAILABLE/)
    r = await run(['stats', '--prefix', prefix, '--redis', h.REDIS_URL], { REDIS_URL: UNREACHABLE })
    expect(r.code).toBe(0)
  })
})

describe('stats', () => {
  test('--json prints the stats object; --prefix selects the schedule; --dlq the dead letter hash', async () => {
    const a = names('stats-a')
    const b = names('stats-b')
    const retry = new KafkaRetry({ keyPrefix: a.prefix })
    try {
      // Two messages due in an hour and one due now on schedule a, one dead letter in a.dlq.
      await retry.pushToQueue('t', { event: 'E', value: { n: 1 } }, { delay: '60' })
      await retry.pushToQueue('t', { event: 'E', value: { n: 2 } }, { delay: '60' })
      await retry.pushToQueue('t', { event: 'E', value: { n: 3 } }, { delay: '0' })
      await retry.pushToDlq(a.dlq, { topic: 't', event: 'E', value: '{}' })

      const stats = await runJson(['stats', '--prefix', a.prefix, '--dlq', a.dlq])
      expect(stats).toEqual({
        scheduled: 3,
        due: 1,
        inflight: 0,
        deadLettered: 1,
        published: 0,
        publishFailures: 0,
        deadLetteredTotal: 0,
        deadLetterCapExceeded: false,
        paused: [],
        blockedKeys: 0,
        parkedMessages: 0,
        eventsDropped: 0,
        lateMs: expect.any(Number),
        topics: { t: { scheduled: 3, due: 1, leased: 0, deadLetters: 1 } },
      })
      // Another prefix is another schedule; without --dlq the hash is <prefix>:dead-letters.
      expect(await runJson(['stats', '--prefix', b.prefix])).toMatchObject({ scheduled: 0, due: 0, deadLettered: 0 })
      expect(await runJson(['--prefix', a.prefix, 'stats'])).toMatchObject({ scheduled: 3, deadLettered: 0 })

      const human = await run(['stats', '--prefix', a.prefix, '--dlq', a.dlq])
      expect(human.code).toBe(0)
      expect(human.stdout).toContain(`schedule ${a.prefix}`)
      expect(human.stdout).toMatch(/scheduled\s+3/)
      expect(human.stdout).toMatch(/due\s+1/)
      expect(human.stdout).toMatch(/inflight\s+0/)
      expect(human.stdout).toMatch(new RegExp(`deadLettered\\s+1\\s+in ${a.dlq}`))

      const metrics = await run(['stats', '--metrics', '--prefix', a.prefix, '--dlq', a.dlq])
      expect(metrics.code).toBe(0)
      expect(metrics.stdout).toContain(`kafka_retry_scheduled{prefix="${a.prefix}"} 3`)
      expect(metrics.stdout).toContain(`kafka_retry_due{prefix="${a.prefix}"} 1`)
      expect(metrics.stdout).toContain(`kafka_retry_dead_letters{prefix="${a.prefix}"} 1`)
      expect(metrics.stdout).toMatch(/# TYPE kafka_retry_scheduled gauge/)
    } finally {
      await retry.close()
    }
  })
})

describe('dead letters', () => {
  /** A KafkaRetry on a fresh schedule whose listener dead-letters into a fresh hash. */
  async function setup(label) {
    const { prefix, dlq } = names(label)
    const produced = []
    const retry = new KafkaRetry({ keyPrefix: prefix, pollIntervalMs: 100 })
    await retry.queueListener(
      { produce: async (topic, key, value, headers) => produced.push({ topic, key, value: JSON.parse(value), headers }) },
      dlq,
    )
    /** Pushes a message that is exhausted at once and waits until it is dead-lettered. */
    const deadLetter = async (event, n) => {
      const before = (await retry.deadLetters(dlq)).items.length
      await retry.pushToQueue(
        'orders',
        { event, value: { n } },
        { delay: '0', maxRetry: '1', retryCount: '1', error: new TypeError(`boom ${n}`) },
      )
      const page = await h.waitFor(async () => {
        const p = await retry.deadLetters(dlq)
        return p.items.length > before && p
      }, 10000)
      expect(page.items.length).toBe(before + 1)
      await h.sleep(5) // the next one dies in a later millisecond: a strict newest-first order
      return page.items.find((item) => item.event === event).id
    }
    return { prefix, dlq, produced, retry, deadLetter }
  }

  test('list, requeue one, requeue --all, remove; requeue goes back to the schedule it came from', async () => {
    const { prefix, dlq, produced, retry, deadLetter } = await setup('dlq')
    try {
      const ids = [await deadLetter('E0', 0), await deadLetter('E1', 1), await deadLetter('E2', 2)]

      // list --json: newest first, every field.
      const listed = await runJson(['dlq', 'list', dlq])
      expect(listed.cursor).toBeNull()
      expect(listed.items.map((item) => item.id)).toEqual([ids[2], ids[1], ids[0]])
      expect(listed.items.map((item) => item.event)).toEqual(['E2', 'E1', 'E0'])
      const diedAt = listed.items.map((item) => item.diedAt)
      expect(diedAt[0]).toBeGreaterThan(diedAt[1])
      expect(diedAt[1]).toBeGreaterThan(diedAt[2])
      expect(listed.items[0]).toMatchObject({
        topic: 'orders',
        event: 'E2',
        options: { retryCount: '2', maxRetry: '1', delay: '0' },
        error: { message: 'boom 2', name: 'TypeError' },
      })
      expect(listed.items[0].value).toMatchObject({ n: 2 })

      // Paging with --limit / --cursor, and --all.
      const first = await runJson(['dlq', 'list', dlq, '--limit', '2'])
      expect(first.items.map((item) => item.id)).toEqual([ids[2], ids[1]])
      expect(typeof first.cursor).toBe('string')
      const second = await runJson(['dlq', 'list', dlq, '--limit', '2', '--cursor', first.cursor])
      expect(second).toEqual({ items: [listed.items[2]], cursor: null })
      const all = await runJson(['dlq', 'list', dlq, '--all', '--limit', '1'])
      expect(all).toEqual({ items: listed.items, cursor: null })

      // Human form: each id with topic, event, ISO time of death, retryCount, error and value.
      const human = await run(['dlq', 'list', dlq])
      expect(human.code).toBe(0)
      const positions = ids.map((id) => human.stdout.indexOf(id))
      expect(positions.every((p) => p >= 0)).toBe(true)
      expect(positions[2]).toBeLessThan(positions[1])
      expect(positions[1]).toBeLessThan(positions[0])
      expect(human.stdout).toContain(new Date(diedAt[0]).toISOString())
      expect(human.stdout).toMatch(/topic:\s+orders/)
      expect(human.stdout).toMatch(/event:\s+E1/)
      expect(human.stdout).toMatch(/retryCount:\s+2/)
      expect(human.stdout).toContain('TypeError: boom 1')
      expect(human.stdout).toContain('"n":1')
      const pagedJson = await runJson(['dlq', 'list', dlq, '--limit', '1'])
      const paged = await run(['dlq', 'list', dlq, '--limit', '1'])
      expect(paged.stdout).toContain(`kafka-redis-retry dlq list ${dlq} --cursor ${pagedJson.cursor} --limit 1`)

      // Requeue the middle one: it leaves the hash and the listener publishes it with retryCount 0.
      const requeued = await run(['dlq', 'requeue', dlq, ids[1], '--prefix', prefix])
      expect(requeued).toMatchObject({ code: 0, stderr: '' })
      expect(requeued.stdout).toContain(ids[1])
      await h.waitFor(() => produced.some((m) => m.key === 'E1'), 10000)
      const e1 = produced.filter((m) => m.key === 'E1')
      expect(e1).toHaveLength(1)
      expect(e1[0]).toMatchObject({ topic: 'orders', value: { n: 1 } })
      expect(e1[0].headers.retryCount).toBe('0')
      expect((await runJson(['dlq', 'list', dlq])).items.map((item) => item.id)).toEqual([ids[2], ids[0]])

      // Requeueing it again: it is no longer there.
      const again = await run(['dlq', 'requeue', dlq, ids[1], '--prefix', prefix])
      expect(again.code).toBe(1)
      expect(again.stderr).toContain(`no dead letter ${ids[1]} in ${dlq}`)
      const againJson = await run(['dlq', 'requeue', dlq, ids[1], '--json', '--prefix', prefix])
      expect(againJson.code).toBe(1)
      expect(JSON.parse(againJson.stdout)).toEqual({ requeued: false, id: ids[1] })

      // Requeue --all moves the other two.
      const rest = await runJson(['--prefix', prefix, 'dlq', 'requeue', dlq, '--all'])
      expect(rest).toEqual({ requeued: 2 })
      await h.waitFor(() => ['E0', 'E2'].every((key) => produced.some((m) => m.key === key)), 10000)
      for (const key of ['E0', 'E2']) {
        const seen = produced.filter((m) => m.key === key)
        expect(seen).toHaveLength(1)
        expect(seen[0].headers.retryCount).toBe('0')
      }
      expect(await runJson(['dlq', 'list', dlq])).toEqual({ items: [], cursor: null })
      const none = await run(['dlq', 'requeue', dlq, '--all', '--prefix', prefix])
      expect(none).toMatchObject({ code: 0, stderr: '' })
      expect(none.stdout).toMatch(/requeued 0 dead letters/)

      // A dead letter remembers the schedule it came from: requeued with another --prefix, it
      // still goes back to the schedule whose listener dead-lettered it (nobody listens on the
      // other one).
      const other = names('dlq-other')
      const e3 = await deadLetter('E3', 3)
      const moved = await runJson(['dlq', 'requeue', dlq, e3, '--prefix', other.prefix])
      expect(moved).toEqual({ requeued: true, id: e3 })
      await h.waitFor(() => produced.some((m) => m.key === 'E3'), 10000)
      expect(produced.filter((m) => m.key === 'E3')).toHaveLength(1)
      expect(await runJson(['stats', '--prefix', other.prefix, '--dlq', dlq])).toMatchObject({ scheduled: 0, deadLettered: 0 })

      // Remove one.
      const e4 = await deadLetter('E4', 4)
      const removed = await run(['dlq', 'remove', dlq, e4])
      expect(removed).toMatchObject({ code: 0, stderr: '' })
      expect(removed.stdout).toContain(e4)
      expect(await runJson(['stats', '--prefix', prefix, '--dlq', dlq])).toMatchObject({ deadLettered: 0 })
      const removedAgain = await run(['dlq', 'remove', dlq, e4])
      expect(removedAgain.code).toBe(1)
      expect(removedAgain.stderr).toContain(`no dead letter ${e4} in ${dlq}`)
      const e5 = await deadLetter('E5', 5)
      expect(await runJson(['dlq', 'remove', dlq, e5])).toEqual({ removed: true, id: e5 })
      await h.sleep(300)
      expect(produced.some((m) => m.key === 'E4' || m.key === 'E5')).toBe(false)
    } finally {
      await retry.close()
    }
  })

  test('stored text is shown escaped and long values truncated in the human list', async () => {
    const { dlq, retry } = await setup('dlq-text')
    try {
      await retry.pushToDlq(dlq, {
        topic: 'orders',
        event: 'evil\u001b[31m\nline',
        value: JSON.stringify({ long: 'x'.repeat(500) }),
      })
      const { code, stdout } = await run(['dlq', 'list', dlq])
      expect(code).toBe(0)
      expect(stdout).not.toContain('\u001b')
      expect(stdout).toContain('evil\\u001b[31m\\nline')
      expect(stdout).toMatch(/… \(\d+ chars\)/)
      expect(stdout).not.toContain('x'.repeat(200))
      expect(stdout).toMatch(/diedAt:\s+\S+/)
    } finally {
      await retry.close()
    }
  })
})
