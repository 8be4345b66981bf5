// requeueDeadLetters' `onProgress`, wrapped so that a throw in it becomes a process warning: a
// throw inside a threadsafe-function call would be Node's uncaught exception and end the process.
//
// Loaded by src/requeue_watch.rs with `include_str!` and evaluated with napi's
// `env.run_script`: this file is a script whose value is the parenthesised function below,
// `(report) => (count) => void`. Keep that shape.
(function () {
  'use strict'
  return (report) => (count) => {
    try {
      report(count)
    } catch (err) {
      process.emitWarning(`requeueDeadLetters onProgress threw: ${(err && err.stack) || err}`, 'KafkaRetryWarning')
    }
  }
})()
