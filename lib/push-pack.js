// One pushToQueue call's arguments read into the packed form the native `pushPacked` takes
// (src/packed.rs reads it back; docs/push-batch.md): the pushes of one tick travel as one string
// instead of one native call each.
//
// The native reader is the contract (src/args.rs `parse_push`, held by the hostile-input suite):
// each value here is read once, in its order, and a push whose values do not all fit the packed
// form (a Proxy, an array, a boolean, a message value that is not a string, ...) is handed to the
// native pushToQueue instead, with the values already read kept in plain objects, so no getter
// runs twice and every error is the native one, word for word.
'use strict'

const { isProxy } = require('util').types

/** The options a push reads (own, else inherited), in the native reader's order. */
const READ = ['delay', 'maxRetry', 'retryCount', 'firstFailedAt', 'error']
/** Options the package interprets and never re-publishes (engine `headers::is_interpreted`). */
const INTERPRETED = new Set([...READ, 'executeAt', 'retryDelayMs'])

/** `object[key]` as N-API reads it: a getter that throws reads as absent. */
function read(object, key) {
  try {
    return object[key]
  } catch {
    return undefined
  }
}

/** What `gone` is when no getter threw. */
const EMPTY = new Set()

const field = (text) => text.length + ':' + text

/** A number as its JavaScript text, -0 kept (src/packed.rs parses it back exactly). */
const numberText = (n) => (Object.is(n, -0) ? '-0' : String(n))

/** An option's value packed (tag and field), or `undefined` when it does not fit the packed form. */
function packedValue(key, value) {
  if (value === undefined || value === null) return 'u'
  if (typeof value === 'string') return 's' + field(value)
  if (typeof value === 'number') return 'n' + field(numberText(value))
  // An error is read after every other option fits (`packError`); a Buffer only as a header.
  if (key === 'error') return typeof value === 'object' && !isProxy(value) && !Array.isArray(value) && !Buffer.isBuffer(value) ? null : undefined
  if (READ.includes(key) || typeof value !== 'object' || isProxy(value) || !Buffer.isBuffer(value)) return undefined
  return 'x' + field(value.toString('latin1'))
}

/** An error object's message and name, as src/convert.rs `error_info` reads them. */
function packError(error) {
  const message = read(error, 'message')
  const name = read(error, 'name')
  return 'e' + field(typeof message === 'string' ? message : 'an object') + field(typeof name === 'string' ? name : 'Error')
}

/**
 * One push packed: a string, or, when it does not fit the packed form, the arguments for the
 * native `pushToQueue` (an array), the values read so far kept so that none is read again.
 */
function packPush(topic, message, options) {
  if (typeof topic !== 'string' || topic === '') return [topic, message, options]
  if (typeof message !== 'object' || message === null || isProxy(message) || Array.isArray(message)) return [topic, message, options]
  const event = read(message, 'event')
  if (typeof event !== 'string') return [topic, { event }, options]
  const value = read(message, 'value')
  if (typeof value !== 'string') return [topic, { event, value }, options]
  const head = field(topic) + field(event) + field(value)
  if (options === undefined || options === null) return head + '0:'
  if (typeof options !== 'object' || isProxy(options) || Array.isArray(options)) return [topic, { event, value }, options]
  const keys = Object.keys(options)
  const values = new Array(keys.length)
  // Own enumerable entries first (a throwing getter drops its entry), then what is read by name.
  const thrown = []
  for (let i = 0; i < keys.length; i++) {
    try {
      values[i] = options[keys[i]]
    } catch {
      thrown.push(i)
    }
  }
  // Almost always empty: no Set made for it then.
  const gone = thrown.length ? new Set(thrown) : EMPTY
  for (const key of READ) {
    const i = keys.indexOf(key)
    if (i === -1 || gone.has(i)) {
      const inherited = read(options, key)
      if (inherited !== undefined) {
        keys.push(key)
        values.push(inherited)
      }
    }
  }
  let pairs = ''
  let count = 0
  let error
  for (let i = 0; i < keys.length; i++) {
    if (gone.has(i)) continue
    const key = keys[i]
    if (INTERPRETED.has(key) && !READ.includes(key)) continue
    const packed = packedValue(key, values[i])
    if (packed === undefined) return [topic, { event, value }, snapshot(keys, values, gone)]
    if (packed === null) {
      error = values[i]
      continue
    }
    pairs += field(key) + packed
    count++
  }
  if (error !== undefined) {
    pairs += field('error') + packError(error)
    count++
  }
  return head + count + ':' + pairs
}

/** The options read so far, as a plain object the native reader reads the same way. */
function snapshot(keys, values, gone) {
  const copy = Object.create(null)
  for (let i = 0; i < keys.length; i++) if (!gone.has(i)) copy[keys[i]] = values[i]
  return copy
}

module.exports = { packPush, numberText, read }
