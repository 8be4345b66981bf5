// requeueDeadLetters' onProgress guard (lib/progress-guard.js), on its own: no addon, no server.
// src/requeue_watch.rs wraps the caller's function with it, because a throw inside a
// threadsafe-function call would be Node's uncaught exception.
'use strict'

const progressGuard = require('../../lib/progress-guard.js')

afterEach(() => jest.restoreAllMocks())

test('passes each count to the caller, and returns nothing', () => {
  const counts = []
  const guarded = progressGuard((count) => {
    counts.push(count)
    return 'ignored'
  })
  expect(guarded(1)).toBeUndefined()
  expect(guarded(250)).toBeUndefined()
  expect(counts).toEqual([1, 250])
})

test('a throw becomes a KafkaRetryWarning with the stack, not an exception', () => {
  const warn = jest.spyOn(process, 'emitWarning').mockImplementation(() => {})
  const guarded = progressGuard(() => {
    throw new Error('dashboard went away')
  })
  expect(() => guarded(3)).not.toThrow()
  expect(warn).toHaveBeenCalledTimes(1)
  const [message, type] = warn.mock.calls[0]
  expect(type).toBe('KafkaRetryWarning')
  expect(message).toMatch(/^requeueDeadLetters onProgress threw: Error: dashboard went away\n\s+at /)
})

test('a thrown value that is not an Error is printed as it is', () => {
  const warn = jest.spyOn(process, 'emitWarning').mockImplementation(() => {})
  expect(() => progressGuard(() => {
    throw 'plain text'
  })(1)).not.toThrow()
  expect(() => progressGuard(() => {
    throw null
  })(2)).not.toThrow()
  expect(warn.mock.calls.map(([message]) => message)).toEqual([
    'requeueDeadLetters onProgress threw: plain text',
    'requeueDeadLetters onProgress threw: null',
  ])
})
