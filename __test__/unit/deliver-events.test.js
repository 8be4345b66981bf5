// config.onEvent's batch delivery (lib/deliver-events.js), on its own: no addon, no server. The
// listener hands events over in batches; src/observer.rs wraps the caller's onEvent with this.
'use strict'

const deliverEvents = require('../../lib/deliver-events.js')

test('calls onEvent once per event of a batch, in order, with the event itself', () => {
  const seen = []
  const deliver = deliverEvents((event) => seen.push(event))
  const events = [{ type: 'retry', id: 'a' }, { type: 'deadLetter', id: 'b' }, { type: 'error', code: 'X' }]
  expect(deliver(events)).toBeUndefined()
  expect(seen).toHaveLength(3)
  seen.forEach((event, i) => expect(event).toBe(events[i]))
  deliver([])
  expect(seen).toHaveLength(3)
})

test('what onEvent throws is ignored: the rest of the batch is still delivered, nothing escapes', () => {
  const seen = []
  const hostile = {
    get message() {
      throw new Error('no')
    },
  }
  const throws = [new Error('metrics bug'), undefined, hostile, Symbol('s')]
  const deliver = deliverEvents((event) => {
    seen.push(event.id)
    if (event.id < throws.length) throw throws[event.id]
  })
  expect(() => deliver([0, 1, 2, 3, 4].map((id) => ({ id })))).not.toThrow()
  expect(seen).toEqual([0, 1, 2, 3, 4])
})

test('each wrapped onEvent is its own: two wrappers call their own function', () => {
  const a = []
  const b = []
  const first = deliverEvents((e) => a.push(e))
  const second = deliverEvents((e) => b.push(e))
  first([1])
  second([2, 3])
  expect([a, b]).toEqual([[1], [2, 3]])
})
