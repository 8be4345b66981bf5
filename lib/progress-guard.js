// requeueDeadLetters' `onProgress`, wrapped so that a throw in it becomes a process warning: a
// throw inside a threadsafe-function call would be Node's uncaught exception and end the process.
//
// `(report) => (count) => void`: lib/index.js hands it to the native module (installHelpers), and
// src/requeue_watch.rs wraps each `onProgress` with it.
'use strict'

module.exports = function progressGuard(report) {
  return (count) => {
    try {
      report(count)
    } catch (err) {
      process.emitWarning(`requeueDeadLetters onProgress threw: ${(err && err.stack) || err}`, 'KafkaRetryWarning')
    }
  }
}
