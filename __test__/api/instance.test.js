// The API surface against real Redis: connection sharing, pushToDlq, close() letting the process
// exit, the eviction warning, a listener surviving garbage collection. (headers() and bad input:
// __test__/unit/headers.test.js, __test__/unit/arguments.test.js.)
const path = require('path')
const { spawn } = require('child_process')
const { KafkaRetry } = require('../..')
const h = require('../helpers')

beforeAll(h.requireServers)

test('instances with the same Redis URL share one connection (one per failed message is cheap)', async () => {
  const redis = h.redisClient()
  const prefix = h.unique('shared')
  const clients = async () => Number(/connected_clients:(\d+)/.exec(await redis.info('clients'))[1])
  const first = new KafkaRetry({ keyPrefix: prefix })
  await first.pushToQueue('t', { event: 'e', value: '{}' }, { delay: '5' })
  const before = await clients()
  const instances = Array.from({ length: 500 }, () => new KafkaRetry({ keyPrefix: prefix }))
  await Promise.all(instances.map((r, i) => r.pushToQueue('t', { event: 'e', value: JSON.stringify({ i }) }, { delay: '5' })))
  const after = await clients()
  expect(after - before).toBeLessThanOrEqual(1)
  expect(await redis.hlen(h.scheduleKeys(prefix).entries)).toBe(501)
  await first.close()
  redis.disconnect()
})

test('pushToDlq writes one field per entry, never overwriting another', async () => {
  const redis = h.redisClient()
  const dlq = h.unique('dlq')
  const retry = new KafkaRetry({ keyPrefix: h.unique('dlq') })
  const entry = { topic: 't', event: 'SameEvent', value: '{"a":1}' }
  const f1 = await retry.pushToDlq(dlq, entry)
  const f2 = await retry.pushToDlq(dlq, entry)
  expect(f1).not.toBe(f2)
  expect(await redis.hlen(dlq)).toBe(2)
  expect(JSON.parse(await redis.hget(dlq, f1))).toEqual(entry)
  await retry.close()
  redis.disconnect()
})

function runChild(script, timeoutMs, nodeArgs = []) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [...nodeArgs, '-e', script], {
      cwd: path.join(__dirname, '..', '..'),
      env: process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let output = ''
    child.stdout.on('data', (d) => (output += d))
    child.stderr.on('data', (d) => (output += d))
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
    child.on('exit', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, output })
    })
  })
}

describe('close() lets the process exit', () => {
  const listen = (producer, close) => `
    const { KafkaRetry } = require('.')
    ;(async () => {
      const retry = new KafkaRetry({ keyPrefix: 'exit-' + process.pid })
      await retry.queueListener(${producer}, 'exit-dlq-' + process.pid)
      await retry.pushToQueue('t', { event: 'e', value: '{}' }, { delay: '0' })
      await new Promise((r) => setTimeout(r, 300))
      ${close ? 'await retry.close(); console.log("closed")' : 'console.log("left running")'}
    })().catch((e) => { console.error(e); process.exit(3) })`
  const jsProducer = '{ produce: async () => {} }'

  test('with a JS producer: exits by itself after close()', async () => {
    const { code, signal, output } = await runChild(listen(jsProducer, true), 10000)
    expect(output).toContain('closed')
    expect(signal).toBeNull()
    expect(code).toBe(0)
  })

  test('with the internal producer: exits by itself after close()', async () => {
    const { code, signal, output } = await runChild(listen('null', true), 15000)
    expect(output).toContain('closed')
    expect(signal).toBeNull()
    expect(code).toBe(0)
  })

  test('without close() a running listener keeps Node alive, like the original timer', async () => {
    const { signal, output } = await runChild(listen(jsProducer, false), 2500)
    expect(output).toContain('left running')
    expect(signal).toBe('SIGKILL')
  })
})

test('warns once, without throwing, when Redis may evict scheduled messages', async () => {
  const port = await h.freePort()
  const { spawnSync } = require('child_process')
  const started = spawnSync('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--maxmemory-policy', 'allkeys-lru', '--daemonize', 'yes'])
  if (started.status !== 0) throw new Error(`redis-server could not start a throwaway server: ${started.stderr}`)
  try {
    await h.waitFor(async () => {
      const probe = new KafkaRetry({ redisUrl: `redis://127.0.0.1:${port}` })
      return probe.pushToDlq('probe', {}).then(() => true, () => false).finally(() => probe.close())
    }, 5000)
    const { output, code } = await runChild(`
      const { KafkaRetry } = require('.')
      ;(async () => {
        const retry = new KafkaRetry({ redisUrl: 'redis://127.0.0.1:${port}/1', keyPrefix: 'evict' })
        await retry.pushToQueue('t', { event: 'e', value: '{}' }, { delay: '1' })
        await retry.pushToQueue('t', { event: 'e', value: '{}' }, { delay: '1' })
        await new KafkaRetry({ redisUrl: 'redis://127.0.0.1:${port}/1', keyPrefix: 'evict' }).pushToQueue('t', { event: 'e', value: '{}' }, {})
        console.log('pushed')
      })().catch((e) => { console.error(e); process.exit(3) })`, 10000)
    expect(code).toBe(0)
    expect(output).toContain('pushed')
    expect(output.match(/maxmemory-policy is "allkeys-lru"/g)).toHaveLength(1)
  } finally {
    spawnSync('redis-cli', ['-p', String(port), 'shutdown', 'nosave'])
  }
})

test('the shared Redis used by the tests is not warned about (noeviction)', async () => {
  const { output, code } = await runChild(`
    const { KafkaRetry } = require('.')
    new KafkaRetry({ keyPrefix: 'noevict-' + process.pid }).pushToQueue('t', { event: 'e', value: '{}' }, { delay: '1' })
      .then(() => console.log('pushed'), (e) => { console.error(e); process.exit(3) })`, 10000)
  expect(code).toBe(0)
  expect(output).toContain('pushed')
  expect(output).not.toContain('maxmemory-policy')
})

test('a listener started as `await new KafkaRetry().queueListener(...)` survives garbage collection', async () => {
  // The seed keeps no reference to the listener's instance; collecting it must not stop the listener.
  const prefix = h.unique('gc')
  const { output, code } = await runChild(`
    const { KafkaRetry } = require('.')
    ;(async () => {
      let published = 0
      await new KafkaRetry({ keyPrefix: '${prefix}' }).queueListener({ produce: async () => { published += 1 } }, '${prefix}-dlq')
      for (let i = 0; i < 5; i++) { global.gc(); await new Promise((r) => setTimeout(r, 20)) }
      await new KafkaRetry({ keyPrefix: '${prefix}' }).pushToQueue('t', { event: 'e', value: '{}' }, { delay: '0' })
      const deadline = Date.now() + 3000
      while (!published && Date.now() < deadline) { global.gc(); await new Promise((r) => setTimeout(r, 20)) }
      console.log('published ' + published)
      process.exit(0)
    })().catch((e) => { console.error(e); process.exit(3) })`, 10000, ['--expose-gc'])
  expect(code).toBe(0)
  expect(output).toContain('published 1')
})
