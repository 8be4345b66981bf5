// The package's entry (package.json `main` and `exports`): the native module, as napi's generated
// loader (native.js) finds it for this platform, with the JavaScript it calls back into handed
// over once, and the package's exports taken from it.
//
// The native module never evaluates JavaScript of its own: what runs in Node lives in the
// modules of this folder, each with its own unit tests (__test__/unit/), and reaches Rust here,
// through `installHelpers` (src/helpers.rs), which keeps them for this Node environment (the main
// thread and each worker load this file, and the addon, once each).
//
// The exports are assigned one by one, as `exports.<name> =`: that is what Node's CommonJS-to-ESM
// detection (cjs-module-lexer) reads, so `import { KafkaRetry } from 'kafka-redis-retry'` works,
// and the default import is this same object.
//
// `KafkaRetry` is a JavaScript class in front of napi's (lib/kafka-retry.js): it extends it, so
// `instanceof`, the statics (`KafkaRetry.headers`) and the getters are napi's, and gathers the
// pushToQueue calls of one tick into one native call (issue 29, docs/push-batch.md).
'use strict'

const native = require('../native.js')

native.installHelpers(
  Object.freeze({
    publishBatch: require('./publish-batch.js'),
    producerShape: require('./producer-shape.js'),
    handleInOrder: require('./handle-in-order.js'),
    deliverEvents: require('./deliver-events.js'),
    progressGuard: require('./progress-guard.js'),
  }),
)

const KafkaRetry = require('./kafka-retry.js').makeClass(native.KafkaRetry)

// The consumer helpers (lib/retrying.js) as methods of the class, so every instance has them.
const { retrying, retryingBatch } = require('./retrying.js')
for (const [name, method] of Object.entries({ retrying, retryingBatch })) {
  Object.defineProperty(KafkaRetry.prototype, name, { value: method, writable: true, configurable: true, enumerable: false })
}

exports.KafkaRetry = KafkaRetry
// Which artifact the loader loaded ('native', or a WASI flavour): napi's loader exports it, and so
// did this package before the entry moved here.
exports.__napiBindingTarget = native.__napiBindingTarget
