// The per-batch loop calling a user's JavaScript producer once per message, reporting each
// outcome through `done(id, failure?, permanentType?)`: the third argument only for a rejection
// that kafkajs typed as one retrying cannot fix (see PERMANENT below).
//
// A factory, `(publish, isSend, done, base) => publishBatch`: lib/index.js hands it to the
// native module (installHelpers), and src/js_publisher.rs calls it once per JS producer, then
// `publishBatch` once per crossing. `base` is the addon's file URL, where `@opentelemetry/api` is
// resolved from (Node's own require, not a bundler's or jest's registry).
//
// It must never throw: it runs as a threadsafe-function call, and an exception escaping that
// call is Node's uncaught exception. So every touch of user code (the call, `then`, reading an
// error's message) is guarded.
'use strict'

module.exports = function publishBatchFactory(publish, isSend, done, base) {
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
  // broker refuses this message or topic for good, as crates/engine/src/publisher/errors.rs `is_permanent` classifies
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
  // Trace context: when `@opentelemetry/api` is installed (an optional peer dependency), a
  // message that carries W3C trace headers is published inside the context they describe, so
  // an instrumented producer's span belongs to the original trace instead of starting a new one
  // from the listener's timer. Resolved once, the first time such a message is published;
  // nothing is loaded when it is not installed (or on a Node without process.getBuiltinModule).
  let otel // undefined: not looked up yet; null: not available
  const api = () => {
    if (otel === undefined) {
      otel = null
      try {
        const getBuiltin = typeof process === 'object' && process ? process.getBuiltinModule : undefined
        if (typeof getBuiltin === 'function' && base) {
          const loaded = getBuiltin('module').createRequire(base)('@opentelemetry/api')
          if (loaded && loaded.propagation && loaded.context) otel = loaded
        }
      } catch {
        otel = null
      }
    }
    return otel
  }
  const text = (v) => (typeof v === 'string' ? v : v === null || v === undefined ? undefined : String(v))
  const getter = {
    keys: (carrier) => Object.keys(carrier),
    get: (carrier, key) => {
      const v = carrier[key]
      return Array.isArray(v) ? v.map(text) : text(v)
    },
  }
  const TRACE_HEADERS = ['traceparent', 'tracestate', 'baggage']
  // The context to publish `headers` in; undefined when there is none to continue.
  const traceContext = (headers) => {
    try {
      if (!TRACE_HEADERS.some((name) => Object.prototype.hasOwnProperty.call(headers, name))) return undefined
      const otelApi = api()
      if (!otelApi) return undefined
      return { api: otelApi, context: otelApi.propagation.extract(otelApi.ROOT_CONTEXT, headers, getter) }
    } catch {
      return undefined
    }
  }
  const one = (id, topic, key, value, headers, traced) => {
    let returned
    try {
      const call = () =>
        isSend ? publish({ topic, messages: [{ key, value, headers }] }) : publish(topic, key, value, headers)
      const trace = traced ? traceContext(headers) : undefined
      returned = trace ? trace.api.context.with(trace.context, call) : call()
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
  // A caller's header may be named `__proto__`: defined, never assigned (which would set the
  // object's prototype).
  const set = (headers, name, value) =>
    Object.defineProperty(headers, name, { value, enumerable: true, writable: true, configurable: true })
  // extraCounts: per message, how many of the caller's own headers follow (empty when no
  // message of the batch has any); extraNames, extraValues (string or Buffer) and extraArrays
  // (an element of an array value) per header.
  return function publishBatch(ids, headerCounts, strings, extraCounts, extraNames, extraValues, extraArrays) {
    let at = 0
    let extraAt = 0
    const anyExtra = extraCounts !== undefined && extraCounts.length > 0
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
      const extra = anyExtra ? extraCounts[i] : 0
      for (let h = 0; h < extra; h++, extraAt++) {
        const name = extraNames[extraAt]
        const headerValue = extraValues[extraAt]
        if (!extraArrays[extraAt]) set(headers, name, headerValue)
        else if (Array.isArray(headers[name]) && Object.prototype.hasOwnProperty.call(headers, name))
          headers[name].push(headerValue)
        else set(headers, name, [headerValue])
      }
      one(ids[i], topic, key, value, headers, extra > 0)
    }
  }
}
