// The dashboard's bulk actions (issue 28, item 16) and the numbers its forms take (item 14), in
// a real browser (Debian's chromium driven by playwright-core) against real Redis: the default
// pace, the filter a bulk action acts on, the warning before pausing a topic with no retries,
// removal as a job, jobs kept in Redis across dashboard processes, and bad numbers refused.
const path = require('path')
const http = require('http')
const { spawn } = require('child_process')
const { handler } = require('../../dashboard')
const h = require('../helpers')
const { listen, chromiumForFile } = require('../helpers/browser')

const CHILD = path.join(__dirname, '..', 'children', 'dashboard.js')
const children = h.killChildrenAfterEach()

/** A page in a fresh context, its dialogs and CSP errors recorded (helpers/browser.js). */
const open = chromiumForFile()
/** A schedule of its own: prefix, dead letter queue, an instance (closed after the file). */
const schedule = h.schedulesForFile('dash-bulk')

/** `n` dead letters of `topic` (value { n }), written as a service's pushToDlq writes them. */
async function deadLetters(s, topic, n, from = 0) {
  for (let i = 0; i < n; i += 1000) {
    await Promise.all(
      Array.from({ length: Math.min(1000, n - i) }, (_, j) =>
        s.retry.pushToDlq(s.dlq, { topic, event: `k${from + i + j}`, value: { n: from + i + j }, error: { name: 'Error', message: 'boom' } }),
      ),
    )
  }
}


const list = (server, s, search = '') => `${server.url}/dlq/${encodeURIComponent(s.dlq)}${search}`
const scheduled = async (s) => (await s.retry.stats(s.dlq)).scheduled
const deadLettered = async (s) => (await s.retry.stats(s.dlq)).deadLettered

test('a bulk requeue with the rate left empty goes at the default pace, and its confirmation says the pace', async () => {
  const s = schedule('pace')
  await deadLetters(s, 'orders', 300)
  const server = await listen(handler({ retry: s.retry, dlqName: s.dlq }))
  const { page, context } = await open()
  try {
    await page.goto(list(server, s))
    expect(await page.inputValue('input[name=rate]')).toBe('')
    await page.click('.bulk button')
    expect(await page.textContent('[data-dry-run]')).toBe('300')
    expect(await page.textContent('[data-pace]')).toBe('100 per second')
    expect(await page.textContent('main')).toContain('the default pace')
    const started = Date.now()
    await page.click('button:has-text("Yes, requeue them")')
    await page.waitForURL(/\/jobs\/0\/\d+$/)
    // Paced: a second in, about 100 have moved, not 300.
    await h.sleep(1000)
    const early = await scheduled(s)
    expect(early).toBeGreaterThan(0)
    expect(early).toBeLessThan(250)
    expect(await h.waitFor(async () => (await scheduled(s)) === 300, 30000, 100)).toBe(true)
    const ms = Date.now() - started
    console.log(`dashboard: 300 dead letters requeued at the default pace in ${ms} ms (${early} after 1 s)`)
    expect(ms).toBeGreaterThan(2500)
    await page.waitForSelector('[data-job-state]:has-text("done")', { timeout: 10000 })
    expect(await page.textContent('[data-pace]')).toBe('100 per second')
  } finally {
    await context.close()
    await server.stop()
  }
}, 60000)

test('a filter typed but not applied: the dry run and the bulk action act on the filter in the fields', async () => {
  const s = schedule('typed')
  await deadLetters(s, 'orders', 3)
  await deadLetters(s, 'payments', 2, 100)
  const server = await listen(handler({ retry: s.retry, dlqName: s.dlq }))
  const { page, context } = await open()
  try {
    await page.goto(list(server, s))
    expect(await page.textContent('[data-matched]')).toBe('5')
    // Typed, not applied: the list still shows all five.
    await page.fill('form.filters input[name=topic]', 'orders')
    await page.check('input[name=action][value=remove]')
    await page.click('.bulk button')
    expect(await page.textContent('[data-dry-run]')).toBe('3')
    expect(await page.textContent('[data-filter]')).toBe('topic orders')
    await page.click('button:has-text("Yes, remove them")')
    await page.waitForSelector('[data-job-state]:has-text("done")', { timeout: 20000 })
    expect(await page.textContent('[data-requeued]')).toBe('3')
    const left = (await s.retry.deadLetters(s.dlq, { limit: 10 })).items.map((i) => i.topic)
    expect(left).toEqual(['payments', 'payments'])
    // Applying the filter with the bulk fields set leaves an address that says only the filter.
    await page.goto(list(server, s))
    await page.fill('form.filters input[name=topic]', 'payments')
    await page.fill('input[name=rate]', '7')
    await page.click('form.filters button:has-text("Filter")')
    await page.waitForURL(/topic=payments/)
    expect(new URL(page.url()).search).toBe('?topic=payments')
  } finally {
    await context.close()
    await server.stop()
  }
})

test('pausing a topic that has no retries warns and asks; a topic with retries pauses at once', async () => {
  const s = schedule('typo')
  await s.retry.pushToQueue('payments', { event: 'p-1', value: '{"n":1}' }, { delay: '30', maxRetry: '3', retryCount: '0' })
  const server = await listen(handler({ retry: s.retry, dlqName: s.dlq, refreshSeconds: 0 }))
  const { page, context } = await open()
  try {
    await page.goto(`${server.url}/`)
    await page.fill('.pause-topic input[name=topic]', 'payment')
    await page.click('.pause-topic button')
    await page.waitForSelector('[data-warning]')
    expect(await page.textContent('h1')).toBe('Topic payment has no retries')
    expect(await s.retry.paused()).toEqual([])
    expect(await page.$('button:has-text("Pause payments instead")')).not.toBeNull()
    await page.click('button:has-text("Pause payment anyway")')
    await page.waitForSelector('.notice')
    expect(await page.textContent('.notice')).toBe('paused topic payment')
    expect(await s.retry.paused()).toEqual([{ topic: 'payment', untilMs: null }])
    await s.retry.resume()
    // The right name: no question.
    await page.fill('.pause-topic input[name=topic]', 'payments')
    await page.fill('.pause-topic input[name=minutes]', '5')
    await page.click('.pause-topic button')
    await page.waitForSelector('.notice')
    expect(await page.textContent('.notice')).toBe('paused topic payments for 5 min')
    expect((await s.retry.paused()).map((p) => p.topic)).toEqual(['payments'])
  } finally {
    await context.close()
    await server.stop()
  }
})

test('a bulk removal runs as a job: its page shows what it removed as it goes, and its Stop stops it', async () => {
  const s = schedule('remove')
  const total = 20000
  await deadLetters(s, 'orders', total)
  const server = await listen(handler({ retry: s.retry, dlqName: s.dlq }))
  const { page, context } = await open()
  try {
    await page.goto(list(server, s))
    await page.check('input[name=action][value=remove]')
    await page.click('.bulk button')
    expect(await page.textContent('[data-dry-run]')).toBe('20,000')
    // More than 1,000: the count typed back (issue 30).
    await page.fill('[data-confirm-count]', '20000')
    await page.click('button:has-text("Yes, remove them")')
    await page.waitForURL(/\/jobs\/0\/\d+$/)
    await page.click('button:has-text("Stop the removal")')
    await page.waitForSelector('[data-job-state]:has-text("stopped")', { timeout: 20000 })
    const removed = Number((await page.textContent('[data-requeued]')).replace(/,/g, ''))
    console.log(`dashboard: a bulk removal of ${total} stopped after ${removed}`)
    expect(removed).toBeLessThan(total)
    // Stopped for real, and the count exact: the rest are still there.
    await h.sleep(1000)
    expect(await deadLettered(s)).toBe(total - removed)
    expect(await page.$('button:has-text("Continue the removal")')).not.toBeNull()
  } finally {
    await context.close()
    await server.stop()
  }
}, 120000)

/** A dashboard process of its own on the schedule (jobs with a 2 s lease); resolves to its address. */
async function dashboardProcess(s) {
  const child = spawn(process.execPath, [CHILD, s.prefix, s.dlq, '2000'], { env: { ...process.env, REDIS_URL: h.REDIS_URL } })
  children.add(child)
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d) => (stdout += d))
  child.stderr.on('data', (d) => (stderr += d))
  const url = await h.waitFor(() => (/listening (http:\/\/\S+?)\/?$/m.exec(stdout) || [])[1] || child.exitCode !== null, 15000)
  if (typeof url !== 'string') throw new Error(`dashboard did not start: exit ${child.exitCode}, ${stderr}`)
  return { url, child }
}

test('bulk jobs live in Redis: seen and stopped from another dashboard process, interrupted when theirs dies, continued without moving anything twice', async () => {
  const s = schedule('jobs')
  const total = 150
  await deadLetters(s, 'orders', total)
  const a = await dashboardProcess(s)
  const b = await dashboardProcess(s)
  const { page, context } = await open()
  // A job page reloads itself each second while its job runs (or stops): wait for the state.
  const until = (word, timeout) => page.waitForSelector(`[data-job-state]:text-is("${word}")`, { timeout })
  const moved = async () => Number((await page.textContent('[data-requeued]')).replace(/,/g, ''))
  try {
    // Started in A, at 20 per second.
    await page.goto(`${a.url}/dlq/${encodeURIComponent(s.dlq)}`)
    await page.fill('input[name=rate]', '20')
    await page.click('.bulk button')
    await page.click('button:has-text("Yes, requeue them")')
    await page.waitForURL(/\/jobs\/0\/\d+$/)
    const jobPath = new URL(page.url()).pathname
    // B lists it, running, and its Stop reaches A's runner.
    await page.goto(`${b.url}/`)
    expect(await page.textContent('section.requeues tr[data-job] [data-state]')).toBe('running')
    await page.click('section.requeues tr[data-job] a')
    expect(new URL(page.url()).pathname).toBe(jobPath)
    await page.click('button:has-text("Stop the requeue")')
    await until('stopped', 15000)
    const stoppedAt = await moved()
    await h.sleep(1000)
    expect(await scheduled(s)).toBe(stoppedAt)
    expect(stoppedAt).toBeLessThan(total)
    // Continued from B: B runs it now. B dies: the job shows interrupted (in A), not running.
    await page.click('button:has-text("Continue the requeue")')
    expect(await h.waitFor(async () => (await scheduled(s)) > stoppedAt + 5, 15000, 100)).toBe(true)
    b.child.kill('SIGKILL')
    await h.exited(b.child, 5000)
    await page.goto(`${a.url}${jobPath}`)
    await until('interrupted', 15000)
    const interruptedAt = await scheduled(s)
    expect(interruptedAt).toBeLessThan(total)
    // B again (a restart): it lists the job, and continues it to the end.
    const b2 = await dashboardProcess(s)
    await page.goto(`${b2.url}/`)
    expect(await page.textContent('section.requeues tr[data-job] [data-state]')).toBe('interrupted')
    await page.goto(`${b2.url}${jobPath}`)
    await page.click('button:has-text("Continue the requeue")')
    await until('done', 30000)
    // Every dead letter moved once: all on the schedule, none left, none twice. The count
    // misses what B moved after its last report (at most a report's interval at 20/s).
    expect(await s.retry.stats(s.dlq)).toMatchObject({ scheduled: total, deadLettered: 0 })
    const counted = await moved()
    console.log(`dashboard: a job interrupted by a killed dashboard counted ${counted} of ${total} moved`)
    expect(counted).toBeLessThanOrEqual(total)
    expect(counted).toBeGreaterThanOrEqual(total - 40)
    expect(await page.textContent('p.progress')).toMatch(counted < total ? /^at least / : /./)
    const job = (await s.retry.jobs())[0]
    expect(job).toMatchObject({ state: 'done', run: 3, interruptions: 1, done: counted, spec: { kind: 'requeue', ratePerSec: 20, matched: total } })
    expect(job.spec.startedBy).toMatch(/via the dashboard on .* \(pid \d+\)$/)
  } finally {
    await context.close()
  }
}, 120000)

describe('every number a dashboard form takes is checked at the boundary', () => {
  const BAD = ['0', '-0', '1e-300', '1e308', 'NaN', 'Infinity', '-Infinity', '-1', '1.5', 'abc', '0x10', '1e400', '99999999999999999999']
  let s
  let server
  let cookie
  let csrf
  let itemId
  beforeAll(async () => {
    s = schedule('numbers')
    await s.retry.pushToQueue('orders', { event: 'o-1', value: '{"n":1}' }, { delay: '30', maxRetry: '3', retryCount: '0' })
    await deadLetters(s, 'orders', 3)
    itemId = (await s.retry.deadLetters(s.dlq, { limit: 1 })).items[0].id
    server = await listen(handler({ retry: s.retry, dlqName: s.dlq }))
    const first = await fetch(`${server.url}/`)
    cookie = first.headers.get('set-cookie').split(';')[0]
    csrf = cookie.split('=')[1]
  })
  afterAll(() => server.stop())

  const dlqPath = () => `/dlq/${encodeURIComponent(s.dlq)}`
  const get = (address) => fetch(`${server.url}${address}`, { redirect: 'manual', headers: { cookie } })
  const post = (address, fields) =>
    fetch(`${server.url}${address}`, { method: 'POST', redirect: 'manual', body: new URLSearchParams({ csrf, ...fields }), headers: { cookie } })

  /**
   * Each form and field: how it is sent, which of BAD it takes (not sent where it would act:
   * `acts`), and the word its message names.
   */
  const FORMS = [
    { what: 'the list: limit', send: (v) => get(`${dlqPath()}?limit=${encodeURIComponent(v)}`), takes: [], names: 'limit' },
    { what: 'the list: since', send: (v) => get(`${dlqPath()}?since=${encodeURIComponent(v)}`), takes: ['0'], names: 'since' },
    { what: 'the list: until', send: (v) => get(`${dlqPath()}?until=${encodeURIComponent(v)}`), takes: ['0'], names: 'until' },
    { what: 'the dry run: rate', send: (v) => get(`${dlqPath()}/bulk?action=requeue&rate=${encodeURIComponent(v)}`), takes: ['1.5'], names: 'rate' },
    { what: 'the dry run: delay', send: (v) => get(`${dlqPath()}/bulk?action=requeue&delayMinutes=${encodeURIComponent(v)}`), takes: ['0', '-0', '1.5'], names: 'delay' },
    { what: 'the bulk requeue: rate', send: (v) => post(`${dlqPath()}/bulk`, { step: 'confirm', action: 'requeue', matched: '3', rate: v }), takes: ['1.5'], acts: true, names: 'rate' },
    { what: 'the bulk requeue: delay', send: (v) => post(`${dlqPath()}/bulk`, { step: 'confirm', action: 'requeue', matched: '3', delayMinutes: v }), takes: ['0', '-0', '1.5'], acts: true, names: 'delay' },
    { what: 'the bulk requeue: matched', send: (v) => post(`${dlqPath()}/bulk`, { step: 'confirm', action: 'remove', matched: v, topic: 'none-such' }), takes: [], names: 'matched' },
    { what: 'requeue later: delay', send: (v) => post(`${dlqPath()}/item/${encodeURIComponent(itemId)}/requeue`, { delayMinutes: v }), takes: ['0', '-0', '1.5'], acts: true, names: 'delay' },
    { what: 'pause the schedule: minutes', send: (v) => post('/schedules/0/pause', { minutes: v }), takes: [], names: 'pause' },
    { what: 'pause a topic: minutes', send: (v) => post('/schedules/0/pause', { topic: 'orders', minutes: v }), takes: [], names: 'pause' },
    { what: 'a job page: id', send: (v) => get(`/jobs/0/${encodeURIComponent(v)}`), takes: [], names: 'job', status: 404 },
  ]

  test.each(FORMS.map((f) => [f.what, f]))('%s', async (_, form) => {
    const outcomes = []
    for (const value of BAD) {
      if (form.acts && form.takes.includes(value)) continue
      const res = await form.send(value)
      const body = await res.text()
      expect(body).not.toMatch(/Panic|internal error/)
      expect(res.status).not.toBe(500)
      if (form.takes.includes(value)) {
        expect(res.status).toBeLessThan(400)
        continue
      }
      outcomes.push([value, res.status, new RegExp(form.names, 'i').test(body)])
    }
    expect(outcomes).toEqual(outcomes.map(([value]) => [value, form.status || 400, true]))
    // Nothing changed: no dead letter moved, nothing paused, no job started.
    expect(await s.retry.stats(s.dlq)).toMatchObject({ scheduled: 1, deadLettered: 3 })
    expect(await s.retry.paused()).toEqual([])
    expect(await s.retry.jobs()).toEqual([])
  })

  test('a dry run (it reads every dead letter) is refused to another site\'s request', async () => {
    const status = (headers) =>
      new Promise((resolve, reject) => {
        http.get(`${server.url}${dlqPath()}/bulk?action=remove`, { headers: { cookie, ...headers } }, (res) => {
          res.resume()
          resolve(res.statusCode)
        }).on('error', reject)
      })
    expect(await status({ 'sec-fetch-site': 'cross-site' })).toBe(403)
    expect(await status({ 'sec-fetch-site': 'same-site' })).toBe(403)
    expect(await status({ 'sec-fetch-site': 'same-origin' })).toBe(200)
  })

  test('in the browser: a rate the number field lets through is refused on the page, never a 500', async () => {
    const { page, context } = await open()
    try {
      await page.goto(`${server.url}${dlqPath()}`)
      // The field's own checks (min, step) are the browser's: a form sent without them (or a
      // value they let through) meets the server's.
      await page.$eval('input[name=rate]', (input) => {
        input.removeAttribute('min')
        input.value = '1e-300'
      })
      const response = await Promise.all([page.waitForNavigation(), page.click('.bulk button')]).then(([r]) => r)
      expect(response.status()).toBe(400)
      expect(await page.textContent('h1')).toBe('Bad request')
      expect(await page.textContent('main p.error')).toBe("rate must be a number from 0.1 to 10,000 per second, got '1e-300'")
    } finally {
      await context.close()
    }
  })
})
