// Hostile-input battery (issue 3, item 7): thousands of generated calls against every public method
// of `KafkaRetry` — `new KafkaRetry(config)`, `KafkaRetry.headers(h)`, `pushToQueue`,
// `queueListener`, `pushToDlq`, `close()` — with random and malformed values in every argument
// position: unicode (lone surrogates, emoji, RTL, NUL), a 1 MB payload, null/undefined, numbers,
// NaN/Infinity, bigint, symbols, functions, objects, arrays, Buffers, Dates, Proxies, throwing
// getters, and producers that misbehave in every way a JavaScript function can.
//
// The battery runs in a child node process (this same file, run directly), so a native crash or a
// hang shows up as an exit code or a signal instead of taking jest down; the child prints a JSON
// summary on one line, and the tests below assert on it and on Redis.
//
// Every run uses a fresh seed (printed); reproduce one with
//   HOSTILE_SEED=<seed> npx jest __test__/api/hostile-inputs.test.js
// or run the child alone (prints the summary): HOSTILE_SEED=<seed> node __test__/api/hostile-inputs.test.js
// with HOSTILE_DUMP=<file> to write every violation, HOSTILE_SCALE=<n> for n times the cases, and
// HOSTILE_KEEP=1 to leave its Redis keys for inspection. A reported case can be rebuilt from its
// seed and index: `require('./__test__/api/hostile-inputs.test.js').pushCases(seed, 'p')[index].args`.
'use strict'

const path = require('path')

const DOCUMENTED_CODES = ['ERR_INVALID_ARG', 'ERR_REDIS_UNAVAILABLE', 'ERR_KAFKA_PUBLISH', 'ERR_CLOSED']
const RESOLVE = 'resolve'
const INVALID = 'ERR_INVALID_ARG'
const CLOSED = 'ERR_CLOSED'
const SUMMARY_TAG = 'HOSTILE_SUMMARY '

// How many generated cases per method (the listener and close counts follow from the catalogs).
// HOSTILE_SCALE=n multiplies them for a longer soak run.
const SCALE = Math.max(1, Number(process.env.HOSTILE_SCALE) || 1)
const COUNTS = { headers: 1200 * SCALE, constructor: 600 * SCALE, pushToQueue: 2200 * SCALE, pushToDlq: 500 * SCALE, postClose: 300 * SCALE }

// ---------------------------------------------------------------------------------------------
// Seeded randomness
// ---------------------------------------------------------------------------------------------

function mulberry32(a) {
  return function next() {
    a |= 0
    a = (a + 0x6d2b79f5) | 0
    let t = Math.imul(a ^ (a >>> 15), 1 | a)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** An independent stream per method, so changing one method's cases leaves the others as they were. */
function streamSeed(seed, name) {
  let h = (seed ^ 0x811c9dc5) >>> 0
  for (const ch of name) h = Math.imul(h ^ ch.charCodeAt(0), 16777619) >>> 0
  return h
}

// ---------------------------------------------------------------------------------------------
// Value catalogs
// ---------------------------------------------------------------------------------------------

const PIECES = [
  'a', 'Z', '0', '9', ' ', '-', '_', '.', ':', '/', '{', '}', '*', '?', '[', '#', '%s', '${x}', '"', '\\', "'",
  '\n', '\r', '\t', '\0', '\x01', '\x7f', '\u0085', 'é', 'e\u0301', 'ß', '漢字', '日本語', '😀', '👨‍👩‍👧', '🏳️‍🌈',
  'مرحبا', 'שלום', '\u202e', '\u200f', '\u200b', '\ufeff', '\u2028', '\u2029',
  '\ud800', '\udbff', '\udc00', '\udfff', '\udc00\ud800', '\uffff', '\ufffd',
  '__proto__', 'constructor', 'toString', 'null', 'undefined', 'NaN', '-0', '{"a":1}', '[]',
]
const NUMERIC_STRINGS = [
  '0', '1', '-1', '2', '3', '60', '1.5', '-0', '1e3', '0x10', 'NaN', 'Infinity', '-Infinity', ' 2 ', '+5', '.5',
  '5.', '١٢', '1_000', '9'.repeat(400), '1e999', '00', '0.0001',
]
const NUMBERS = [
  0, -0, 1, -1, 2, 3, 42, 60, 3.5, 0.01, NaN, Infinity, -Infinity, Number.MAX_VALUE, Number.MIN_VALUE,
  Number.MAX_SAFE_INTEGER, 2 ** 53 + 1, 1e21, -1e-7, 1e9, 1e10, 2 ** 31, -(2 ** 31),
]
// Keys of generated objects: the ones the addon reads, plus awkward ones. Never `msgId`: only the
// generator of valid payloads sets it (unique per case), so de-duplication is predictable.
const KEY_POOL = [
  'event', 'value', 'delay', 'maxRetry', 'retryCount', 'topic', 'produce', 'send', 'keyPrefix', 'redisUrl',
  'brokers', 'kafka', 'leaseMs', 'batchSize', 'a', 'b', '0', '1', '__proto__', 'constructor', 'toString', '😀',
  '\ud800', '', 'x y',
]
const FUNCTIONS = [
  () => [() => {}, 'arrow function'],
  () => [function named() {}, 'function named()'],
  () => [async () => {}, 'async function'],
  () => [class K {}, 'class K'],
  () => [function* gen() {}, 'generator function'],
  () => [function () {}.bind(null), 'bound function'],
  () => [Object.assign(() => {}, { event: 'e', value: '{}', produce: async () => {}, delay: '1' }), 'function with event/value/produce/delay props'],
  () => [Math.max, 'Math.max (native)'],
]

const ONE_MB = 1024 * 1024

function hostileError(what) {
  return new Error(`hostile ${what}`)
}

/** A Proxy whose every trap throws. */
function throwingProxy(target = {}) {
  const trap = () => {
    throw hostileError('proxy trap')
  }
  return new Proxy(target, {
    get: trap, has: trap, ownKeys: trap, getOwnPropertyDescriptor: trap, getPrototypeOf: trap, set: trap,
    defineProperty: trap, deleteProperty: trap, apply: trap, construct: trap, isExtensible: trap,
  })
}

function revokedProxy(target = {}) {
  const { proxy, revoke } = Proxy.revocable(target, {})
  revoke()
  return proxy
}

function define(object, key, value) {
  Object.defineProperty(object, key, { value, enumerable: true, writable: true, configurable: true })
  return object
}

function defineGetter(object, key, get) {
  Object.defineProperty(object, key, { get, enumerable: true, configurable: true })
  return object
}

/** Lone surrogates cannot cross into UTF-8 (Redis, Kafka): they become U+FFFD, as Buffer.from does. */
function wf(s) {
  if (typeof s.toWellFormed === 'function') return s.toWellFormed()
  return s.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\ufffd')
}

function show(v) {
  try {
    switch (typeof v) {
      case 'string':
        return v.length <= 60 ? JSON.stringify(v) : `string(${v.length} chars, ${JSON.stringify(v.slice(0, 24))}...)`
      case 'number':
        return Object.is(v, -0) ? '-0' : String(v)
      case 'bigint':
        return `${v}n`
      case 'symbol':
        return v.toString()
      case 'undefined':
        return 'undefined'
      case 'boolean':
        return String(v)
      case 'function':
        return `function ${v.name || '(anonymous)'}`
      default:
        return v === null ? 'null' : '<object>'
    }
  } catch {
    return '<unprintable>'
  }
}

function clip(text, max = 400) {
  return text.length <= max ? text : `${text.slice(0, max)}...`
}

/** One generated value: `v` the value, `d` how to rebuild it, `kind` its broad type. */
function W(v, d, kind, extra = {}) {
  return { v, d: clip(d), kind, ...extra }
}

/** How a value is expected to be stored as a payload (`message.value` or a dead letter entry). */
function payloadExpectation(w) {
  const v = w.v
  if (w.volatile) return { kind: 'unknown' }
  if (typeof v === 'string') {
    let parses = true
    try {
      JSON.parse(v)
    } catch {
      parses = false
    }
    return { kind: 'text', text: wf(v), parses }
  }
  if (v === undefined || v === null || typeof v === 'function' || typeof v === 'symbol' || typeof v === 'bigint') {
    return { kind: 'reject' }
  }
  let json
  try {
    json = JSON.stringify(v)
  } catch {
    return { kind: 'reject' }
  }
  if (json === undefined) return { kind: 'reject' }
  const parsed = JSON.parse(json)
  // A non-string value is stored as JSON.stringify's text, which escapes lone surrogates
  // (\udc00): they survive exactly, unlike raw lone surrogates in a string, which UTF-8 cannot hold.
  return { kind: 'json', canon: JSON.stringify(parsed), withoutLoneKeys: JSON.stringify(dropLoneSurrogateKeys(parsed)), json: clip(json, 200) }
}

/** The data without the members whose key holds a lone surrogate (to name that failure). */
function dropLoneSurrogateKeys(x) {
  if (Array.isArray(x)) return x.map(dropLoneSurrogateKeys)
  if (x && typeof x === 'object') {
    const out = {}
    for (const [k, v] of Object.entries(x)) if (wf(k) === k) define(out, k, dropLoneSurrogateKeys(v))
    return out
  }
  return x
}

/**
 * What a value holds that JSON.stringify treats specially (Dates, boxed primitives, Proxies of
 * arrays, inherited enumerable properties, lone-surrogate keys, bigints, toJSON, getters...), read
 * without calling getters: names the cause of a mismatch.
 */
function features(value) {
  const { types } = require('util')
  const found = new Set()
  const seen = new Set()
  const walk = (v, depth) => {
    if (typeof v === 'bigint') found.add('bigint')
    if (typeof v === 'number' && !Number.isFinite(v)) found.add('non-finite number')
    if (v === null || (typeof v !== 'object' && typeof v !== 'function') || seen.has(v) || depth > 40) return
    seen.add(v)
    try {
      if (types.isProxy(v)) found.add(Array.isArray(v) ? 'Proxy of an array' : 'Proxy')
      if (types.isDate(v)) found.add('Date')
      if (types.isBoxedPrimitive(v)) found.add('boxed primitive')
      if (types.isTypedArray(v) || types.isArrayBuffer(v) || types.isDataView(v)) found.add('binary data')
      if (typeof v.toJSON === 'function') found.add('toJSON')
      if (Array.isArray(v) && Object.keys(v).length < v.length) found.add('array hole')
      for (const key in v) if (!Object.prototype.hasOwnProperty.call(v, key)) found.add('inherited enumerable property')
      for (const [key, desc] of Object.entries(Object.getOwnPropertyDescriptors(v))) {
        if (!desc.enumerable) continue
        if (wf(key) !== key) found.add('key with a lone surrogate')
        if (desc.get) found.add('getter')
        else walk(desc.value, depth + 1)
      }
    } catch {
      found.add('a Proxy whose traps throw')
    }
  }
  walk(value, 0)
  return [...found].sort().join(', ') || undefined
}

/** Why a stored payload differs from the expected one: a known pattern, or what the value holds. */
function mismatchHint(expectation, stored, value) {
  if (expectation.kind !== 'json') return features(value)
  try {
    const canon = JSON.stringify(JSON.parse(stored))
    if (canon !== expectation.canon && canon === expectation.withoutLoneKeys) return 'members whose key holds a lone surrogate were dropped'
  } catch {
    return 'stored value is not JSON'
  }
  return features(value)
}

class Gen {
  constructor(seed, name) {
    this.next = mulberry32(streamSeed(seed, name))
  }

  f() {
    return this.next()
  }

  int(n) {
    return Math.floor(this.next() * n)
  }

  chance(p) {
    return this.next() < p
  }

  pick(list) {
    return list[this.int(list.length)]
  }

  word() {
    let s = ''
    for (let i = 1 + this.int(12); i > 0; i--) s += String.fromCharCode(97 + this.int(26))
    return s
  }

  pieces(n) {
    let s = ''
    for (let i = 0; i < n; i++) s += this.pick(PIECES)
    return s
  }

  /** A random string: empty, numeric-looking, a word, a long repetition, or unicode pieces. */
  str(maxPieces = 8) {
    const roll = this.f()
    if (roll < 0.08) return ''
    if (roll < 0.18) return this.pick(NUMERIC_STRINGS)
    if (roll < 0.3) return this.word()
    if (roll < 0.34) {
      const unit = this.pieces(1 + this.int(3))
      return unit.repeat(Math.ceil((1000 + this.int(9000)) / unit.length))
    }
    return this.pieces(1 + this.int(maxPieces))
  }

  nonEmptyStr() {
    const s = this.str()
    return s === '' ? this.pick(PIECES) : s
  }

  bytes() {
    const n = this.pick([0, 1, 2, 3, 7, 16, 64])
    const b = Buffer.alloc(n)
    for (let i = 0; i < n; i++) b[i] = this.chance(0.3) ? this.pick([0x80, 0xbf, 0xc0, 0xed, 0xf4, 0xf8, 0xff, 0x00]) : this.int(256)
    return b
  }

  primitive() {
    switch (this.int(5)) {
      case 0: {
        const v = this.str(3)
        return W(v, show(v), 'string')
      }
      case 1: {
        const v = this.pick(NUMBERS)
        return W(v, show(v), 'number')
      }
      case 2:
        return W(null, 'null', 'nullish')
      case 3:
        return W(true, 'true', 'boolean')
      default:
        return W(undefined, 'undefined', 'nullish')
    }
  }

  /** A plain object with random keys and weird values (flags propagate from its members). */
  dataObject(depth) {
    const o = {}
    const parts = []
    let hostile = false
    let volatile = false
    for (let n = this.int(depth > 1 ? 2 : 5); n > 0; n--) {
      const k = this.chance(0.6) ? this.pick(KEY_POOL) : this.str(2)
      const w = depth > 1 ? this.primitive() : this.weird(depth + 1)
      hostile = hostile || !!w.hostile
      volatile = volatile || !!w.volatile
      define(o, k, w.v)
      parts.push(`${JSON.stringify(k)}: ${w.d}`)
    }
    return W(o, `{ ${parts.join(', ')} }`, 'object', { keys: true, hostile, volatile })
  }

  /** Anything at all. `kind` says what it broadly is; `hostile` marks values whose reading throws. */
  weird(depth = 0) {
    switch (this.int(32)) {
      case 0:
        return W(undefined, 'undefined', 'nullish')
      case 1:
        return W(null, 'null', 'nullish')
      case 2: {
        const v = this.chance(0.5)
        return W(v, String(v), 'boolean')
      }
      case 3:
      case 4: {
        const v = this.chance(0.8) ? this.pick(NUMBERS) : (this.f() - 0.5) * 10 ** this.int(12)
        return W(v, show(v), 'number')
      }
      case 5: {
        const v = this.pick([0n, 1n, -1n, 2n ** 64n, 2n ** 70n, -(2n ** 63n)])
        return W(v, show(v), 'bigint')
      }
      case 6: {
        const v = this.pick([Symbol(), Symbol('hostile'), Symbol.iterator, Symbol.for('k')])
        return W(v, show(v), 'symbol')
      }
      case 7: {
        const [v, d] = this.pick(FUNCTIONS)()
        return W(v, d, 'function')
      }
      case 8:
      case 9:
      case 10: {
        const v = this.str()
        return W(v, show(v), 'string')
      }
      case 11:
      case 12:
        return this.dataObject(depth)
      case 13:
        return W(define(Object.create(null), 'a', 1), 'Object.create(null) with a: 1', 'object', { keys: true })
      case 14: {
        const items = Array.from({ length: this.int(depth > 1 ? 2 : 5) }, () => (depth > 1 ? this.primitive() : this.weird(depth + 1)))
        return W(items.map((w) => w.v), `[${items.map((w) => w.d).join(', ')}]`, 'array', {
          hostile: items.some((w) => w.hostile),
          volatile: items.some((w) => w.volatile),
        })
      }
      case 15: {
        const variant = this.int(3)
        if (variant === 0) return W([1, , 3], '[1, <hole>, 3]', 'array') // eslint-disable-line no-sparse-arrays
        if (variant === 1) {
          const a = ['x']
          a.length = 1000
          return W(a, "['x', <999 holes>]", 'array')
        }
        return W(Object.assign([], { delay: '5', event: 'e' }), "[] with delay/event props", 'array')
      }
      case 16: {
        const b = this.bytes()
        return W(b, `Buffer<${b.toString('hex')}>`, 'buffer', { bare: true })
      }
      case 17: {
        const [v, d] = this.pick([
          () => [new Uint8Array([1, 2, 3]), 'Uint8Array[1,2,3]'],
          () => [new Float64Array([NaN, -0]), 'Float64Array[NaN,-0]'],
          () => [new ArrayBuffer(8), 'ArrayBuffer(8)'],
          () => [new DataView(new ArrayBuffer(4)), 'DataView(4)'],
        ])()
        return W(v, d, 'exotic', { bare: true })
      }
      case 18: {
        const [v, d] = this.pick([
          () => [new Date(0), 'new Date(0)'],
          () => [new Date(NaN), 'new Date(NaN)'],
          () => [new Date(8.64e15), 'new Date(8.64e15)'],
        ])()
        return W(v, d, 'exotic', { bare: true })
      }
      case 19: {
        const [v, d] = this.pick([
          () => [/re+/gu, '/re+/gu'],
          () => [new Error('an error value'), "new Error('an error value')"],
          () => [new TypeError('t'), "new TypeError('t')"],
          () => [new Map([[1, 2]]), 'new Map([[1, 2]])'],
          () => [new Set([1]), 'new Set([1])'],
          () => [new WeakMap(), 'new WeakMap()'],
          () => [Promise.resolve(1), 'Promise.resolve(1)'],
          () => [new Promise(() => {}), 'a never-settling Promise'],
        ])()
        return W(v, d, 'exotic', { bare: true })
      }
      case 20: {
        const [v, d] = this.pick([
          () => [new String('boxed'), "new String('boxed')"],
          () => [new Number(5), 'new Number(5)'],
          () => [new Boolean(false), 'new Boolean(false)'],
          () => [Object(Symbol('boxed')), "Object(Symbol('boxed'))"],
          () => [Object(1n), 'Object(1n)'],
        ])()
        return W(v, d, 'exotic', { bare: true })
      }
      case 21: {
        const inner = this.chance(0.5) ? this.dataObject(depth + 1) : W(['p', 1], "['p', 1]", 'array')
        return W(new Proxy(inner.v, {}), `transparent Proxy(${inner.d})`, 'proxy', {
          hostile: inner.hostile,
          volatile: inner.volatile,
        })
      }
      case 22:
        return W(throwingProxy(this.chance(0.5) ? {} : []), 'Proxy whose every trap throws', 'hostile', { hostile: true })
      case 23:
        return W(revokedProxy(this.chance(0.5) ? {} : []), 'revoked Proxy', 'hostile', { hostile: true })
      case 24: {
        const key = this.pick(KEY_POOL)
        return W(defineGetter({ ok: 1 }, key, () => {
          throw hostileError(`getter ${key}`)
        }), `{ ok: 1, get ${JSON.stringify(key)}() { throw new Error() } }`, 'hostile', { hostile: true, keys: true })
      }
      case 25: {
        const key = this.pick(KEY_POOL)
        const [thrown, d] = this.pick([
          () => [42, '42'],
          () => [undefined, 'undefined'],
          () => [null, 'null'],
          () => [Symbol('thrown'), 'Symbol()'],
          () => [throwingProxy(), 'a Proxy whose traps throw'],
        ])()
        return W(defineGetter({}, key, () => {
          throw thrown
        }), `{ get ${JSON.stringify(key)}() { throw ${d} } }`, 'hostile', { hostile: true, keys: true })
      }
      case 26: {
        class Evil {
          constructor() {
            this.a = 1
          }

          toJSON() {
            throw hostileError('toJSON')
          }

          toString() {
            throw hostileError('toString')
          }

          valueOf() {
            throw hostileError('valueOf')
          }

          [Symbol.toPrimitive]() {
            throw hostileError('toPrimitive')
          }
        }
        return W(new Evil(), 'instance { a: 1 } whose toJSON/toString/valueOf/toPrimitive throw', 'object', { keys: true })
      }
      case 27: {
        const proto = { inherited: 1, event: 'inherited-event' }
        return W(define(Object.create(proto), 'own', 2), "{ own: 2 } inheriting enumerable { inherited: 1, event: 'inherited-event' }", 'object', { keys: true })
      }
      case 28: {
        let n = 0
        const key = this.pick(['a', 'event', 'value', 'delay', 'produce'])
        return W(defineGetter({}, key, () => `v${n++}`), `{ get ${key}() { return a different string each read } }`, 'object', { keys: true, volatile: true })
      }
      case 29: {
        const o = { a: 1 }
        o.self = o
        return W(o, '{ a: 1, self: <cycle> }', 'object', { keys: true })
      }
      case 30: {
        let v = this.chance(0.5) ? 1 : {}
        for (let i = 0; i < 300; i++) v = this.chance(0.5) ? [v] : { n: v }
        return W(v, 'nesting 300 deep', Array.isArray(v) ? 'array' : 'object', { keys: !Array.isArray(v) })
      }
      default: {
        const o = {}
        for (let i = 0; i < 1000; i++) o[`k${i}`] = i
        return W(this.chance(0.5) ? Object.freeze(o) : o, 'object with 1000 keys', 'object', { keys: true })
      }
    }
  }

  /** JSON-safe plain data (strings may hold lone surrogates: they become U+FFFD). */
  jsonData(depth = 0) {
    switch (this.int(depth > 2 ? 4 : 7)) {
      case 0:
      case 3:
        return this.str(4)
      case 1:
        return this.pick([0, 1, -1, 3.25, 1e300, -1e-300, 2 ** 53 + 1, 123456789.125, 5e-324, -0, 1e21])
      case 2:
        return this.pick([true, false, null])
      case 4:
      case 5: {
        const o = {}
        for (let n = this.int(5); n > 0; n--) define(o, this.str(3), this.jsonData(depth + 1))
        return o
      }
      default:
        return Array.from({ length: this.int(4) }, () => this.jsonData(depth + 1))
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The battery (child process)
// ---------------------------------------------------------------------------------------------

/** `RESOLVE` when every part is, null when any part is unpredictable, else `ERR_INVALID_ARG`. */
function combine(...parts) {
  if (parts.some((p) => p === null)) return null
  return parts.every((p) => p === RESOLVE) ? RESOLVE : INVALID
}

function errorInfo(err) {
  const safe = (fn, fallback) => {
    try {
      return fn()
    } catch {
      return fallback
    }
  }
  const isError = safe(() => Object.prototype.toString.call(err) === '[object Error]', false)
  if (!isError) return { isError, desc: safe(() => (typeof err === 'object' || typeof err === 'function' ? typeof err : `${typeof err} ${String(err)}`), typeof err) }
  return {
    isError,
    code: safe(() => err.code, '<code getter threw>'),
    message: safe(() => clip(String(err.message), 300), '<message unreadable>'),
  }
}

function settleWithin(promise, ms) {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve({ type: 'hang' }), ms)
    try {
      promise.then(
        (value) => {
          clearTimeout(timer)
          resolve({ type: 'resolve', value })
        },
        (err) => {
          clearTimeout(timer)
          resolve({ type: 'reject', err })
        },
      )
    } catch (err) {
      clearTimeout(timer)
      resolve({ type: 'reject', err })
    }
  })
}

class Battery {
  constructor(seed) {
    this.seed = seed
    // Null prototypes: 'constructor' is one of the method names.
    this.stats = Object.create(null)
    this.violations = []
    this.notes = Object.create(null)
  }

  note(key, n = 1) {
    this.notes[key] = (this.notes[key] || 0) + n
  }

  violate(method, index, kind, args, detail = {}) {
    this.violations.push({ method, index, kind, args, tag: '', ...detail })
  }

  /**
   * Runs one call and checks its outcome: it returns/resolves, or throws/rejects with an Error whose
   * `code` is documented (never ERR_REDIS_UNAVAILABLE against the reachable Redis), and matches
   * `expected` when the case's outcome is predictable (`RESOLVE`, a code, or null for "either").
   */
  async call(method, index, args, expected, fn, { timeoutMs = 20000, redisReachable = true, hint } = {}) {
    const stat = (this.stats[method] ||= { cases: 0, outcomes: Object.create(null) })
    stat.cases++
    let outcome
    try {
      const returned = fn()
      outcome =
        returned !== null && (typeof returned === 'object' || typeof returned === 'function') && typeof returned.then === 'function'
          ? await settleWithin(returned, timeoutMs)
          : { type: 'return', value: returned }
    } catch (err) {
      outcome = { type: 'throw', err }
    }
    let tag = outcome.type
    if (outcome.type === 'throw' || outcome.type === 'reject') {
      outcome.info = errorInfo(outcome.err)
      tag = `${outcome.type} ${outcome.info.isError ? String(outcome.info.code) : `non-Error (${outcome.info.desc})`}`
    }
    stat.outcomes[tag] = (stat.outcomes[tag] || 0) + 1
    const fail = (kind) =>
      this.violate(method, index, kind, args, {
        expected: expected === null ? 'resolve or any documented code' : expected,
        got: tag,
        tag,
        message: outcome.info && outcome.info.message,
        hint: hint && kind.startsWith('succeeded') ? hint() : undefined,
      })
    if (outcome.type === 'hang') {
      fail(`hang: the promise did not settle within ${timeoutMs} ms`)
    } else if (outcome.info) {
      const { isError, code } = outcome.info
      if (!isError) fail('threw or rejected with something that is not an Error')
      else if (!DOCUMENTED_CODES.includes(code)) fail('Error without a documented code')
      else if (redisReachable && code === 'ERR_REDIS_UNAVAILABLE') fail('ERR_REDIS_UNAVAILABLE although Redis is reachable')
      else if (expected === RESOLVE) fail('a valid call failed')
      else if (expected !== null && code !== expected) fail(`wrong code (expected ${expected})`)
    } else if (expected !== null && expected !== RESOLVE) {
      fail(`succeeded although it should fail with ${expected}`)
    }
    return outcome
  }

  summary(extra) {
    const groups = Object.create(null)
    for (const v of this.violations) {
      const key = `${v.method} | ${v.kind}${v.tag ? ` | got ${v.tag}` : ''}${v.hint ? ` | ${v.hint}` : ''}`
      groups[key] ||= { count: 0, first: v }
      groups[key].count++
    }
    return {
      seed: this.seed,
      stats: this.stats,
      totalCases: Object.values(this.stats).reduce((n, s) => n + s.cases, 0),
      notes: this.notes,
      violationCount: this.violations.length,
      violationGroups: Object.entries(groups).map(([key, g]) => ({ key, count: g.count, first: g.first })),
      violations: this.violations.slice(0, 60),
      ...extra,
    }
  }
}

async function inChunks(items, size, run) {
  for (let i = 0; i < items.length; i += size) await Promise.all(items.slice(i, i + size).map(run))
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

// ---- KafkaRetry.headers ------------------------------------------------------------------------

const DEF = { default: true }
const UNK = { unknown: true }

function headerValue(g, depth = 0) {
  const roll = g.int(20)
  if (roll < 6) {
    const s = g.str()
    return { v: s, d: show(s), expect: s === '' ? DEF : wf(s) }
  }
  if (roll < 10) {
    const s = g.str()
    const b = Buffer.from(s)
    return { v: b, d: `Buffer.from(${show(s)})`, expect: s === '' ? DEF : wf(s) }
  }
  if (roll < 12) {
    const b = g.bytes()
    const text = b.toString('utf8')
    return { v: b, d: `Buffer<${b.toString('hex')}>`, expect: text === '' ? DEF : text }
  }
  if (roll < 15 && depth < 2) {
    const items = Array.from({ length: g.int(5) }, () => headerValue(g, depth + 1))
    return { v: items.map((i) => i.v), d: `[${items.map((i) => i.d).join(', ')}]`, expect: items.length ? items[items.length - 1].expect : DEF }
  }
  if (roll === 15) {
    const a = [Buffer.from('7')]
    a.length = 3
    return { v: a, d: "[Buffer.from('7'), <2 holes>]", expect: DEF }
  }
  if (roll === 16) {
    const n = g.pick(NUMBERS)
    return { v: n, d: show(n), expect: UNK }
  }
  if (roll === 17) return g.chance(0.5) ? { v: undefined, d: 'undefined', expect: DEF } : { v: null, d: 'null', expect: DEF }
  const w = g.weird(depth + 1)
  let expect = UNK
  if (w.kind === 'string') expect = w.v === '' ? DEF : wf(w.v)
  else if (['nullish', 'boolean', 'symbol', 'bigint', 'function'].includes(w.kind)) expect = DEF
  return { v: w.v, d: w.d, expect }
}

function headersCase(g) {
  const roll = g.int(100)
  const defaults = { delay: DEF, maxRetry: DEF, retryCount: DEF }
  const unknown = { delay: UNK, maxRetry: UNK, retryCount: UNK }
  if (roll < 8) return { args: [], d: '()', expect: defaults }
  if (roll < 28) {
    const w = g.weird()
    const predictable = ['nullish', 'boolean', 'number', 'string', 'bigint', 'symbol', 'function'].includes(w.kind)
    return { args: [w.v], d: `(${w.d})`, expect: predictable ? defaults : unknown }
  }
  if (roll < 31) {
    const s = g.chance(0.5) ? Buffer.alloc(ONE_MB, 0xe2) : '9'.repeat(ONE_MB)
    const text = Buffer.isBuffer(s) ? s.toString('utf8') : s
    return { args: [{ delay: s }], d: `({ delay: <1 MB ${Buffer.isBuffer(s) ? 'Buffer of 0xe2 bytes' : 'string of 9s'}> })`, expect: { ...defaults, delay: text } }
  }
  if (roll < 34) {
    const h = { delay: Buffer.from('0.5'), maxRetry: Buffer.from('3'), retryCount: [Buffer.from('1')], 'x-trace': Buffer.from('abc') }
    return { args: [h], d: "({ delay: Buffer('0.5'), maxRetry: Buffer('3'), retryCount: [Buffer('1')], 'x-trace': Buffer('abc') })", expect: { delay: '0.5', maxRetry: '3', retryCount: '1' } }
  }
  // A headers object: each option present or not, plus awkward shapes around it.
  const shape = g.int(20)
  const object = shape === 0 ? Object.create(null) : {}
  const parts = []
  const expect = { ...defaults }
  for (const key of ['delay', 'maxRetry', 'retryCount']) {
    if (!g.chance(0.75)) continue
    if (g.chance(0.06)) {
      defineGetter(object, key, () => {
        throw hostileError(`header getter ${key}`)
      })
      parts.push(`get ${key}() { throw }`)
      expect[key] = UNK
      continue
    }
    if (g.chance(0.03)) {
      let n = 0
      defineGetter(object, key, () => String(n++))
      parts.push(`get ${key}() { return a new value each read }`)
      expect[key] = UNK
      continue
    }
    const hv = headerValue(g)
    define(object, key, hv.v)
    parts.push(`${key}: ${hv.d}`)
    expect[key] = hv.expect
  }
  for (let n = g.int(3); n > 0; n--) {
    const k = g.str(2)
    if (['delay', 'maxRetry', 'retryCount'].includes(k)) continue
    const w = g.weird(1)
    define(object, k, w.v)
    parts.push(`${JSON.stringify(k)}: ${w.d}`)
  }
  let value = object
  let d = `{ ${parts.join(', ')} }${shape === 0 ? ' (null prototype)' : ''}`
  let finalExpect = expect
  if (shape === 1) {
    value = new Proxy(object, {})
    d = `transparent Proxy(${d})`
  } else if (shape === 2) {
    value = throwingProxy(object)
    d = `Proxy whose traps throw (${d})`
    finalExpect = unknown
  } else if (shape === 3) {
    value = revokedProxy(object)
    d = 'revoked Proxy'
    finalExpect = unknown
  }
  const extra = g.chance(0.05) ? [g.weird().v, g.weird().v] : []
  return { args: [value, ...extra], d: `(${clip(d, 500)}${extra.length ? ', <2 extra args>' : ''})`, expect: finalExpect }
}

function runHeaders(B, KafkaRetry, seed) {
  const g = new Gen(seed, 'headers')
  const stat = (B.stats.headers = { cases: 0, outcomes: Object.create(null) })
  const defaults = { delay: '2', maxRetry: '3', retryCount: '0' }
  for (let i = 0; i < COUNTS.headers; i++) {
    const c = headersCase(g)
    stat.cases++
    let result
    try {
      result = KafkaRetry.headers(...c.args)
    } catch (err) {
      const info = errorInfo(err)
      const tag = `throw ${info.isError ? String(info.code) : 'non-Error'}`
      stat.outcomes[tag] = (stat.outcomes[tag] || 0) + 1
      B.violate('headers', i, 'headers() threw (it must never throw)', c.d, { got: tag, tag, message: info.message || info.desc })
      continue
    }
    stat.outcomes.return = (stat.outcomes.return || 0) + 1
    // A second argument `true` or a list keeps headers besides the three (`keep`); its
    // hostile values are covered by the three strings, whatever else is kept.
    const isArray = (v) => {
      try {
        return Array.isArray(v)
      } catch {
        return false // a revoked Proxy
      }
    }
    const keeps = c.args.length > 1 && (c.args[1] === true || isArray(c.args[1]))
    const all = result && typeof result === 'object' ? Object.keys(result) : []
    const keys = result && typeof result === 'object' ? all.filter((k) => !keeps || ['delay', 'maxRetry', 'retryCount'].includes(k)).sort().join(',') : typeof result
    if (keys !== 'delay,maxRetry,retryCount' || ['delay', 'maxRetry', 'retryCount'].some((k) => typeof result[k] !== 'string')) {
      B.violate('headers', i, 'headers() did not return three strings', c.d, { got: clip(String(keys)) })
      continue
    }
    for (const key of ['delay', 'maxRetry', 'retryCount']) {
      const e = c.expect[key]
      if (e === UNK) continue
      const want = e === DEF ? defaults[key] : e
      if (result[key] !== want) {
        B.violate('headers', i, `headers().${key} is not the header's text`, c.d, { expected: clip(JSON.stringify(want), 120), got: clip(JSON.stringify(result[key]), 120) })
      }
    }
  }
}

// ---- new KafkaRetry(config) ---------------------------------------------------------------------

const MS_RANGES = {
  pollIntervalMs: [1, 365 * 24 * 3600000],
  leaseMs: [100, 365 * 24 * 3600000],
  batchSize: [1, 10000],
  redisTimeoutMs: [10, 365 * 24 * 3600000],
  dedupeWindowMs: [0, 365 * 24 * 3600000],
}

function configField(g, key, redisUrl) {
  const w = g.weird(1)
  const nonStringExp = (kind) => (kind === 'nullish' ? RESOLVE : w.hostile ? null : INVALID)
  switch (key) {
    case 'redisUrl': {
      const roll = g.int(10)
      if (roll < 3) return [redisUrl, show(redisUrl), RESOLVE]
      if (roll < 5) {
        const [v, exp] = g.pick([['', RESOLVE], ['   ', RESOLVE], ['redis://127.0.0.1:1', RESOLVE], ['redis://:pw@127.0.0.1:6379/0', RESOLVE], ['http://nope', INVALID], ['not a url', INVALID]])
        return [v, show(v), exp]
      }
      if (roll < 7) {
        const v = g.str()
        return [v, show(v), null]
      }
      return [w.v, w.d, w.kind === 'string' ? null : nonStringExp(w.kind)]
    }
    case 'keyPrefix': {
      if (g.chance(0.6)) {
        const v = g.str()
        return [v, show(v), v === '' || /[{}]/.test(v) ? INVALID : RESOLVE]
      }
      if (g.chance(0.05)) return ['p'.repeat(ONE_MB), '<1 MB keyPrefix>', RESOLVE]
      return [w.v, w.d, w.kind === 'string' ? (w.v === '' || /[{}]/.test(w.v) ? INVALID : RESOLVE) : nonStringExp(w.kind)]
    }
    case 'brokers': {
      const roll = g.int(10)
      if (roll < 3) {
        const v = g.str()
        return [v, show(v), v === '' ? INVALID : RESOLVE]
      }
      if (roll < 6) {
        const items = Array.from({ length: g.int(4) }, () => (g.chance(0.8) ? W(g.str(), '', 'string') : g.weird(2)))
        items.forEach((it) => (it.d = it.d || show(it.v)))
        const exp = items.some((it) => it.hostile) ? null : items.every((it) => typeof it.v === 'string' && it.v !== '') ? RESOLVE : INVALID
        return [items.map((it) => it.v), `[${items.map((it) => it.d).join(', ')}]`, exp]
      }
      if (w.kind === 'string') return [w.v, w.d, w.v === '' ? INVALID : RESOLVE]
      if (w.kind === 'array' || w.kind === 'proxy') return [w.v, w.d, null]
      return [w.v, w.d, nonStringExp(w.kind)]
    }
    case 'kafka': {
      if (g.chance(0.6)) {
        const o = {}
        const parts = []
        const exps = new Map() // a repeated key keeps its last value
        for (let n = g.int(4); n > 0; n--) {
          const k = g.chance(0.5) ? g.pick(['client.id', 'acks', 'linger.ms', 'no.such.property', '😀', '']) : g.str(2)
          const v = g.chance(0.6) ? W(g.pick(['x', 1, true, 'all', 0.5, NaN, '\0']), '', 'x') : g.weird(2)
          v.d = v.d || show(v.v)
          define(o, k, v.v)
          parts.push(`${JSON.stringify(k)}: ${v.d}`)
          // A property name with a lone surrogate cannot reach librdkafka: any documented outcome.
          exps.set(k, v.hostile || wf(k) !== k ? null : ['string', 'number', 'boolean'].includes(typeof v.v) ? RESOLVE : INVALID)
        }
        return [o, `{ ${parts.join(', ')} }`, combine(...exps.values())]
      }
      if (w.kind === 'nullish') return [w.v, w.d, RESOLVE]
      if (['boolean', 'number', 'string', 'bigint', 'symbol', 'array', 'function'].includes(w.kind)) return [w.v, w.d, INVALID]
      return [w.v, w.d, null]
    }
    case 'cluster':
    case 'shards':
      // Being added to the addon while this battery was written: any documented outcome will do.
      return [w.v, w.d, null]
    default: {
      const [min, max] = MS_RANGES[key]
      if (g.chance(0.6)) {
        const v = g.chance(0.5) ? g.pick([min, max, min + 1, 0, -1, 1.5, max + 1, NaN, Infinity, -0, 1e300, 250, 5000]) : g.int(max)
        const exp = Number.isInteger(v) && v >= min && v <= max && !(Object.is(v, -0) && min > 0) ? RESOLVE : INVALID
        return [v, show(v), exp]
      }
      if (w.kind === 'number') {
        const v = w.v
        return [v, w.d, Number.isInteger(v) && v >= min && v <= max && !(Object.is(v, -0) && min > 0) ? RESOLVE : INVALID]
      }
      return [w.v, w.d, nonStringExp(w.kind)]
    }
  }
}

const CONFIG_KEYS = ['redisUrl', 'brokers', 'kafka', 'keyPrefix', 'pollIntervalMs', 'leaseMs', 'batchSize', 'redisTimeoutMs', 'dedupeWindowMs', 'cluster', 'shards']
// Every key the constructor accepts (KafkaRetryConfig); any other throws ERR_INVALID_ARG.
const KNOWN_CONFIG_KEYS = [...CONFIG_KEYS, 'backoff', 'deadLetterTopic', 'maxDeadLetters', 'maxPublishFailures', 'maxPublishRate',
  'migrateLegacy', 'onEvent', 'logger', 'username', 'password', 'tls', 'sentinel', 'waitReplicas', 'waitTimeoutMs']

function constructorCase(g, redisUrl) {
  const roll = g.int(100)
  if (roll < 4) return { args: [], d: '()', exp: RESOLVE }
  if (roll < 7) return { args: [undefined], d: '(undefined)', exp: RESOLVE }
  if (roll < 9) return { args: [null], d: '(null)', exp: RESOLVE }
  if (roll < 25) {
    const w = g.weird()
    let exp = null
    if (w.kind === 'nullish') exp = RESOLVE
    else if (['boolean', 'number', 'string', 'bigint', 'symbol', 'array', 'function'].includes(w.kind)) exp = INVALID
    return { args: [w.v], d: `(${w.d})`, exp }
  }
  const config = {}
  const parts = []
  const exps = []
  for (const key of CONFIG_KEYS) {
    if (!g.chance(['cluster', 'shards'].includes(key) ? 0.08 : 0.3)) continue
    if (g.chance(0.04)) {
      defineGetter(config, key, () => {
        throw hostileError(`config getter ${key}`)
      })
      parts.push(`get ${key}() { throw }`)
      exps.push(null)
      continue
    }
    const [v, d, exp] = configField(g, key, redisUrl)
    define(config, key, v)
    parts.push(`${key}: ${d}`)
    exps.push(exp)
  }
  if (g.chance(0.1)) {
    const w = g.weird(1)
    const word = g.word()
    define(config, word, w.v) // an unknown key is refused, naming the closest known key
    parts.push(`<unknown key ${word}>: ${w.d}`)
    exps.push(KNOWN_CONFIG_KEYS.includes(word) ? null : INVALID)
  }
  let value = config
  let d = `{ ${parts.join(', ')} }`
  let exp = combine(...exps)
  const shape = g.int(25)
  if (shape === 0) {
    value = new Proxy(config, {})
    d = `transparent Proxy(${d})`
  } else if (shape === 1) {
    value = throwingProxy(config)
    d = `Proxy whose traps throw (${d})`
    exp = null
  } else if (shape === 2) {
    value = revokedProxy(config)
    d = 'revoked Proxy'
    exp = null
  }
  const extra = g.chance(0.03) ? [g.weird().v] : []
  return { args: [value, ...extra], d: `(${clip(d, 600)}${extra.length ? ', <extra arg>' : ''})`, exp }
}

async function runConstructor(B, KafkaRetry, seed, redisUrl, instances) {
  const g = new Gen(seed, 'constructor')
  for (let i = 0; i < COUNTS.constructor; i++) {
    const c = constructorCase(g, redisUrl)
    const outcome = await B.call('constructor', i, c.d, c.exp, () => new KafkaRetry(...c.args), { redisReachable: false })
    if (outcome.type === 'return') {
      if (!(outcome.value instanceof KafkaRetry)) B.violate('constructor', i, 'new KafkaRetry() did not return an instance', c.d)
      else instances.push({ retry: outcome.value, label: `constructor case ${i}`, closeExp: RESOLVE })
    }
  }
}

// ---- pushToQueue ----------------------------------------------------------------------------------

const DELAY_VALID = ['60', '1440', '0', '0.01', '60.5', '6e1', ' 60 ', '+5', '.5', '5.', '5256000', 60, 0, 1440.25, 5256000, 1e-7]
const DELAY_INVALID = ['-1', -1, 'soon', '', NaN, Infinity, -Infinity, '1e12', 1e12, '5256000.5', true, false, 'NaN', 'inf', 'Infinity', '١٢', '1_000', '-0.5']
const COUNT_VALID = ['0', '3', '10', '1000000000', 0, 5, '2', '1e3', ' 7 ', '+4', '4.0', 4.0]
const COUNT_INVALID = ['1.5', 1.5, -2, '-2', 'x', 1e10, '1e10', NaN, Infinity, '', true, '1000000001', 'NaN']
const AMBIGUOUS = ['0x10', '0b1', '-0', -0]

function optionField(g, key) {
  const isDelay = key === 'delay'
  const roll = g.int(10)
  if (roll < 6) {
    const v = g.pick(isDelay ? DELAY_VALID : COUNT_VALID)
    return [v, show(v), RESOLVE]
  }
  if (roll < 8) {
    const v = g.pick(isDelay ? DELAY_INVALID : COUNT_INVALID)
    return [v, show(v), INVALID]
  }
  if (roll === 8) {
    const v = g.pick(AMBIGUOUS)
    return [v, show(v), null]
  }
  const w = g.weird(1)
  if (w.kind === 'nullish') return [w.v, w.d, RESOLVE]
  if (w.kind === 'string') return [w.v, w.d, null]
  if (w.kind === 'number') {
    const n = w.v
    const ok = isDelay ? Number.isFinite(n) && n >= 0 && n <= 5256000 : Number.isInteger(n) && n >= 0 && n <= 1e9
    return [n, w.d, Object.is(n, -0) ? null : ok ? RESOLVE : INVALID]
  }
  return [w.v, w.d, w.hostile ? null : INVALID]
}

function optionsArg(g) {
  const roll = g.int(100)
  if (roll < 12) return { omit: true, d: '<omitted>', exp: RESOLVE }
  if (roll < 16) return { v: undefined, d: 'undefined', exp: RESOLVE }
  if (roll < 20) return { v: null, d: 'null', exp: RESOLVE }
  if (roll < 25) return { v: {}, d: '{}', exp: RESOLVE }
  if (roll < 35) {
    // What KafkaRetry.headers() gives: three strings.
    const o = {}
    const parts = []
    const exps = []
    for (const key of ['delay', 'maxRetry', 'retryCount']) {
      const isDelay = key === 'delay'
      const s = g.chance(0.7) ? String(g.pick(isDelay ? DELAY_VALID : COUNT_VALID)) : g.str()
      const known = (isDelay ? DELAY_VALID : COUNT_VALID).map(String).includes(s)
      o[key] = s
      parts.push(`${key}: ${show(s)}`)
      exps.push(known ? RESOLVE : null)
    }
    return { v: o, d: `{ ${parts.join(', ')} }`, exp: combine(...exps) }
  }
  if (roll < 85) {
    const o = g.chance(0.1) ? Object.create(null) : {}
    const parts = []
    const exps = []
    for (const key of ['delay', 'maxRetry', 'retryCount']) {
      if (!g.chance(0.6)) continue
      if (g.chance(0.04)) {
        defineGetter(o, key, () => {
          throw hostileError(`options getter ${key}`)
        })
        parts.push(`get ${key}() { throw }`)
        exps.push(null)
        continue
      }
      const [v, d, exp] = optionField(g, key)
      define(o, key, v)
      parts.push(`${key}: ${d}`)
      exps.push(exp)
    }
    if (g.chance(0.1)) {
      defineGetter(o, 'unrelated', () => {
        throw hostileError('unrelated options getter')
      })
      parts.push('get unrelated() { throw } (never read)')
    }
    const d = `{ ${parts.join(', ')} }`
    if (g.chance(0.04)) return { v: new Proxy(o, {}), d: `transparent Proxy(${d})`, exp: combine(...exps) }
    if (g.chance(0.03)) return { v: throwingProxy(o), d: `Proxy whose traps throw (${d})`, exp: null }
    return { v: o, d, exp: combine(...exps) }
  }
  const w = g.weird()
  let exp = null
  if (w.kind === 'nullish') exp = RESOLVE
  else if (['boolean', 'number', 'string', 'bigint', 'symbol', 'array', 'function'].includes(w.kind)) exp = INVALID
  return { v: w.v, d: w.d, exp }
}

/** Escapes only what JSON requires, leaving emoji, RTL and lone surrogates raw in the text. */
function rawJsonString(s) {
  // eslint-disable-next-line no-control-regex -- matching control characters is the point
  return `"${s.replace(/["\\\u0000-\u001f]/g, (c) => (c === '"' ? '\\"' : c === '\\' ? '\\\\' : `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`))}"`
}

const SCALAR_JSON = ['0', '-0', '1e3', '"s"', 'null', 'true', 'false', '[]', '{}', ' {"a":1} ', '[1,"😀",null]', '"\\ud800"', '\t\n"x"\r ', '123456789012345678901234567890', '1e400']
const INVALID_JSON = ['', 'not json', '{', "{'a':1}", 'undefined', '{"a":1} x', 'NaN', '[1,]', '{"a":01}', '"unterminated', '{"a":1}}']

/** `message.value`: JSON text or data (valid, with a unique msgId most of the time), or anything. */
function valueArg(g, msgId) {
  const roll = g.int(100)
  if (roll < 40) {
    const data = {}
    if (g.chance(0.5)) define(data, 'msgId', msgId)
    for (let n = g.int(4); n > 0; n--) define(data, g.str(3), g.jsonData(1))
    if (!('msgId' in data)) define(data, 'msgId', msgId)
    const text = JSON.stringify(data)
    return { v: text, d: `JSON text ${clip(JSON.stringify(text), 200)}`, exp: RESOLVE, msgId }
  }
  if (roll < 48) {
    const raw = g.str()
    const text = `{"msgId":${JSON.stringify(msgId)},"s":${rawJsonString(raw)}}`
    return { v: text, d: `JSON text with raw unicode ${clip(JSON.stringify(text), 200)}`, exp: RESOLVE, msgId }
  }
  if (roll < 53) {
    const text = g.pick(SCALAR_JSON)
    return { v: text, d: `JSON text ${JSON.stringify(text)}`, exp: RESOLVE }
  }
  if (roll < 66) {
    const data = { msgId }
    for (let n = g.int(4); n > 0; n--) define(data, g.str(3), g.jsonData(1))
    return { v: data, d: `data ${clip(JSON.stringify(data), 200)}`, exp: RESOLVE, msgId }
  }
  if (roll < 71) {
    const text = g.pick(INVALID_JSON)
    return { v: text, d: `not JSON ${JSON.stringify(text)}`, exp: INVALID }
  }
  if (roll < 80) {
    const s = g.str()
    let parses = true
    try {
      JSON.parse(s)
    } catch {
      parses = false
    }
    return { v: s, d: show(s), exp: parses ? RESOLVE : INVALID }
  }
  const w = g.weird()
  const pe = payloadExpectation(w)
  let exp = null
  if (w.hostile || w.volatile) exp = null
  else if (pe.kind === 'reject') exp = INVALID
  else if (pe.kind === 'text') exp = pe.parses ? RESOLVE : INVALID
  return { v: w.v, d: w.d, exp, pe }
}

function messageArg(g, msgId) {
  const roll = g.int(100)
  if (roll < 4) return { omit: true, d: '<omitted>', exp: INVALID }
  if (roll < 18) {
    const w = g.weird()
    let exp = null
    if (['nullish', 'boolean', 'number', 'string', 'bigint', 'symbol', 'array'].includes(w.kind)) exp = INVALID
    else if (w.bare) exp = INVALID // no event
    return { v: w.v, d: w.d, exp }
  }
  // { event, value } with variations.
  let event
  if (g.chance(0.9)) {
    const s = g.str()
    event = { v: s, d: show(s), exp: RESOLVE }
  } else {
    const w = g.weird(1)
    event = { v: w.v, d: w.d, exp: w.kind === 'string' ? RESOLVE : INVALID }
  }
  const value = valueArg(g, msgId)
  const m = {}
  const parts = []
  const exps = []
  const shape = g.int(40)
  if (shape === 0) {
    parts.push('<no event>')
    exps.push(INVALID)
  } else if (shape === 1) {
    defineGetter(m, 'event', () => {
      throw hostileError('event getter')
    })
    parts.push('get event() { throw }')
    exps.push(null)
  } else {
    define(m, 'event', event.v)
    parts.push(`event: ${event.d}`)
    exps.push(event.exp)
  }
  if (shape === 2) {
    parts.push('<no value>')
    exps.push(INVALID)
  } else if (shape === 3) {
    defineGetter(m, 'value', () => {
      throw hostileError('value getter')
    })
    parts.push('get value() { throw }')
    exps.push(null)
  } else {
    define(m, 'value', value.v)
    parts.push(`value: ${value.d}`)
    exps.push(value.exp)
  }
  if (g.chance(0.15)) {
    const w = g.weird(1)
    define(m, g.pick(['key', 'headers', 'partition', 'offset', 'topic', 'timestamp']), w.v)
    parts.push(`<extra prop>: ${w.d}`)
  }
  if (g.chance(0.05)) {
    defineGetter(m, 'unrelated', () => {
      throw hostileError('unrelated message getter')
    })
    parts.push('get unrelated() { throw } (never read)')
  }
  const d = `{ ${parts.join(', ')} }`
  const exp = combine(...exps)
  const usable = shape > 3
  const ok = exp === RESOLVE && usable
  const expect = usable ? { event: event.v, value } : null
  if (shape === 4 && exp === RESOLVE) {
    // Event and value read through getters on a class's prototype (like kafkajs message objects).
    const ev = event.v
    const val = value.v
    class Message {
      get event() {
        return ev
      }

      get value() {
        return val
      }
    }
    return { v: new Message(), d: `class instance with prototype getters { event: ${event.d}, value: ${value.d} }`, exp, expect, msgId: value.msgId }
  }
  if (shape === 5) return { v: new Proxy(m, {}), d: `transparent Proxy(${d})`, exp, expect, msgId: ok ? value.msgId : undefined }
  return { v: m, d, exp, expect, msgId: ok ? value.msgId : undefined }
}

function topicArg(g) {
  const roll = g.int(100)
  if (roll < 82) {
    const s = g.nonEmptyStr()
    return { v: s, d: show(s), exp: RESOLVE }
  }
  if (roll < 86) return { v: '', d: '""', exp: INVALID }
  if (roll < 88) return { omit: true, d: '<omitted>', exp: INVALID }
  const w = g.weird()
  return { v: w.v, d: w.d, exp: typeof w.v === 'string' && w.v !== '' ? RESOLVE : INVALID }
}

function pushCases(seed, prefix) {
  const g = new Gen(seed, 'pushToQueue')
  const cases = []
  const msgId = (i) => `hostile-${prefix}-${i}${['', '-😀', '-שלום', '-\u0000', '-漢字'][i % 5]}`
  const retriedAgain = new Set()
  for (let i = 0; i < COUNTS.pushToQueue; i++) {
    const redeliverable = cases.filter((c) => c.exp === RESOLVE && c.msgId && c.repeatOf === undefined && c.variantOf === undefined)
    if (redeliverable.length && g.chance(0.05)) {
      const orig = g.pick(redeliverable)
      if (retriedAgain.has(orig.index) || g.chance(0.6)) {
        // A consumer redelivery: the very same arguments; stored once.
        cases.push({ ...orig, index: i, repeatOf: orig.index, d: `redelivery of case ${orig.index}: ${orig.d}` })
      } else {
        // The same message failing again, one retry later: a new entry.
        const options = { delay: '60', maxRetry: '5', retryCount: '777777' }
        retriedAgain.add(orig.index)
        cases.push({ ...orig, index: i, variantOf: orig.index, d: `case ${orig.index} with retryCount '777777': ${orig.d}`, args: [orig.args[0], orig.args[1], options], expectRetryCount: 777778 })
      }
      continue
    }
    if (i % 500 === 7) {
      // The 1 MB payloads: valid JSON text (with unicode), an object, text that is not JSON, and a 1 MB event and topic.
      const big = '漢😀a\u0000ש'.repeat(Math.ceil(ONE_MB / 10))
      const variants = [
        () => ({ t: 'big-topic', m: { event: 'big', value: JSON.stringify({ msgId: msgId(i), big }) }, d: "('big-topic', { event: 'big', value: <1 MB JSON text> }, { delay: '60' })", exp: RESOLVE, msgId: msgId(i) }),
        () => ({ t: 'big-topic', m: { event: 'big', value: { msgId: msgId(i), big } }, d: "('big-topic', { event: 'big', value: { msgId, big: <1 MB string> } }, { delay: '60' })", exp: RESOLVE, msgId: msgId(i) }),
        () => ({ t: 'big-topic', m: { event: 'big', value: `x${big}` }, d: "('big-topic', { event: 'big', value: <1 MB text that is not JSON> }, { delay: '60' })", exp: INVALID }),
        () => ({ t: `t${big}`, m: { event: big, value: '{}' }, d: "(<1 MB topic>, { event: <1 MB string>, value: '{}' }, { delay: '60' })", exp: RESOLVE }),
      ]
      const b = variants[Math.floor(i / 500) % variants.length]()
      const options = { delay: '60' }
      cases.push({
        index: i, args: [b.t, b.m, options], d: b.d, exp: b.exp, msgId: b.msgId,
        expect: { topic: b.t, event: b.m.event, value: payloadExpectation(W(b.m.value, '', '')) },
      })
      continue
    }
    const topic = topicArg(g)
    const message = messageArg(g, msgId(i))
    const options = optionsArg(g)
    const args = []
    const parts = []
    for (const part of [topic, message, options]) {
      if (part.omit) break
      args.push(part.v)
      parts.push(part.d)
    }
    if (args.length === 3 && g.chance(0.03)) {
      args.push(g.weird().v)
      parts.push('<extra arg>')
    }
    const missing = topic.omit ? INVALID : message.omit ? combine(topic.exp, INVALID) : undefined
    const exp = missing || combine(topic.exp, message.exp, options.omit ? RESOLVE : options.exp)
    const mv = message.expect && message.expect.value
    const expect = mv ? { topic: topic.v, event: message.expect.event, value: mv.pe || payloadExpectation(W(mv.v, '', '')) } : null
    cases.push({ index: i, args, d: `(${parts.join(', ')})`, exp, msgId: exp === RESOLVE ? message.msgId : undefined, expect, value: mv ? mv.v : undefined })
  }
  return cases
}

function sameValue(expectation, stored) {
  if (expectation.kind === 'text') return stored === expectation.text
  if (expectation.kind === 'json') {
    try {
      return JSON.stringify(JSON.parse(stored)) === expectation.canon
    } catch {
      return false
    }
  }
  return true
}

async function runPushes(B, retries, cases, redis, keys) {
  const resolved = []
  await inChunks(cases, 100, async (c) => {
    const retry = retries[c.index % retries.length]
    const outcome = await B.call('pushToQueue', c.index, c.d, c.exp, () => retry.pushToQueue(...c.args), { hint: () => features(c.value) })
    if (outcome.type === 'resolve' || outcome.type === 'return') resolved.push(c)
  })
  // What the schedule must hold: every resolved push, a redelivery stored once.
  const resolvedIndexes = new Set(resolved.map((c) => c.index))
  const stored = resolved.filter((c) => !(c.repeatOf !== undefined && resolvedIndexes.has(c.repeatOf)))
  const [zcard, hlen, leased, entries] = await Promise.all([redis.zcard(keys.due), redis.hlen(keys.entries), redis.zcard(keys.lease), redis.hgetall(keys.entries)])
  const byKey = new Map()
  const malformed = []
  for (const [id, stored] of Object.entries(entries)) {
    let entry
    try {
      entry = require('../helpers').decodeEntry(stored)
    } catch {
      malformed.push(id)
      continue
    }
    const fields = ['topic', 'event', 'value', 'delay', 'maxRetry', 'retryCount', 'dueAt']
    if (fields.some((f) => !(f in entry))) malformed.push(id)
    const key = `${entry.topic}\u0001${entry.event}`
    if (!byKey.has(key)) byKey.set(key, [])
    byKey.get(key).push({ id, entry })
  }
  for (const id of malformed) B.violate('pushToQueue', -1, 'stored entry is not the documented JSON', clip(String(entries[id]), 300))
  let unmatched = 0
  const candidatesOf = (c) => byKey.get(`${wf(c.expect.topic)}\u0001${wf(c.expect.event)}`) || []
  // Pass 1, exact matches (cases that name their retryCount, a message retried again, first).
  const ordered = [...stored.filter((c) => c.expectRetryCount !== undefined), ...stored.filter((c) => c.expectRetryCount === undefined)]
  const mismatched = []
  for (const c of ordered) {
    if (!c.expect) {
      if (c.exp !== INVALID) B.violate('pushToQueue', c.index, 'resolved, but the battery cannot tell what it stored', c.d)
      continue
    }
    if (c.expect.value.kind === 'reject' && c.exp === null) {
      B.violate('pushToQueue', c.index, 'JSON.stringify cannot serialize this value, but the push resolved', c.d, { hint: features(c.value) })
    }
    const candidates = candidatesOf(c)
    const at = candidates.findIndex(({ entry }) => sameValue(c.expect.value, entry.value) && (c.expectRetryCount === undefined || entry.retryCount === c.expectRetryCount))
    if (at < 0) mismatched.push(c)
    else candidates.splice(at, 1)
  }
  // A redelivery (same msgId and retryCount) must not have a second entry.
  for (const c of resolved) {
    if (c.repeatOf === undefined || !resolvedIndexes.has(c.repeatOf) || !c.expect) continue
    const candidates = candidatesOf(c)
    const at = candidates.findIndex(({ entry }) => sameValue(c.expect.value, entry.value))
    if (at >= 0) {
      B.violate('pushToQueue', c.index, 'a redelivery (same msgId and retryCount) was stored a second time', c.d, { got: `second entry ${clip(JSON.stringify(candidates[at].id), 160)}` })
      candidates.splice(at, 1)
    }
  }
  // Pass 2: a push without an exact match; an entry left with its topic and event is its own,
  // stored wrongly (topics and events are random), so it is not reported again as a leftover.
  for (const c of mismatched) {
    unmatched++
    const candidates = candidatesOf(c)
    const hint = candidates.map((x) => mismatchHint(c.expect.value, x.entry.value, c.value)).find(Boolean)
    B.violate('pushToQueue', c.index, 'resolved push not found in the schedule with the same topic/event/value', c.d, {
      expected: c.expect.value.kind === 'json' ? `value like ${c.expect.value.json}` : clip(JSON.stringify(c.expect.value.text || ''), 200),
      got: candidates.length ? `stored values with this topic/event: ${clip(candidates.map((x) => JSON.stringify(x.entry.value)).join(' | '), 300)}` : 'no entry with this topic/event',
      hint,
    })
    if (candidates.length) candidates.splice(0, 1)
  }
  const leftovers = [...byKey.values()].flat()
  for (const { entry } of leftovers.slice(0, 20)) {
    B.violate('pushToQueue', -1, 'schedule holds an entry no resolved push explains', clip(JSON.stringify(entry), 300))
  }
  if (zcard !== stored.length || hlen !== stored.length) {
    B.violate('pushToQueue', -1, 'schedule size differs from the number of valid pushes', `ZCARD ${keys.due} / HLEN ${keys.entries}`, {
      expected: stored.length,
      got: `ZCARD ${zcard}, HLEN ${hlen}`,
    })
  }
  if (leased) B.violate('pushToQueue', -1, 'entries leased without a listener', keys.lease, { got: leased })
  return {
    cases: cases.length,
    resolved: resolved.length,
    redeliveries: resolved.length - stored.length,
    expectedStored: stored.length,
    zcard,
    hlen,
    unmatched,
    leftovers: leftovers.length,
    expectedValid: cases.filter((c) => c.exp === RESOLVE).length,
    expectedInvalid: cases.filter((c) => c.exp === INVALID).length,
    unpredictable: cases.filter((c) => c.exp === null).length,
  }
}

// ---- pushToDlq ----------------------------------------------------------------------------------

function dlqCases(seed, prefix) {
  const g = new Gen(seed, 'pushToDlq')
  const cases = []
  for (let i = 0; i < COUNTS.pushToDlq; i++) {
    let name
    const roll = g.int(100)
    if (roll < 70) {
      const s = `${prefix}:dlq:${g.str()}`
      name = { v: s, d: show(s), exp: RESOLVE }
    } else if (roll < 75) name = { v: '', d: '""', exp: INVALID }
    else if (roll < 78) name = { omit: true, d: '<omitted>', exp: INVALID }
    else {
      const w = g.weird()
      // Any string names a hash under this run's prefix, so nothing else in Redis is touched.
      name = w.kind === 'string' ? { v: `${prefix}:dlq:${w.v}`, d: `${prefix}:dlq:${w.d}`, exp: RESOLVE } : { v: w.v, d: w.d, exp: INVALID }
    }
    let entry
    const r2 = g.int(100)
    if (i === 11) {
      const big = { msgId: 'big', big: '漢😀a\u0000ש'.repeat(Math.ceil(ONE_MB / 10)) }
      entry = { v: big, d: '{ msgId, big: <1 MB string> }', exp: RESOLVE, pe: payloadExpectation(W(big, '', 'object')) }
    } else if (r2 < 40) {
      const data = g.jsonData(0)
      const w = W(data, `data ${clip(JSON.stringify(data), 200)}`, typeof data === 'string' ? 'string' : 'object')
      const pe = payloadExpectation(w)
      entry = { v: data, d: w.d, exp: pe.kind === 'json' ? RESOLVE : pe.kind === 'reject' ? INVALID : null, pe }
    } else if (r2 < 45) entry = { omit: true, d: '<omitted>', exp: INVALID, pe: { kind: 'reject' } }
    else {
      const w = g.weird()
      const pe = payloadExpectation(w)
      let exp = null
      if (w.hostile || w.volatile) exp = null
      else if (pe.kind === 'reject') exp = INVALID
      entry = { v: w.v, d: w.d, exp, pe }
    }
    const args = []
    const parts = []
    for (const part of [name, entry]) {
      if (part.omit) break
      args.push(part.v)
      parts.push(part.d)
    }
    const exp = name.omit ? INVALID : combine(name.exp, entry.omit ? INVALID : entry.exp)
    cases.push({ index: i, args, d: `(${parts.join(', ')})`, exp, name: name.v, pe: entry.pe, entry: entry.v })
  }
  return cases
}

async function runDlq(B, retry, cases, redis) {
  let resolved = 0
  let verified = 0
  await inChunks(cases, 50, async (c) => {
    const outcome = await B.call('pushToDlq', c.index, c.d, c.exp, () => retry.pushToDlq(...c.args), { hint: () => features(c.entry) })
    if (outcome.type !== 'resolve') return
    resolved++
    const field = outcome.value
    if (typeof field !== 'string' || field === '') {
      B.violate('pushToDlq', c.index, 'resolved to something other than a non-empty field name', c.d, { got: show(field) })
      return
    }
    const stored = await redis.hget(wf(c.name), field)
    if (stored === null) {
      B.violate('pushToDlq', c.index, 'resolved, but the field is not in the hash', c.d, { got: field })
      return
    }
    if (c.pe.kind === 'text') {
      B.note(stored === c.pe.text ? 'pushToDlq: string entry stored verbatim (not JSON-encoded)' : 'pushToDlq: string entry stored differently')
      return
    }
    if (c.pe.kind === 'json') {
      verified++
      if (!sameValue(c.pe, stored)) {
        B.violate('pushToDlq', c.index, 'stored entry differs from JSON.stringify(entry)', c.d, { expected: c.pe.json, got: clip(stored, 200), hint: mismatchHint(c.pe, stored, c.entry) })
      }
      return
    }
    if (c.pe.kind === 'reject' && c.exp === null) {
      B.violate('pushToDlq', c.index, 'JSON.stringify cannot serialize this entry, but it was stored', c.d, { got: clip(stored, 200), hint: features(c.entry) })
    }
  })
  return { cases: cases.length, resolved, verified }
}

// ---- queueListener ----------------------------------------------------------------------------

/**
 * Producers that misbehave in every way a JavaScript object can. `exp` is what queueListener must
 * do with it (resolve: it starts; ERR_INVALID_ARG: neither produce nor send is a function).
 */
function producerCatalog(hit, ctx) {
  const called = (name) => () => hit(name)
  const entries = [
    ['async produce that resolves', RESOLVE, (c) => ({ produce: async () => c() })],
    ['kafkajs-shaped send that resolves', RESOLVE, (c) => ({ send: async () => (c(), [{ topicName: 't', partition: 0, errorCode: 0 }]) })],
    ['both produce and send', RESOLVE, (c) => ({ produce: async () => c(), send: async () => c() })],
    ['produce: 42', INVALID, () => ({ produce: 42 })],
    ["produce: 'x'", INVALID, () => ({ produce: 'x' })],
    ['produce: {}', INVALID, () => ({ produce: {} })],
    ['produce: null, send: 1', INVALID, () => ({ produce: null, send: 1 })],
    ['produce: Symbol()', INVALID, () => ({ produce: Symbol('p') })],
    ['produce: a Proxy of {}', INVALID, () => ({ produce: new Proxy({}, {}) })],
    ['produce throws an Error synchronously', RESOLVE, (c) => ({ produce() { c(); throw hostileError('sync produce') } })],
    ['produce throws 42 synchronously', RESOLVE, (c) => ({ produce() { c(); throw 42 } })],
    ['produce throws undefined synchronously', RESOLVE, (c) => ({ produce() { c(); throw undefined } })],
    ['produce throws a Proxy whose traps throw', RESOLVE, (c) => ({ produce() { c(); throw throwingProxy() } })],
    ['produce returns 42', RESOLVE, (c) => ({ produce: () => (c(), 42) })],
    ['produce returns undefined', RESOLVE, (c) => ({ produce: () => void c() })],
    ['produce returns null', RESOLVE, (c) => ({ produce: () => (c(), null) })],
    ['produce returns {}', RESOLVE, (c) => ({ produce: () => (c(), {}) })],
    ['produce returns a Symbol', RESOLVE, (c) => ({ produce: () => (c(), Symbol('r')) })],
    ['produce returns 1n', RESOLVE, (c) => ({ produce: () => (c(), 1n) })],
    ['produce returns a function', RESOLVE, (c) => ({ produce: () => (c(), () => {}) })],
    ['produce returns a thenable that resolves', RESOLVE, (c) => ({ produce: () => (c(), { then: (res) => res() }) })],
    ['produce returns a thenable whose then throws', RESOLVE, (c) => ({ produce: () => (c(), { then() { throw hostileError('then') } }) })],
    ['produce returns a never-settling promise', RESOLVE, (c) => ({ produce: () => (c(), new Promise(() => {})) })],
    ['produce rejects with undefined', RESOLVE, (c) => ({ produce: () => (c(), Promise.reject(undefined)) })],
    ['produce rejects with 42', RESOLVE, (c) => ({ produce: () => (c(), Promise.reject(42)) })],
    ['produce rejects with {}', RESOLVE, (c) => ({ produce: () => (c(), Promise.reject({})) })],
    ['produce rejects with null', RESOLVE, (c) => ({ produce: () => (c(), Promise.reject(null)) })],
    ['produce rejects with a Symbol', RESOLVE, (c) => ({ produce: () => (c(), Promise.reject(Symbol('rej'))) })],
    ['produce rejects with a Proxy whose traps throw', RESOLVE, (c) => ({ produce: () => (c(), Promise.reject(throwingProxy())) })],
    ['produce rejects with an Error whose message getter throws', RESOLVE, (c) => ({ produce: () => (c(), Promise.reject(defineGetter(new Error('x'), 'message', () => { throw hostileError('message getter') }))) })],
    ['produce rejects after 100 ms with undefined', RESOLVE, (c) => ({ produce: () => (c(), new Promise((_, reject) => setTimeout(() => reject(undefined), 100))) })],
    ['produce resolves after 600 ms (past the 400 ms publish budget)', RESOLVE, (c) => ({ produce: () => (c(), new Promise((resolve) => setTimeout(resolve, 600))) })],
    ['produce resolves with a Proxy whose traps throw', RESOLVE, (c) => ({ produce: () => (c(), Promise.resolve(throwingProxy())) })],
    ['produce resolves with a thenable that rejects with 42', RESOLVE, (c) => ({ produce: async () => (c(), { then: (_, reject) => reject(42) }) })],
    ['produce is a class constructor', RESOLVE, (c) => ({ produce: class Produce { constructor() { c() } } })],
    // eslint-disable-next-line require-yield -- a generator without yield is the case under test
    ['produce is an async generator function', RESOLVE, (c) => ({ produce: async function* gen() { c() } })],
    ['produce relies on this', RESOLVE, (c) => ({ n: 0, produce() { c(); this.n++; return Promise.resolve() } })],
    ['producer is a function with a produce property', RESOLVE, (c) => Object.assign(function producer() {}, { produce: async () => c() })],
    ['produce is a callable Proxy whose apply throws', RESOLVE, (c) => ({ produce: new Proxy(function () {}, { apply() { c(); throw hostileError('apply') } }) })],
    ['produce is a bound native function (Math.max)', RESOLVE, () => ({ produce: Math.max.bind(Math) })],
    ['send throws 1 synchronously', RESOLVE, (c) => ({ send() { c(); throw 1 } })],
    ['send rejects with undefined', RESOLVE, (c) => ({ send: () => (c(), Promise.reject(undefined)) })],
    ['produce pushes to the queue re-entrantly and returns that promise', RESOLVE, (c) => ({ produce: () => (c(), ctx.retry.pushToQueue('reentrant', { event: 'e', value: '{}' }, { delay: '60' })) })],
    ['produce calls close() and returns its promise', null, (c) => ({ produce: () => (c(), ctx.closeFromProducer(true)) })],
    ['produce calls close() without waiting for it', null, (c) => ({ produce: () => (c(), void ctx.closeFromProducer(false)) })],
    ['produce getter throws', null, () => defineGetter({}, 'produce', () => { throw hostileError('produce getter') })],
    ['produce getter throws undefined', null, () => defineGetter({}, 'produce', () => { throw undefined })],
    ['produce getter returns a function once, then throws', null, (c) => {
      let reads = 0
      return defineGetter({}, 'produce', () => {
        if (reads++ === 0) return async () => c()
        throw hostileError('second produce read')
      })
    }],
    ['producer is a Proxy whose traps throw', null, () => throwingProxy()],
    ['producer is a revoked Proxy', null, () => revokedProxy()],
    ['producer is a transparent Proxy of a good producer', RESOLVE, (c) => new Proxy({ produce: async () => c() }, {})],
  ]
  return entries.map(([name, exp, make]) => ({ name, exp, make: () => make(called(name)) }))
}

async function runListeners(B, KafkaRetry, seed, prefix, kafkaBrokers) {
  const g = new Gen(seed, 'queueListener')
  const calls = {}
  const hit = (name) => (calls[name] = (calls[name] || 0) + 1)
  const instances = []
  let index = 0
  const fromProducerCloses = []

  // Group 1: one instance per catalog producer (and a few random mixes), with messages due now and
  // an exhausted one, so every producer is called and the dead letter path runs.
  const catalogSize = producerCatalog(hit, {}).length
  const groups = []
  for (let k = 0; k < catalogSize; k++) groups.push([k])
  for (let k = 0; k < 8; k++) groups.push(Array.from({ length: 2 + g.int(4) }, () => (g.chance(0.8) ? g.int(catalogSize) : -1)))
  for (const [n, group] of groups.entries()) {
    const keyPrefix = `${prefix}:L${n}`
    const config = { keyPrefix, leaseMs: 500, pollIntervalMs: 50 + g.int(200) }
    const retry = new KafkaRetry(config)
    const inst = { retry, label: `listener instance ${n} (${keyPrefix})`, keyPrefix, closeExp: RESOLVE, mayBeClosed: false }
    instances.push(inst)
    const ctx = {
      retry,
      closeFromProducer(wait) {
        inst.mayBeClosed = true
        const p = retry.close()
        fromProducerCloses.push(B.call('close', index++, `close() called from inside produce of ${inst.label}`, RESOLVE, () => p))
        return wait ? p : undefined
      },
    }
    const catalog = producerCatalog(hit, ctx)
    for (const [m, options] of [[0, { delay: '0' }], [1, { delay: 0 }], [2, { delay: '0', maxRetry: '3', retryCount: '3' }]]) {
      await B.call('pushToQueue (listener setup)', index++, `(${keyPrefix} setup message ${m})`, RESOLVE, () =>
        retry.pushToQueue(`hostile-topic-${m}`, { event: `e${m}`, value: JSON.stringify({ msgId: `${keyPrefix}-${m}`, n: m }) }, options),
      )
    }
    for (const pick of group) {
      let producer
      let exp
      let d
      if (pick >= 0) {
        const entry = catalog[pick]
        producer = entry.make()
        exp = entry.exp
        d = entry.name
      } else {
        const w = g.weird()
        if (w.kind === 'nullish') {
          producer = catalog[0].make()
          exp = RESOLVE
          d = catalog[0].name
        } else {
          producer = w.v
          d = w.d
          exp = ['boolean', 'number', 'string', 'bigint', 'symbol', 'array'].includes(w.kind) || w.bare ? INVALID : null
        }
      }
      let dlq
      // A catalog producer's own instance always gets a valid dlqName, so its listener starts
      // and the producer is really called (the final check counts those calls).
      const roll = group.length === 1 ? g.int(8) : g.int(10)
      if (roll < 3) dlq = { omit: true, d: '<omitted>', exp: RESOLVE }
      else if (roll < 4) dlq = { v: null, d: 'null', exp: RESOLVE }
      else if (roll < 8) {
        const s = `${keyPrefix}:dlq:${g.str()}`
        dlq = { v: s, d: show(s), exp: RESOLVE }
      } else if (roll < 9) dlq = { v: '', d: '""', exp: INVALID }
      else {
        const w = g.weird()
        dlq = w.kind === 'string' ? { v: `${keyPrefix}:dlq:${w.v}`, d: w.d, exp: RESOLVE } : { v: w.v, d: w.d, exp: w.kind === 'nullish' ? RESOLVE : INVALID }
      }
      let expected = combine(exp, dlq.exp)
      // An instance whose producer closes it may already be closed: ERR_CLOSED is then right too.
      if (group.some((p) => p >= 0 && catalog[p].name.startsWith('produce calls close()'))) expected = null
      const args = dlq.omit ? [producer] : [producer, dlq.v]
      await B.call('queueListener', index++, `(${d}, ${dlq.d}) on ${inst.label}`, expected, () => retry.queueListener(...args))
    }
    // A push after the listeners started wakes them.
    if (!inst.mayBeClosed) {
      await B.call('pushToQueue (listener setup)', index++, `(${keyPrefix} message pushed after the listeners started)`, null, () =>
        retry.pushToQueue('hostile-topic-late', { event: 'late', value: '{"late":true}' }, { delay: '0.001' }),
      )
    }
  }

  // Group 2: the internal (rdkafka) producer with awkward brokers and librdkafka properties. No
  // messages are scheduled for these, so nothing is published to the real broker.
  const brokerChoices = [
    [kafkaBrokers, RESOLVE], ['\u0000', null], ['a\u0000b:9092', null], ['漢字.invalid:9092', null], ['\ud800:1', null], ['[::1', null],
    [' ', RESOLVE], ['x'.repeat(100000), null], [['127.0.0.1:1', '127.0.0.1:2'], RESOLVE], [['\u0000'], null], [[], RESOLVE],
  ]
  const kafkaChoices = [
    [{}, RESOLVE], [{ 'client.id': 'hostile\u0000' }, null], [{ 'no.such.property': 'x' }, INVALID], [{ acks: 'bogus' }, INVALID],
    [{ 'message.timeout.ms': -1 }, INVALID], [{ '😀': '1' }, INVALID], [{ 'client.id': '\ud800' }, null], [{ 'socket.timeout.ms': NaN }, INVALID],
    [{ '': '' }, null], [{ 'linger.ms': 1e300 }, null], [{ 'client.id': 'hostile' }, RESOLVE],
  ]
  for (let n = 0; n < 14; n++) {
    const [brokers, bExp] = n === 0 ? brokerChoices[0] : g.pick(brokerChoices)
    const [kafka, kExp] = n === 0 ? kafkaChoices[0] : g.pick(kafkaChoices)
    const keyPrefix = `${prefix}:I${n}`
    const retry = new KafkaRetry({ keyPrefix, brokers, kafka, leaseMs: 500 })
    const inst = { retry, label: `internal-producer instance ${n} (${keyPrefix}, brokers ${show(brokers)}, kafka ${JSON.stringify(kafka)})`, keyPrefix, closeExp: null }
    instances.push(inst)
    for (let k = 0; k < 2; k++) {
      const producer = g.pick([null, undefined])
      const dlq = g.chance(0.5) ? undefined : `${keyPrefix}:dlq`
      await B.call('queueListener', index++, `(${show(producer)}, ${show(dlq)}) on ${inst.label}`, combine(bExp, kExp), () => retry.queueListener(producer, dlq))
    }
  }

  // Let the listeners work: publishes fail and back off (0.5 s, 1 s, 2 s), leases time out.
  await sleep(3000)
  return { instances, calls, fromProducerCloses, catalogSize, groups: groups.length }
}

// ---- close() and calls after it ---------------------------------------------------------------

async function closeAll(B, seed, instances) {
  const g = new Gen(seed, 'close')
  let index = 0
  const started = Date.now()
  await Promise.all(
    instances.map(async (inst) => {
      const extra = g.chance(0.3) ? [g.weird().v, g.weird().v] : []
      const twice = g.chance(0.2)
      const d = `close(${extra.length ? '<2 weird args>' : ''}) on ${inst.label}${twice ? ' (called twice at once)' : ''}`
      const first = B.call('close', index++, d, inst.closeExp, () => inst.retry.close(...extra), { timeoutMs: 15000 })
      const second = twice ? B.call('close', index++, `second ${d}`, inst.closeExp, () => inst.retry.close(), { timeoutMs: 15000 }) : null
      await Promise.all([first, second])
      inst.closed = true
    }),
  )
  return Date.now() - started
}

async function runPostClose(B, seed, instances, prefix) {
  const g = new Gen(seed, 'postClose')
  const good = { produce: async () => {} }
  for (let i = 0; i < COUNTS.postClose; i++) {
    const inst = g.pick(instances)
    const which = g.int(4)
    const valid = g.chance(0.6)
    let d
    let exp
    let fn
    const weirdArgs = (n) => {
      const ws = Array.from({ length: n }, () => g.weird())
      return [ws.map((w) => w.v), ws.map((w) => w.d).join(', ')]
    }
    if (which === 0) {
      const [wv, wd] = weirdArgs(3)
      const args = valid ? ['t', { event: 'e', value: '{}' }, { delay: '60' }] : wv
      d = valid ? "pushToQueue('t', { event: 'e', value: '{}' }, { delay: '60' })" : `pushToQueue(${wd})`
      exp = valid ? CLOSED : null
      fn = () => inst.retry.pushToQueue(...args)
    } else if (which === 1) {
      const [wv, wd] = weirdArgs(2)
      const args = valid ? [good, `${prefix}:closed-dlq`] : wv
      d = valid ? 'queueListener({ produce: async () => {} }, dlq)' : `queueListener(${wd})`
      exp = valid ? CLOSED : null
      fn = () => inst.retry.queueListener(...args)
    } else if (which === 2) {
      const [wv, wd] = weirdArgs(2)
      const args = valid ? [`${prefix}:closed-dlq`, { a: 1 }] : wv
      d = valid ? 'pushToDlq(dlq, { a: 1 })' : `pushToDlq(${wd})`
      exp = valid ? CLOSED : null
      fn = () => inst.retry.pushToDlq(...args)
    } else {
      d = 'close() again'
      exp = inst.closeExp
      fn = () => inst.retry.close()
    }
    await B.call('after close()', i, `${d} on closed ${inst.label}`, exp, fn, { redisReachable: !inst.label.startsWith('constructor') })
  }
}

// ---- the child's main -------------------------------------------------------------------------

async function child() {
  const seed = Number(process.env.HOSTILE_SEED) >>> 0
  const prefix = process.env.HOSTILE_PREFIX || `hostile-${process.pid}-${Date.now().toString(36)}`
  const redisUrl = process.env.REDIS_URL || 'redis://127.0.0.1:6379'
  const kafkaBrokers = process.env.KAFKA_BROKERS || 'localhost:9092'
  const { KafkaRetry } = require(path.join(__dirname, '..', '..'))
  const Redis = require('ioredis')
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 1 })
  const B = new Battery(seed)
  const times = {}
  const time = async (name, fn) => {
    const t = Date.now()
    const r = await fn()
    times[name] = Date.now() - t
    return r
  }
  process.stderr.write(`hostile battery: seed ${seed}, prefix ${prefix}\n`)

  await time('headers', () => runHeaders(B, KafkaRetry, seed))
  const ctorInstances = []
  await time('constructor', () => runConstructor(B, KafkaRetry, seed, redisUrl, ctorInstances))

  const pushKeys = { due: `{${prefix}}:due`, lease: `{${prefix}}:lease`, entries: `{${prefix}}:entries`, seen: `{${prefix}}:seen` }
  // Three instances on one schedule (they share the connection and the push batcher).
  const pushRetries = [0, 1, 2].map(() => new KafkaRetry({ keyPrefix: prefix }))
  const push = await time('pushToQueue', () => runPushes(B, pushRetries, pushCases(seed, prefix), redis, pushKeys))
  const dlq = await time('pushToDlq', () => runDlq(B, pushRetries[0], dlqCases(seed, prefix), redis))
  const listeners = await time('queueListener', () => runListeners(B, KafkaRetry, seed, prefix, kafkaBrokers))

  const all = [
    ...pushRetries.map((retry, n) => ({ retry, label: `push instance ${n}`, closeExp: RESOLVE })),
    ...listeners.instances,
    ...ctorInstances,
  ]
  times.close = await closeAll(B, seed, all)
  await Promise.all(listeners.fromProducerCloses)

  // close() must leave nothing claimed (README: "nothing stays leased").
  const leftLeased = []
  for (const inst of listeners.instances) {
    const leased = await redis.zcard(`{${inst.keyPrefix}}:lease`)
    if (leased) leftLeased.push(`${inst.label}: ${leased}`)
  }
  for (const l of leftLeased) B.violate('close', -1, 'messages still leased after close()', l)

  await time('postClose', () => runPostClose(B, seed, all.filter((i) => i.closed), prefix))
  const dlqEntries = {}
  for (const inst of listeners.instances.slice(0, 3)) dlqEntries[inst.keyPrefix] = await redis.hlen(`${inst.keyPrefix}:dead-letters`)
  if (!process.env.HOSTILE_PREFIX && !process.env.HOSTILE_KEEP) {
    // Run by hand: remove this run's keys (under jest, the test reads them first and then removes them).
    let cursor = '0'
    do {
      const [next, found] = await redis.scan(cursor, 'MATCH', `*${prefix}*`, 'COUNT', 1000)
      cursor = next
      if (found.length) await redis.del(...found)
    } while (cursor !== '0')
  }
  await redis.quit()

  const summary = B.summary({
    prefix,
    times,
    push,
    dlq,
    listener: { instances: listeners.instances.length, groups: listeners.groups, catalogSize: listeners.catalogSize, producerCalls: listeners.calls, dlqEntries },
    closedInstances: all.length,
    summaryAt: Date.now(),
  })
  if (process.env.HOSTILE_DUMP) require('fs').writeFileSync(process.env.HOSTILE_DUMP, JSON.stringify(B.violations, null, 1))
  process.stdout.write(`${SUMMARY_TAG}${JSON.stringify(summary)}\n`)
  // Nothing more: every instance is closed, so the process must now exit by itself. If it does not,
  // say what keeps it alive (this timer does not).
  setTimeout(() => {
    const resources = typeof process.getActiveResourcesInfo === 'function' ? process.getActiveResourcesInfo() : []
    process.stderr.write(`HOSTILE_STILL_ALIVE after 5 s; active resources: ${JSON.stringify(resources)}\n`)
  }, 5000).unref()
}

// ---------------------------------------------------------------------------------------------
// The jest side
// ---------------------------------------------------------------------------------------------

function jestSuite() {
  const crypto = require('crypto')
  const { spawn } = require('child_process')
  const h = require('../helpers')

  const SEED = process.env.HOSTILE_SEED !== undefined ? Number(process.env.HOSTILE_SEED) >>> 0 : crypto.randomInt(2 ** 32)
  const CHILD_DEADLINE_MS = 55000
  const EXIT_GRACE_MS = 10000
  const prefix = h.unique('hostile')
  let run
  let summary
  let redis

  function runChild() {
    return new Promise((resolve) => {
      const started = Date.now()
      const child = spawn(process.execPath, [__filename], {
        cwd: path.join(__dirname, '..', '..'),
        env: { ...process.env, HOSTILE_SEED: String(SEED), HOSTILE_PREFIX: prefix },
        stdio: ['ignore', 'pipe', 'pipe'],
      })
      let stdout = ''
      let stderr = ''
      let summaryAt = null
      child.stdout.on('data', (d) => {
        stdout += d
        if (summaryAt === null && stdout.includes(SUMMARY_TAG)) summaryAt = Date.now()
      })
      child.stderr.on('data', (d) => (stderr += d))
      let killedBy = null
      const kill = (why) => {
        killedBy = why
        child.kill('SIGKILL')
      }
      const deadline = setTimeout(() => kill(`still running after ${CHILD_DEADLINE_MS} ms`), CHILD_DEADLINE_MS)
      const poll = setInterval(() => {
        if (summaryAt !== null && Date.now() - summaryAt > EXIT_GRACE_MS) kill(`did not exit within ${EXIT_GRACE_MS} ms of closing every instance`)
      }, 200)
      child.on('exit', (code, signal) => {
        clearTimeout(deadline)
        clearInterval(poll)
        resolve({ code, signal, stdout, stderr, killedBy, ms: Date.now() - started, exitAfterSummaryMs: summaryAt === null ? null : Date.now() - summaryAt })
      })
    })
  }

  function describeViolations(filter) {
    const groups = summary.violationGroups.filter((g) => filter(g.first))
    if (!groups.length) return ''
    const lines = groups.map((g) => {
      const f = g.first
      return `  ${g.count} x [${g.key}]\n     e.g. seed ${SEED} ${f.method} case #${f.index}: ${clip(f.args, 400)}\n     expected ${clip(String(f.expected ?? '-'), 300)}; got ${clip(String(f.got ?? '-'), 300)}${f.message ? `; message: ${clip(JSON.stringify(f.message), 200)}` : ''}`
    })
    return `seed ${SEED} (reproduce with HOSTILE_SEED=${SEED}):\n${lines.join('\n')}`
  }

  function assertNoViolations(filter) {
    const text = describeViolations(filter)
    if (text) throw new Error(text)
  }

  beforeAll(async () => {
    console.log(`hostile battery: seed ${SEED} (reproduce with HOSTILE_SEED=${SEED}), key prefix ${prefix}`)
    redis = h.redisClient()
    await redis.ping() // fails (with ioredis' error) when Redis is not reachable
    run = await runChild()
    const line = run.stdout.split('\n').find((l) => l.startsWith(SUMMARY_TAG))
    summary = line ? JSON.parse(line.slice(SUMMARY_TAG.length)) : null
    if (summary) {
      const counts = Object.entries(summary.stats).map(([m, s]) => `${m}: ${s.cases}`).join(', ')
      console.log(`hostile battery: seed ${SEED}: ${summary.totalCases} cases (${counts}) in ${run.ms} ms; phases ${JSON.stringify(summary.times)} ms; ${summary.violationCount} violations`)
    }
  }, CHILD_DEADLINE_MS + 15000)

  afterAll(async () => {
    if (!redis) return
    // Delete everything this run wrote (every key holds the unique prefix).
    let cursor = '0'
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `*${prefix}*`, 'COUNT', 1000)
      cursor = next
      if (keys.length) await redis.del(...keys)
    } while (cursor !== '0')
    redis.disconnect()
  })

  test('the child process neither crashes nor hangs, and exits by itself once every instance is closed', () => {
    const tail = run.stderr.split('\n').filter((l) => !/^(kafka-redis-retry: ERR_KAFKA_PUBLISH|Caused by:)/.test(l)).slice(-30).join('\n')
    const context = `seed ${SEED}; killed: ${run.killedBy}; code ${run.code}; signal ${run.signal}; stderr tail:\n${tail}`
    expect({ killedBy: run.killedBy, signal: run.signal, code: run.code, context: run.code === 0 && !run.signal ? '' : context }).toEqual({ killedBy: null, signal: null, code: 0, context: '' })
    expect(summary).not.toBeNull()
    expect(run.exitAfterSummaryMs).toBeLessThan(EXIT_GRACE_MS)
  })

  test('covers at least 1,000 cases, every public method included', () => {
    expect(summary.totalCases).toBeGreaterThanOrEqual(1000)
    for (const method of ['headers', 'constructor', 'pushToQueue', 'pushToDlq', 'queueListener', 'close', 'after close()']) {
      expect([method, summary.stats[method] && summary.stats[method].cases > 0]).toEqual([method, true])
    }
  })

  test('KafkaRetry.headers() never throws and always returns three strings (the headers\' text, or the defaults)', () => {
    assertNoViolations((v) => v.method === 'headers')
  })

  test('new KafkaRetry(config) returns an instance or throws an Error with a documented code', () => {
    assertNoViolations((v) => v.method === 'constructor')
  })

  test('pushToQueue resolves or rejects with a documented code (never ERR_REDIS_UNAVAILABLE against a live Redis)', () => {
    assertNoViolations((v) => v.method.startsWith('pushToQueue') && v.index >= 0)
  })

  test('afterwards the schedule holds exactly the valid pushes, each with its topic, event and value', async () => {
    assertNoViolations((v) => v.method === 'pushToQueue' && v.index < 0)
    const keys = h.scheduleKeys(prefix)
    const [zcard, hlen] = await Promise.all([redis.zcard(keys.due), redis.hlen(keys.entries)])
    expect({ zcard, hlen }).toEqual({ zcard: summary.push.expectedStored, hlen: summary.push.expectedStored })
    expect(summary.push.expectedStored).toBeGreaterThan(300) // the battery stored real work (about 550 per run)
    expect(summary.push.redeliveries).toBeGreaterThan(0)
  })

  test('pushToDlq resolves to a field holding the entry, or rejects with a documented code', () => {
    assertNoViolations((v) => v.method === 'pushToDlq')
    expect(summary.dlq.verified).toBeGreaterThan(50)
  })

  test('queueListener survives weird producers; close() ends every listener, leaving nothing leased', () => {
    assertNoViolations((v) => v.method === 'queueListener' || v.method === 'close' || v.method === 'after close()')
    // The battery really went through the publish path with the hostile producers.
    const calls = summary.listener.producerCalls
    for (const name of ['async produce that resolves', 'produce returns a never-settling promise', 'produce rejects with undefined', 'produce throws 42 synchronously']) {
      expect([name, calls[name] > 0]).toEqual([name, true])
    }
  })
}

if (require.main === module) {
  child().catch((err) => {
    // A bug of the battery itself, not of the addon: say so and stop.
    process.stderr.write(`HOSTILE_CHILD_FAILED ${err && err.stack}\n`)
    process.exit(3)
  })
} else if (typeof test === 'function') {
  jestSuite()
} else {
  // Loaded from plain node: the generators, to rebuild a reported case from its seed and index, e.g.
  //   require('./__test__/api/hostile-inputs.test.js').pushCases(seed, 'p')[index].args
  // (the prefix only changes names, not which values are drawn).
  module.exports = { Gen, pushCases, dlqCases, headersCase, constructorCase, producerCatalog, mulberry32, streamSeed }
}
