// Operator controls (issue 19): dead letters searched by filter, requeued or removed by filter,
// pause and resume, the publish rate cap, per-topic counts and history. Real Redis and broker.
const { KafkaRetry } = require('..')
const h = require('./helpers')

beforeAll(h.requireServers)
h.killChildrenAfterEach()

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
