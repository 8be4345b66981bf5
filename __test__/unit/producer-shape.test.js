// Which producer `queueListener(producer)` was handed, and how to publish through it
// (lib/producer-shape.js), on its own: no addon, no server. The producers here are plain objects
// shaped like each client's producer (the real clients, against a broker, are
// __test__/producers.test.js's). The answer is `[publish, isSend]`, or the refusal's text.
'use strict'

const producerShape = require('../../lib/producer-shape.js')

const USAGE = /^producer must be a connected kafkajs Producer or @confluentinc\/kafka-javascript KafkaJS Producer/

describe('kafkajs and the seed wrapper: their own method, unwrapped', () => {
  test('an object with send (kafkajs, Confluent KafkaJS API) is called as send: [send, true]', () => {
    const send = async () => {}
    const shaped = producerShape({ send, sendBatch() {}, connect() {} })
    expect(shaped).toEqual([send, true])
    expect(shaped[0]).toBe(send)
  })

  test('an object with produce (the seed wrapper) is called as produce: [produce, false]', () => {
    const produce = async () => {}
    const shaped = producerShape({ produce })
    expect(shaped[0]).toBe(produce)
    expect(shaped[1]).toBe(false)
  })

  test('produce wins over send, and a function with those methods counts as well', () => {
    const produce = () => {}
    const fn = Object.assign(() => {}, { produce, send: () => {} })
    expect(producerShape(fn)).toEqual([produce, false])
  })
})

describe('refusals: the text ERR_INVALID_ARG carries', () => {
  test('a Kafka client (producer() and consumer()) is told to pass its producer', () => {
    const shaped = producerShape({ producer() {}, consumer() {}, admin() {} })
    expect(shaped).toMatch(USAGE)
    expect(shaped).toMatch(/; got a Kafka client: pass kafka\.producer\(\) after connect\(\)$/)
  })

  test('an object or a function with neither produce nor send', () => {
    expect(producerShape({ produce: 'not a function', send: 1 })).toMatch(/; got an object with neither produce nor send$/)
    expect(producerShape(() => {})).toMatch(/; got a function with neither produce nor send$/)
  })

  test('a node-rdkafka-style producer without dr_cb cannot confirm deliveries', () => {
    const rdkafka = { produce() {}, setPollInterval() {}, getMetadata() {}, on() {}, _cb_configs: { event: {} } }
    expect(producerShape(rdkafka)).toMatch(/; got a node-rdkafka-style Producer without dr_cb: true, whose deliveries cannot be confirmed$/)
  })
})

test('each property is read once, and a getter that throws counts as absent', () => {
  const reads = {}
  const produce = () => {}
  const producer = {}
  for (const name of ['send', 'setPollInterval', 'producer', 'consumer']) {
    Object.defineProperty(producer, name, {
      get() {
        reads[name] = (reads[name] || 0) + 1
        throw new Error(`getter ${name}`)
      },
    })
  }
  Object.defineProperty(producer, 'produce', {
    get() {
      reads.produce = (reads.produce || 0) + 1
      // A second read would answer something else.
      return reads.produce === 1 ? produce : undefined
    },
  })
  expect(producerShape(producer)).toEqual([produce, false])
  expect(reads.produce).toBe(1)
  for (const count of Object.values(reads)) expect(count).toBe(1)
})

describe('node-rdkafka and the Confluent rdkafka API: produce, then the delivery report', () => {
  /** A producer shaped like node-rdkafka's with dr_cb: true; records produce and poll calls. */
  const rdkafka = ({ poll = true } = {}) => {
    const listeners = {}
    const producer = {
      produced: [],
      polls: 0,
      _cb_configs: { event: { delivery_cb: true } },
      produce(...args) {
        if (this.failWith) throw this.failWith
        this.produced.push(args)
      },
      setPollInterval() {},
      getMetadata() {},
      on(event, listener) {
        listeners[event] = listener
      },
      report(err, opaque) {
        listeners['delivery-report'](err, { opaque })
      },
    }
    if (poll) producer.poll = function () {
      this.polls++
    }
    return producer
  }

  test('publish(topic, key, value, headers) produces (topic, null, Buffer, key, timestamp, opaque, header list) and settles on its report', async () => {
    const producer = rdkafka()
    const [publish, isSend] = producerShape(producer)
    expect(isSend).toBe(false)
    const bin = Buffer.from([1, 2])
    const before = Date.now()
    const settled = jest.fn()
    const published = publish('orders', 'k1', 'v1', { a: '1', list: ['x', bin] }).then(settled)
    expect(producer.produced).toHaveLength(1)
    const [topic, partition, value, key, timestamp, opaque, headers] = producer.produced[0]
    expect([topic, partition, key]).toEqual(['orders', null, 'k1'])
    expect(Buffer.isBuffer(value) && value.toString()).toBe('v1')
    expect(timestamp).toBeGreaterThanOrEqual(before)
    expect(headers).toEqual([{ a: '1' }, { list: 'x' }, { list: bin }])
    // Polled at once, so the report can come.
    expect(producer.polls).toBe(1)
    await Promise.resolve()
    expect(settled).not.toHaveBeenCalled()
    // A report for another opaque settles nothing.
    producer.report(null, {})
    await Promise.resolve()
    expect(settled).not.toHaveBeenCalled()
    producer.report(null, opaque)
    await published
    expect(settled).toHaveBeenCalledTimes(1)
  })

  test('a report with an error rejects with it; a produce that throws rejects with that', async () => {
    const producer = rdkafka({ poll: false })
    const [publish] = producerShape(producer)
    const refused = publish('t', 'k', 'v', {})
    const error = new Error('MSG_SIZE_TOO_LARGE')
    producer.report(error, producer.produced[0][5])
    await expect(refused).rejects.toBe(error)
    producer.failWith = new Error('queue full')
    await expect(publish('t', 'k', 'v', {})).rejects.toBe(producer.failWith)
  })
})

describe('@platformatic/kafka: send({ messages }) with the topic on each message', () => {
  const platformatic = (options) => {
    const producer = {
      sent: [],
      send(request) {
        this.sent.push(request)
        return Promise.resolve('acked')
      },
      asStream() {},
      beginTransaction() {},
    }
    if (options) producer[Symbol('plt.kafka.base.options')] = options
    return producer
  }

  test('default serializers: key, value, header names and values as Buffers, headers as a Map', async () => {
    const producer = platformatic()
    const [publish, isSend] = producerShape(producer)
    expect(isSend).toBe(false)
    const bin = Buffer.from([0, 255])
    await expect(publish('orders', 'k', 'v', { a: '1', list: ['x', bin] })).resolves.toBe('acked')
    const [{ messages }] = producer.sent
    expect(messages).toHaveLength(1)
    const [{ topic, key, value, headers }] = messages
    expect([topic, key, value]).toEqual(['orders', Buffer.from('k'), Buffer.from('v')])
    expect(headers).toBeInstanceOf(Map)
    // Every pair, an array-valued header's elements included, even with equal Buffer-made names.
    expect([...headers]).toEqual([
      [Buffer.from('a'), Buffer.from('1')],
      [Buffer.from('list'), Buffer.from('x')],
      [Buffer.from('list'), bin],
    ])
  })

  test('string serializers: strings where a serializer is set, every pair kept under equal names', () => {
    const serializers = { key: String, value: String, headerKey: String, headerValue: String }
    const producer = platformatic({ serializers })
    const [publish] = producerShape(producer)
    publish('t', 'k', 'v', { list: ['x', Buffer.from('y')], one: '1' })
    const [{ key, value, headers }] = producer.sent[0].messages
    expect([key, value]).toEqual(['k', 'v'])
    expect(headers.size).toBe(3)
    expect([...headers]).toEqual([['list', 'x'], ['list', 'y'], ['one', '1']])
    expect([...headers.entries()]).toEqual([...headers])
  })

  test('a header Buffer that is not UTF-8, for a serializer taking strings, fails as INVALID_RECORD', () => {
    const producer = platformatic({ serializers: { headerValue: String } })
    const [publish] = producerShape(producer)
    let thrown
    try {
      publish('t', 'k', 'v', { bin: Buffer.from([0xff, 0xfe]) })
    } catch (e) {
      thrown = e
    }
    expect(thrown).toMatchObject({ type: 'INVALID_RECORD', message: expect.stringContaining('header "bin" is a Buffer that is not UTF-8 text') })
    expect(producer.sent).toEqual([])
  })

  test('a schema registry serializes every field: strings throughout', () => {
    const producer = platformatic({ registry: {} })
    const [publish] = producerShape(producer)
    publish('t', 'k', 'v', { h: Buffer.from('text') })
    const [{ key, value, headers }] = producer.sent[0].messages
    expect([key, value, [...headers]]).toEqual(['k', 'v', [['h', 'text']]])
  })

  test('a producer that also has sendBatch is kafkajs-like: its send, as send', () => {
    const producer = { ...platformatic(), sendBatch() {} }
    expect(producerShape(producer)).toEqual([producer.send, true])
  })
})
