// The API surface: headers(), bad input with stable codes, connection sharing, pushToDlq, close().
const net = require('net')
const path = require('path')
const { spawn } = require('child_process')
const { KafkaRetry } = require('../..')
const h = require('../helpers')

beforeAll(h.requireServers)

async function rejection(promise) {
  try {
    await promise
  } catch (err) {
    return err
  }
  throw new Error('expected a rejection')
}

describe('KafkaRetry.headers', () => {
  test('defaults like the original', () => {
    expect(KafkaRetry.headers()).toEqual({ delay: '2', maxRetry: '3', retryCount: '0' })
    expect(KafkaRetry.headers(undefined)).toEqual({ delay: '2', maxRetry: '3', retryCount: '0' })
    expect(KafkaRetry.headers({})).toEqual({ delay: '2', maxRetry: '3', retryCount: '0' })
  })

  test('reads kafkajs Buffers, strings and arrays', () => {
    const headers = { delay: Buffer.from('0.5'), maxRetry: '7', retryCount: [Buffer.from('1'), Buffer.from('2')], other: 'x' }
    expect(KafkaRetry.headers(headers)).toEqual({ delay: '0.5', maxRetry: '7', retryCount: '2' })
  })
})

describe('bad input rejects with a code, never crashes', () => {
  let retry
  beforeAll(() => {
    retry = new KafkaRetry({ keyPrefix: h.unique('bad') })
  })
  afterAll(() => retry.close())
  const msg = { event: 'e', value: '{}' }
  const cases = [
    ['empty topic', () => retry.pushToQueue('', msg, {}), /topic/],
    ['non-string topic', () => retry.pushToQueue(42, msg, {}), /topic.*number 42/],
    ['missing topic', () => retry.pushToQueue(), /topic/],
    ['missing message', () => retry.pushToQueue('t'), /message/],
    ['missing event', () => retry.pushToQueue('t', { value: '{}' }, {}), /message\.event/],
    ['non-string event', () => retry.pushToQueue('t', { event: {}, value: '{}' }, {}), /message\.event/],
    ['value not JSON', () => retry.pushToQueue('t', { event: 'e', value: 'not json' }, {}), /message\.value.*not json/],
    ['missing value', () => retry.pushToQueue('t', { event: 'e' }, {}), /message\.value/],
    ['non-numeric delay', () => retry.pushToQueue('t', msg, { delay: 'soon' }), /delay.*soon/],
    ['negative delay', () => retry.pushToQueue('t', msg, { delay: '-1' }), /delay.*negative/],
    ['non-numeric maxRetry', () => retry.pushToQueue('t', msg, { maxRetry: 'x' }), /maxRetry/],
    ['negative retryCount', () => retry.pushToQueue('t', msg, { retryCount: -2 }), /retryCount/],
    ['fractional retryCount', () => retry.pushToQueue('t', msg, { retryCount: '1.5' }), /retryCount/],
    ['options not an object', () => retry.pushToQueue('t', msg, 'fast'), /options/],
    ['producer without produce or send', () => retry.queueListener({ publish() {} }, 'dlq'), /producer.*produce.*send/],
    ['producer that is a string', () => retry.queueListener('kafka', 'dlq'), /producer/],
    ['empty dlqName', () => retry.queueListener(null, ''), /dlqName/],
    ['pushToDlq without a name', () => retry.pushToDlq(undefined, {}), /dlqName/],
  ]
  test.each(cases)('%s', async (_, call, message) => {
    const err = await rejection(call())
    expect(Object.prototype.toString.call(err)).toBe('[object Error]') // jest's realm differs from the addon's
    expect(err.code).toBe('ERR_INVALID_ARG')
    expect(err.message).toMatch(message)
  })

  test('bad config throws ERR_INVALID_ARG naming the key', () => {
    for (const [config, key] of [
      [{ leaseMs: 'long' }, 'config.leaseMs'],
      [{ batchSize: 0 }, 'config.batchSize'],
      [{ redisUrl: 'http://nope' }, 'config.redisUrl'],
      [{ brokers: [1] }, 'config.brokers'],
      [{ keyPrefix: 'a{b}' }, 'config.keyPrefix'],
      [{ cluster: 'yes' }, 'config.cluster'],
      [{ shards: 0 }, 'config.shards'],
      ['redis://x', 'config'],
    ]) {
      let thrown
      try {
        new KafkaRetry(config)
      } catch (err) {
        thrown = err
      }
      expect(thrown && thrown.code).toBe('ERR_INVALID_ARG')
      expect(thrown.message).toContain(key)
    }
  })

  test('unreachable Redis (connection refused) rejects with ERR_REDIS_UNAVAILABLE quickly', async () => {
    const down = new KafkaRetry({ redisUrl: 'redis://127.0.0.1:1', redisTimeoutMs: 1000 })
    const started = Date.now()
    const err = await rejection(down.pushToQueue('t', msg, {}))
    expect(err.code).toBe('ERR_REDIS_UNAVAILABLE')
    expect(err.message).toContain('127.0.0.1:1')
    expect(Date.now() - started).toBeLessThan(3000)
    const err2 = await rejection(down.queueListener(null, 'dlq'))
    expect(err2.code).toBe('ERR_REDIS_UNAVAILABLE')
    await down.close()
  })

  test('a Redis that accepts but never answers rejects within the timeout, no hang', async () => {
    const sockets = []
    const blackhole = net.createServer((s) => sockets.push(s))
    await new Promise((resolve) => blackhole.listen(0, '127.0.0.1', resolve))
    const { port } = blackhole.address()
    const silent = new KafkaRetry({ redisUrl: `redis://127.0.0.1:${port}`, redisTimeoutMs: 500 })
    const started = Date.now()
    const err = await rejection(silent.pushToQueue('t', msg, {}))
    expect(err.code).toBe('ERR_REDIS_UNAVAILABLE')
    expect(Date.now() - started).toBeLessThan(3000)
    await silent.close()
    sockets.forEach((s) => s.destroy())
    blackhole.close()
  })

  test('calls after close() reject with ERR_CLOSED', async () => {
    const closed = new KafkaRetry({ keyPrefix: h.unique('closed') })
    await closed.close()
    await closed.close() // twice is harmless
    expect((await rejection(closed.pushToQueue('t', msg, {}))).code).toBe('ERR_CLOSED')
    expect((await rejection(closed.queueListener(null, 'dlq'))).code).toBe('ERR_CLOSED')
    expect((await rejection(closed.pushToDlq('dlq', {}))).code).toBe('ERR_CLOSED')
  })
})

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
