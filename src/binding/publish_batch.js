// The per-batch loop calling a user's JavaScript producer once per message, reporting each
// outcome through `done(id, failure?, permanentType?)`: the third argument only for a rejection
// that kafkajs typed as one retrying cannot fix (see PERMANENT below).
//
// Loaded by src/binding/js_publisher.rs with `include_str!` and evaluated once per JS producer
// with napi's `env.run_script`: this file is a script (not a module) whose value is the
// parenthesised factory below, `(publish, isSend, done) => publishBatch`. Keep that
// shape.
//
// It must never throw: it runs as a threadsafe-function call, and an exception escaping that
// call is Node's uncaught exception. So every touch of user code (the call, `then`, reading an
// error's message) is guarded.
(function (publish, isSend, done) {
  'use strict'
  const describe = (e) => {
    try {
      if (e !== null && typeof e === 'object' && typeof e.message === 'string') return e.message
      return String(e)
    } catch {
      return 'the producer failed with a value that cannot be printed'
    }
  }
  // kafkajs's error types (a KafkaJSProtocolError's `type`, kept on the `cause` of the
  // KafkaJSNonRetriableError / KafkaJSNumberOfRetriesExceeded a send rejects with) that mean the
  // broker refuses this message or topic for good, as src/publisher.rs `is_permanent` classifies
  // librdkafka's codes. Any other rejection (no type, a producer that is not kafkajs) is
  // transient.
  const PERMANENT = [
    'MESSAGE_TOO_LARGE',
    'INVALID_MESSAGE_SIZE',
    'RECORD_LIST_TOO_LARGE',
    'INVALID_RECORD',
    'UNKNOWN_TOPIC_OR_PARTITION',
    'TOPIC_AUTHORIZATION_FAILED',
    'CLUSTER_AUTHORIZATION_FAILED',
    'INVALID_TOPIC_EXCEPTION',
    'POLICY_VIOLATION',
  ]
  const permanentType = (e) => {
    try {
      for (let depth = 0; depth < 5 && e !== null && typeof e === 'object'; depth++) {
        const type = e.type
        if (typeof type === 'string' && PERMANENT.includes(type)) return type
        e = e.cause
      }
    } catch {
      // a getter that throws: not recognisably permanent
    }
    return undefined
  }
  const failed = (id, e) => {
    const type = permanentType(e)
    if (type === undefined) done(id, describe(e))
    else done(id, describe(e), type)
  }
  const one = (id, topic, key, value, headers) => {
    let returned
    try {
      returned = isSend
        ? publish({ topic, messages: [{ key, value, headers }] })
        : publish(topic, key, value, headers)
    } catch (e) {
      failed(id, e)
      return
    }
    // Any thenable is awaited (a native promise, Bluebird, a custom `then`); only a return
    // that is not thenable counts as published at once. `then` is read once: a getter may
    // answer differently, or throw, the second time.
    try {
      const then =
        returned !== null && (typeof returned === 'object' || typeof returned === 'function')
          ? returned.then
          : undefined
      if (typeof then !== 'function') {
        done(id)
        return
      }
      then.call(returned, () => done(id), (e) => failed(id, e))
    } catch (e) {
      done(id, describe(e))
    }
  }
  return function publishBatch(ids, headerCounts, strings) {
    let at = 0
    for (let i = 0; i < ids.length; i++) {
      const topic = strings[at]
      const key = strings[at + 1]
      const value = strings[at + 2]
      at += 3
      const headers = {}
      for (let h = 0; h < headerCounts[i]; h++) {
        headers[strings[at]] = strings[at + 1]
        at += 2
      }
      one(ids[i], topic, key, value, headers)
    }
  }
})
