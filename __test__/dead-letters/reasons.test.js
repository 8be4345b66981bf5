// Failure reasons and guarded bulk actions (issue 30, items 2 and 3): dead letters grouped by
// their masked error across topics, `reason` as a filter of requeue and remove, `maxCount`,
// `replays` counted when a requeued message dies again, `maxReplays` and `force`, and the CLI's
// confirmation above 1,000. Real Redis.
const { KafkaRetry } = require('../..')
const h = require('../helpers')
const cli = require('../helpers/cli')

beforeAll(h.requireServers)

/** A schedule of its own: prefix, dead letter queue, an instance (closed after the file). */
const schedule = h.schedulesForFile('reasons', { defaults: { pollIntervalMs: 100 } })

/** Writes dead letters as pushToDlq does: each [topic, errorName, message, diedAt?]. */
async function write(s, specs) {
  let n = 0
  for (const [topic, name, message, diedAt] of specs) {
    n += 1
    await s.retry.pushToDlq(s.dlq, {
      topic,
      event: `k${n}`,
      value: { n },
      options: { delay: '0', maxRetry: '1', retryCount: '2' },
      error: { name, message },
      ...(diedAt ? { diedAt } : {}),
    })
  }
}

const TIMEOUTS = [
  ['orders', 'TimeoutError', 'Request to 10.0.3.17:8080 timed out after 5012 ms (order 5f3a9c2e81b4)', 1000],
  ['orders', 'TimeoutError', 'Request to 10.0.9.2:80 timed out after 30000 ms (order 77aa01bc99de)', 3000],
  ['payments', 'TimeoutError', 'Request to 192.168.1.20:443 timed out after 12 ms (order 0c0ffee12345)', 2000],
]
const VALIDATION = [
  ['orders', 'ValidationError', "field 'sku' is invalid for user 3f2504e0-4f89-11d3-9a0c-0305e82c3301", 1500],
  ['payments', 'ValidationError', "field 'amount' is invalid for user 9a8b7c6d-1111-2222-3333-444455556666", 2500],
]

test('reasons group dead letters across topics by their masked error, largest first, with an example and the last time', async () => {
  const s = schedule('group')
  await write(s, [...TIMEOUTS, ...VALIDATION, ['audit', 'Error', 'disk full', 500]])
  const found = await s.retry.deadLetterReasons(s.dlq)
  expect(found).toMatchObject({ scanned: 6, total: 6, truncated: false })
  expect(found.reasons).toEqual([
    {
      reason: 'TimeoutError: Request to <addr> timed out after <n> ms (order <id>)',
      count: 3,
      topics: { orders: 2, payments: 1 },
      example: 'TimeoutError: Request to 10.0.9.2:80 timed out after 30000 ms (order 77aa01bc99de)',
      lastAt: 3000,
    },
    {
      reason: "ValidationError: field '…' is invalid for user <uuid>",
      count: 2,
      topics: { orders: 1, payments: 1 },
      example: "ValidationError: field 'amount' is invalid for user 9a8b7c6d-1111-2222-3333-444455556666",
      lastAt: 2500,
    },
    { reason: 'Error: disk full', count: 1, topics: { audit: 1 }, example: 'Error: disk full', lastAt: 500 },
  ])
  // A filter narrows what is grouped.
  const payments = await s.retry.deadLetterReasons(s.dlq, { topic: 'payments' })
  expect(payments.reasons.map((r) => [r.reason, r.count])).toEqual([
    ['ValidationError: field \'…\' is invalid for user <uuid>', 1],
    ['TimeoutError: Request to <addr> timed out after <n> ms (order <id>)', 1],
  ])
  // A reason lists exactly its dead letters; an unmasked error text names its reason too.
  const listed = await s.retry.deadLetters(s.dlq, { reason: found.reasons[0].reason })
  expect(listed.items.map((i) => i.event).sort()).toEqual(['k1', 'k2', 'k3'])
  const raw = await s.retry.deadLetters(s.dlq, { reason: 'TimeoutError: Request to 1.2.3.4:1 timed out after 1 ms (order abcdef012345)' })
  expect(raw.items).toHaveLength(3)
  // Empty queue, bad arguments.
  expect(await s.retry.deadLetterReasons(`${s.dlq}-none`)).toEqual({ reasons: [], scanned: 0, total: 0, truncated: false })
  await expect(s.retry.deadLetterReasons('')).rejects.toMatchObject({ code: 'ERR_INVALID_ARG' })
  await expect(s.retry.deadLetterReasons(s.dlq, { reason: 7 })).rejects.toMatchObject({ code: 'ERR_INVALID_ARG', message: expect.stringContaining('filter.reason') })
})

test('requeue every timeout, remove every validation error: two calls with reason as the filter', async () => {
  const s = schedule('two-calls')
  await write(s, [...TIMEOUTS, ...VALIDATION])
  const { reasons } = await s.retry.deadLetterReasons(s.dlq)
  const [timeout, validation] = reasons.map((r) => r.reason)
  expect(await s.retry.requeueDeadLetters(s.dlq, { reason: timeout }, { dryRun: true })).toBe(3)
  expect(await s.retry.requeueDeadLetters(s.dlq, { reason: timeout })).toBe(3)
  expect(await s.retry.removeDeadLetters(s.dlq, { reason: validation })).toBe(2)
  const stats = await s.retry.stats(s.dlq)
  expect(stats).toMatchObject({ scheduled: 3, deadLettered: 0 })
})

test('maxCount caps a requeue and a removal (and what their dry runs count)', async () => {
  const s = schedule('cap')
  await write(s, Array.from({ length: 10 }, (_, n) => ['orders', 'Error', `failed ${n}`, 1000 + n]))
  expect(await s.retry.requeueDeadLetters(s.dlq, {}, { dryRun: true, maxCount: 4 })).toBe(4)
  expect(await s.retry.requeueDeadLetters(s.dlq, {}, { maxCount: 4 })).toBe(4)
  expect(await s.retry.removeDeadLetters(s.dlq, { topic: 'orders' }, { dryRun: true, maxCount: 3 })).toBe(3)
  expect(await s.retry.removeDeadLetters(s.dlq, { topic: 'orders' }, { maxCount: 3 })).toBe(3)
  expect(await s.retry.removeDeadLetters(s.dlq, {}, { maxCount: 0 })).toBe(0)
  expect(await s.retry.stats(s.dlq)).toMatchObject({ scheduled: 4, deadLettered: 3 })
  for (const maxCount of [-1, 1.5, 'all', 2 ** 54]) {
    await expect(s.retry.requeueDeadLetters(s.dlq, {}, { maxCount })).rejects.toMatchObject({ code: 'ERR_INVALID_ARG', message: expect.stringContaining('maxCount') })
    await expect(s.retry.removeDeadLetters(s.dlq, {}, { maxCount })).rejects.toMatchObject({ code: 'ERR_INVALID_ARG', message: expect.stringContaining('maxCount') })
  }
  expect(await s.retry.stats(s.dlq)).toMatchObject({ scheduled: 4, deadLettered: 3 })
})

/**
 * A listener whose producer stands for a consumer that always fails: each published message is
 * pushed back with the headers it carried (KafkaRetry.headers), until it is dead-lettered.
 */
async function failingConsumer(s) {
  const published = []
  await s.retry.queueListener(
    {
      produce: async (topic, key, value, headers) => {
        published.push({ key, headers })
        setImmediate(() => {
          s.retry.pushToQueue(topic, { event: key, value }, { ...KafkaRetry.headers(headers), delay: '0', error: new Error('still down') }).catch(() => {})
        })
      },
    },
    s.dlq,
  )
  return published
}

test('replays counts each requeue after which the message died again; a bulk requeue passes over those at maxReplays unless force', async () => {
  const s = schedule('replays', { maxReplays: 2 })
  const published = await failingConsumer(s)
  await s.retry.pushToQueue('orders', { event: 'order-1', value: '{"id":1}' }, { delay: '0', maxRetry: '1', retryCount: '1', error: new Error('down') })
  const deadOnce = async (replays) => {
    expect(await h.waitFor(async () => (await s.retry.deadLetters(s.dlq)).items.some((i) => i.replays === replays), 15000, 50)).toBe(true)
  }
  await deadOnce(0)
  expect((await s.retry.deadLetters(s.dlq)).items).toHaveLength(1)
  // Requeued, failed twice more (maxRetry 1), dead again: replays 1, carried by the header.
  expect(await s.retry.requeueDeadLetters(s.dlq, {})).toBe(1)
  await deadOnce(1)
  expect(published.some((p) => p.headers.replays === '1')).toBe(true)
  expect(KafkaRetry.headers({ replays: Buffer.from('1') }).replays).toBe('1')
  expect(await s.retry.requeueDeadLetters(s.dlq, {})).toBe(1)
  await deadOnce(2)
  const [item] = (await s.retry.deadLetters(s.dlq)).items
  expect(item.replays).toBe(2)
  expect(item.options.replays).toBe('2')
  // At maxReplays (2): passed over, and said so.
  expect(await s.retry.requeueDeadLettersDetailed(s.dlq, {}, { dryRun: true })).toEqual({ requeued: 0, skipped: 1 })
  expect(await s.retry.requeueDeadLetters(s.dlq, {})).toBe(0)
  expect(await s.retry.requeueDeadLettersDetailed(s.dlq, {})).toEqual({ requeued: 0, skipped: 1 })
  expect((await s.retry.deadLetters(s.dlq)).items).toHaveLength(1)
  // A requeue of that one dead letter by id, and a forced bulk requeue, take it.
  expect(await s.retry.requeueDeadLettersDetailed(s.dlq, {}, { force: true })).toEqual({ requeued: 1, skipped: 0 })
  await deadOnce(3)
  // The CLI (default maxReplays 3) passes over it now, says so, and --force takes it.
  const cliRun = async (...args) => JSON.parse((await cli.run(['--prefix', s.prefix, '--json', 'dlq', 'requeue', s.dlq, '--all', '--dry-run', ...args])).stdout)
  expect(await cliRun()).toEqual({ matched: 0, skipped: 1 })
  expect(await cliRun('--force')).toEqual({ matched: 1 })
  const said = await cli.run(['--prefix', s.prefix, 'dlq', 'requeue', s.dlq, '--topic', 'orders'])
  expect(said.stdout).toContain('requeued 0 dead letters')
  expect(said.stdout).toContain('1 passed over')
  await expect(s.retry.requeueDeadLetters(s.dlq, {}, { force: 'yes' })).rejects.toMatchObject({ code: 'ERR_INVALID_ARG' })
  expect(() => new KafkaRetry({ maxReplays: 0 })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG', message: expect.stringContaining('maxReplays') }))
}, 60000)

test('the CLI acts on more than 1,000 dead letters only with --confirm <dry-run count>, and never on more', async () => {
  const s = schedule('cli')
  const many = 1003
  for (let i = 0; i < many; i += 500) {
    await Promise.all(
      Array.from({ length: Math.min(500, many - i) }, (_, j) =>
        s.retry.pushToDlq(s.dlq, { topic: 'orders', event: `k${i + j}`, value: { n: i + j }, error: { name: 'TimeoutError', message: `timed out after ${i + j} ms` } }),
      ),
    )
  }
  const base = ['--prefix', s.prefix]
  const reasons = await cli.run([...base, 'dlq', 'reasons', s.dlq])
  expect(reasons.code).toBe(0)
  expect(reasons.stdout).toContain('   1003  TimeoutError: timed out after <n> ms')
  const reason = ['--reason', 'TimeoutError: timed out after <n> ms']
  // Without --confirm: the count, and nothing done.
  const refused = await cli.run([...base, 'dlq', 'remove', s.dlq, ...reason])
  expect(refused.code).toBe(1)
  expect(refused.stderr).toContain('1003 dead letters')
  expect(refused.stderr).toContain('--confirm 1003')
  expect((await s.retry.stats(s.dlq)).deadLettered).toBe(many)
  const requeueRefused = await cli.run([...base, 'dlq', 'requeue', s.dlq, '--all'])
  expect(requeueRefused.code).toBe(1)
  expect(requeueRefused.stderr).toContain('--confirm 1003')
  // More arrive after the dry run: --confirm 1003 acts on 1003, not on them.
  await s.retry.pushToDlq(s.dlq, { topic: 'orders', event: 'late', value: {}, error: { name: 'TimeoutError', message: 'timed out after 1 ms' } })
  const removed = await cli.run([...base, '--json', 'dlq', 'remove', s.dlq, ...reason, '--confirm', '1003'])
  expect(removed.code).toBe(0)
  expect(JSON.parse(removed.stdout)).toEqual({ removed: 1003 })
  expect((await s.retry.stats(s.dlq)).deadLettered).toBe(1)
  // At or below 1,000 no confirmation is asked; --max-count caps.
  const small = await cli.run([...base, 'dlq', 'requeue', s.dlq, ...reason, '--max-count', '0'])
  expect(small.code).toBe(0)
  expect(small.stdout).toContain('requeued 0 dead letters')
  const bad = await cli.run([...base, 'dlq', 'remove', s.dlq, ...reason, '--confirm', 'many'])
  expect(bad.code).toBe(2)
}, 60000)
