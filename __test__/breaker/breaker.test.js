// The breaker's surface against real Redis and Kafka: its config refused when wrong, the events,
// stats().topics[t].breaker, the Prometheus gauge, the CLI's topic table, the dashboard's overview, resume(topic) closing it
// (the dashboard's Close breaker button in chromium),
// and one breaker shared by two processes (failures pushed by a child, the breaker opened by this
// process's listener).
const { spawn, execFile } = require('child_process')
const path = require('path')
const { promisify } = require('util')
const { KafkaRetry } = require('../..')
const { requireServers, unique, createTopics, waitFor } = require('../helpers')
const { handler } = require('../../dashboard')
const { listen, chromiumForFile } = require('../helpers/browser')

jest.setTimeout(60000)
beforeAll(requireServers)

const CLI = path.join(__dirname, '../../bin/kafka-redis-retry.js')
const open = chromiumForFile()

test('config.breaker: true, false or known options; anything else is ERR_INVALID_ARG', () => {
  expect(() => new KafkaRetry({ breaker: true }).close()).not.toThrow()
  expect(() => new KafkaRetry({ breaker: false }).close()).not.toThrow()
  expect(() => new KafkaRetry({ breaker: { minFailures: 5, rampMs: 1000 } }).close()).not.toThrow()
  for (const [breaker, message] of [
    [{ minFailure: 5 }, /config.breaker has no key `minFailure` \(did you mean `minFailures`\?\)/],
    ['yes', /config.breaker must be true, false or an object/],
    [{ failureRatio: 0 }, /config.breaker.failureRatio must be a number above 0/],
    [{ probeCount: 0 }, /config.breaker.probeCount must be a whole number from 1/],
    [{ windowMs: 1.5 }, /config.breaker.windowMs must be a whole number/],
  ]) {
    let error
    try {
      new KafkaRetry({ breaker })
    } catch (err) {
      error = err
    }
    expect(error).toBeDefined()
    expect(error.code).toBe('ERR_INVALID_ARG')
    expect(error.message).toMatch(message)
  }
})

test('failures pushed by another process open the breaker here: events, stats, metrics, CLI; resume(topic) closes it and the held messages go out', async () => {
  const prefix = unique('breaker')
  const topic = unique('breaker-topic')
  const dlq = unique('breaker-dlq')
  await createTopics(topic)
  const events = []
  const retry = new KafkaRetry({
    keyPrefix: prefix,
    pollIntervalMs: 100,
    breaker: { minFailures: 3, probeIntervalMs: 60000 },
    onEvent: (e) => events.push(e),
  })
  try {
    // Another service's process pushes 4 retries that came back failed.
    const child = spawn(process.execPath, [path.join(__dirname, '../children/breaker-pusher.js')], {
      env: { ...process.env, BREAKER_CONFIG: JSON.stringify({ prefix, topic, count: 4 }) },
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    let out = ''
    child.stdout.on('data', (d) => (out += d))
    const code = await new Promise((resolve) => child.on('exit', resolve))
    expect(code).toBe(0)
    expect(out).toBe('pushed 4\n')

    await retry.queueListener(null, dlq)
    await waitFor(() => events.some((e) => e.type === 'breakerOpen'), 10000)
    expect(events.find((e) => e.type === 'breakerOpen')).toEqual({ type: 'breakerOpen', topic, failures: 4, attempts: 0 })
    // Held, not published, not dead-lettered.
    const stats = await retry.stats(dlq)
    expect(stats.topics[topic]).toMatchObject({ breaker: 'open', scheduled: 4, due: 4, leased: 0, deadLetters: 0 })
    expect(stats).toMatchObject({ scheduled: 4, due: 4 })
    expect(stats.published).toBe(0)
    const metrics = await retry.metrics(dlq)
    expect(metrics).toContain(`kafka_retry_topic_breaker_open{prefix="${prefix}",topic="${topic}"} 1\n`)
    const { stdout } = await promisify(execFile)(process.execPath, [CLI, 'stats', '--prefix', prefix, '--dlq', dlq], { env: process.env })
    expect(stdout).toMatch(/topic.*breaker/)
    expect(stdout).toMatch(new RegExp(`${topic}.*\\s+open\\n`))
    // The dashboard's overview: the state in the topic's row, escaped text in a data attribute.
    const { serve } = require('../../dashboard')
    const { server, url } = await serve({ retry, dlqName: dlq, port: 0, token: 'breaker-test-token' })
    try {
      const page = await (await fetch(url, { headers: { authorization: 'Bearer breaker-test-token' } })).text()
      expect(page).toMatch(new RegExp(`<tr data-topic="${topic}">.*<td data-breaker="open">open</td>`))
    } finally {
      server.close()
    }

    // resume(topic) closes it by hand, here through the dashboard's Close breaker button in a
    // real browser: an event, an audit entry, and the four go out.
    const dashboard = await listen(handler({ retry, dlqName: dlq }))
    const { page, context, dialogs, cspErrors } = await open()
    try {
      await page.goto(dashboard.url)
      await page.screenshot({ path: path.join(__dirname, '../../docs/dashboard-breaker.png'), fullPage: true })
      await page.click(`tr[data-topic="${topic}"] button:has-text("Close breaker")`)
      await page.waitForSelector('.notice')
      expect(await page.textContent('.notice')).toBe(`closed the breaker of topic ${topic}`)
      expect(dialogs).toEqual([])
      expect(cspErrors).toEqual([])
    } finally {
      await context.close()
      await dashboard.stop()
    }
    await waitFor(() => events.some((e) => e.type === 'breakerClose'), 5000)
    expect(events.find((e) => e.type === 'breakerClose')).toEqual({ type: 'breakerClose', topic, openMs: 0, held: 0, byHand: true })
    await waitFor(async () => (await retry.stats(dlq)).published === 4, 10000)
    const after = await retry.stats(dlq)
    expect(after.published).toBe(4)
    expect(after.topics[topic]?.breaker ?? 'closed').toBe('closed')
    expect(await retry.metrics(dlq)).not.toContain(`kafka_retry_topic_breaker_open{prefix="${prefix}",topic="${topic}"} 1\n`)
    const { entries } = await retry.auditLog({ limit: 1 })
    expect(entries[0]).toMatchObject({ action: 'resume', target: { topic }, count: 1, outcome: 'ok' })
  } finally {
    await retry.close()
  }
})

test('a schedule without the breaker shows no breaker state', async () => {
  const retry = new KafkaRetry({ keyPrefix: unique('nobreaker') })
  try {
    const topic = unique('t')
    await retry.pushToQueue(topic, { event: 'k', value: '{}' }, { delay: '1', retryCount: '2' })
    const stats = await retry.stats()
    expect(stats.topics[topic].scheduled).toBe(1)
    expect(stats.topics[topic].breaker).toBeUndefined()
  } finally {
    await retry.close()
  }
})
