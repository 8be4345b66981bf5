// lib/push-pack.js without servers: a push's arguments packed into the string `pushPacked` takes
// (src/packed.rs reads the same strings back in its unit tests), every value read once, and what
// the packed form cannot carry handed to the native pushToQueue with the values already read.
const { packPush } = require('../../lib/push-pack.js')

describe('packed form', () => {
  test('topic, event, value, then the options as tagged pairs, lengths in UTF-16 units', () => {
    const error = new TypeError('boom')
    const packed = packPush('orders', { event: 'k-1', value: '{"a":1}' }, { delay: '2', maxRetry: 5, tp: Buffer.from([0xff, 0]), error })
    // The same string src/packed.rs `reads_pushes_with_their_options_and_headers` reads.
    expect(packed).toBe('6:orders3:k-17:{"a":1}4:5:delays1:28:maxRetryn1:52:tpx2:\u00ff\u00005:errore4:boom9:TypeError')
    expect(packPush('t', { event: '', value: '[]' })).toBe('1:t0:2:[]0:')
    expect(packPush('t', { event: '\u{1f600}', value: '\ud800' }, null)).toBe('1:t2:\u{1f600}1:\ud8000:')
  })

  test('absent values, -0, executeAt and retryDelayMs', () => {
    expect(packPush('t', { event: 'e', value: '1' }, { delay: undefined, h: null, executeAt: {}, retryDelayMs: [1], retryCount: -0 })).toBe(
      '1:t1:e1:13:5:delayu1:hu10:retryCountn2:-0',
    )
  })

  test('an error that is a string, or an object without a string message or name', () => {
    expect(packPush('t', { event: 'e', value: '1' }, { error: 'plain' })).toBe('1:t1:e1:11:5:errors5:plain')
    expect(packPush('t', { event: 'e', value: '1' }, { error: { message: 3 } })).toBe('1:t1:e1:11:5:errore9:an object5:Error')
  })

  test('inherited retry options are read, as the native reader reads them by name', () => {
    const options = Object.create({ delay: '5' })
    options.own = 'x'
    expect(packPush('t', { event: 'e', value: '1' }, options)).toBe('1:t1:e1:12:3:owns1:x5:delays1:5')
  })
})

describe('handed to the native pushToQueue', () => {
  test.each([
    ['an empty topic', ['', { event: 'e', value: '1' }]],
    ['a topic that is not a string', [1, { event: 'e', value: '1' }]],
    ['a message that is not an object', ['t', 'm']],
    ['a message that is an array', ['t', []]],
    ['a Proxy message', ['t', new Proxy({ event: 'e', value: '1' }, {})]],
    ['options that are not an object', ['t', { event: 'e', value: '1' }, 'x']],
    ['Proxy options', ['t', { event: 'e', value: '1' }, new Proxy({}, {})]],
  ])('%s: the arguments untouched', (_, args) => {
    expect(packPush(...args)).toEqual(args)
  })

  test('a value that is not a string: the event and value already read, options untouched', () => {
    const options = { delay: '1' }
    const value = { a: 1 }
    const out = packPush('t', { event: 'e', value }, options)
    expect(out).toEqual(['t', { event: 'e', value }, options])
    expect(out[1].value).toBe(value)
    expect(out[2]).toBe(options)
  })

  test('an option the packed form cannot carry: a snapshot of what was read', () => {
    const out = packPush('t', { event: 'e', value: '1' }, { delay: '1', flag: true, list: ['a'], __proto__: Object.prototype })
    expect(Array.isArray(out)).toBe(true)
    expect(Object.getPrototypeOf(out[2])).toBe(null)
    expect({ ...out[2] }).toEqual({ delay: '1', flag: true, list: ['a'] })
  })

  test('no getter is read twice, whichever way the push goes', () => {
    for (const extra of [{}, { flag: true }]) {
      const reads = []
      const getter = (name, value) => ({
        get() {
          reads.push(name)
          return value
        },
        enumerable: true,
      })
      const message = Object.defineProperties({}, { event: getter('event', 'e'), value: getter('value', '1') })
      const error = Object.defineProperties({}, { message: getter('message', 'm'), name: getter('name', 'N') })
      const options = Object.defineProperties({ ...extra }, { delay: getter('delay', '1'), error: getter('error', error) })
      packPush('t', message, options)
      const fits = Object.keys(extra).length === 0
      expect(reads).toEqual(fits ? ['event', 'value', 'delay', 'error', 'message', 'name'] : ['event', 'value', 'delay', 'error'])
    }
  })

  test('a throwing getter reads as absent, and an option is then looked up again by name, as N-API does', () => {
    let calls = 0
    const options = Object.defineProperty({}, 'delay', {
      get() {
        calls++
        throw new Error('getter')
      },
      enumerable: true,
    })
    expect(packPush('t', { event: 'e', value: '1' }, options)).toBe('1:t1:e1:10:')
    expect(calls).toBe(2)
    const message = Object.defineProperty({}, 'event', {
      get() {
        throw new Error('getter')
      },
    })
    expect(packPush('t', message)).toEqual(['t', { event: undefined }, undefined])
  })
})
