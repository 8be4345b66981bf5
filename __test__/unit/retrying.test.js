// retry.retrying() / retryingBatch() (lib/retrying.js) without servers: options checked at setup,
// what a consumed message becomes as a retry or a dead letter, the backoff, and the order of
// pushes and offsets in a batch, against a recording stand-in for the instance's push methods
// (the same flows against real Redis and real consumers are in __test__/consumer/).
const fs = require('fs')
const path = require('path')
const { KafkaRetry } = require('../..')
const { readOptions, readMessage, backoffDelay, failure } = require('../../lib/retrying.js')

/** A KafkaRetry stand-in: the class's static headers(), keyPrefix, dlqName, and recorded pushes. */
function recorder({ fail = null } = {}) {
  const calls = []
  const record = (name) => async (...args) => {
    calls.push([name, ...args])
    if (fail) throw fail
    return name === 'pushMany' ? args[0].length : undefined
  }
  const retry = Object.create(KafkaRetry.prototype, {
    constructor: { value: KafkaRetry },
    keyPrefix: { value: 'unit' },
    dlqName: { value: 'unit:dead-letters' },
  })
  Object.assign(retry, { calls, pushToQueue: record('pushToQueue'), pushMany: record('pushMany'), pushToDlq: record('pushToDlq') })
  return retry
}

const message = (key, value, offset = '0', headers = {}) => ({ key: key === null ? null : Buffer.from(key), value: value === null ? null : Buffer.from(value), offset, headers })

describe('options', () => {
  test.each([
    [{ delai: 1 }, /unknown key 'delai'/],
    [{ delay: -1 }, /options.delay must be a number of 0 or more/],
    [{ maxRetry: 'x' }, /options.maxRetry must be a number/],
    [{ isPermanent: true }, /options.isPermanent must be a function/],
    [{ dlqName: '' }, /options.dlqName must be a non-empty string/],
    [{ ordered: 'yes' }, /options.ordered must be a boolean/],
    [{ backoff: { type: 'linear' } }, /options.backoff.type must be/],
    [{ backoff: { type: 'list', delaysMs: [] } }, /options.backoff.delaysMs must be a non-empty array/],
    [[], /options must be an object, got an array/],
  ])('%j is ERR_INVALID_ARG at setup', (options, text) => {
    const retry = recorder()
    for (const make of [retry.retrying, retry.retryingBatch]) {
      let error
      try {
        make.call(retry, async () => {}, options)
      } catch (e) {
        error = e
      }
      expect(error).toMatchObject({ code: 'ERR_INVALID_ARG', message: expect.stringMatching(text) })
    }
  })

  test('a handler that is not a function is ERR_INVALID_ARG', () => {
    expect(() => recorder().retrying('nope')).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG', message: expect.stringMatching(/handler must be a function/) }))
  })

  test('the keys header.d.ts declares for RetryingOptions are the keys read', () => {
    const header = fs.readFileSync(path.join(__dirname, '..', '..', 'src', 'header.d.ts'), 'utf8')
    const body = header.slice(header.indexOf('export interface RetryingOptions {'))
    const declared = [...body.slice(0, body.indexOf('\n}')).matchAll(/^ {2}(\w+)\?:/gm)].map((m) => m[1]).sort()
    expect(declared).toEqual(Object.keys(readOptions({ delay: 1, maxRetry: 1, backoff: {}, isPermanent: () => false, dlqName: 'd', ordered: true, keepHeaders: true })).sort())
  })
})

describe('what a consumed message becomes', () => {
  test('key and value as text; a null key is ""', () => {
    expect(readMessage(message('k', '{"a":1}'))).toEqual({ event: 'k', value: '{"a":1}' })
    expect(readMessage(message(null, '[1]'))).toEqual({ event: '', value: '[1]' })
  })

  test.each([
    ['a tombstone', message('k', null), /no value \(a tombstone\)/],
    ['text that is not JSON', message('k', 'plain'), /not JSON text/],
    ['bytes that are not UTF-8', { key: Buffer.from('k'), value: Buffer.from([0xff, 0xfe]), offset: '0' }, /not UTF-8 text/],
  ])('%s cannot be retried: dead-lettered with the reason and the handler error', (name, msg, reason) => {
    const { deadLetter } = failure(recorder(), readOptions({}), 'orders', msg, new Error('db down'))
    expect(deadLetter.dlqName).toBe('unit:dead-letters')
    expect(deadLetter.entry).toMatchObject({ topic: 'orders', event: 'k', keyPrefix: 'unit', error: { name: 'Error', message: expect.stringMatching(reason) } })
    expect(deadLetter.entry.error.message).toMatch(/the handler failed with: db down/)
    expect(deadLetter.entry.diedAt).toEqual(expect.any(Number))
    if (name === 'bytes that are not UTF-8') expect(deadLetter.entry.valueBase64).toBe('//4=')
  })

  test('a retry carries the headers, the options given and the error; a thrown string becomes an Error', () => {
    const headers = { retryCount: Buffer.from('1'), traceparent: Buffer.from('00-a-b-01'), other: 'x' }
    const { retry } = failure(recorder(), readOptions({ delay: '0.5', maxRetry: 5 }), 'orders', message('k', '{}', '3', headers), 'Action failed')
    expect(retry).toEqual({
      topic: 'orders',
      message: { event: 'k', value: '{}' },
      options: { delay: '0.5', maxRetry: 5, retryCount: '1', traceparent: Buffer.from('00-a-b-01'), error: new Error('Action failed') },
    })
  })

  test('isPermanent: to options.dlqName with the error; one that throws counts as no', () => {
    const permanent = readOptions({ isPermanent: (e) => e.name === 'ValidationError', dlqName: 'orders-dlq' })
    const err = Object.assign(new Error('bad amount'), { name: 'ValidationError' })
    expect(failure(recorder(), permanent, 't', message('k', '{}'), err).deadLetter).toMatchObject({ dlqName: 'orders-dlq', entry: { error: { name: 'ValidationError', message: 'bad amount' } } })
    const throwing = readOptions({ isPermanent: () => { throw new Error('bug') } })
    expect(failure(recorder(), throwing, 't', message('k', '{}'), err).retry).toBeDefined()
  })

  test('backoff: attempt k from the base delay, as config backoff computes it', () => {
    const min = (ms) => ms / 60000
    expect(backoffDelay({ type: 'exponential', multiplier: 2, jitter: 'none' }, '0.5', 3)).toBe(min(120000))
    expect(backoffDelay({ type: 'exponential', multiplier: 2, maxDelayMs: 60000, jitter: 'none' }, '0.5', 3)).toBe(min(60000))
    expect(backoffDelay({ type: 'list', delaysMs: [1000, 5000], jitter: 'none' }, 2, 7)).toBe(min(5000))
    expect(backoffDelay({ type: 'fixed', multiplier: 2, jitter: 'equal' }, 1, 4, () => 0)).toBe(min(30000))
    const { retry } = failure(recorder(), readOptions({ delay: 1, backoff: { type: 'exponential' } }), 't', message('k', '{}', '0', { retryCount: '2' }), new Error('x'))
    expect(retry.options.delay).toBe(4)
  })
})

describe('eachMessage and eachBatch', () => {
  test('eachMessage: a success pushes nothing, a failure one pushToQueue before it resolves', async () => {
    const retry = recorder()
    const each = retry.retrying(async ({ message: m }) => {
      if (m.key.toString() === 'bad') throw new Error('no')
    })
    await each({ topic: 't', partition: 0, message: message('good', '{}') })
    expect(retry.calls).toEqual([])
    await each({ topic: 't', partition: 0, message: message('bad', '{}') })
    expect(retry.calls.map(([name]) => name)).toEqual(['pushToQueue'])
  })

  test('eachMessage rejects when the push fails (the consumer does not commit)', async () => {
    const retry = recorder({ fail: Object.assign(new Error('down'), { code: 'ERR_REDIS_UNAVAILABLE' }) })
    const each = retry.retrying(async () => {
      throw new Error('no')
    })
    await expect(each({ topic: 't', partition: 0, message: message('k', '{}') })).rejects.toMatchObject({ code: 'ERR_REDIS_UNAVAILABLE' })
  })

  test('eachBatch: failures with one pushMany, then the last offset resolved; nothing resolved when the push fails', async () => {
    for (const fail of [null, new Error('down')]) {
      const retry = recorder({ fail })
      const log = []
      const each = retry.retryingBatch(async ({ message: m }) => {
        if (m.key.toString().startsWith('bad')) throw new Error('no')
      })
      const messages = [message('bad1', '{}', '10'), message('ok', '{}', '11'), message('bad2', '{}', '12')]
      const run = each({
        batch: { topic: 't', partition: 0, messages },
        resolveOffset: (offset) => log.push(['resolve', offset, retry.calls.length]),
        heartbeat: async () => {},
      })
      if (fail) await expect(run).rejects.toBe(fail)
      else await run
      expect(retry.calls.map(([name, items]) => [name, items.length])).toEqual([['pushMany', 2]])
      expect(log).toEqual(fail ? [] : [['resolve', '12', 1]])
    }
  })
})
