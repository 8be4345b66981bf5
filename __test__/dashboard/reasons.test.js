// The dashboard's failure reasons and its guarded bulk actions (issue 30, items 2 and 3), in a
// real browser (Debian's chromium driven by playwright-core) against real Redis: the dead letter
// page leads with the reasons, a reason is one click to its filter, and a bulk action on more
// than 1,000 dead letters needs the dry run's count typed back and acts on at most that many.
const path = require('path')
const { handler } = require('../../dashboard')
const h = require('../helpers')
const { listen, chromiumForFile } = require('../helpers/browser')

const DOCS = path.join(__dirname, '..', '..', 'docs')

/** A page in a fresh context, its dialogs and CSP errors recorded (helpers/browser.js). */
const open = chromiumForFile()
/** A schedule of its own: prefix, dead letter queue, an instance (closed after the file). */
const schedule = h.schedulesForFile('dash-reasons')


const list = (server, s, search = '') => `${server.url}/dlq/${encodeURIComponent(s.dlq)}${search}`

test('the dead letter page leads with the reasons and their counts; a reason is one click to its filter; screenshot', async () => {
  const s = schedule('view')
  const now = Date.now()
  const specs = [
    ...Array.from({ length: 7 }, (_, n) => [n % 3 ? 'orders' : 'payments', 'TimeoutError', `POST http://payments.internal:8443/charge timed out after ${5000 + n * 17} ms`]),
    ...Array.from({ length: 4 }, (_, n) => ['orders', 'ValidationError', `field 'sku' of order ${1000 + n} is not in the catalogue`]),
    ['orders', 'DatabaseError', 'connect ECONNREFUSED 10.0.3.17:5432'],
    ['shipping', 'Error', '<img src=x onerror=alert(1)> from user 3f2504e0-4f89-11d3-9a0c-0305e82c3301'],
  ]
  let n = 0
  for (const [topic, name, message] of specs) {
    n += 1
    await s.retry.pushToDlq(s.dlq, { topic, event: `order-${n}`, value: { n }, options: { retryCount: '4', maxRetry: '3', ...(n === 1 ? { replays: '2' } : {}) }, error: { name, message }, diedAt: now - 60_000 + n * 1000 })
  }
  const server = await listen(handler({ retry: s.retry, dlqName: s.dlq, name: s.prefix }))
  const { page, context, dialogs, cspErrors } = await open()
  try {
    await page.goto(list(server, s))
    // The reasons come first, before the filter form and the list.
    const order = await page.$$eval('main section.reasons, main form.filters, main table.dead-letters', (els) => els.map((e) => e.className))
    expect(order[0]).toBe('reasons')
    const rows = await page.$$eval('table.reasons tbody tr', (trs) => trs.map((tr) => [tr.getAttribute('data-reason'), tr.querySelector('[data-count]').textContent]))
    expect(rows).toEqual([
      ['TimeoutError: POST <addr> timed out after <n> ms', '7'],
      ["ValidationError: field '…' of order <n> is not in the catalogue", '4'],
      ['Error: <img src=x onerror=alert(<n>)> from user <uuid>', '1'],
      ['DatabaseError: connect ECONNREFUSED <addr>', '1'],
    ])
    expect(await page.textContent('table.reasons tbody tr:first-child')).toContain('orders 4, payments 3')
    await page.setViewportSize({ width: 1200, height: 900 })
    await page.screenshot({ path: path.join(DOCS, 'dashboard-reasons.png'), fullPage: true })
    // One click: the list filtered by the reason, the reason marked, the others one click away.
    await page.click('table.reasons tbody tr:nth-child(2) a')
    await page.waitForURL(/reason=/)
    expect(new URL(page.url()).searchParams.get('reason')).toBe("ValidationError: field '…' of order <n> is not in the catalogue")
    const listed = await page.$$eval('table.dead-letters tbody tr', (trs) => trs.length)
    expect(listed).toBe(4)
    expect(await page.getAttribute('table.reasons tr.chosen', 'data-reason')).toBe("ValidationError: field '…' of order <n> is not in the catalogue")
    expect(await page.inputValue('form.filters input[name=reason]')).toBe("ValidationError: field '…' of order <n> is not in the catalogue")
    expect(await page.textContent('[data-matched]')).toBe('4')
    // Replays: in the list and on a dead letter's page.
    await page.click('a:has-text("every reason")')
    const replays = await page.$$eval('table.dead-letters tbody tr', (trs) => Object.fromEntries(trs.map((tr) => [tr.getAttribute('data-id'), tr.querySelector('[data-replays]').textContent])))
    expect(Object.values(replays).filter((r) => r === '2')).toHaveLength(1)
    expect(Object.values(replays).filter((r) => r === '0')).toHaveLength(specs.length - 1)
    // The hostile error text is shown as text, never run.
    expect(dialogs).toEqual([])
    expect(cspErrors).toEqual([])
  } finally {
    await context.close()
    await server.stop()
  }
}, 60000)

test('a bulk removal of more than 1,000 needs the dry run count typed back, and removes at most that many', async () => {
  const s = schedule('confirm')
  const many = 1001
  await Promise.all(
    Array.from({ length: many }, (_, i) => s.retry.pushToDlq(s.dlq, { topic: 'orders', event: `k${i}`, value: { i }, error: { name: 'TimeoutError', message: `timed out after ${i} ms` } })),
  )
  const server = await listen(handler({ retry: s.retry, dlqName: s.dlq }))
  const { page, context } = await open()
  try {
    await page.goto(list(server, s))
    await page.click('table.reasons tbody tr:first-child a')
    await page.waitForURL(/reason=/)
    await page.check('input[name=action][value=remove]')
    await page.click('.bulk button')
    expect(await page.textContent('[data-dry-run]')).toBe('1,001')
    expect(await page.textContent('[data-filter]')).toBe('reason TimeoutError: timed out after <n> ms')
    // A wrong count is refused, nothing removed.
    await page.fill('[data-confirm-count]', '1000')
    await page.click('button:has-text("Yes, remove them")')
    expect(await page.textContent('main')).toContain('act only when the confirmation field holds that count')
    expect((await s.retry.stats(s.dlq)).deadLettered).toBe(many)
    await page.goBack()
    // One more arrives after the dry run: the removal stops at the confirmed count.
    await s.retry.pushToDlq(s.dlq, { topic: 'orders', event: 'late', value: {}, error: { name: 'TimeoutError', message: 'timed out after 5 ms' } })
    await page.fill('[data-confirm-count]', '1001')
    await page.click('button:has-text("Yes, remove them")')
    await page.waitForSelector('[data-job-state]:has-text("done")', { timeout: 30000 })
    expect((await s.retry.stats(s.dlq)).deadLettered).toBe(1)
  } finally {
    await context.close()
    await server.stop()
  }
}, 90000)
