// handleInOrder: the pattern of an ordered consumer around the user's handler, in JavaScript
// because it awaits the handler. It only converts the kafkajs message and calls the class's own
// methods; what is decided (blocked or not, where a failure goes) is decided in Redis by
// takeTurn and endTurn (crates/engine/src/store/ordered.rs).
//
// `(retry, topic, message, handler) => Promise<outcome>`: lib/index.js hands it to the native
// module (installHelpers), and `KafkaRetry#handleInOrder` (src/ordered.rs) calls it with itself
// as `retry`.
'use strict'

const text = (value) => {
  if (value === undefined || value === null) return ''
  return Buffer.isBuffer(value) ? value.toString('utf8') : String(value)
}

// `more(error)`, when given (lib/retrying.js), returns retry options to send along: `error` the
// handler's error, `undefined` for the turn and a success.
module.exports = async function handleInOrder(retry, topic, message, handler, more) {
  if (message === null || typeof message !== 'object') {
    const error = new TypeError(`message must be the kafkajs message eachMessage receives, got ${message === null ? 'null' : typeof message}`)
    error.code = 'ERR_INVALID_ARG'
    throw error
  }
  if (typeof handler !== 'function') {
    const error = new TypeError(`handler must be a function, got ${handler === null ? 'null' : typeof handler}`)
    error.code = 'ERR_INVALID_ARG'
    throw error
  }
  const stored = { event: text(message.key), value: text(message.value) }
  // The retry options, the trace context (KafkaRetry.headers' default) and the token of an
  // ordered retry: what a retry of this message must carry.
  const headers = retry.constructor.headers(message.headers, ['retryOrder'])
  const options = more ? { ...headers, ...more(undefined) } : headers
  const failed = (error) => ({ ...headers, ...(more ? more(error) : {}), error })
  if (message.key === undefined || message.key === null) {
    // No key, no order to keep (Kafka spreads keyless messages over partitions): a plain retry.
    try {
      await handler(message)
    } catch (error) {
      await retry.pushToQueue(topic, stored, failed(error))
      return 'retried'
    }
    return 'handled'
  }
  const turn = await retry.takeTurn(topic, stored, options)
  if (turn === 'parked' || turn === 'duplicate') return turn
  try {
    await handler(message)
  } catch (error) {
    return retry.endTurn(topic, stored, failed(error), true)
  }
  return retry.endTurn(topic, stored, options, false)
}
