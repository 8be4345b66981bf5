// config.onEvent, called once per event of a batch: the listener hands events over in batches
// (crates/engine/src/observe/events.rs Backlog), one call into JavaScript per batch rather than per event, so a burst
// does not outrun the JavaScript thread. What onEvent throws is ignored, as for one event: a
// metrics bug in the service must not stop the others of the batch, nor crash the process.
//
// `(onEvent) => (events) => void`: lib/index.js hands it to the native module (installHelpers),
// and src/observer.rs wraps each config.onEvent with it.
'use strict'

module.exports = function deliverEvents(onEvent) {
  return (events) => {
    for (const event of events) {
      try {
        onEvent(event)
      } catch {
        // ignored (see above)
      }
    }
  }
}
