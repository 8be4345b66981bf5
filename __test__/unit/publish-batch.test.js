// The JavaScript loop that calls a user's producer (src/publish_batch.js), on its own:
// pure JS, no addon, no Redis, no Kafka. The Rust side evaluates the file with `run_script`,
// calls the factory with the bound producer method, and calls `publishBatch` once per crossing.
const fs = require('fs')
const path = require('path')
const vm = require('vm')

const SOURCE = path.join(__dirname, '..', '..', 'src', 'publish_batch.js')
const factory = new vm.Script(fs.readFileSync(SOURCE, 'utf8'), { filename: SOURCE }).runInThisContext()

// Builds `publishBatch` around `publish`, recording every `done` call.
const setup = (publish, isSend = false) => {
  const outcomes = []
  const done = (...args) => outcomes.push(args)
  return { publishBatch: factory(publish, isSend, done), outcomes }
}

// Flattens messages the way the Rust side does: ids, header counts, and per message topic, key,
// value, then the header name/value pairs.
const batch = (messages) => {
  const ids = []
  const headerCounts = []
  const strings = []
  for (const { id, topic, key, value, headers = {} } of messages) {
    ids.push(id)
    const pairs = Object.entries(headers)
    headerCounts.push(pairs.length)
    strings.push(topic, key, value)
    for (const [name, v] of pairs) strings.push(name, v)
  }
  return [ids, headerCounts, strings]
}

const message = (id, extra = {}) => ({ id, topic: `topic-${id}`, key: `key-${id}`, value: `value-${id}`, ...extra })

// Lets every pending promise reaction run.
const settle = () => new Promise((resolve) => setImmediate(resolve))

test('the file evaluates, as a script, to the factory function', () => {
  expect(typeof factory).toBe('function')
  expect(factory.length).toBe(4)
  const { publishBatch } = setup(() => undefined)
  expect(typeof publishBatch).toBe('function')
})

describe('produce-style producer', () => {
  test('receives topic, key, value and headers built from the flat strings and header counts', async () => {
    const calls = []
    const { publishBatch, outcomes } = setup((...args) => {
      calls.push(args)
      return Promise.resolve()
    })
    publishBatch(
      ...batch([
        message(1, { headers: { 'retry-count': '2', origin: 'orders' } }),
        message(2),
        message(3, { headers: { only: 'one' } }),
      ]),
    )
    expect(calls).toEqual([
      ['topic-1', 'key-1', 'value-1', { 'retry-count': '2', origin: 'orders' }],
      ['topic-2', 'key-2', 'value-2', {}],
      ['topic-3', 'key-3', 'value-3', { only: 'one' }],
    ])
    await settle()
    expect(outcomes).toEqual([[1], [2], [3]])
  })
})

describe('send-style producer (kafkajs)', () => {
  test('receives { topic, messages: [{ key, value, headers }] }, one call per message', async () => {
    const calls = []
    const { publishBatch, outcomes } = setup((...args) => {
      calls.push(args)
      return Promise.resolve([{ topicName: 't', partition: 0 }])
    }, true)
    publishBatch(...batch([message(7, { headers: { a: '1', b: '2' } }), message(8)]))
    expect(calls).toEqual([
      [{ topic: 'topic-7', messages: [{ key: 'key-7', value: 'value-7', headers: { a: '1', b: '2' } }] }],
      [{ topic: 'topic-8', messages: [{ key: 'key-8', value: 'value-8', headers: {} }] }],
    ])
    await settle()
    expect(outcomes).toEqual([[7], [8]])
  })
})

describe('outcomes', () => {
  test('a resolved promise reports done(id) with no failure argument, only once it resolved', async () => {
    let resolve
    const { publishBatch, outcomes } = setup(() => new Promise((r) => (resolve = r)))
    publishBatch(...batch([message(5)]))
    await settle()
    expect(outcomes).toEqual([])
    resolve('ignored value')
    await settle()
    expect(outcomes).toEqual([[5]])
    expect(outcomes[0]).toHaveLength(1)
  })

  test('a rejected promise reports done(id, message) with the error message', async () => {
    const { publishBatch, outcomes } = setup(() => Promise.reject(new Error('broker down')))
    publishBatch(...batch([message(11)]))
    await settle()
    expect(outcomes).toEqual([[11, 'broker down']])
  })

  test('a rejection kafkajs typed as one retrying cannot fix reports its type as a third argument', async () => {
    // As kafkajs rejects a send: a KafkaJSNonRetriableError whose cause is the protocol error.
    const protocol = Object.assign(new Error('The request included a message larger than the max message size the server will accept'), { type: 'MESSAGE_TOO_LARGE', retriable: false })
    const wrapped = Object.assign(new Error(protocol.message), { retriable: false, cause: protocol })
    const transient = Object.assign(new Error('leader moved'), { type: 'NOT_LEADER_FOR_PARTITION', retriable: true })
    const hostile = { message: 'odd', get type() { throw new Error('no') } }
    const { publishBatch, outcomes } = setup((topic) => Promise.reject({ a: wrapped, b: protocol, c: transient, d: hostile }[topic]))
    publishBatch(...batch(['a', 'b', 'c', 'd'].map((topic, i) => ({ ...message(60 + i), topic }))))
    await settle()
    expect(outcomes).toEqual([
      [60, protocol.message, 'MESSAGE_TOO_LARGE'],
      [61, protocol.message, 'MESSAGE_TOO_LARGE'],
      [62, 'leader moved'],
      [63, 'odd'],
    ])
  })

  test('a rejection with a string reports that string', async () => {
    const { publishBatch, outcomes } = setup(() => Promise.reject('plain string'))
    publishBatch(...batch([message(12)]))
    await settle()
    expect(outcomes).toEqual([[12, 'plain string']])
  })

  test('a rejection with a Symbol reports a string and does not throw', async () => {
    const { publishBatch, outcomes } = setup(() => Promise.reject(Symbol('odd')))
    publishBatch(...batch([message(13)]))
    await settle()
    expect(outcomes).toEqual([[13, 'Symbol(odd)']])
  })

  test('a rejection with undefined or null reports a string', async () => {
    const values = [undefined, null]
    const { publishBatch, outcomes } = setup(() => Promise.reject(values.shift()))
    publishBatch(...batch([message(14), message(15)]))
    await settle()
    expect(outcomes).toEqual([
      [14, 'undefined'],
      [15, 'null'],
    ])
  })

  test('a rejection with an object whose message getter throws reports a fixed string', async () => {
    const hostile = {
      get message() {
        throw new Error('getter exploded')
      },
    }
    const { publishBatch, outcomes } = setup(() => Promise.reject(hostile))
    publishBatch(...batch([message(16)]))
    await settle()
    expect(outcomes).toHaveLength(1)
    expect(outcomes[0][0]).toBe(16)
    expect(typeof outcomes[0][1]).toBe('string')
    expect(outcomes[0][1]).not.toBe('')
  })

  test('a rejection with an object that cannot be turned into a string reports a string', async () => {
    const unprintable = Object.create(null) // no message, no toString
    const { publishBatch, outcomes } = setup(() => Promise.reject(unprintable))
    publishBatch(...batch([message(17)]))
    await settle()
    expect(outcomes).toHaveLength(1)
    expect(outcomes[0][0]).toBe(17)
    expect(typeof outcomes[0][1]).toBe('string')
  })

  test('a rejection with an object carrying a string message reports that message', async () => {
    const { publishBatch, outcomes } = setup(() => Promise.reject({ message: 'not an Error but close' }))
    publishBatch(...batch([message(18)]))
    await settle()
    expect(outcomes).toEqual([[18, 'not an Error but close']])
  })

  test('a producer that throws synchronously reports done(id, message) at once', () => {
    const { publishBatch, outcomes } = setup(() => {
      throw new Error('sync failure')
    })
    expect(() => publishBatch(...batch([message(21)]))).not.toThrow()
    expect(outcomes).toEqual([[21, 'sync failure']])
  })

  test('a producer that throws a non-Error value reports a string', () => {
    const { publishBatch, outcomes } = setup(() => {
      throw Symbol('thrown')
    })
    expect(() => publishBatch(...batch([message(22)]))).not.toThrow()
    expect(outcomes).toEqual([[22, 'Symbol(thrown)']])
  })

  test('a producer returning something not thenable reports done(id) immediately', () => {
    const returns = [undefined, 42, { some: 'record metadata' }, { then: 'not a function' }]
    const { publishBatch, outcomes } = setup(() => returns.shift())
    publishBatch(...batch([message(31), message(32), message(33), message(30)]))
    expect(outcomes).toEqual([[31], [32], [33], [30]])
  })

  test('a thenable that is not a native promise (Bluebird, a custom then) is awaited', () => {
    const settle = []
    const thenable = {
      then(resolve, reject) {
        settle.push({ resolve, reject })
      },
    }
    const { publishBatch, outcomes } = setup(() => thenable)
    publishBatch(...batch([message(34), message(35)]))
    expect(outcomes).toEqual([])
    settle[0].resolve()
    settle[1].reject(new Error('custom thenable failed'))
    expect(outcomes).toEqual([[34], [35, 'custom thenable failed']])
  })

  test('a thenable whose then getter throws reports done(id, message) and does not throw', () => {
    const hostile = {
      get then() {
        throw new Error('then getter exploded')
      },
    }
    const { publishBatch, outcomes } = setup(() => hostile)
    expect(() => publishBatch(...batch([message(36)]))).not.toThrow()
    expect(outcomes).toEqual([[36, 'then getter exploded']])
  })

  test('a returned promise whose then throws reports done(id, message) and does not throw', () => {
    const { publishBatch, outcomes } = setup(() => {
      const p = Promise.resolve()
      p.then = () => {
        throw new Error('then exploded')
      }
      return p
    })
    expect(() => publishBatch(...batch([message(41)]))).not.toThrow()
    expect(outcomes).toEqual([[41, 'then exploded']])
  })

  test('a returned promise whose then throws a hostile value reports a string and does not throw', () => {
    const { publishBatch, outcomes } = setup(() => {
      const p = Promise.resolve()
      p.then = () => {
        throw {
          get message() {
            throw new Error('again')
          },
        }
      }
      return p
    })
    expect(() => publishBatch(...batch([message(42)]))).not.toThrow()
    expect(outcomes).toHaveLength(1)
    expect(outcomes[0][0]).toBe(42)
    expect(typeof outcomes[0][1]).toBe('string')
  })
})

test('several messages in one batch each get their own outcome with the right id', async () => {
  const behaviour = {
    'key-101': () => Promise.resolve(),
    'key-102': () => Promise.reject(new Error('second failed')),
    'key-103': () => {
      throw new Error('third threw')
    },
    'key-104': () => 'not a promise',
    'key-105': () => new Promise((resolve) => setTimeout(resolve, 5)),
    'key-106': () => Promise.reject('sixth as a string'),
  }
  const seen = []
  const { publishBatch, outcomes } = setup((topic, key, value, headers) => {
    seen.push({ topic, key, value, headers })
    return behaviour[key]()
  })
  const messages = [101, 102, 103, 104, 105, 106].map((id) => message(id, { headers: { n: String(id) } }))
  expect(() => publishBatch(...batch(messages))).not.toThrow()
  expect(seen.map((m) => m.headers.n)).toEqual(['101', '102', '103', '104', '105', '106'])
  await new Promise((resolve) => setTimeout(resolve, 30))
  const byId = new Map(outcomes.map(([id, ...rest]) => [id, rest]))
  expect(outcomes).toHaveLength(6)
  expect(byId.get(101)).toEqual([])
  expect(byId.get(102)).toEqual(['second failed'])
  expect(byId.get(103)).toEqual(['third threw'])
  expect(byId.get(104)).toEqual([])
  expect(byId.get(105)).toEqual([])
  expect(byId.get(106)).toEqual(['sixth as a string'])
})

test('publishBatch never throws, whatever the producer does', async () => {
  const hostile = {
    get message() {
      throw new Error('no')
    },
  }
  const producers = [
    () => {
      throw hostile
    },
    () => {
      throw undefined
    },
    () => Promise.reject(hostile),
    () => {
      const p = Promise.reject(Symbol('x'))
      Promise.prototype.then.call(p, undefined, () => {}) // handled, so Node stays quiet
      p.then = () => {
        throw hostile
      }
      return p
    },
    () => new Proxy({}, { get: () => { throw new Error('proxy trap') } }),
    () => null,
  ]
  let id = 0
  for (const publish of producers) {
    for (const isSend of [false, true]) {
      const { publishBatch, outcomes } = setup(publish, isSend)
      id += 1
      expect(() => publishBatch(...batch([message(id)]))).not.toThrow()
      await settle()
      expect(outcomes).toHaveLength(1)
      expect(outcomes[0][0]).toBe(id)
      if (outcomes[0].length > 1) expect(typeof outcomes[0][1]).toBe('string')
    }
  }
})

test('an empty batch calls nothing', () => {
  const publish = jest.fn()
  const { publishBatch, outcomes } = setup(publish)
  publishBatch([], [], [])
  expect(publish).not.toHaveBeenCalled()
  expect(outcomes).toEqual([])
})

describe("the caller's own headers", () => {
  // extraCounts per message, then per header its name, value and whether it is an array element.
  const withExtra = (messages, extras) => {
    const args = batch(messages)
    const counts = []
    const names = []
    const values = []
    const arrays = []
    for (const list of extras) {
      counts.push(list.length)
      for (const [name, value, inArray = false] of list) {
        names.push(name)
        values.push(value)
        arrays.push(inArray)
      }
    }
    return [...args, counts, names, values, arrays]
  }

  test('follow the own headers: strings, Buffers, arrays regrouped, __proto__ as a plain key', () => {
    const calls = []
    const { publishBatch } = setup((...args) => calls.push(args))
    const bin = Buffer.from([0, 255])
    publishBatch(
      ...withExtra(
        [message(1, { headers: { delay: '2' } }), message(2), message(3)],
        [[['tenant', 'acme'], ['bin', bin], ['list', 'a', true], ['list', bin, true], ['__proto__', 'p']], [], [['one', 'x', true]]],
      ),
    )
    const headers = calls[0][3]
    expect(Object.getOwnPropertyNames(headers)).toEqual(['delay', 'tenant', 'bin', 'list', '__proto__'])
    expect([headers.delay, headers.tenant, headers.bin, headers.list, headers['__proto__']]).toEqual(['2', 'acme', bin, ['a', bin], 'p'])
    expect(headers.bin).toBe(bin)
    // Still a plain object (its prototype is the script's Object.prototype, not jest's).
    expect(Object.getPrototypeOf(Object.getPrototypeOf(headers))).toBeNull()
    expect(typeof headers.hasOwnProperty).toBe('function')
    expect(calls[1][3]).toEqual({})
    expect(calls[2][3]).toEqual({ one: ['x'] })
  })

  test('a message with trace headers is published inside the extracted context', () => {
    // The OpenTelemetry packages as the loop loads them (Node's require, not jest's registry, so
    // both see the same global registration).
    const realRequire = vm.runInThisContext("process.getBuiltinModule('module')").createRequire(SOURCE)
    const api = realRequire('@opentelemetry/api')
    const { W3CTraceContextPropagator } = realRequire('@opentelemetry/core')
    const { AsyncLocalStorageContextManager } = realRequire('@opentelemetry/context-async-hooks')
    api.propagation.setGlobalPropagator(new W3CTraceContextPropagator())
    api.context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable())
    try {
      const seen = []
      const publish = () => seen.push(api.trace.getSpanContext(api.context.active()))
      const publishBatch = factory(publish, false, () => {}, require('url').pathToFileURL(SOURCE).href)
      const traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'
      publishBatch(...withExtra([message(1), message(2), message(3)], [[['traceparent', Buffer.from(traceparent)]], [['tenant', 'x']], []]))
      expect(seen[0]).toMatchObject({ traceId: '0af7651916cd43dd8448eb211c80319c', spanId: 'b7ad6b7169203331', isRemote: true })
      expect(seen[1]).toBeUndefined()
      expect(seen[2]).toBeUndefined()
      // Without a place to resolve the package from, nothing is extracted.
      const without = []
      factory(() => without.push(api.trace.getSpanContext(api.context.active())), false, () => {}, '')(
        ...withExtra([message(4)], [[['traceparent', traceparent]]]),
      )
      expect(without).toEqual([undefined])
    } finally {
      api.propagation.disable()
      api.context.disable()
    }
  })
})
