// Ordered retries (issue 23), end to end on real Redis and the real broker: two consumer
// processes in one group run handleInOrder over a 3-partition topic, their handler failing a
// seeded 20 % of attempts; a listener process republishes, and is SIGKILLed mid-run.
const path = require('path')
const { execFile, fork } = require('child_process')
const h = require('../helpers')
const { KafkaRetry } = require('../..')

const started = h.killChildrenAfterEach()
const KEYS = 1000
const PER_KEY = 10
const FAIL_RATE = 0.2
const SEED = 23
const STUCK = 'stuck'
const STUCK_MESSAGES = 5

beforeAll(() => h.requireServers())

/** Forks __test__/children/ordered.js with `config`; `onMessage(message, child)` gets its IPC messages. */
function child (config, onMessage) {
  const c = fork(path.join(__dirname, '..', 'children', 'ordered.js'), [], {
    env: { ...process.env, ORDERED_CONFIG: JSON.stringify(config) },
    stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
  })
  started.add(c)
  c.stderrText = ''
  c.stderr.on('data', (d) => { c.stderrText += d.toString() })
  c.on('message', (m) => onMessage(m, c))
  return c
}

async function createTopic (topic, partitions) {
  const admin = h.kafka().admin()
  await admin.connect()
  try {
    await admin.createTopics({ topics: [{ topic, numPartitions: partitions, replicationFactor: 1 }], waitForLeaders: true })
  } finally {
    await admin.disconnect()
  }
}

const keyName = (n) => `k${String(n).padStart(4, '0')}`

test('every key is handled in production order, nothing lost or handled twice, a dead-lettered head blocks its key until requeued, a SIGKILLed listener changes nothing', async () => {
  const topic = h.unique('ordered')
  const prefix = h.unique('ordered')
  const dlq = h.unique('ordered-dlq')
  const group = h.unique('ordered-group')
  await createTopic(topic, 3)

  const handled = new Map() // key -> seqs in the order they were handled successfully
  const counts = { handled: 0, failed: 0, duplicate: 0 }
  const joined = new Map()
  const onMessage = (m, c) => {
    if (m.type === 'joined') joined.set(c.pid, m.partitions)
    if (m.type === 'handled') {
      counts.handled += 1
      if (!handled.has(m.key)) handled.set(m.key, [])
      handled.get(m.key).push(m.seq)
    }
    if (m.type === 'failed') counts.failed += 1
    if (m.type === 'duplicate') counts.duplicate += 1
  }
  const base = { prefix, topic, group, dlq, seed: SEED, failRate: FAIL_RATE, stuckKey: STUCK, leaseMs: 1500 }
  let listener = child({ ...base, role: 'listener' }, onMessage)
  const consumers = [child({ ...base, role: 'consumer' }, onMessage), child({ ...base, role: 'consumer' }, onMessage)]
  // Both members joined and the 3 partitions shared: no rebalance while the messages flow.
  const settled = await h.waitFor(() => joined.size === 2 && [...joined.values()].every((n) => n > 0) &&
    [...joined.values()].reduce((a, b) => a + b, 0) === 3, 60000, 100)
  expect(settled).toBe(true)

  const producer = await h.producer()
  const startedAt = Date.now()
  const headers = { delay: '0.002', maxRetry: '10' }
  for (let seq = 0; seq < PER_KEY; seq++) {
    const messages = []
    for (let k = 0; k < KEYS; k++) {
      const key = keyName(k)
      messages.push({ key, value: JSON.stringify({ key, seq, msgId: `${key}-${seq}` }), headers })
    }
    if (seq < STUCK_MESSAGES) {
      // The stuck key's head fails until the test heals it: 2 attempts, then dead-lettered.
      messages.push({ key: STUCK, value: JSON.stringify({ key: STUCK, seq, msgId: `${STUCK}-${seq}` }), headers: { delay: '0.002', maxRetry: '1' } })
    }
    await producer.send({ topic, acks: -1, messages })
  }
  await producer.disconnect()

  // SIGKILL the listener mid-run (chains are being walked), then start another one: the lease of
  // whatever it had claimed runs out and the new one takes it over.
  expect(await h.waitFor(() => counts.handled >= (KEYS * PER_KEY) / 3, 60000, 20)).toBe(true)
  listener.kill('SIGKILL')
  await h.exited(listener, 5000)
  const killedAt = counts.handled
  listener = child({ ...base, role: 'listener' }, onMessage)

  const retry = new KafkaRetry({ keyPrefix: prefix })
  const all = () => [...handled.entries()].filter(([k]) => k !== STUCK).reduce((n, [, s]) => n + s.length, 0)
  expect(await h.waitFor(() => all() >= KEYS * PER_KEY, 100000, 100)).toBe(true)
  const tookMs = Date.now() - startedAt

  // The stuck key: its head dead-lettered, the other 4 parked, none handled.
  const blocked = await h.waitFor(async () => {
    const stats = await retry.stats(dlq)
    return stats.deadLettered === 1 && stats.parkedMessages === STUCK_MESSAGES - 1 && stats
  }, 30000, 100)
  expect(blocked).toMatchObject({ deadLettered: 1, parkedMessages: STUCK_MESSAGES - 1, blockedKeys: 1 })
  expect(await retry.isBlocked(topic, STUCK)).toBe(true)
  expect((await retry.stats(dlq)).topics[topic]).toMatchObject({ deadLetters: 1 })
  expect(handled.get(STUCK)).toBeUndefined()

  // Requeued (and the cause fixed): the key resumes, in order.
  for (const c of consumers) c.send('heal')
  expect(await retry.requeueAllDeadLetters(dlq)).toBe(1)
  expect(await h.waitFor(() => (handled.get(STUCK) || []).length >= STUCK_MESSAGES, 30000, 50)).toBe(true)
  // Late copies (a publish repeated after the SIGKILL) would show up now.
  await h.sleep(1500)

  const expected = Array.from({ length: PER_KEY }, (_, i) => i)
  const wrong = []
  for (let k = 0; k < KEYS; k++) {
    const seqs = handled.get(keyName(k)) || []
    if (seqs.join() !== expected.join()) wrong.push(`${keyName(k)}: ${seqs.join()}`)
  }
  expect(wrong).toEqual([])
  expect(handled.get(STUCK)).toEqual([0, 1, 2, 3, 4])
  expect(counts.handled).toBe(KEYS * PER_KEY + STUCK_MESSAGES)
  const stats = await retry.stats(dlq)
  expect(stats).toMatchObject({ blockedKeys: 0, parkedMessages: 0, scheduled: 0, inflight: 0, deadLettered: 0 })
  // The per topic counters followed the ordered scripts too: nothing left counted for the topic.
  const none = { scheduled: 0, due: 0, leased: 0, deadLetters: 0 }
  expect(stats.topics[topic] || none).toEqual(none)
  // The figures the README quotes.
  console.log(`ordered: ${KEYS * PER_KEY} messages of ${KEYS} keys handled in order in ${tookMs} ms; ` +
    `${counts.failed} failed attempts, ${counts.duplicate} second publishes dropped; ` +
    `listener SIGKILLed after ${killedAt} handled`)
  await retry.close()
  for (const c of [...consumers, listener]) c.send('stop')
  await Promise.all([...consumers, listener].map((c) => h.exited(c, 15000)))
}, 180000)

/** A kafkajs-shaped message (Buffers, as eachMessage gives them) from what a produce call got. */
function asConsumed ({ key, value, headers }) {
  const buffers = {}
  for (const [name, v] of Object.entries(headers)) buffers[name] = Buffer.from(String(v))
  return { key: Buffer.from(key), value: Buffer.from(value), headers: buffers }
}

test('park and isBlocked; a removed dead-lettered head releases its key, one message at a time', async () => {
  const topic = h.unique('ordered-remove')
  const prefix = h.unique('ordered-remove')
  const dlq = h.unique('ordered-remove-dlq')
  const retry = new KafkaRetry({ keyPrefix: prefix, pollIntervalMs: 100 })
  try {
    await expect(retry.isBlocked('', 'k')).rejects.toMatchObject({ code: 'ERR_INVALID_ARG' })
    await expect(retry.park(topic, { event: 'k' }, {})).rejects.toMatchObject({ code: 'ERR_INVALID_ARG' })
    const message = (key, seq, headers = {}) => ({
      key: Buffer.from(key),
      value: Buffer.from(JSON.stringify({ seq, msgId: `${key}-${seq}` })),
      headers,
    })
    const handled = []
    const handler = async (m) => { handled.push(JSON.parse(m.value).seq) }
    // park with nothing ahead: scheduled at once (it becomes its key's head).
    expect(await retry.park(topic, { event: 'other', value: '{"seq":0}' }, { delay: '10' })).toBe('scheduled')
    expect(await retry.park(topic, { event: 'other', value: '{"seq":1}' }, { delay: '10' })).toBe('parked')
    expect(await retry.isBlocked(topic, 'other')).toBe(true)
    // The dashboard's overview shows them (tiles that appear only while a key is blocked).
    const http = require('http')
    const server = http.createServer(require('../../dashboard').handler({ retry, dlqName: dlq, name: prefix }))
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
    try {
      const page = await (await fetch(`http://127.0.0.1:${server.address().port}/`)).text()
      expect(page).toMatch(/data-count="blockedKeys">1</)
      expect(page).toMatch(/data-count="parkedMessages">1</)
    } finally {
      await new Promise((resolve) => server.close(resolve))
    }

    // No key, no order: handled, or pushed as pushToQueue pushes.
    const keyless = { key: null, value: Buffer.from('{"seq":9}'), headers: {} }
    expect(await retry.handleInOrder(topic, keyless, async () => { throw new Error('x') })).toBe('retried')
    expect(await retry.handleInOrder(topic, keyless, handler)).toBe('handled')
    expect(await retry.isBlocked(topic, '')).toBe(false)
    handled.length = 0

    // Head of key A fails with no retry left: it is dead-lettered; 1 and 2 park behind it.
    const exhausted = { maxRetry: Buffer.from('0') }
    expect(await retry.handleInOrder(topic, message('A', 0, exhausted), async () => { throw new Error('bad') })).toBe('retried')
    expect(await retry.handleInOrder(topic, message('A', 1), handler)).toBe('parked')
    expect(await retry.handleInOrder(topic, message('A', 2), handler)).toBe('parked')
    expect(await retry.handleInOrder(topic, message('A', 2), handler)).toBe('duplicate')
    const published = []
    await retry.queueListener({
      produce: async (t, key, value, headers) => {
        if (t === topic && key === 'A') published.push({ key, value, headers })
      },
    }, dlq)
    expect(await h.waitFor(async () => (await retry.stats(dlq)).deadLettered === 1, 20000)).toBe(true)
    await h.sleep(300)
    expect(published).toEqual([])
    expect(await retry.isBlocked(topic, 'A')).toBe(true)
    expect(handled).toEqual([])

    // Removed: the key's next message is released, and only it.
    expect(await retry.removeDeadLetters(dlq, { topic })).toBe(1)
    expect(await h.waitFor(() => published.length === 1, 20000)).toBe(true)
    await h.sleep(300)
    expect(published.map((p) => JSON.parse(p.value).seq)).toEqual([1])
    expect(published[0].headers.retryOrder).toBeTruthy()
    expect(await retry.handleInOrder(topic, asConsumed(published[0]), handler)).toBe('handled')
    // A second publish of the same message is dropped, the handler not called.
    expect(await retry.handleInOrder(topic, asConsumed(published[0]), handler)).toBe('duplicate')
    expect(await h.waitFor(() => published.length === 2, 20000)).toBe(true)
    expect(await retry.handleInOrder(topic, asConsumed(published[1]), handler)).toBe('handled')
    expect(handled).toEqual([1, 2])
    expect(await retry.isBlocked(topic, 'A')).toBe(false)
    expect(await retry.stats(dlq)).toMatchObject({ blockedKeys: 1, parkedMessages: 1 }) // key 'other'
    // The CLI's stats show them too (printed only while a key is blocked).
    const cli = await new Promise((resolve) => execFile(process.execPath,
      [path.join(__dirname, '..', '..', 'bin', 'kafka-redis-retry.js'), 'stats', '--prefix', prefix, '--dlq', dlq],
      { env: { ...process.env, REDIS_URL: h.REDIS_URL }, timeout: 20000, encoding: 'utf8' },
      (err, stdout) => resolve({ code: err ? err.code : 0, stdout })))
    expect(cli.code).toBe(0)
    expect(cli.stdout).toMatch(/blockedKeys\s+1\s/)
    expect(cli.stdout).toMatch(/parkedMessages\s+1\s/)
  } finally {
    await retry.close()
  }
}, 60000)

test('without ordering nothing changes: pushToQueue writes no ordered key and no retryOrder header', async () => {
  const prefix = h.unique('ordered-off')
  const retry = new KafkaRetry({ keyPrefix: prefix })
  const redis = h.redisClient()
  try {
    await retry.pushToQueue('orders', { event: 'A', value: '{"msgId":"m1"}' }, { delay: '60' })
    await retry.pushToQueue('orders', { event: 'A', value: '{"msgId":"m2"}' }, { delay: '60' })
    const keys = (await redis.keys(`{${prefix}}*`)).sort()
    // Only the schedule's own keys (the wake key may have expired already), and the per topic
    // counters and history every push keeps.
    const own = ['due', 'entries', 'shards', 'wake', 'topics'].map((name) => `{${prefix}}:${name}`)
    const history = new RegExp(`^\\{${prefix}\\}:history:\\d+$`)
    expect(keys.filter((k) => !own.includes(k) && !history.test(k))).toEqual([])
    expect(keys).toEqual(expect.arrayContaining([`{${prefix}}:due`, `{${prefix}}:entries`]))
    for (const entry of Object.values(await redis.hgetall(`{${prefix}}:entries`))) expect(entry).not.toContain('retryOrder')
    expect(await retry.isBlocked('orders', 'A')).toBe(false)
    expect(await retry.stats()).toMatchObject({ scheduled: 2, blockedKeys: 0, parkedMessages: 0 })
  } finally {
    await redis.del(...(await redis.keys(`{${prefix}}*`)))
    redis.disconnect()
    await retry.close()
  }
})

test('with shards, a key\'s chain, its parked messages and its head\'s entry share one hash tag', async () => {
  const prefix = h.unique('ordered-shards')
  const retry = new KafkaRetry({ keyPrefix: prefix, shards: 4 })
  const redis = h.redisClient()
  try {
    const message = (key, seq) => ({ key: Buffer.from(key), value: Buffer.from(JSON.stringify({ seq, msgId: `${key}-${seq}` })), headers: { delay: Buffer.from('60') } })
    for (let k = 0; k < 20; k++) {
      expect(await retry.handleInOrder('orders', message(`key-${k}`, 0), async () => { throw new Error('x') })).toBe('retried')
      expect(await retry.handleInOrder('orders', message(`key-${k}`, 1), async () => {})).toBe('parked')
    }
    expect(await retry.stats()).toMatchObject({ scheduled: 20, blockedKeys: 20, parkedMessages: 20 })
    const tags = new Set()
    for (let n = 0; n < 4; n++) {
      const tag = n === 0 ? `{${prefix}}` : `{${prefix}#${n}}`
      const chains = await redis.smembers(`${tag}:chains`)
      for (const chain of chains) {
        expect(chain.startsWith(`${tag}:chain:`)).toBe(true)
        const [head, parked] = await redis.lrange(chain, 0, -1)
        expect(await redis.hexists(`${tag}:entries`, head)).toBe(1)
        expect(await redis.hexists(`${tag}:held`, parked)).toBe(1)
        tags.add(tag)
      }
    }
    expect(tags.size).toBeGreaterThan(1) // the keys spread over the shards
  } finally {
    for (let n = 0; n < 4; n++) {
      const keys = await redis.keys(`{${prefix}${n === 0 ? '' : `#${n}`}}*`)
      if (keys.length) await redis.del(...keys)
    }
    redis.disconnect()
    await retry.close()
  }
})
