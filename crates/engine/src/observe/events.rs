//! What the listener reports: events for the caller's callback and warnings for the logger.

use crate::error::RetryError;
use crate::message::ids::fnv1a;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Something the listener did or ran into.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A due message was re-published.
    Retry {
        /// Message id in the schedule.
        id: String,
        /// Destination topic.
        topic: String,
        /// Kafka key.
        event: String,
        /// The `retryCount` it was published with.
        retry_count: u64,
        /// Milliseconds between its due time and the broker's ack.
        late_ms: u64,
    },
    /// A message ran out of retries and went to the dead letter queue.
    DeadLetter {
        /// Message id (also its field in the dead letter hash).
        id: String,
        /// Topic it was meant for.
        topic: String,
        /// Kafka key.
        event: String,
        /// Name of the dead letter hash.
        dlq_name: String,
    },
    /// The dead letter queue holds more than `maxDeadLetters` (reported when it first passes
    /// the cap; nothing is trimmed).
    DeadLetterCap {
        /// Name of the dead letter hash.
        dlq_name: String,
        /// How many dead letters it holds.
        count: u64,
        /// The cap.
        max: u64,
    },
    /// A topic's breaker opened: its due retries are held (docs/breaker.md).
    BreakerOpen {
        /// The topic.
        topic: String,
        /// Failures in the window when it opened.
        failures: u64,
        /// Attempts (retries published) in the window when it opened.
        attempts: u64,
    },
    /// A topic's breaker closed: probes went through (its held messages go out over the ramp),
    /// or `resume(topic)` closed it by hand.
    BreakerClose {
        /// The topic.
        topic: String,
        /// How long it was open, ms (0 when closed by hand: not known there).
        open_ms: u64,
        /// Messages it held when it closed.
        held: u64,
        /// Whether `resume(topic)` closed it.
        by_hand: bool,
    },
    /// Something failed; the listener carries on (a failed publish goes back on the schedule).
    Error {
        /// The error code (`ERR_...`).
        code: String,
        /// What went wrong.
        message: String,
    },
}

impl Event {
    /// The `Error` event of `err`.
    pub fn from_error(err: &RetryError) -> Self {
        Event::Error {
            code: err.code.as_ref().to_string(),
            message: err.to_string(),
        }
    }
}

/// Receives events and log lines. The napi layer forwards them to JavaScript.
pub trait Observer: Send + Sync {
    /// Called for every event.
    fn on_event(&self, event: &Event);
    /// Whether events other than errors are wanted at all: when not, the listener does not build
    /// a `Retry` event per published message just to drop it.
    fn wants_events(&self) -> bool {
        true
    }
    /// An event rare by construction that must reach the caller whatever flood of errors
    /// surrounds it (the internal producer replaced after a fatal error): throttles pass it on.
    fn on_notable_event(&self, event: &Event) {
        self.on_event(event)
    }
    /// A warning worth a human's attention (written to stderr by default).
    fn warn(&self, message: &str) {
        eprintln!("kafka-redis-retry: warning: {message}");
    }
    /// Called now and then by the listener, so an observer that holds something back (see
    /// [`ErrorThrottle`]) can let it out.
    fn flush(&self) {}
    /// Events dropped since the observer was made, because its receiver was slower than the
    /// listener for longer than its [`Backlog`] holds (`stats().eventsDropped`).
    fn events_dropped(&self) -> u64 {
        0
    }
}

/// Most events a [`Backlog`] holds for a receiver that is behind: a burst of 50,000 published
/// messages fits (the receiver takes them in batches, so it is rarely behind by even one
/// batch), and a receiver that stopped (a blocked JavaScript thread) holds at most this many
/// events' memory (each its id, topic and key and about a hundred bytes).
pub const MAX_WAITING_EVENTS: usize = 65_536;
/// Most events handed over in one batch: one call into JavaScript per batch, short enough to
/// keep the JavaScript thread's other work going.
pub const EVENTS_PER_BATCH: usize = 1_024;

#[derive(Default)]
struct Waiting {
    events: std::collections::VecDeque<Event>,
    delivering: bool,
}

/// Events on their way to a receiver that takes them in batches (JavaScript's `onEvent`, called
/// from its own thread): one delivery at a time takes every event waiting (up to
/// [`EVENTS_PER_BATCH`]), so the cost per event of reaching the receiver shrinks as a burst grows
/// and none is dropped while the receiver keeps up on average. Bounded: beyond
/// [`MAX_WAITING_EVENTS`] waiting, events are dropped and counted, so a receiver that stops
/// cannot make memory grow with the listener's pace.
#[derive(Default)]
pub struct Backlog {
    waiting: Mutex<Waiting>,
    dropped: AtomicU64,
    unreported: AtomicU64,
}

impl Backlog {
    /// Queues `event`. `true` when no delivery is running: the caller starts one, which takes
    /// batches ([`Self::take_batch`]) until there are none.
    pub fn push(&self, event: Event) -> bool {
        let mut waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        if waiting.events.len() >= MAX_WAITING_EVENTS {
            drop(waiting);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            self.unreported.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        waiting.events.push_back(event);
        !std::mem::replace(&mut waiting.delivering, true)
    }

    /// The oldest waiting events, at most [`EVENTS_PER_BATCH`]; `None` when none wait, and then
    /// the delivery has ended (the next [`Self::push`] starts another).
    pub fn take_batch(&self) -> Option<Vec<Event>> {
        let mut waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        if waiting.events.is_empty() {
            waiting.delivering = false;
            return None;
        }
        let n = waiting.events.len().min(EVENTS_PER_BATCH);
        Some(waiting.events.drain(..n).collect())
    }

    /// Events dropped since the backlog was made.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Events dropped since the last call, once fewer than half the room is taken (so the
    /// report itself has room); 0 otherwise.
    pub fn take_unreported(&self) -> u64 {
        if self.unreported.load(Ordering::Relaxed) == 0 {
            return 0;
        }
        let waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        if waiting.events.len() >= MAX_WAITING_EVENTS / 2 {
            return 0;
        }
        self.unreported.swap(0, Ordering::Relaxed)
    }
}

/// Errors reported in full per window; the rest are counted and summed up in one error.
const ERRORS_PER_WINDOW: u32 = 20;
/// The window of [`ErrorThrottle`].
const ERROR_WINDOW: Duration = Duration::from_secs(10);

#[derive(Default)]
struct Window {
    started: Option<Instant>,
    shown: u32,
    suppressed: u64,
    latest: Option<(String, String)>,
}

/// Passes every event on, but at most [`ERRORS_PER_WINDOW`] errors per [`ERROR_WINDOW`]: a flood
/// of failures (a broker down, a producer that always throws, one error per message) becomes a
/// bounded number of events and log lines, plus one error per window saying how many were held
/// back and which came last. The counters in `stats()` still count every failure.
pub struct ErrorThrottle {
    inner: Arc<dyn Observer>,
    window: Mutex<Window>,
}

impl ErrorThrottle {
    /// Throttles the errors `inner` receives.
    pub fn new(inner: Arc<dyn Observer>) -> Self {
        ErrorThrottle {
            inner,
            window: Mutex::default(),
        }
    }

    /// The summary of a window that ended, if it held errors back; starts a new window.
    fn roll(window: &mut Window, now: Instant) -> Option<Event> {
        let ended = window
            .started
            .is_none_or(|started| now.duration_since(started) >= ERROR_WINDOW);
        if !ended {
            return None;
        }
        let summary = (window.suppressed > 0).then(|| {
            let (code, message) = window.latest.take().unwrap_or_default();
            Event::Error {
                code,
                message: format!(
                    "{} more errors in the last {} s were not reported one by one; the latest: {message}",
                    window.suppressed,
                    ERROR_WINDOW.as_secs()
                ),
            }
        });
        *window = Window {
            started: Some(now),
            ..Window::default()
        };
        summary
    }
}

impl Observer for ErrorThrottle {
    fn on_event(&self, event: &Event) {
        let Event::Error { code, message } = event else {
            return self.inner.on_event(event);
        };
        let (summary, show) = {
            let mut window = self.window.lock().unwrap_or_else(|p| p.into_inner());
            let summary = Self::roll(&mut window, Instant::now());
            let show = window.shown < ERRORS_PER_WINDOW;
            if show {
                window.shown += 1;
            } else {
                window.suppressed += 1;
                window.latest = Some((code.clone(), message.clone()));
            }
            (summary, show)
        };
        if let Some(summary) = summary {
            self.inner.on_event(&summary);
        }
        if show {
            self.inner.on_event(event);
        }
    }

    fn wants_events(&self) -> bool {
        self.inner.wants_events()
    }

    fn on_notable_event(&self, event: &Event) {
        self.inner.on_notable_event(event)
    }

    fn warn(&self, message: &str) {
        self.inner.warn(message)
    }

    fn events_dropped(&self) -> u64 {
        self.inner.events_dropped()
    }

    fn flush(&self) {
        let summary = {
            let mut window = self.window.lock().unwrap_or_else(|p| p.into_inner());
            if window.suppressed == 0 {
                return;
            }
            Self::roll(&mut window, Instant::now())
        };
        if let Some(summary) = summary {
            self.inner.on_event(&summary);
        }
    }
}

/// The default observer: errors and warnings go to stderr, other events nowhere. Never a line per
/// tick; repeated identical errors are written once until a different one happens.
#[derive(Default)]
pub struct StderrObserver {
    last_error_hash: AtomicU64,
}

impl Observer for StderrObserver {
    fn on_event(&self, event: &Event) {
        if let Event::Error { code, message } = event {
            let hash = fnv1a(code) ^ fnv1a(message);
            if self.last_error_hash.swap(hash, Ordering::Relaxed) != hash {
                eprintln!("kafka-redis-retry: {code}: {message}");
            }
        }
    }

    fn wants_events(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Recorder(Mutex<Vec<Event>>);

    impl Observer for Recorder {
        fn on_event(&self, event: &Event) {
            self.0.lock().unwrap().push(event.clone());
        }
    }

    fn error(n: u32) -> Event {
        Event::Error {
            code: "ERR_KAFKA_PUBLISH".into(),
            message: format!("failure {n}"),
        }
    }

    #[test]
    fn a_flood_of_errors_is_bounded_and_counted() {
        let recorder = Arc::new(Recorder::default());
        let throttle = ErrorThrottle::new(recorder.clone());
        for n in 0..50_000 {
            throttle.on_event(&error(n));
        }
        let retry = Event::Retry {
            id: "i".into(),
            topic: "t".into(),
            event: "e".into(),
            retry_count: 1,
            late_ms: 0,
        };
        throttle.on_event(&retry);
        assert_eq!(
            recorder.0.lock().unwrap().len(),
            ERRORS_PER_WINDOW as usize + 1
        );
        // The window ends: the next flush sums up what was held back.
        throttle.window.lock().unwrap().started = Some(Instant::now() - ERROR_WINDOW);
        throttle.flush();
        let events = recorder.0.lock().unwrap();
        let Some(Event::Error { message, .. }) = events.last() else {
            panic!("no summary: {events:?}");
        };
        assert!(message.starts_with("49980 more errors"), "{message}");
        assert!(message.ends_with("failure 49999"), "{message}");
    }

    #[test]
    fn a_backlog_hands_out_every_event_in_order_in_bounded_batches() {
        let backlog = Backlog::default();
        assert!(backlog.push(error(0)), "the first push starts a delivery");
        for n in 1..3_000 {
            assert!(!backlog.push(error(n)), "one delivery at a time");
        }
        let mut seen = Vec::new();
        while let Some(batch) = backlog.take_batch() {
            assert!(!batch.is_empty() && batch.len() <= EVENTS_PER_BATCH);
            seen.extend(batch);
        }
        assert_eq!(seen, (0..3_000).map(error).collect::<Vec<_>>());
        assert_eq!(backlog.dropped(), 0);
        assert!(
            backlog.push(error(0)),
            "the delivery ended: the next push starts another"
        );
    }

    #[test]
    fn a_full_backlog_drops_counts_and_reports_once_there_is_room() {
        let backlog = Backlog::default();
        for n in 0..MAX_WAITING_EVENTS as u32 + 5 {
            backlog.push(error(n));
        }
        assert_eq!(backlog.dropped(), 5);
        assert_eq!(backlog.take_unreported(), 0, "no room for the report yet");
        while backlog.take_batch().is_some() {}
        assert_eq!(backlog.take_unreported(), 5);
        assert_eq!(backlog.take_unreported(), 0);
        assert_eq!(backlog.dropped(), 5, "the total stays for stats()");
    }

    #[test]
    fn a_notable_event_gets_through_a_flood_of_errors() {
        let recorder = Arc::new(Recorder::default());
        let throttle = ErrorThrottle::new(recorder.clone());
        for n in 0..1_000 {
            throttle.on_event(&error(n));
        }
        throttle.on_notable_event(&error(1_000_000));
        assert_eq!(recorder.0.lock().unwrap().last(), Some(&error(1_000_000)));
    }
}
