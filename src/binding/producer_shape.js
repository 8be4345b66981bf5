// Which producer `queueListener(producer)` was handed, and how to publish one message through it.
//
// Loaded by src/binding/producer.rs with `include_str!` and evaluated with napi's
// `env.run_script`: this file is a script whose value is the parenthesised function below,
// `(producer) => [publish, isSend] | refusal`. `publish` goes to publish_batch.js: with `isSend`
// it is called as kafkajs's `send({ topic, messages: [{ key, value, headers }] })`, else as
// `publish(topic, key, value, headers)` (strings; header values strings or Buffers, or arrays of
// them) returning a promise that settles once the broker acknowledged the message. A string is
// the refusal's message: the caller throws it as ERR_INVALID_ARG.
//
// It must never throw: each property of the producer is read once, guarded (a getter may throw,
// or answer differently the second time).
(function (producer) {
  'use strict'
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
    method('on').call(producer, 'delivery-report', (err, report) => {
      const opaque = report && report.opaque
      const settle = pending.get(opaque)
      if (!settle) return
      pending.delete(opaque)
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
          if (poll) poll.call(producer)
        } catch (e) {
          pending.delete(opaque)
          reject(e)
        }
      })
    return [publish, false]
  }
  // The seed's wrapper, called exactly as the original class called it.
  if (method('produce')) return [method('produce'), false]
  const send = method('send')
  // @platformatic/kafka: the topic on each message, and Buffers (its default serializers pass
  // keys, values and headers through unchanged; its string serializers take Buffers too).
  if (send && method('asStream') && method('beginTransaction') && !method('sendBatch')) {
    const publish = (topic, key, value, headers) => {
      // A Map: one entry per value, so an array-valued header keeps every element.
      const map = new Map()
      for (const [name, v] of Object.entries(headers)) {
        for (const one of Array.isArray(v) ? v : [v]) map.set(Buffer.from(name), buffer(one))
      }
      return send.call(producer, { messages: [{ topic, key: buffer(key), value: buffer(value), headers: map }] })
    }
    return [publish, false]
  }
  // kafkajs, and @confluentinc/kafka-javascript's KafkaJS API (the same send): any send.
  if (send) return [send, true]
  if (method('producer') && method('consumer')) {
    return `${USAGE}; got a Kafka client: pass kafka.producer() after connect()`
  }
  return `${USAGE}; got ${typeof producer === 'function' ? 'a function' : 'an object'} with neither produce nor send`
})
