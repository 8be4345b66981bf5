//! How a listener is woken early: a push (here or, through `store::schedule::signal`, in another process)
//! of a message due before the listener's planned wake-up.

use crate::registry::{get_or_make, registry, Registry};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::Notify;

/// How a listener is told that something due earlier than its planned wake-up was pushed.
#[derive(Default)]
pub struct Wake {
    pub(super) notify: Notify,
    pub(super) planned: AtomicU64,
}

/// Wake-ups per schedule (Redis URL, key prefix), so a push from any instance in this process
/// wakes the listener of another instance on the same schedule.
static WAKES: Registry<(String, String), Wake> = registry();

impl Wake {
    /// The wake-up of the schedule `key_prefix` on `redis_url` in this process.
    pub fn for_schedule(redis_url: &str, key_prefix: &str) -> Arc<Wake> {
        let key = (redis_url.to_string(), key_prefix.to_string());
        get_or_make(&WAKES, key, Wake::default)
    }

    /// Called when a message due at `due_ms` (Redis's clock) was pushed, here or in another
    /// process: wakes the listener when that is before its planned wake-up, so messages with
    /// short delays fire on time.
    pub fn pushed(&self, due_ms: u64) {
        if due_ms < self.planned.load(Ordering::Acquire) {
            self.notify.notify_waiters();
        }
    }

    /// Wakes the listener whatever it planned (something is due now).
    pub fn notify(&self) {
        self.notify.notify_waiters();
    }
}
