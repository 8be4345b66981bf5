// config.onEvent, called once per event of a batch: the listener hands events over in batches
// (crates/engine/src/events.rs Backlog), one call into JavaScript per batch rather than per event, so a burst
// does not outrun the JavaScript thread. What onEvent throws is ignored, as for one event: a
// metrics bug in the service must not stop the others of the batch, nor crash the process.
//
// Loaded by src/observer.rs with `include_str!` and evaluated with napi's
// `env.run_script`: this file is a script whose value is the parenthesised function below,
// `(onEvent) => (events) => void`. Keep that shape.
(function () {
  'use strict'
  return (onEvent) => (events) => {
    for (const event of events) {
      try {
        onEvent(event)
      } catch {
        // ignored (see above)
      }
    }
  }
})()
