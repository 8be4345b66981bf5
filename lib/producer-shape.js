// Which producer `queueListener(producer)` was handed, and how to publish one message through it.
//
// `(producer) => [publish, isSend] | refusal`: lib/index.js hands it to the native module
// (installHelpers), and src/producer.rs calls it once per `queueListener(producer)`. `publish`
// goes to publish-batch.js: with `isSend`
// it is called as kafkajs's `send({ topic, messages: [{ key, value, headers }] })`, else as
// `publish(topic, key, value, headers)` (strings; header values strings or Buffers, or arrays of
// them) returning a promise that settles once the broker acknowledged the message. A string is
// the refusal's message: the caller throws it as ERR_INVALID_ARG.
//
// It must never throw: each property of the producer is read once, guarded (a getter may throw,
// or answer differently the second time).
'use strict'

module.exports = function producerShape(producer) {
  const read = (name) => {
    try {
      return producer[name]
    } catch {
      return undefined
    }
  }
  const methods = {}
  const method = (name) => {
    if (!(name in methods)) {
      const v = read(name)
      methods[name] = typeof v === 'function' ? v : undefined
    }
    return methods[name]
  }
  const buffer = (v) => (Buffer.isBuffer(v) ? v : Buffer.from(String(v)))
  // Which fields a @platformatic/kafka Producer serializes: `{ key, value, headerKey, headerValue }`,
  // true where a serializer (its own `serializers` option, or a schema registry's) is applied.
  // The producer keeps them private; its options, held under the symbol it names
  // 'plt.kafka.base.options', are where they can be read. Not found: none (the defaults).
  const platformaticSerializers = () => {
    const fields = { key: false, value: false, headerKey: false, headerValue: false }
    try {
      const symbol = Object.getOwnPropertySymbols(producer).find((s) => s.description === 'plt.kafka.base.options')
      const options = symbol === undefined ? undefined : producer[symbol]
      if (options === null || typeof options !== 'object') return fields
      if (options.registry) return { key: true, value: true, headerKey: true, headerValue: true }
      const serializers = options.serializers
      if (serializers === null || typeof serializers !== 'object') return fields
      for (const field of Object.keys(fields)) fields[field] = typeof serializers[field] === 'function'
    } catch {
      // a getter that throws: the defaults
    }
    return fields
  }
  // The headers of a @platformatic/kafka message: a Map, one entry per value, so an array-valued
  // header keeps every element. Buffer names are distinct keys; string names (a headerKey
  // serializer) would keep one value per name, so the Map iterates every pair (iterating it is
  // all the producer does with it: it serializes each pair into a Map of Buffers).
  const headerMap = (pairs) => {
    const map = new Map(pairs)
    if (map.size === pairs.length) return map
    const iterate = () => pairs[Symbol.iterator]()
    Object.defineProperties(map, {
      [Symbol.iterator]: { value: iterate },
      entries: { value: iterate },
      size: { value: pairs.length },
    })
    return map
  }
  // A header value for a serializer that takes strings: a Buffer as the text its bytes are, when
  // they are UTF-8 (encoding the text gives the same bytes back); other bytes cannot pass through
  // such a serializer, and the publish fails as the broker's INVALID_RECORD would (an error
  // retrying cannot fix, so the message is dead-lettered with this reason at maxPublishFailures).
  const utf8 = (v, name) => {
    if (!Buffer.isBuffer(v)) return String(v)
    const decoded = v.toString('utf8')
    if (Buffer.from(decoded, 'utf8').equals(v)) return decoded
    const error = new Error(
      `header ${JSON.stringify(name)} is a Buffer that is not UTF-8 text, and this @platformatic/kafka Producer's headerValue serializer takes strings`,
    )
    error.type = 'INVALID_RECORD'
    throw error
  }
  const USAGE =
    'producer must be a connected kafkajs Producer or @confluentinc/kafka-javascript KafkaJS Producer ' +
    '(send({ topic, messages })), a @platformatic/kafka Producer (send({ messages })), a connected ' +
    'node-rdkafka or @confluentinc/kafka-javascript Producer created with dr_cb: true ' +
    '(produce(topic, partition, value, key, timestamp, opaque, headers)), an object with ' +
    'produce(topic, key, value, headers) returning a promise, or null for the package\'s own producer'

  // node-rdkafka and @confluentinc/kafka-javascript's rdkafka API: produce(topic, partition,
  // value, key, timestamp, opaque, headers) only queues the message; the broker's answer comes
  // as a 'delivery-report' event (dr_cb), matched here by the opaque passed in.
  if (method('produce') && method('setPollInterval') && method('getMetadata') && method('on')) {
    // The constructor moves dr_cb / dr_msg_cb into _cb_configs.event.delivery_cb (node-rdkafka
    // 3, and the rdkafka API of @confluentinc/kafka-javascript, which forked it).
    const callbacks = read('_cb_configs')
    const events = callbacks !== null && typeof callbacks === 'object' ? callbacks.event : undefined
    if (events !== null && typeof events === 'object' && !events.delivery_cb) {
      return `${USAGE}; got a node-rdkafka-style Producer without dr_cb: true, whose deliveries cannot be confirmed`
    }
    const produce = method('produce')
    const poll = method('poll')
    const pending = new Map()
    // Delivery reports are emitted only from poll(). A producer nobody polls (no setPollInterval,
    // as services that poll themselves or not at all create it) would never report: its
    // publishes would stay pending and go back on the schedule at close(), to be published a
    // second time. So this polls every POLL_MS while deliveries are pending, and stops when none
    // are. Unref'd: the listener keeps Node alive while it runs. A second poller beside the
    // user's own interval is harmless (poll takes what is there), and Confluent's client
    // ignores poll() while it polls in the background (setPollInBackground).
    const POLL_MS = 10
    let poller
    const pollOnce = () => {
      try {
        poll.call(producer)
      } catch {
        // not connected (yet, or any more): its reports come with the next poll after connect
      }
    }
    const polling = (on) => {
      if (!poll) return
      if (on && poller === undefined) {
        poller = setInterval(pollOnce, POLL_MS)
        if (typeof poller.unref === 'function') poller.unref()
      } else if (!on && poller !== undefined) {
        clearInterval(poller)
        poller = undefined
      }
    }
    method('on').call(producer, 'delivery-report', (err, report) => {
      const opaque = report && report.opaque
      const settle = pending.get(opaque)
      if (!settle) return
      pending.delete(opaque)
      if (pending.size === 0) polling(false)
      if (err) settle.reject(err)
      else settle.resolve()
    })
    const publish = (topic, key, value, headers) =>
      new Promise((resolve, reject) => {
        const opaque = { topic }
        pending.set(opaque, { resolve, reject })
        const list = []
        for (const [name, v] of Object.entries(headers)) {
          for (const one of Array.isArray(v) ? v : [v]) list.push({ [name]: one })
        }
        try {
          produce.call(producer, topic, null, buffer(value), key, Date.now(), opaque, list)
        } catch (e) {
          pending.delete(opaque)
          if (pending.size === 0) polling(false)
          reject(e)
          return
        }
        polling(true)
        if (poll) pollOnce()
      })
    return [publish, false]
  }
  // The seed's wrapper, called exactly as the original class called it.
  if (method('produce')) return [method('produce'), false]
  const send = method('send')
  // @platformatic/kafka: the topic on each message; key, value, header names and header values
  // in the form its serializers take. Its default ones pass them through unchanged, so they must
  // be Buffers (a string fails the request); `stringSerializers` take strings only (a Buffer
  // becomes null: a null header name is refused by the broker as INVALID_RECORD, a null key or
  // value is another message). So per field: a string where the producer has a serializer for
  // it, else a Buffer.
  if (send && method('asStream') && method('beginTransaction') && !method('sendBatch')) {
    const serializes = platformaticSerializers()
    const asKey = serializes.key ? String : buffer
    const asValue = serializes.value ? String : buffer
    const asName = serializes.headerKey ? String : buffer
    const asHeader = serializes.headerValue ? utf8 : buffer
    const publish = (topic, key, value, headers) => {
      const pairs = []
      for (const [name, v] of Object.entries(headers)) {
        for (const one of Array.isArray(v) ? v : [v]) pairs.push([asName(name), asHeader(one, name)])
      }
      return send.call(producer, { messages: [{ topic, key: asKey(key), value: asValue(value), headers: headerMap(pairs) }] })
    }
    return [publish, false]
  }
  // kafkajs, and @confluentinc/kafka-javascript's KafkaJS API (the same send): any send.
  if (send) return [send, true]
  if (method('producer') && method('consumer')) {
    return `${USAGE}; got a Kafka client: pass kafka.producer() after connect()`
  }
  return `${USAGE}; got ${typeof producer === 'function' ? 'a function' : 'an object'} with neither produce nor send`
}
