// handleInOrder's loop around the user's handler (lib/handle-in-order.js), on its own: no addon,
// no server. `KafkaRetry#handleInOrder` (src/ordered.rs) calls it with the instance as `retry`;
// here `retry` is a plain object of a small class recording what the loop calls (what Redis
// decides in takeTurn and endTurn is __test__/ordered.test.js's).
'use strict'

const handleInOrder = require('../../lib/handle-in-order.js')

/** A stand-in for the instance: records every call, answers takeTurn with `turn`. */
class Recorder {
  static headers(headers, keep) {
    Recorder.seen.push(['headers', headers, keep])
    return { retryCount: '1', traceparent: 'tp' }
  }

  constructor(turn = 'go') {
    this.turn = turn
    this.calls = []
    Recorder.seen = []
  }

  async takeTurn(...args) {
    this.calls.push(['takeTurn', ...args])
    return this.turn
  }

  async endTurn(...args) {
    this.calls.push(['endTurn', ...args])
    return args[3] ? 'retried' : 'handled'
  }

  async pushToQueue(...args) {
    this.calls.push(['pushToQueue', ...args])
    return 'id-1'
  }
}

const OPTIONS = { retryCount: '1', traceparent: 'tp' }

describe('arguments', () => {
  test.each([null, undefined, 'text', 7])('a message that is not an object (%p) rejects with ERR_INVALID_ARG', async (message) => {
    const retry = new Recorder()
    const handler = jest.fn()
    await expect(handleInOrder(retry, 't', message, handler)).rejects.toMatchObject({
      name: 'TypeError',
      code: 'ERR_INVALID_ARG',
      message: `message must be the kafkajs message eachMessage receives, got ${message === null ? 'null' : typeof message}`,
    })
    expect(handler).not.toHaveBeenCalled()
    expect(retry.calls).toEqual([])
  })

  test.each([null, undefined, 'fn', {}])('a handler that is not a function (%p) rejects with ERR_INVALID_ARG', async (handler) => {
    const retry = new Recorder()
    await expect(handleInOrder(retry, 't', { key: 'k', value: 'v' }, handler)).rejects.toMatchObject({
      code: 'ERR_INVALID_ARG',
      message: `handler must be a function, got ${handler === null ? 'null' : typeof handler}`,
    })
    expect(retry.calls).toEqual([])
  })
})

describe('a keyed message', () => {
  test('its turn: the handler runs once with the message as received, then endTurn(..., false)', async () => {
    const retry = new Recorder('go')
    const headers = { retryCount: Buffer.from('1') }
    const message = { key: Buffer.from('order-7'), value: Buffer.from('{"n":1}'), headers }
    const handler = jest.fn()
    await expect(handleInOrder(retry, 'orders', message, handler)).resolves.toBe('handled')
    expect(handler.mock.calls).toEqual([[message]])
    expect(handler.mock.calls[0][0]).toBe(message)
    // Key and value as text; the message's headers read by the class's own static headers().
    expect(Recorder.seen).toEqual([['headers', headers, ['retryOrder']]])
    expect(retry.calls).toEqual([
      ['takeTurn', 'orders', { event: 'order-7', value: '{"n":1}' }, OPTIONS],
      ['endTurn', 'orders', { event: 'order-7', value: '{"n":1}' }, OPTIONS, false],
    ])
  })

  test('a handler that throws (or rejects): endTurn gets the error and true, and its answer is the outcome', async () => {
    for (const fail of [() => { throw new Error('boom') }, async () => { throw new Error('boom') }]) {
      const retry = new Recorder('go')
      await expect(handleInOrder(retry, 'orders', { key: 'k', value: 'v' }, fail)).resolves.toBe('retried')
      expect(retry.calls).toHaveLength(2)
      const [name, topic, stored, options, failed] = retry.calls[1]
      expect([name, topic, stored, failed]).toEqual(['endTurn', 'orders', { event: 'k', value: 'v' }, true])
      expect(options).toEqual({ ...OPTIONS, error: new Error('boom') })
      expect(options.error).toBeInstanceOf(Error)
    }
  })

  test.each(['parked', 'duplicate'])('takeTurn answering %s: that is the outcome, the handler is not called', async (turn) => {
    const retry = new Recorder(turn)
    const handler = jest.fn()
    await expect(handleInOrder(retry, 'orders', { key: 'k', value: 'v' }, handler)).resolves.toBe(turn)
    expect(handler).not.toHaveBeenCalled()
    expect(retry.calls.map(([name]) => name)).toEqual(['takeTurn'])
  })

  test('a takeTurn rejection (Redis down) rejects with that error, without calling the handler', async () => {
    const retry = new Recorder()
    const down = Object.assign(new Error('down'), { code: 'ERR_REDIS_UNAVAILABLE' })
    retry.takeTurn = async () => {
      throw down
    }
    const handler = jest.fn()
    await expect(handleInOrder(retry, 'orders', { key: 'k', value: 'v' }, handler)).rejects.toBe(down)
    expect(handler).not.toHaveBeenCalled()
  })

  test('a missing value is stored as empty text; numbers as their text', async () => {
    const retry = new Recorder()
    await handleInOrder(retry, 't', { key: 42, value: null }, () => {})
    expect(retry.calls[0][2]).toEqual({ event: '42', value: '' })
  })
})

describe('a message without a key: no order to keep', () => {
  test.each([undefined, null])('key %p: handled without takeTurn or endTurn', async (key) => {
    const retry = new Recorder()
    const handler = jest.fn()
    await expect(handleInOrder(retry, 't', { key, value: 'v' }, handler)).resolves.toBe('handled')
    expect(handler).toHaveBeenCalledTimes(1)
    expect(retry.calls).toEqual([])
  })

  test('a failure is pushed as pushToQueue pushes, with the error, and the outcome is retried', async () => {
    const retry = new Recorder()
    const error = new Error('bad')
    await expect(handleInOrder(retry, 't', { key: null, value: Buffer.from('v') }, () => Promise.reject(error))).resolves.toBe('retried')
    expect(retry.calls).toEqual([['pushToQueue', 't', { event: '', value: 'v' }, { ...OPTIONS, error }]])
    expect(retry.calls[0][3].error).toBe(error)
  })
})
