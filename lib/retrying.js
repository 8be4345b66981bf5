// retry.retrying(handler, options) and retry.retryingBatch(handler, options): a consumer's
// `eachMessage` / `eachBatch` (kafkajs, or Confluent's KafkaJS API) that calls the handler and
// sends what it throws to the schedule (pushToQueue / pushMany) or, when retrying cannot help, to
// the dead letters (pushToDlq). lib/index.js puts both on KafkaRetry.prototype (the exported class's).
//
// Nothing is lost and nothing crashes the consumer: a failure whose push to Redis fails rejects,
// so the consumer does not commit the offset and the message is delivered again; a message that
// cannot be retried (its value is not JSON text) is dead-lettered with the reason.
'use strict'

const { isUtf8 } = require('buffer')
const { inspect } = require('util')
const handleInOrder = require('./handle-in-order.js')

const OPTION_KEYS = ['delay', 'maxRetry', 'backoff', 'isPermanent', 'dlqName', 'ordered', 'keepHeaders']

function invalid(message) {
  const error = new TypeError(message)
  error.code = 'ERR_INVALID_ARG'
  return error
}

const describe = (value) => (value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value)

/** A retry count or delay as pushToQueue takes it: a number or its text, 0 or more. */
function amount(options, key) {
  const value = options[key]
  if (value === undefined) return undefined
  const number = typeof value === 'string' && value.trim() !== '' ? Number(value) : value
  if (typeof number !== 'number' || !Number.isFinite(number) || number < 0) {
    throw invalid(`options.${key} must be a number of 0 or more (or its text), got ${inspect(value)}`)
  }
  return value
}

/** The backoff policy as docs/retry-policies.md states it, checked here so a bad one fails at setup. */
function readBackoff(backoff) {
  if (backoff === undefined) return undefined
  if (backoff === null || typeof backoff !== 'object') throw invalid(`options.backoff must be an object like { type: 'exponential' }, got ${describe(backoff)}`)
  const { type = 'fixed', multiplier = 2, maxDelayMs, delaysMs, jitter = 'none' } = backoff
  if (!['fixed', 'exponential', 'list'].includes(type)) throw invalid(`options.backoff.type must be 'fixed', 'exponential' or 'list', got ${inspect(type)}`)
  if (!['none', 'full', 'equal'].includes(jitter)) throw invalid(`options.backoff.jitter must be 'full', 'equal' or 'none', got ${inspect(jitter)}`)
  if (typeof multiplier !== 'number' || !(multiplier >= 1)) throw invalid(`options.backoff.multiplier must be a number of 1 or more, got ${inspect(multiplier)}`)
  if (maxDelayMs !== undefined && (typeof maxDelayMs !== 'number' || !(maxDelayMs >= 0))) throw invalid(`options.backoff.maxDelayMs must be a number of 0 or more, got ${inspect(maxDelayMs)}`)
  if (type === 'list' && (!Array.isArray(delaysMs) || delaysMs.length === 0 || !delaysMs.every((d) => typeof d === 'number' && d >= 0))) {
    throw invalid(`options.backoff.delaysMs must be a non-empty array of numbers of 0 or more, got ${inspect(delaysMs)}`)
  }
  return { type, multiplier, maxDelayMs, delaysMs, jitter }
}

/**
 * The options of `retrying`/`retryingBatch`, checked once when the consumer is set up: an unknown
 * key (a typo) or a bad value is ERR_INVALID_ARG then, not at the first failure.
 */
function readOptions(options) {
  if (options === undefined || options === null) options = {}
  if (typeof options !== 'object' || Array.isArray(options)) throw invalid(`options must be an object, got ${describe(options)}`)
  const unknown = Object.keys(options).filter((key) => !OPTION_KEYS.includes(key))
  if (unknown.length) throw invalid(`options has unknown key ${inspect(unknown[0])}: the keys are ${OPTION_KEYS.join(', ')}`)
  const { isPermanent, dlqName, ordered = false, keepHeaders } = options
  if (isPermanent !== undefined && typeof isPermanent !== 'function') throw invalid(`options.isPermanent must be a function (err) => boolean, got ${describe(isPermanent)}`)
  if (dlqName !== undefined && (typeof dlqName !== 'string' || dlqName === '')) throw invalid(`options.dlqName must be a non-empty string, got ${inspect(dlqName)}`)
  if (typeof ordered !== 'boolean') throw invalid(`options.ordered must be a boolean, got ${describe(ordered)}`)
  return { delay: amount(options, 'delay'), maxRetry: amount(options, 'maxRetry'), backoff: readBackoff(options.backoff), isPermanent, dlqName, ordered, keepHeaders }
}

function readHandler(handler) {
  if (typeof handler !== 'function') throw invalid(`handler must be a function (payload) => Promise, got ${describe(handler)}`)
  return handler
}

/**
 * The delay in minutes of attempt `attempt` (1 for the first retry) under `backoff`, from the base
 * `delay` (minutes): the same policies as config `backoff`, computed here because a push carries
 * a delay, not a policy.
 */
function backoffDelay(backoff, delay, attempt, random = Math.random) {
  const baseMs = Number(delay) * 60000
  let ms
  if (backoff.type === 'list') ms = backoff.delaysMs[Math.min(attempt, backoff.delaysMs.length) - 1]
  else if (backoff.type === 'exponential') ms = baseMs * backoff.multiplier ** (attempt - 1)
  else ms = baseMs
  if (backoff.maxDelayMs !== undefined) ms = Math.min(ms, backoff.maxDelayMs)
  if (backoff.jitter === 'full') ms = random() * ms
  else if (backoff.jitter === 'equal') ms = ms / 2 + (random() * ms) / 2
  return Math.round(ms) / 60000
}

/** What a handler threw, as an Error (a thrown string or object becomes one, so it is recorded). */
function asError(thrown) {
  if (thrown instanceof Error) return thrown
  return new Error(typeof thrown === 'string' ? thrown : inspect(thrown))
}

/**
 * The consumed message as a retry carries it: `event` its key as UTF-8 text ('' for a null key,
 * as handleInOrder does), `value` its value's text. `reason` says why it cannot be retried: a
 * retry carries JSON text, so a null value (a tombstone), bytes that are not UTF-8 or text that is
 * not JSON are dead-lettered instead; `base64` then keeps bytes that are not UTF-8.
 */
function readMessage(message) {
  const key = message.key
  const event = key === undefined || key === null ? '' : Buffer.isBuffer(key) ? key.toString('utf8') : String(key)
  const raw = message.value
  if (raw === undefined || raw === null) return { event, value: null, reason: 'the message has no value (a tombstone)' }
  if (Buffer.isBuffer(raw) && !isUtf8(raw)) return { event, value: null, base64: raw.toString('base64'), reason: 'the message value is not UTF-8 text' }
  const value = Buffer.isBuffer(raw) ? raw.toString('utf8') : String(raw)
  try {
    JSON.parse(value)
  } catch {
    return { event, value, reason: 'the message value is not JSON text' }
  }
  return { event, value }
}

/** The retry options of a failed message: its headers (KafkaRetry.headers), the options given, the error. */
function pushOptions(KafkaRetry, message, opts, error) {
  const options = KafkaRetry.headers(message.headers, opts.keepHeaders)
  if (opts.maxRetry !== undefined) options.maxRetry = opts.maxRetry
  if (opts.delay !== undefined) options.delay = opts.delay
  if (opts.backoff) options.delay = backoffDelay(opts.backoff, opts.delay !== undefined ? opts.delay : 2, Number(options.retryCount || 0) + 1)
  if (error) options.error = error
  return options
}

/** Whether `isPermanent` marks the error; an isPermanent that throws counts as "no" (retries end in the dead letters anyway). */
function permanent(opts, error) {
  if (!opts.isPermanent) return false
  try {
    return Boolean(opts.isPermanent(error))
  } catch {
    return false
  }
}

/**
 * Where a failed message goes: `{ retry: { topic, message, options } }` (a pushMany item) or
 * `{ deadLetter: { dlqName, entry } }` (pushToDlq's arguments, a record as the listener writes one).
 */
function failure(retry, opts, topic, message, thrown) {
  const error = asError(thrown)
  const read = readMessage(message)
  const options = pushOptions(retry.constructor, message, opts, null)
  let reason = null
  if (read.reason) reason = `${read.reason}, so it cannot be retried; the handler failed with: ${error.message}`
  else if (permanent(opts, error)) reason = error.message
  if (reason === null) return { retry: { topic, message: { event: read.event, value: read.value }, options: { ...options, error } } }
  const now = Date.now()
  const entry = {
    topic,
    event: read.event,
    value: read.value,
    options,
    error: { name: error.name, message: reason },
    firstFailedAt: Number(options.firstFailedAt) || now,
    diedAt: now,
    keyPrefix: retry.keyPrefix,
  }
  if (read.base64 !== undefined) entry.valueBase64 = read.base64
  return { deadLetter: { dlqName: opts.dlqName || retry.dlqName, entry } }
}

/**
 * Stores what `failure` decided, the retries of a batch with one pushMany; rejects when Redis did
 * not take them (the consumer then does not commit, and the messages are delivered again).
 */
async function store(retry, failures, batch) {
  const items = failures.filter((f) => f.retry).map((f) => f.retry)
  const one = items.length === 1 && !batch
  await Promise.all([
    one ? retry.pushToQueue(items[0].topic, items[0].message, items[0].options) : items.length ? retry.pushMany(items) : null,
    ...failures.filter((f) => f.deadLetter).map(({ deadLetter }) => retry.pushToDlq(deadLetter.dlqName, deadLetter.entry)),
  ])
}

/** One message in ordered mode: handleInOrder with these options (a permanent error: maxRetry 0, so the listener dead-letters it and the key stays blocked). */
function inOrder(retry, opts, handler, payload) {
  const call = async () => {
    try {
      await handler(payload)
    } catch (thrown) {
      throw asError(thrown)
    }
  }
  return handleInOrder(retry, payload.topic, payload.message, call, (error) => {
    const options = pushOptions(retry.constructor, payload.message, opts, null)
    if (error && permanent(opts, error)) options.maxRetry = 0
    return options
  })
}

/** Whether ordered mode applies: a key to keep the order of, and a value a retry can carry. */
const ordering = (opts, message) => opts.ordered && message.key !== undefined && message.key !== null && !readMessage(message).reason

/**
 * `retry.retrying(handler, options)`: an `eachMessage` calling `handler(payload)`; what it throws is
 * pushed (or dead-lettered) before the returned promise resolves.
 */
function retrying(handler, options) {
  readHandler(handler)
  const opts = readOptions(options)
  const retry = this
  return async function eachMessage(payload) {
    if (ordering(opts, payload.message)) {
      await inOrder(retry, opts, handler, payload)
      return
    }
    try {
      await handler(payload)
    } catch (thrown) {
      await store(retry, [failure(retry, opts, payload.topic, payload.message, thrown)], false)
    }
  }
}

/**
 * `retry.retryingBatch(handler, options)`: an `eachBatch` calling `handler(payload)` for each
 * message with an eachMessage-shaped payload; the batch's failures go to Redis with one pushMany,
 * and only then is the batch's last offset resolved and a heartbeat sent. Ordered mode handles and
 * resolves one message at a time (a key's next message waits for the last one's outcome).
 */
function retryingBatch(handler, options) {
  readHandler(handler)
  const opts = readOptions(options)
  const retry = this
  return async function eachBatch(payload) {
    const { batch, resolveOffset, heartbeat } = payload
    const failures = []
    let last = null
    for (const message of batch.messages) {
      const each = { topic: batch.topic, partition: batch.partition, message, heartbeat, pause: payload.pause }
      if (ordering(opts, message)) {
        await store(retry, failures.splice(0), true)
        await inOrder(retry, opts, handler, each)
        resolveOffset(message.offset)
      } else {
        try {
          await handler(each)
        } catch (thrown) {
          failures.push(failure(retry, opts, batch.topic, message, thrown))
        }
      }
      last = message
      if (heartbeat) await heartbeat()
    }
    await store(retry, failures, true)
    if (last) resolveOffset(last.offset)
    if (heartbeat) await heartbeat()
  }
}

module.exports = { retrying, retryingBatch, readOptions, readMessage, backoffDelay, failure, asError }
