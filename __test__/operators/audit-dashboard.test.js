// The audit log through the dashboard (issue 30, item 4), in Debian's chromium: named tokens
// (`tokens: { name: secret }`, `--token name=secret`), each action recorded with its token's
// name as the actor, and the Audit page (escaped, paged by cursor, CSP without inline code).
const path = require('path')
const { handler } = require('../../dashboard')
const { parseTokenArg } = require('../../dashboard/security')
const h = require('../helpers')
const { listen, chromiumForFile } = require('../helpers/browser')

const DOCS = path.join(__dirname, '..', '..', 'docs')
/** A page in a fresh context, its dialogs and CSP errors recorded (helpers/browser.js). */
const open = chromiumForFile()
/** A schedule of its own: prefix, dead letter queue, an instance (closed after the file). */
const schedule = h.schedulesForFile('audit-dash', { dlqSuffix: 'dlq' })

test('each dashboard action is recorded with the name of the token it was made with', async () => {
  const s = schedule('tokens')
  const id = await s.retry.pushToDlq(s.dlq, { topic: 'orders', event: 'o-1', value: { n: 1 }, options: { delay: '0', maxRetry: '1', retryCount: '2' }, keyPrefix: s.prefix })
  const server = await listen(handler({ retry: s.retry, dlqName: s.dlq, tokens: { alice: 'alice-secret-1', 'bob.ops': 'bob-secret-22' } }))
  const a = await open()
  const b = await open()
  try {
    // alice logs in once with ?token= (then the cookie), pauses the schedule and requeues.
    await a.page.goto(`${server.url}/?token=alice-secret-1`)
    await a.page.click('button:has-text("Pause schedule")')
    await a.page.waitForSelector('p.notice')
    await a.page.goto(`${server.url}/dlq/${encodeURIComponent(s.dlq)}/item/${encodeURIComponent(id)}`)
    await a.page.click('form[action$="/requeue"] button')
    await a.page.waitForSelector('p.notice')
    // bob resumes with his own token.
    await b.page.goto(`${server.url}/?token=bob-secret-22`)
    await b.page.click('button:has-text("Resume all")')
    await b.page.waitForSelector('p.notice')

    const { entries } = await s.retry.auditLog()
    expect(entries.map(({ actor, action, target, count, outcome }) => ({ actor, action, target, count, outcome }))).toEqual([
      { actor: 'bob.ops', action: 'resume', target: { topic: null }, count: 1, outcome: 'ok' },
      { actor: 'alice', action: 'requeue', target: { dlq: s.dlq, id }, count: 1, outcome: 'ok' },
      { actor: 'alice', action: 'pause', target: { topic: null }, count: 1, outcome: 'ok' },
    ])
    // A wrong token, and a cookie of another dashboard's tokens, get nothing.
    const refused = await fetch(`${server.url}/audit`, { headers: { Authorization: 'Bearer alice-secret-2' } })
    expect(refused.status).toBe(401)
    const bearer = await fetch(`${server.url}/audit`, { headers: { Authorization: 'Bearer bob-secret-22' } })
    expect(bearer.status).toBe(200)
    expect(a.dialogs.concat(b.dialogs)).toEqual([])
  } finally {
    await a.context.close()
    await b.context.close()
    await server.stop()
  }
})

test('tokens are checked: names, lengths, no two alike; the CLI reads --token name=secret, a plain token stays one', () => {
  const s = schedule('opts')
  for (const options of [{ tokens: { alice: 'short' } }, { tokens: { 'bad name': 'long-enough-1' } }, { tokens: { a: 'same-secret-1', b: 'same-secret-1' } }, { token: 'long-enough-1', tokens: { token: 'other-secret-1' } }, { tokens: 'x' }]) {
    expect(() => handler({ retry: s.retry, ...options })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG' }))
  }
  expect(parseTokenArg('ops=secret-123')).toEqual({ name: 'ops', secret: 'secret-123' })
  expect(parseTokenArg('plain-secret-1')).toEqual({ name: 'token', secret: 'plain-secret-1' })
  // A base64 secret's '=' padding is no name.
  expect(parseTokenArg('c2VjcmV0LXNlY3JldA==')).toEqual({ name: 'token', secret: 'c2VjcmV0LXNlY3JldA==' })
})

test('the Audit page lists the log escaped, newest first, paged with its cursor; screenshot for the docs', async () => {
  const s = schedule('page')
  const hostile = '<img src=x onerror=alert(1)>'
  for (let i = 0; i < 55; i++) await s.retry.pause(`topic-${i}`, { actor: `op${i}` })
  await s.retry.removeDeadLetters(s.dlq, { topic: 'orders', search: 'x' }, { actor: hostile })
  await s.retry.requeueDeadLetters(s.dlq, { errorContains: 'timeout' }, { actor: 'alice' })
  await s.retry.resume('topic-3', { actor: 'bob' })
  const failing = `${s.prefix}:not-a-hash`
  const redis = h.redisClient()
  await redis.set(failing, 'x')
  await s.retry.removeDeadLetters(failing, {}, { actor: 'carol' }).catch(() => {})
  await redis.del(failing)
  await redis.quit()

  const server = await listen(handler({ retry: s.retry, dlqName: s.dlq, name: s.prefix, token: 'plain-token-1' }))
  const { page, context, dialogs, cspErrors } = await open()
  try {
    await page.goto(`${server.url}/?token=plain-token-1`)
    await page.click('nav a[href$="/audit"]')
    await page.waitForSelector('table.audit')
    const rowsOf = () => page.$$eval('table.audit tbody tr', (trs) => trs.map((tr) => [...tr.querySelectorAll('td')].slice(1, 5).map((td) => td.textContent.trim())))
    const first = await rowsOf()
    expect(first).toHaveLength(50)
    expect(first.slice(0, 4)).toEqual([
      ['carol', 'remove', `dead letter queue ${failing}, every dead letter`, '0'],
      ['bob', 'resume', 'topic topic-3', '1'],
      ['alice', 'requeue', expect.stringMatching(new RegExp(`^dead letter queue ${s.dlq}, matching .*timeout`)), '0'],
      [hostile, 'remove', expect.stringContaining('orders'), '0'],
    ])
    expect(await page.textContent('table.audit tbody tr:first-child td.outcome')).toMatch(/ERR_REDIS_UNAVAILABLE/)
    expect(await page.$$('table.audit img')).toEqual([])
    await page.setViewportSize({ width: 1100, height: 700 })
    await page.screenshot({ path: path.join(DOCS, 'dashboard-audit.png') })
    await page.click('a[rel="next"]')
    await page.waitForSelector('table.audit')
    const second = await rowsOf()
    expect(second.map((r) => r[0])).toEqual(Array.from({ length: 9 }, (_, i) => `op${8 - i}`))
    expect(await page.$('a[rel="next"]')).toBeNull()
    // since: only what was recorded since then.
    await page.goto(`${server.url}/audit?since=${Date.now() + 60_000}`)
    expect(await page.textContent('main')).toContain('No operator actions recorded')
    const bad = await page.goto(`${server.url}/audit?since=yesterday`)
    expect(bad.status()).toBe(400)
    expect(dialogs).toEqual([])
    expect(cspErrors).toEqual([])
  } finally {
    await context.close()
    await server.stop()
  }
})
