// The dashboard (dashboard/) in a real browser: Debian's chromium driven by playwright-core,
// against real Redis and the broker. Dead letters are made the way services make them: pushed
// with an error and exhausted, then dead-lettered by a listener.
const path = require('path')
const fs = require('fs')
const { spawn } = require('child_process')
const express = require('express')
const fastify = require('fastify')
const { KafkaRetry } = require('../..')
const { handler } = require('../../dashboard')
const h = require('../helpers')
const { listen, chromiumForFile } = require('../helpers/browser')

const BIN = path.join(__dirname, '..', '..', 'bin', 'kafka-redis-retry.js')
const DOCS = path.join(__dirname, '..', '..', 'docs')
const children = h.killChildrenAfterEach()

/** A page in a fresh context, its dialogs and CSP errors recorded (helpers/browser.js). */
const open = chromiumForFile()
const instances = []
const keys = []

afterAll(async () => {
  await Promise.all(instances.map((r) => r.close().catch(() => {})))
  const redis = h.redisClient()
  for (const key of keys) await redis.del(key)
  await redis.quit()
})

/** A schedule of its own: prefix, dead letter queue, an instance (closed after the file). */
function schedule(label, config = {}) {
  const prefix = h.unique(`dash-${label}`)
  const dlq = `${prefix}:dlq`
  keys.push(dlq, `${dlq}:index`, `${dlq}:index:scan`, `${dlq}:topics`, `{${prefix}}:topics`, ...Object.values(h.scheduleKeys(prefix)))
  const retry = new KafkaRetry({ keyPrefix: prefix, ...config })
  instances.push(retry)
  return { prefix, dlq, retry }
}

/**
 * Dead letters as a service makes them: each spec { topic, event, value, error, headers } is
 * pushed already exhausted (retryCount past maxRetry) with its error, and a listener on a second
 * instance dead-letters them. Resolves once all are in the hash.
 */
async function makeDeadLetters(s, specs) {
  const before = (await s.retry.stats(s.dlq)).deadLettered
  for (const spec of specs) {
    const error = Object.assign(new Error(spec.error || 'handler failed'), { name: spec.errorName || 'Error' })
    await s.retry.pushToQueue(
      spec.topic,
      { event: spec.event || 'key-1', value: JSON.stringify(spec.value || { n: 1 }) },
      { delay: '0', maxRetry: '2', retryCount: '3', error, ...(spec.headers || {}) },
    )
  }
  const listener = new KafkaRetry({ keyPrefix: s.prefix })
  await listener.queueListener({ produce: async () => {} }, s.dlq)
  const done = await h.waitFor(async () => (await s.retry.stats(s.dlq)).deadLettered >= before + specs.length, 20000)
  await listener.close()
  expect(done).toBe(true)
  const { items } = await s.retry.deadLetters(s.dlq, { limit: 500 })
  return items
}

/** The CLI's `dashboard` command as a child process; resolves to the address it printed. */
async function cli(args, env = {}) {
  const port = await h.freePort()
  const child = spawn(process.execPath, [BIN, 'dashboard', '--port', String(port), ...args], {
    env: { ...process.env, REDIS_URL: h.REDIS_URL, ...env },
  })
  children.add(child)
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d) => (stdout += d))
  child.stderr.on('data', (d) => (stderr += d))
  const url = await h.waitFor(() => (/(http:\/\/\S+)/.exec(stdout) || [])[1] || child.exitCode !== null, 15000)
  if (typeof url !== 'string') throw new Error(`dashboard did not start: exit ${child.exitCode}, ${stderr}`)
  return { url, port, child, output: () => ({ stdout, stderr }) }
}


const rows = (page) => page.$$eval('table.dead-letters tbody tr', (trs) => trs.map((tr) => tr.getAttribute('data-id')))

test('deadLetter(dlq, id): the dead letter as deadLetters() lists it, null when gone, ERR_INVALID_ARG for bad arguments', async () => {
  const s = schedule('one')
  const [listed] = await makeDeadLetters(s, [{ topic: 'orders', event: 'k1', value: { a: 1 }, error: 'boom' }])
  expect(await s.retry.deadLetter(s.dlq, listed.id)).toEqual(listed)
  expect(await s.retry.deadLetter(s.dlq, 'no-such-id')).toBeNull()
  await expect(s.retry.deadLetter(s.dlq, '')).rejects.toMatchObject({ code: 'ERR_INVALID_ARG' })
  await expect(s.retry.deadLetter(42, listed.id)).rejects.toMatchObject({ code: 'ERR_INVALID_ARG' })
  for (const delayMs of [-1, 1.5, 'soon', 366 * 24 * 3_600_000]) {
    await expect(s.retry.requeueDeadLetter(s.dlq, listed.id, { delayMs })).rejects.toMatchObject({ code: 'ERR_INVALID_ARG', message: expect.stringContaining('delayMs') })
  }
  expect(await s.retry.removeDeadLetter(s.dlq, listed.id)).toBe(true)
  expect(await s.retry.deadLetter(s.dlq, listed.id)).toBeNull()
})

test('the overview shows the schedule counts and the dead letters; screenshot for the README', async () => {
  const s = schedule('overview')
  const later = { delay: '30', maxRetry: '3', retryCount: '0' }
  await s.retry.pushToQueue('orders', { event: 'o-1', value: '{"id":1}' }, later)
  await s.retry.pushToQueue('orders', { event: 'o-2', value: '{"id":2}' }, later)
  await s.retry.pushToQueue('payments', { event: 'p-1', value: '{"id":3}' }, later)
  await makeDeadLetters(s, [
    { topic: 'orders', error: 'connect ECONNREFUSED 10.0.0.7:5432', errorName: 'DatabaseError' },
    { topic: 'payments', error: 'card declined', errorName: 'PaymentError' },
  ])
  const server = await listen(handler({ retry: s.retry, dlqName: s.dlq, name: s.prefix }))
  const { page, context, dialogs, cspErrors } = await open()
  try {
    await page.goto(`${server.url}/`)
    const counts = await page.$$eval('dd[data-count]', (dds) => dds.map((dd) => [dd.getAttribute('data-count'), dd.textContent]))
    expect(counts).toEqual(expect.arrayContaining([['scheduled', '3'], ['due', '0'], ['leased', '0'], ['deadLetters', '2']]))
    expect(await page.textContent('h2')).toContain(s.prefix)
    // Per topic: scheduled / due / leased / dead letters, from stats().topics.
    const topicRows = await page.$$eval('table.topics tbody tr', (trs) =>
      trs.map((tr) => [tr.getAttribute('data-topic'), ...[...tr.querySelectorAll('td')].slice(1, 5).map((td) => td.textContent)]),
    )
    expect(topicRows).toEqual([
      ['orders', '2', '0', '0', '1'],
      ['payments', '1', '0', '0', '1'],
    ])
    // The chart draws history(): one point per minute of the hour, and this minute's pushes (3
    // later + 2 dead-lettered) and dead letters (2) at its right end, at the top for the largest.
    const history = await s.retry.history({ minutes: 60 })
    const pushedNow = history.pushed.slice(-2).reduce((a, b) => a + b, 0)
    expect(pushedNow).toBe(5)
    const lines = await page.$$eval('figure.chart polyline', (ps) => ps.map((p) => [p.getAttribute('class'), p.getAttribute('points').split(' ').length]))
    expect(lines).toEqual([['line pushed', 60], ['line published', 60], ['line failed', 60], ['line dead', 60]])
    expect(await page.textContent('figure.chart figcaption')).toMatch(/pushed: 5 .*dead-lettered: 2/s)
    const ys = await page.$eval('figure.chart polyline.pushed', (p) => p.getAttribute('points').split(' ').map((xy) => Number(xy.split(',')[1])))
    // Earlier minutes sit on the zero line; a minute with pushes is above it.
    expect(Math.min(...ys.slice(-2))).toBeLessThan(ys[0])
    fs.mkdirSync(DOCS, { recursive: true })
    await page.setViewportSize({ width: 1100, height: 900 })
    await page.screenshot({ path: path.join(DOCS, 'dashboard-overview.png'), fullPage: true })
    expect(dialogs).toEqual([])
    expect(cspErrors).toEqual([])
  } finally {
    await context.close()
    await server.stop()
  }
})

test('the overview refreshes by itself: a new topic appears, the due count and the oldest due wait show', async () => {
  const s = schedule('refresh')
  await s.retry.pushToQueue('orders', { event: 'o-late', value: '{}' }, { delay: '30' })
  await s.retry.pushToQueue('orders', { event: 'o-due', value: '{}' }, { delay: '0' }) // no listener: it waits
  const server = await listen(handler({ retry: s.retry, dlqName: s.dlq, refreshSeconds: 1 }))
  const { page, context, cspErrors } = await open()
  try {
    await page.goto(`${server.url}/`)
    // The page may reload itself between two reads: a read that meets a reload is read again.
    const settled = async (read) => {
      for (let i = 0; ; i++) {
        try {
          return await read()
        } catch (err) {
          if (i > 30 || !/context was destroyed|navigat/i.test(err.message)) throw err
          await h.sleep(100)
        }
      }
    }
    const cells = (topic) => settled(() => page.$$eval(`tr[data-topic="${topic}"] td`, (tds) => tds.slice(1, 5).map((td) => td.textContent)))
    expect(await cells('orders')).toEqual(['2', '1', '0', '0'])
    expect(await settled(() => page.textContent('dd[data-count=due]'))).toBe('1')
    expect(await settled(() => page.$('dd[data-count=published]'))).not.toBeNull()
    expect(await settled(() => page.$('tr[data-topic="mail"]'))).toBeNull()
    await s.retry.pushToQueue('mail', { event: 'm-1', value: '{}' }, { delay: '30' })
    // No action of ours: the page reloads itself (refreshSeconds: 1) and shows the new topic.
    await page.waitForSelector('tr[data-topic="mail"]', { timeout: 5000 })
    expect(await cells('mail')).toEqual(['1', '0', '0', '0'])
    // The due message has waited a second or more by now.
    expect(await settled(() => page.textContent('dd[data-count=late]'))).toMatch(/^[0-9.]+ s$/)
    expect(cspErrors).toEqual([])
  } finally {
    await context.close()
    await server.stop()
  }
})

test('a dead letter page shows payload, headers (binary in hex) and error; a payload with markup stays text', async () => {
  const s = schedule('xss')
  const xss = '<img src=x onerror=alert(document.domain)>'
  const [item] = await makeDeadLetters(s, [
    {
      topic: `orders${xss}`,
      event: `key${xss}`,
      value: { orderId: 'A-1001', note: xss, lines: [{ sku: 'SKU-1', qty: 2 }] },
      error: `bad ${xss}`,
      errorName: 'ValidationError',
      headers: { tenant: 'acme', signature: Buffer.from([0xde, 0xad, 0xbe, 0xef]), label: xss },
    },
  ])
  const server = await listen(handler({ retry: s.retry, dlqName: s.dlq }))
  const { page, context, dialogs } = await open()
  try {
    await page.goto(`${server.url}/dlq/${encodeURIComponent(s.dlq)}`)
    expect(await rows(page)).toEqual([item.id])
    await page.click(`tr[data-id="${item.id}"] a`)
    await page.waitForSelector('pre[data-field=payload]')
    const payload = await page.textContent('pre[data-field=payload]')
    expect(JSON.parse(payload)).toEqual({ orderId: 'A-1001', note: xss, lines: [{ sku: 'SKU-1', qty: 2 }] })
    expect(payload).toContain('\n  "orderId"') // formatted
    expect(await page.textContent('dd[data-field=topic]')).toBe(`orders${xss}`)
    expect(await page.textContent('dd[data-field=error]')).toBe(`ValidationError: bad ${xss}`)
    expect(await page.textContent('dd[data-field=attempts]')).toBe('retryCount 4 (maxRetry 2)')
    const headers = await page.textContent('table.headers')
    expect(headers).toContain('de ad be ef')
    expect(headers).toContain(xss)
    // The markup is text: no <img> anywhere in the document, nothing ran.
    expect(await page.$$('img')).toHaveLength(0)
    expect(dialogs).toEqual([])
    await page.setViewportSize({ width: 1100, height: 900 })
    await page.screenshot({ path: path.join(DOCS, 'dashboard-dead-letter.png'), fullPage: true })
  } finally {
    await context.close()
    await server.stop()
  }
})

test('requeue a dead letter from its page: it is published to the broker', async () => {
  const topic = h.unique('dash-requeue')
  await h.createTopics(topic)
  const s = schedule('requeue')
  const [item] = await makeDeadLetters(s, [{ topic, event: 'k-requeue', value: { msgId: 'r-1', order: 7 } }])
  const { consumer, seen } = await h.consume(topic)
  await s.retry.queueListener(null, s.dlq)
  const server = await listen(handler({ retry: s.retry, dlqName: s.dlq }))
  const { page, context } = await open()
  try {
    await page.goto(`${server.url}/dlq/${encodeURIComponent(s.dlq)}/item/${encodeURIComponent(item.id)}`)
    await page.click('form[action$="/requeue"]:not(:has(input[name=delayMinutes])) button')
    await page.waitForSelector('.notice')
    expect(await page.textContent('.notice')).toBe(`requeued dead letter ${item.id}`)
    expect(await h.waitFor(() => seen.length === 1, 20000)).toBe(true)
    expect(seen[0]).toMatchObject({ key: 'k-requeue', value: { order: 7 } })
    expect((await s.retry.stats(s.dlq)).deadLettered).toBe(0)
  } finally {
    await context.close()
    await server.stop()
    await consumer.disconnect()
  }
})

test('requeue later from its page: back on its schedule, due in the minutes given, not before', async () => {
  const s = schedule('later')
  const [item] = await makeDeadLetters(s, [{ topic: 'orders', event: 'k-later' }])
  const server = await listen(handler({ retry: s.retry, dlqName: s.dlq }))
  const { page, context } = await open()
  const redis = h.redisClient()
  try {
    await page.goto(`${server.url}/dlq/${encodeURIComponent(s.dlq)}/item/${encodeURIComponent(item.id)}`)
    await page.fill('input[name=delayMinutes]', '30')
    const before = Date.now()
    await page.click('button:has-text("Requeue later")')
    await page.waitForSelector('.notice')
    expect(await page.textContent('.notice')).toBe(`requeued dead letter ${item.id}`)
    const stats = await s.retry.stats(s.dlq)
    expect(stats).toMatchObject({ scheduled: 1, due: 0, deadLettered: 0 })
    const [, dueAt] = await redis.zrange(h.scheduleKeys(s.prefix).due, 0, -1, 'WITHSCORES')
    // 30 minutes from the click, by Redis's clock (the same host's here, give or take).
    expect(Number(dueAt) - before).toBeGreaterThan(30 * 60_000 - 5000)
    expect(Number(dueAt) - Date.now()).toBeLessThan(30 * 60_000 + 5000)
  } finally {
    await redis.quit()
    await context.close()
    await server.stop()
  }
})

test('filter by error text: exactly the matching dead letters, in the address bar', async () => {
  const s = schedule('filter')
  const made = await makeDeadLetters(s, [
    { topic: 'orders', error: 'connect ECONNREFUSED db:5432' },
    { topic: 'orders', error: 'Schema mismatch on field total' },
    { topic: 'payments', error: 'connect econnrefused db:5432' },
    { topic: 'payments', error: 'card declined' },
  ])
  const refused = made.filter((i) => /econnrefused/i.test(i.error.message)).map((i) => i.id)
  expect(refused).toHaveLength(2)
  const server = await listen(handler({ retry: s.retry, dlqName: s.dlq }))
  const { page, context } = await open()
  try {
    await page.goto(`${server.url}/dlq/${encodeURIComponent(s.dlq)}`)
    expect((await rows(page)).sort()).toEqual(made.map((i) => i.id).sort())
    await page.fill('input[name=error]', 'ECONNREFUSED')
    await page.click('form.filters button')
    await page.waitForURL(/error=ECONNREFUSED/)
    expect((await rows(page)).sort()).toEqual(refused.sort())
    expect(await page.textContent('[data-matched]')).toBe('2')
    // The address is the filter, and only the filter: pasted into another browser it shows the same.
    const shared = new URL(page.url())
    expect(shared.search).toBe('?error=ECONNREFUSED')
    shared.searchParams.set('topic', 'payments')
    const other = await open()
    await other.page.goto(shared.href)
    expect(await rows(other.page)).toEqual(made.filter((i) => i.topic === 'payments' && /econnrefused/i.test(i.error.message)).map((i) => i.id))
    // Time of death, in UTC as the datetime fields send it: none died after a minute from now.
    const later = new Date(Date.now() + 60_000).toISOString().slice(0, 16)
    await other.page.goto(`${server.url}/dlq/${encodeURIComponent(s.dlq)}?since=${later}`)
    expect(await rows(other.page)).toEqual([])
    expect(await other.page.textContent('[data-matched]')).toBe('0')
    await other.page.goto(`${server.url}/dlq/${encodeURIComponent(s.dlq)}?until=${later}&error=declined`)
    expect(await rows(other.page)).toEqual(made.filter((i) => i.error.message === 'card declined').map((i) => i.id))
    await other.context.close()
  } finally {
    await context.close()
    await server.stop()
  }
})

test('bulk requeue of a filter: dry-run count first, then after confirmation exactly those are published', async () => {
  const topic = h.unique('dash-bulk')
  const otherTopic = h.unique('dash-bulk-other')
  await h.createTopics(topic, otherTopic)
  const s = schedule('bulk')
  await makeDeadLetters(s, [
    ...[1, 2, 3].map((n) => ({ topic, event: `k${n}`, value: { msgId: `b-${n}`, n }, error: 'timeout talking to inventory' })),
    { topic, event: 'k4', value: { msgId: 'b-4', n: 4 }, error: 'invalid sku' },
    { topic: otherTopic, event: 'k5', value: { msgId: 'b-5', n: 5 }, error: 'timeout talking to inventory' },
  ])
  const { consumer, seen } = await h.consume(topic)
  await s.retry.queueListener(null, s.dlq)
  const server = await listen(handler({ retry: s.retry, dlqName: s.dlq }))
  const { page, context } = await open()
  try {
    await page.goto(`${server.url}/dlq/${encodeURIComponent(s.dlq)}?topic=${encodeURIComponent(topic)}&error=timeout`)
    await page.fill('input[name=rate]', '2')
    await page.click('.bulk button')
    expect(await page.textContent('[data-dry-run]')).toBe('3')
    // The dry run moved nothing.
    expect((await s.retry.stats(s.dlq)).deadLettered).toBe(5)
    await page.click('button:has-text("Yes, requeue them")')
    await page.waitForURL(/\/jobs\/\d+\/\d+$/)
    await page.waitForSelector('h1:has-text("done")', { timeout: 20000 })
    expect(await page.textContent('[data-requeued]')).toBe('3')
    expect(await h.waitFor(() => seen.length === 3, 20000)).toBe(true)
    await h.sleep(1000)
    expect(seen.map((m) => m.value.n).sort()).toEqual([1, 2, 3])
    const left = (await s.retry.deadLetters(s.dlq, { limit: 10 })).items.map((i) => i.event).sort()
    expect(left).toEqual(['k4', 'k5'])
    // Bulk removal the same way: its dry run, then exactly what matches goes (as a job).
    await page.goto(`${server.url}/dlq/${encodeURIComponent(s.dlq)}?error=invalid`)
    await page.check('input[name=action][value=remove]')
    await page.click('.bulk button')
    expect(await page.textContent('[data-dry-run]')).toBe('1')
    await page.click('button:has-text("Yes, remove them")')
    await page.waitForSelector('h1:has-text("done")', { timeout: 20000 })
    expect(await page.textContent('[data-requeued]')).toBe('1')
    expect((await s.retry.deadLetters(s.dlq, { limit: 10 })).items.map((i) => i.event)).toEqual(['k5'])
  } finally {
    await context.close()
    await server.stop()
    await consumer.disconnect()
  }
})

test('a paced requeue shows what it moved as it goes, and its Stop button stops it: the rest stay dead letters', async () => {
  const s = schedule('stop')
  for (let n = 0; n < 40; n++) await s.retry.pushToDlq(s.dlq, { topic: 't', event: `k${n}`, value: JSON.stringify({ n }) })
  const server = await listen(handler({ retry: s.retry, dlqName: s.dlq }))
  const { page, context } = await open()
  try {
    await page.goto(`${server.url}/dlq/${encodeURIComponent(s.dlq)}`)
    await page.fill('input[name=rate]', '5')
    await page.click('.bulk button')
    expect(await page.textContent('[data-dry-run]')).toBe('40')
    await page.click('button:has-text("Yes, requeue them")')
    await page.waitForURL(/\/jobs\/\d+\/\d+$/)
    // The page reloads itself each second with the count the requeue reported.
    expect(await h.waitFor(async () => {
      await page.reload()
      return Number(await page.textContent('[data-requeued]')) >= 3
    }, 10000, 300)).toBe(true)
    await page.screenshot({ path: path.join(DOCS, 'dashboard-requeue.png'), fullPage: true })
    await page.click('button:has-text("Stop the requeue")')
    await page.waitForSelector('h1:has-text("stopped")', { timeout: 10000 })
    const requeued = Number(await page.textContent('[data-requeued]'))
    expect(requeued).toBeGreaterThanOrEqual(3)
    expect(requeued).toBeLessThan(40)
    expect(await page.$('button:has-text("Stop the requeue")')).toBeNull()
    // Stopped for real: a second later nothing more has moved, and the count is exact.
    await h.sleep(1200)
    expect(await s.retry.stats(s.dlq)).toMatchObject({ scheduled: requeued, deadLettered: 40 - requeued })
    // The overview lists it, with its state and count, linking back to its page.
    const jobUrl = page.url()
    await page.goto(`${server.url}/`)
    const row = 'section.requeues tr[data-job]'
    expect(await page.textContent(`${row} [data-state]`)).toBe('stopped')
    expect(await page.textContent(row)).toContain(`${requeued} of 40`)
    await page.click(`${row} a`)
    expect(page.url()).toBe(jobUrl)
  } finally {
    await context.close()
    await server.stop()
  }
})

test('pause and resume a topic from the overview: its messages wait, then go', async () => {
  const s = schedule('pause')
  const topic = h.unique('dash-pause')
  const published = []
  const listener = new KafkaRetry({ keyPrefix: s.prefix })
  instances.push(listener)
  await listener.queueListener({ produce: async (t, key) => published.push(`${t}/${key}`) }, s.dlq)
  const server = await listen(handler({ retry: s.retry, dlqName: s.dlq }))
  const { page, context } = await open()
  try {
    await page.goto(`${server.url}/`)
    const row = `tr[data-topic="${topic}"]`
    await page.fill('.pause-topic input[name=topic]', topic)
    await page.fill('.pause-topic input[name=minutes]', '5')
    await page.click('.pause-topic button')
    // Nothing of the topic is on the schedule yet: the dashboard asks first.
    await page.click(`button:has-text("Pause ${topic} anyway")`)
    await page.waitForSelector('.notice')
    expect(await page.textContent('.notice')).toBe(`paused topic ${topic} for 5 min`)
    expect(await page.textContent(`${row} .paused`)).toMatch(/^paused until /)
    const [pause] = await s.retry.paused()
    expect(pause.topic).toBe(topic)
    expect(pause.untilMs - Date.now()).toBeGreaterThan(4 * 60_000)
    expect(pause.untilMs - Date.now()).toBeLessThan(5 * 60_000 + 5000)
    // Due now, but paused: it waits (another topic goes out meanwhile).
    await s.retry.pushToQueue(topic, { event: 'held', value: '{"n":1}' }, { delay: '0', maxRetry: '3', retryCount: '0' })
    await s.retry.pushToQueue(`${topic}-other`, { event: 'free', value: '{"n":2}' }, { delay: '0', maxRetry: '3', retryCount: '0' })
    expect(await h.waitFor(() => published.length === 1, 10000)).toBe(true)
    await h.sleep(1500)
    expect(published).toEqual([`${topic}-other/free`])
    await page.reload()
    await page.click(`${row} button:has-text("Resume")`)
    await page.waitForSelector('.notice')
    expect(await page.textContent('.notice')).toBe(`resumed topic ${topic}`)
    expect(await page.$(`${row} .paused`)).toBeNull()
    expect(await s.retry.paused()).toEqual([])
    expect(await h.waitFor(() => published.length === 2, 10000)).toBe(true)
    expect(published).toEqual([`${topic}-other/free`, `${topic}/held`])
    // The whole schedule, until resumed.
    await page.click('.controls button:has-text("Pause schedule")')
    await page.waitForSelector('.notice')
    expect(await s.retry.paused()).toEqual([{ topic: null, untilMs: null }])
    expect(await page.textContent('h2 .paused')).toBe('paused')
    await page.click('.controls button:has-text("Resume all")')
    await page.waitForSelector('.notice')
    expect(await s.retry.paused()).toEqual([])
  } finally {
    await context.close()
    await server.stop()
  }
})

test('--read-only shows no actions and refuses a POST with 403', async () => {
  const s = schedule('readonly')
  const [item] = await makeDeadLetters(s, [{ topic: 'orders' }])
  const dash = await cli(['--prefix', s.prefix, '--dlq', s.dlq, '--read-only'])
  const { page, context } = await open()
  try {
    const itemUrl = `${dash.url}dlq/${encodeURIComponent(s.dlq)}/item/${encodeURIComponent(item.id)}`
    await page.goto(itemUrl)
    expect(await page.textContent('pre[data-field=payload]')).toContain('"n": 1')
    expect(await page.$$('form[method=post]')).toHaveLength(0)
    await page.goto(dash.url)
    expect(await page.$$('form[method=post]')).toHaveLength(0)
    expect(await page.textContent('.badge')).toBe('read-only')
    const status = await page.evaluate(async (url) => (await fetch(`${url}/remove`, { method: 'POST', body: new URLSearchParams({ csrf: 'x' }) })).status, itemUrl)
    expect(status).toBe(403)
    expect((await s.retry.stats(s.dlq)).deadLettered).toBe(1)
  } finally {
    await context.close()
  }
})

test('a token: missing or wrong is refused (401), the right one lets the browser in; no token on a public address refused', async () => {
  const s = schedule('token')
  const [item] = await makeDeadLetters(s, [{ topic: 'orders' }])
  const token = 'correct-horse-battery-staple'
  const dash = await cli(['--prefix', s.prefix, '--dlq', s.dlq], { DASHBOARD_TOKEN: token })
  expect(dash.url).toBe(`http://127.0.0.1:${dash.port}/?token=${token}`)
  const root = dash.url.replace(/\?.*$/, '')
  expect((await fetch(root)).status).toBe(401)
  expect((await fetch(`${root}?token=wrong-token-0000`)).status).toBe(401)
  expect((await fetch(`${root}dlq/${encodeURIComponent(s.dlq)}`, { headers: { authorization: 'Bearer wrong-token-0000' } })).status).toBe(401)
  expect((await fetch(`${root}dlq/${encodeURIComponent(s.dlq)}`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(200)
  const { page, context } = await open()
  try {
    const response = await page.goto(dash.url)
    expect(response.status()).toBe(200)
    expect(page.url()).toBe(root) // the token left the address bar
    await page.goto(`${root}dlq/${encodeURIComponent(s.dlq)}/item/${encodeURIComponent(item.id)}`)
    expect(await page.textContent('dd[data-field=topic]')).toBe('orders')
  } finally {
    await context.close()
  }
  const refused = spawn(process.execPath, [BIN, 'dashboard', '--host', '0.0.0.0', '--port', String(await h.freePort()), '--prefix', s.prefix])
  children.add(refused)
  let stderr = ''
  refused.stderr.on('data', (d) => (stderr += d))
  expect((await h.exited(refused, 15000)).code).toBe(2)
  expect(stderr).toContain('refusing to listen on 0.0.0.0 without a token')
})

test('the CLI: usage errors exit 2; SIGTERM stops the dashboard with exit 0', async () => {
  const run = (args) =>
    new Promise((resolve) => {
      const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, REDIS_URL: h.REDIS_URL } })
      children.add(child)
      let stderr = ''
      child.stderr.on('data', (d) => (stderr += d))
      child.on('exit', (code) => resolve({ code, stderr }))
    })
  expect(await run(['dashboard', 'extra'])).toEqual({ code: 2, stderr: expect.stringContaining("unexpected argument 'extra' for dashboard") })
  expect(await run(['dashboard', '--port', '70000'])).toEqual({ code: 2, stderr: expect.stringContaining('--port must be a port number') })
  expect(await run(['stats', '--token', 'abcdefgh'])).toEqual({ code: 2, stderr: expect.stringContaining('option --token is not valid for stats') })
  expect(await run(['dashboard', '--prefix', 'a,b', '--dlq', 'x'])).toEqual({ code: 2, stderr: expect.stringContaining('one dead letter queue per prefix') })
  const dash = await cli([])
  expect((await fetch(dash.url)).status).toBe(200)
  dash.child.kill('SIGTERM')
  expect(await h.exited(dash.child, 10000)).toEqual({ code: 0, signal: null })
})

test('a POST without the CSRF token or from another site changes nothing', async () => {
  const s = schedule('csrf')
  const [item] = await makeDeadLetters(s, [{ topic: 'orders' }])
  const server = await listen(handler({ retry: s.retry, dlqName: s.dlq }))
  try {
    const action = `${server.url}/dlq/${encodeURIComponent(s.dlq)}/item/${encodeURIComponent(item.id)}/remove`
    const page = await fetch(`${server.url}/`)
    const cookie = page.headers.get('set-cookie').split(';')[0]
    const csrf = cookie.split('=')[1]
    const post = (body, headers = {}) =>
      fetch(action, { method: 'POST', redirect: 'manual', body: new URLSearchParams(body), headers: { cookie, ...headers } })
    expect((await post({})).status).toBe(403)
    expect((await post({ csrf: 'f'.repeat(64) })).status).toBe(403)
    expect((await post({ csrf, confirm: 'yes' }, { origin: 'http://evil.example' })).status).toBe(403)
    expect((await post({ csrf, confirm: 'yes' }, { 'sec-fetch-site': 'cross-site' })).status).toBe(403)
    expect((await s.retry.stats(s.dlq)).deadLettered).toBe(1)
    expect((await post({ csrf, confirm: 'yes' })).status).toBe(303)
    expect((await s.retry.stats(s.dlq)).deadLettered).toBe(0)
  } finally {
    await server.stop()
  }
})

describe('mounted in a service', () => {
  /** In the browser: the overview lists the dead letter queue, and removing one works. */
  async function useMounted(base, s, id) {
    const { page, context } = await open()
    try {
      await page.goto(`${base}/`)
      expect(await page.textContent('dd[data-count=deadLetters]')).toBe('1')
      await page.click(`header nav a:has-text("${s.dlq}")`)
      await page.click(`tr[data-id="${id}"] a`)
      await page.click('form.remove button')
      await page.click('button:has-text("Yes, remove it")')
      await page.waitForSelector('.notice')
      expect(await page.textContent('.notice')).toBe(`removed dead letter ${id}`)
      expect(page.url().startsWith(`${base}/dlq/`)).toBe(true)
      expect((await s.retry.stats(s.dlq)).deadLettered).toBe(0)
    } finally {
      await context.close()
    }
  }

  test('http.createServer with a basePath (other paths are not its business)', async () => {
    const s = schedule('mount-http')
    const [item] = await makeDeadLetters(s, [{ topic: 'orders' }])
    const dash = handler({ retry: s.retry, dlqName: s.dlq, basePath: '/ops/retries' })
    const server = await listen((req, res) => {
      if (req.url.startsWith('/ops/retries')) return dash(req, res)
      res.end('service')
    })
    try {
      expect(await (await fetch(`${server.url}/`)).text()).toBe('service')
      await useMounted(`${server.url}/ops/retries`, s, item.id)
    } finally {
      await server.stop()
    }
  })

  test('Express: app.use(path, handler), with express.urlencoded() in front', async () => {
    const s = schedule('mount-express')
    const [item] = await makeDeadLetters(s, [{ topic: 'orders' }])
    const app = express()
    app.use(express.urlencoded({ extended: false }))
    app.use('/admin/retry', handler({ retry: s.retry, dlqName: s.dlq }))
    app.get('/', (req, res) => res.send('service'))
    const server = await listen(app)
    try {
      await useMounted(`${server.url}/admin/retry`, s, item.id)
    } finally {
      await server.stop()
    }
  })

  test('Fastify: a route that hands the raw request over', async () => {
    const s = schedule('mount-fastify')
    const [item] = await makeDeadLetters(s, [{ topic: 'orders' }])
    const app = fastify()
    const dash = handler({ retry: s.retry, dlqName: s.dlq, basePath: '/retry' })
    app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (req, body, done) => done(null, body))
    app.all('/retry', (request, reply) => {
      reply.hijack()
      dash(request.raw, reply.raw)
    })
    app.all('/retry/*', (request, reply) => {
      reply.hijack()
      request.raw.body = request.body
      dash(request.raw, reply.raw)
    })
    await app.listen({ port: 0, host: '127.0.0.1' })
    try {
      await useMounted(`http://127.0.0.1:${app.server.address().port}/retry`, s, item.id)
    } finally {
      await app.close()
    }
  })
})

test('a page of 100,000 dead letters renders in under a second', async () => {
  const s = schedule('large')
  const total = 100_000
  const writer = new KafkaRetry({ keyPrefix: s.prefix })
  instances.push(writer)
  for (let n = 0; n < total; n += 2000) {
    await Promise.all(
      Array.from({ length: Math.min(2000, total - n) }, (_, i) =>
        writer.pushToDlq(s.dlq, { topic: 'orders', event: `k${n + i}`, value: { n: n + i }, error: { name: 'Error', message: 'boom' } }),
      ),
    )
  }
  const server = await listen(handler({ retry: s.retry, dlqName: s.dlq }))
  const { page, context } = await open()
  try {
    const address = `${server.url}/dlq/${encodeURIComponent(s.dlq)}`
    await page.goto(address) // first page view (index check)
    const started = Date.now()
    await page.goto(address)
    const ms = Date.now() - started
    console.log(`dashboard: a page of ${total} dead letters rendered in ${ms} ms`)
    expect(await page.textContent('[data-matched]')).toBe('100,000')
    expect(await rows(page)).toHaveLength(50)
    await page.click('a[rel=next]')
    expect(await rows(page)).toHaveLength(50)
    expect(ms).toBeLessThan(1000)
    // Filtered: the rows come from bounded search calls (the newest match is on the first);
    // the count of matches is a dry run, which reads every record: the page does not wait for
    // it long, and reloads itself until it is there.
    const filteredAt = Date.now()
    await page.goto(`${address}?topic=orders&error=boom&search=k99999`)
    const filteredMs = Date.now() - filteredAt
    expect(await rows(page)).toHaveLength(1)
    await page.waitForSelector('[data-matched]', { timeout: 120000 })
    const countedMs = Date.now() - filteredAt
    console.log(`dashboard: a filtered page of ${total} dead letters rendered in ${filteredMs} ms, its count of matches after ${countedMs} ms`)
    expect(await page.textContent('[data-matched]')).toBe('1')
    expect(await rows(page)).toHaveLength(1)
    expect(filteredMs).toBeLessThan(1000)
  } finally {
    await context.close()
    await server.stop()
  }
}, 300000)

describe('issue 28: defaults, links, cookies, counts, large payloads, removal', () => {
  /** A server for a page of "another site": localhost is another site than 127.0.0.1. */
  async function otherSite(body) {
    const server = await listen((req, res) => {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' })
      res.end(`<!doctype html><html><body>${body}</body></html>`)
    })
    return { url: server.url.replace('127.0.0.1', 'localhost'), stop: server.stop }
  }

  /**
   * The instance as the dashboard sees it, every call going to the real one, with a count of
   * the whole counts (dry runs of removeDeadLetters) started and of the most running at once.
   */
  function countingCounts(retry) {
    const counts = { started: 0, running: 0, most: 0 }
    const proxy = new Proxy(retry, {
      get(target, prop) {
        if (prop === 'removeDeadLetters') {
          return async (dlq, filter, options) => {
            if (!options || !options.dryRun) return target.removeDeadLetters(dlq, filter, options)
            counts.started++
            counts.running++
            counts.most = Math.max(counts.most, counts.running)
            try {
              return await target.removeDeadLetters(dlq, filter, options)
            } finally {
              counts.running--
            }
          }
        }
        const value = target[prop]
        return typeof value === 'function' ? value.bind(target) : value
      },
    })
    return { proxy, counts }
  }

  test('handler({ retry }) without dlqName shows the queue its listener writes, <keyPrefix>:dead-letters (the CLI too)', async () => {
    const prefix = h.unique('dash-default-dlq')
    const dlq = `${prefix}:dead-letters`
    keys.push(dlq, `${dlq}:index`, `${dlq}:index:scan`, `${dlq}:topics`, `{${prefix}}:topics`, ...Object.values(h.scheduleKeys(prefix)))
    const retry = new KafkaRetry({ keyPrefix: prefix })
    instances.push(retry)
    expect(retry.keyPrefix).toBe(prefix)
    expect(retry.dlqName).toBe(dlq)
    // A listener started as the README shows it, without a dead letter queue name.
    const listener = new KafkaRetry({ keyPrefix: prefix })
    instances.push(listener)
    await listener.queueListener({ produce: async () => {} })
    expect(listener.dlqName).toBe(dlq)
    const error = new Error('handler failed')
    for (const n of [1, 2, 3]) {
      await retry.pushToQueue('orders', { event: `k${n}`, value: '{}' }, { delay: '0', maxRetry: '2', retryCount: '3', error })
    }
    expect(await h.waitFor(async () => (await retry.stats(dlq)).deadLettered === 3, 20000)).toBe(true)
    await listener.close()

    const server = await listen(handler({ retry }))
    const dash = await cli(['--prefix', prefix])
    const { page, context } = await open()
    try {
      for (const base of [`${server.url}/`, dash.url]) {
        await page.goto(base)
        expect(await page.textContent('dd[data-count=deadLetters]')).toBe('3')
        expect(await page.textContent('header nav')).toContain(dlq)
        await page.click(`header nav a:has-text("${dlq}")`)
        expect(await rows(page)).toHaveLength(3)
      }
    } finally {
      await context.close()
      await server.stop()
    }
  })

  test("the README's Fastify example, as written, serves its base path and every page under it", async () => {
    const readme = fs.readFileSync(path.join(__dirname, '..', '..', 'docs', 'dashboard.md'), 'utf8')
    const block = /\*\*Mounted in a service\*\*[\s\S]*?```js\n([\s\S]*?)```/.exec(readme)[1]
    const fastifyPart = /\/\/ Fastify:[\s\S]*?(?=\n\/\/ Several schedules)/.exec(block)[0]
    expect(fastifyPart).toContain('fastifyApp.')
    const s = schedule('readme-fastify')
    const [item] = await makeDeadLetters(s, [{ topic: 'orders' }])
    // The README's own handler line, with the test's instance and queue.
    const handlerLine = /const dashboard = handler\(\{[^\n]*\}\)/.exec(block)[0]
    expect(handlerLine).toContain("basePath: '/ops/retries'")
    const dashboard = handler({ retry: s.retry, dlqName: s.dlq, basePath: '/ops/retries', readOnly: false })
    const fastifyApp = fastify()
    new Function('fastifyApp', 'dashboard', fastifyPart)(fastifyApp, dashboard)
    await fastifyApp.listen({ port: 0, host: '127.0.0.1' })
    const base = `http://127.0.0.1:${fastifyApp.server.address().port}/ops/retries`
    const { page, context } = await open()
    try {
      // The base path itself, as the README's example mounts it (it was a 404).
      const response = await page.goto(base)
      expect(response.status()).toBe(200)
      expect(await page.textContent('dd[data-count=deadLetters]')).toBe('1')
      await page.click(`header nav a:has-text("${s.dlq}")`)
      await page.click(`tr[data-id="${item.id}"] a`)
      await page.click('form.remove button')
      await page.click('button:has-text("Yes, remove it")')
      await page.waitForSelector('.notice')
      expect(await page.textContent('.notice')).toBe(`removed dead letter ${item.id}`)
      expect((await s.retry.stats(s.dlq)).deadLettered).toBe(0)
    } finally {
      await context.close()
      await fastifyApp.close()
    }
  })

  test('a link from another site (a chat) opens the page for a logged-in browser, even reloaded; actions one click away; POSTs from there refused', async () => {
    const s = schedule('link')
    const [item] = await makeDeadLetters(s, [{ topic: 'orders', error: 'card declined' }])
    const token = 'incident-token-1234'
    const server = await listen(handler({ retry: s.retry, dlqName: s.dlq, token }))
    const list = `${server.url}/dlq/${encodeURIComponent(s.dlq)}?topic=orders`
    const remove = `${server.url}/dlq/${encodeURIComponent(s.dlq)}/item/${encodeURIComponent(item.id)}/remove`
    const chat = await otherSite(
      `<a id="link" href="${list}">dead letters of orders</a>` +
        `<form method="post" action="${remove}"><input name="confirm" value="yes"><input name="csrf" value="${'a'.repeat(64)}"><button id="forged">post</button></form>`,
    )
    const { page, context } = await open()
    try {
      expect((await page.goto(`${server.url}/?token=${token}`)).status()).toBe(200)
      await page.goto(chat.url)
      const [followed] = await Promise.all([page.waitForNavigation(), page.click('#link')])
      expect(followed.status()).toBe(200)
      expect(page.url()).toBe(list)
      expect(await rows(page)).toEqual([item.id])
      // The browser did not send its Strict CSRF cookie: no actions, and a link to show them;
      // no count of matches started by a request from another site, and a link to start it.
      expect(await page.$$('form[method=post]')).toHaveLength(0)
      expect(await page.$('[data-not-counted]')).not.toBeNull()
      await page.click('[data-linked] a')
      await page.waitForSelector('.bulk button')
      expect(await page.$('[data-linked]')).toBeNull()
      await page.waitForSelector('[data-matched]', { timeout: 30000 })
      expect(await page.textContent('[data-matched]')).toBe('1')
      // Followed again and reloaded, it still opens.
      await page.goto(chat.url)
      await Promise.all([page.waitForNavigation(), page.click('#link')])
      expect((await page.reload()).status()).toBe(200)
      expect(await rows(page)).toEqual([item.id])
      // A POST from the other site is refused, and removes nothing.
      await page.goto(chat.url)
      const [posted] = await Promise.all([page.waitForNavigation(), page.click('#forged')])
      expect([401, 403]).toContain(posted.status())
      expect((await s.retry.stats(s.dlq)).deadLettered).toBe(1)
    } finally {
      await context.close()
      await chat.stop()
      await server.stop()
    }
  })

  test('two dashboards with tokens on one host, different ports, in one browser: logging into one keeps the other', async () => {
    const s = schedule('two')
    const [item] = await makeDeadLetters(s, [{ topic: 'orders' }])
    const { serve } = require('../../dashboard')
    const a = await serve({ retry: s.retry, dlqName: s.dlq, port: 0, token: 'first-token-1234' })
    const b = await serve({ retry: s.retry, dlqName: s.dlq, port: 0, token: 'second-token-5678' })
    const { page, context } = await open()
    try {
      expect((await page.goto(`${a.url}?token=first-token-1234`)).status()).toBe(200)
      expect((await page.goto(`${b.url}?token=second-token-5678`)).status()).toBe(200)
      expect((await page.goto(a.url)).status()).toBe(200)
      expect((await page.goto(b.url)).status()).toBe(200)
      // And the first one still acts (its CSRF cookie is its own too).
      await page.goto(`${a.url}dlq/${encodeURIComponent(s.dlq)}/item/${encodeURIComponent(item.id)}`)
      await page.click('form[action$="/requeue"]:not(:has(input[name=delayMinutes])) button')
      await page.waitForSelector('.notice')
      expect(await page.textContent('.notice')).toBe(`requeued dead letter ${item.id}`)
      expect(await s.retry.stats(s.dlq)).toMatchObject({ scheduled: 1, deadLettered: 0 })
      const names = (await context.cookies()).map((c) => c.name)
      expect(new Set(names).size).toBe(names.length)
      expect(names.filter((n) => n.startsWith('krr_auth_'))).toHaveLength(2)
    } finally {
      await context.close()
      await new Promise((r) => a.server.close(r))
      await new Promise((r) => b.server.close(r))
    }
  })

  test('requests from another site start no count of matches; distinct filters from here run at most two whole counts at once', async () => {
    const s = schedule('counts')
    const total = 20_000
    for (let n = 0; n < total; n += 2000) {
      await Promise.all(
        Array.from({ length: 2000 }, (_, i) => s.retry.pushToDlq(s.dlq, { topic: 'orders', event: `k${n + i}`, value: JSON.stringify({ n: n + i, pad: 'x'.repeat(200) }), error: { name: 'Error', message: 'boom' } })),
      )
    }
    const { proxy, counts } = countingCounts(s.retry)
    // refreshSeconds 0: the overview the fetches below run in must not reload under them.
    const dash = handler({ retry: proxy, dlqName: s.dlq, refreshSeconds: 0 })
    let answered = 0
    const server = await listen((req, res) => {
      res.on('finish', () => answered++)
      dash(req, res)
    })
    const list = `${server.url}/dlq/${encodeURIComponent(s.dlq)}`
    const images = Array.from({ length: 30 }, (_, i) => `<img src="${list}?search=cross-${i}">`).join('')
    const evil = await otherSite(images)
    const { page, context } = await open()
    try {
      await page.goto(evil.url)
      expect(await h.waitFor(() => answered >= 30, 60000)).toBe(true)
      await h.sleep(300)
      expect(counts.started).toBe(0)

      // From the dashboard's own page: ten distinct filters at once.
      await page.goto(`${server.url}/`)
      const filters = Array.from({ length: 10 }, (_, i) => `k${i}9`)
      const statuses = await page.evaluate((urls) => Promise.all(urls.map(async (u) => (await fetch(u)).status)), filters.map((f) => `${list}?search=${f}`))
      expect(statuses).toEqual(filters.map(() => 200))
      expect(counts.started).toBeGreaterThan(0)
      // Each page that did not get its count reloads until it has it: every one is counted, never
      // more than two at once.
      for (const f of filters) {
        const counted = await h.waitFor(async () => {
          const text = await page.evaluate(async (u) => (await fetch(u)).text(), `${list}?search=${f}`)
          return /data-matched/.test(text)
        }, 120000, 200)
        expect(counted).toBe(true)
      }
      console.log(`dashboard: ${filters.length} distinct filters on ${total} dead letters: ${counts.started} whole counts, at most ${counts.most} at once`)
      expect(counts.most).toBeLessThanOrEqual(2)
      expect(counts.started).toBeLessThanOrEqual(2 * filters.length)
    } finally {
      await context.close()
      await evil.stop()
      await server.stop()
    }
  }, 300000)

  test('a 5.6 MB payload: its page loads fast with the first part, the buttons work, the download is the whole payload exactly', async () => {
    const s = schedule('bigpayload')
    const lines = Array.from({ length: 90_000 }, (_, i) => ({ line: i, sku: `SKU-${i}`, note: 'naïve café €', qty: i % 7 }))
    const value = JSON.stringify({ order: 'A-1', emoji: '🧾', lines })
    expect(value.length).toBeGreaterThan(5_500_000)
    const id = await s.retry.pushToDlq(s.dlq, { topic: 'orders', event: 'big', value, error: { name: 'Error', message: 'too big' } })
    const server = await listen(handler({ retry: s.retry, dlqName: s.dlq }))
    const { page, context } = await open()
    try {
      const address = `${server.url}/dlq/${encodeURIComponent(s.dlq)}/item/${encodeURIComponent(id)}`
      const started = Date.now()
      const response = await page.goto(address)
      const ms = Date.now() - started
      const size = (await response.body()).length
      console.log(`dashboard: the page of a ${value.length} byte payload: ${size} bytes of HTML, loaded in ${ms} ms`)
      expect(size).toBeLessThan(300_000)
      // Most of it is deadLetter() reading the record (about 0.4 s here); the page itself is small.
      expect(ms).toBeLessThan(5000)
      expect(await page.textContent('[data-payload-cut]')).toContain('Large payload')
      expect(await page.textContent('pre[data-field=payload]')).toBe(value.slice(0, 64 * 1024))
      const [download] = await Promise.all([page.waitForEvent('download'), page.click('[data-download]')])
      const saved = fs.readFileSync(await download.path())
      expect(saved.equals(Buffer.from(value, 'utf8'))).toBe(true)
      // The buttons work at once.
      await page.click('form[action$="/requeue"]:not(:has(input[name=delayMinutes])) button')
      await page.waitForSelector('.notice')
      expect(await page.textContent('.notice')).toBe(`requeued dead letter ${id}`)
      expect(await s.retry.stats(s.dlq)).toMatchObject({ scheduled: 1, deadLettered: 0 })
    } finally {
      await context.close()
      await server.stop()
    }
  }, 120000)

  test('Remove asks first, saying what it removes: one click removes nothing, cancel keeps it, confirming removes it', async () => {
    const s = schedule('confirm-remove')
    const [item] = await makeDeadLetters(s, [{ topic: 'orders', event: 'k-keep', error: 'card declined' }])
    const server = await listen(handler({ retry: s.retry, dlqName: s.dlq }))
    const { page, context } = await open()
    try {
      const address = `${server.url}/dlq/${encodeURIComponent(s.dlq)}/item/${encodeURIComponent(item.id)}`
      await page.goto(address)
      await page.click('form.remove button')
      await page.waitForSelector('h1:has-text("Remove dead letter")')
      expect(await page.textContent('h1')).toBe(`Remove dead letter ${item.id}?`)
      const text = await page.textContent('main')
      expect(text).toContain('k-keep')
      expect(text).toContain('card declined')
      expect(text).toContain('no undo')
      expect((await s.retry.stats(s.dlq)).deadLettered).toBe(1)
      await page.setViewportSize({ width: 1100, height: 500 })
      await page.screenshot({ path: path.join(DOCS, 'dashboard-remove.png'), fullPage: true })
      await page.click('a:has-text("cancel")')
      expect(page.url()).toBe(address)
      expect((await s.retry.stats(s.dlq)).deadLettered).toBe(1)
      // A POST without the confirmation (as the one-click form sent it) only asks.
      const csrf = await page.$eval('input[name=csrf]', (i) => i.value)
      const status = await page.evaluate(async ([url, token]) => (await fetch(`${url}/remove`, { method: 'POST', body: new URLSearchParams({ csrf: token }) })).status, [address, csrf])
      expect(status).toBe(200)
      expect((await s.retry.stats(s.dlq)).deadLettered).toBe(1)
      await page.click('form.remove button')
      await page.click('button:has-text("Yes, remove it")')
      await page.waitForSelector('.notice')
      expect(await page.textContent('.notice')).toBe(`removed dead letter ${item.id}`)
      expect((await s.retry.stats(s.dlq)).deadLettered).toBe(0)
    } finally {
      await context.close()
      await server.stop()
    }
  })
})
