// The per-batch loop calling a user's JavaScript producer once per message, reporting each
// outcome through `done(id, failure?)`.
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
  const one = (id, topic, key, value, headers) => {
    let returned
    try {
      returned = isSend
        ? publish({ topic, messages: [{ key, value, headers }] })
        : publish(topic, key, value, headers)
    } catch (e) {
      done(id, describe(e))
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
      then.call(returned, () => done(id), (e) => done(id, describe(e)))
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
