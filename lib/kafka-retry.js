// The exported `KafkaRetry`: napi's class (native.KafkaRetry) extended, so every method, getter
// and static (`KafkaRetry.headers`) is the native one and `instanceof` holds for both, with two
// changes (docs/push-batch.md):
// - pushToQueue gathers the pushes of one tick and sends them as one native call (`pushPacked`,
//   one string: lib/push-pack.js) per PART pushes, instead of one call and one promise each. No
//   timer: the pushes of a tick go at the end of that tick (a microtask) or when PART are
//   gathered, so a lone push waits no longer than it did.
// - pushMany reads its items into one such string (`pushManyPacked`) instead of the addon
//   reading each item's object property by property.
'use strict'

const { isProxy } = require('util').types
const { packPush, read } = require('./push-pack.js')

/**
 * Pushes per native call at most: a tick's pushes beyond it go in further calls, so Redis stores
 * one part while JavaScript packs the next, and each part's callers resume on their own (a whole
 * tick in one call made 256 callers move in lockstep: BENCHMARKS.md).
 */
const PART = 64
/** The most items `pushMany` takes (src/args.rs `PUSH_MANY_MAX`); more is the native error. */
const PUSH_MANY_MAX = 100_000

/** @param {typeof import('../native.js').KafkaRetry} NativeKafkaRetry */
function makeClass(NativeKafkaRetry) {
  class KafkaRetry extends NativeKafkaRetry {
    /** The pushes of this tick, packed, and their settlers: [resolve, reject, resolve, ...]. */
    #packed = ''
    #settlers = []
    /** When the first push of this tick was made: the Redis timeout counts from then. */
    #since = 0
    #flush = () => this.#send()

    pushToQueue(topic, message, options) {
      const packed = packPush(topic, message, options)
      // What the packed form cannot carry goes the native way, its errors word for word.
      if (typeof packed !== 'string') return super.pushToQueue(packed[0], packed[1], packed[2])
      if (this.#settlers.length === 0) {
        this.#since = performance.now()
        queueMicrotask(this.#flush)
      }
      this.#packed += packed
      const promise = new Promise((resolve, reject) => {
        this.#settlers.push(resolve, reject)
      })
      // A full part goes at once: Redis stores it while this tick packs the next, and its callers
      // resume without waiting for the rest of the tick.
      if (this.#settlers.length === 2 * PART) this.#send()
      return promise
    }

    pushMany(items) {
      if (!Array.isArray(items) || items.length > PUSH_MANY_MAX || isProxy(items)) return super.pushMany(items)
      let packed = ''
      // Each item's top-level values as read, for the native way should an item not fit.
      const reads = []
      for (let i = 0; i < items.length; i++) {
        const item = items[i]
        if (typeof item !== 'object' || item === null || Array.isArray(item) || isProxy(item)) {
          return super.pushMany(readSoFar(items, reads))
        }
        const topic = read(item, 'topic')
        const message = read(item, 'message')
        const options = read(item, 'options')
        const one = packPush(topic, message, options)
        if (typeof one !== 'string') {
          reads.push(one[0], one[1], one[2])
          return super.pushMany(readSoFar(items, reads))
        }
        reads.push(topic, message, options)
        packed += one
      }
      return super.pushManyPacked(packed)
    }

    close(...args) {
      // The pushes made before close() in this tick are taken before the instance closes.
      this.#send()
      return super.close(...args)
    }

    /** Sends the gathered pushes in one native call and settles each push's promise. */
    #send() {
      const settlers = this.#settlers
      if (settlers.length === 0) return
      const packed = this.#packed
      this.#packed = ''
      this.#settlers = []
      let sent
      try {
        sent = super.pushPacked(packed, performance.now() - this.#since)
      } catch (err) {
        sent = Promise.reject(err)
      }
      sent.then(
        (failures) => {
          if (failures !== undefined) {
            // [index, error, ...]: reject those, then resolve the rest (a settled promise ignores it).
            for (let i = 0; i < failures.length; i += 2) settlers[2 * failures[i] + 1](failures[i + 1])
          }
          for (let i = 0; i < settlers.length; i += 2) settlers[i]()
        },
        (err) => {
          for (let i = 1; i < settlers.length; i += 2) settlers[i](err)
        },
      )
    }
  }
  return KafkaRetry
}

/**
 * `items` for the native pushMany after some were read: those items as plain objects of the
 * values read (so a top-level getter does not run twice; the message's and options' own values
 * of a packed item are read again), the rest as given.
 */
function readSoFar(items, reads) {
  const copy = items.slice()
  for (let i = 0; i < reads.length; i += 3) copy[i / 3] = { topic: reads[i], message: reads[i + 1], options: reads[i + 2] }
  return copy
}

module.exports = { makeClass }
