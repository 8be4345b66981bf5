//! Settling many promises per wake-up of the JavaScript thread.
//!
//! napi-rs's `spawn_future` creates a threadsafe function, a tokio task and a libuv wake-up per
//! call. For `pushToQueue`, called thousands of times a second, that was most of the cost. Here a
//! push creates a plain promise; its outcome goes into one queue per JS thread, and one
//! threadsafe function drains the whole queue per wake-up. The function is referenced (keeps Node
//! alive) only while promises are pending, so a top-level `await retry.pushToQueue(...)` is not
//! cut short and an idle process can exit.

use engine::error::RetryError;
use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use std::cell::OnceCell;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// A promise's deferred handle. It is only used on the JS thread that created it; it travels
/// through other threads untouched.
struct Deferred(sys::napi_deferred);

// SAFETY: the pointer is never dereferenced off the JS thread; it only rides along in the queue.
unsafe impl Send for Deferred {}

struct Settled {
    deferred: Deferred,
    outcome: Outcome,
}

/// What a promise settles to.
enum Outcome {
    /// One push: resolves to `undefined` or rejects with a coded `Error`.
    One(std::result::Result<(), RetryError>),
    /// A packed group of pushes (`pushPacked`): resolves to `undefined` when none failed, else
    /// to `[index, error, index, error, ...]` (never rejects: each push settles on its own).
    Group(Vec<(u32, RetryError)>),
}

/// The settling queue of one JS thread.
pub struct Hub {
    queue: Mutex<Vec<Settled>>,
    /// Promises created and not yet settled; touched on the JS thread only.
    pending: AtomicUsize,
    tsfn: ThreadsafeFunction<(), (), (), Status, false, true>,
    raw_tsfn: Arc<AtomicPtr<sys::napi_threadsafe_function__>>,
}

thread_local! {
    static HUB: OnceCell<Arc<Hub>> = const { OnceCell::new() };
}

impl Hub {
    /// The hub of the current JS thread, created on first use.
    pub fn current(env: &Env) -> Result<Arc<Hub>> {
        HUB.with(|cell| {
            if let Some(hub) = cell.get() {
                return Ok(hub.clone());
            }
            let raw_tsfn = Arc::new(AtomicPtr::new(std::ptr::null_mut()));
            // The drain needs the hub, which needs the function: it finds the hub through the
            // thread-local instead.
            let function =
                env.create_function_from_closure::<(), (), _>("kafkaRetrySettle", |_| Ok(()))?;
            let tsfn = function
                .build_threadsafe_function::<()>()
                .weak::<true>()
                .build_callback(|ctx| {
                    HUB.with(|cell| {
                        if let Some(hub) = cell.get() {
                            hub.drain(&ctx.env);
                        }
                    });
                    Ok(())
                })?;
            raw_tsfn.store(tsfn.raw(), Ordering::Release);
            let hub = Arc::new(Hub {
                queue: Mutex::new(Vec::new()),
                pending: AtomicUsize::new(0),
                tsfn,
                raw_tsfn,
            });
            let _ = cell.set(hub.clone());
            Ok(hub)
        })
    }

    /// A new pending promise and the ticket that settles it (JS thread).
    pub fn promise<'env>(self: &Arc<Self>, env: &'env Env) -> Result<(Ticket, Unknown<'env>)> {
        let mut deferred = std::ptr::null_mut();
        let mut promise = std::ptr::null_mut();
        check_status!(unsafe { sys::napi_create_promise(env.raw(), &mut deferred, &mut promise) })?;
        if self.pending.fetch_add(1, Ordering::AcqRel) == 0 {
            // Keep Node alive while a promise is pending.
            unsafe {
                sys::napi_ref_threadsafe_function(env.raw(), self.raw_tsfn.load(Ordering::Acquire))
            };
        }
        let ticket = Ticket {
            hub: self.clone(),
            deferred: Some(Deferred(deferred)),
        };
        Ok((ticket, unsafe {
            Unknown::from_raw_unchecked(env.raw(), promise)
        }))
    }

    fn settle(&self, settled: Settled) {
        let was_empty = {
            let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
            queue.push(settled);
            queue.len() == 1
        };
        // One wake-up per drain: later outcomes ride along with the first.
        if was_empty {
            self.tsfn.call((), ThreadsafeFunctionCallMode::NonBlocking);
        }
    }

    /// Settles everything queued (JS thread).
    fn drain(&self, env: &Env) {
        let settled = std::mem::take(&mut *self.queue.lock().unwrap_or_else(|p| p.into_inner()));
        let count = settled.len();
        for Settled { deferred, outcome } in settled {
            unsafe {
                match outcome {
                    outcome if outcome_is_empty(&outcome) => {
                        let mut undefined = std::ptr::null_mut();
                        sys::napi_get_undefined(env.raw(), &mut undefined);
                        sys::napi_resolve_deferred(env.raw(), deferred.0, undefined);
                    }
                    Outcome::Group(failures) => {
                        let mut array = std::ptr::null_mut();
                        sys::napi_create_array_with_length(
                            env.raw(),
                            failures.len() * 2,
                            &mut array,
                        );
                        for (i, (index, err)) in failures.into_iter().enumerate() {
                            let mut number = std::ptr::null_mut();
                            sys::napi_create_uint32(env.raw(), index, &mut number);
                            sys::napi_set_element(env.raw(), array, 2 * i as u32, number);
                            let error = crate::settle::js_error(env, &err);
                            let value = JsError::from(error).into_value(env.raw());
                            sys::napi_set_element(env.raw(), array, 2 * i as u32 + 1, value);
                        }
                        sys::napi_resolve_deferred(env.raw(), deferred.0, array);
                    }
                    Outcome::One(Ok(())) => {} // resolved above
                    Outcome::One(Err(err)) => {
                        let error = crate::settle::js_error(env, &err);
                        let value = JsError::from(error).into_value(env.raw());
                        sys::napi_reject_deferred(env.raw(), deferred.0, value);
                    }
                }
            }
        }
        if count > 0 && self.pending.fetch_sub(count, Ordering::AcqRel) == count {
            unsafe {
                sys::napi_unref_threadsafe_function(
                    env.raw(),
                    self.raw_tsfn.load(Ordering::Acquire),
                )
            };
        }
    }
}

/// Whether an outcome resolves to `undefined`.
fn outcome_is_empty(outcome: &Outcome) -> bool {
    match outcome {
        Outcome::One(result) => result.is_ok(),
        Outcome::Group(failures) => failures.is_empty(),
    }
}

/// Settles one promise from any thread, exactly once.
pub struct Ticket {
    hub: Arc<Hub>,
    deferred: Option<Deferred>,
}

impl Ticket {
    /// Resolves (`Ok`) or rejects with a coded `Error`.
    pub fn settle(mut self, outcome: std::result::Result<(), RetryError>) {
        if let Some(deferred) = self.deferred.take() {
            self.hub.settle(Settled {
                deferred,
                outcome: Outcome::One(outcome),
            });
        }
    }

    /// Resolves a packed group's promise with the pushes that failed, by index.
    pub fn settle_group(mut self, failures: Vec<(u32, RetryError)>) {
        if let Some(deferred) = self.deferred.take() {
            self.hub.settle(Settled {
                deferred,
                outcome: Outcome::Group(failures),
            });
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        // A ticket dropped unsettled (a bug, or a panic on the way) still settles its promise.
        if let Some(deferred) = self.deferred.take() {
            self.hub.settle(Settled {
                deferred,
                outcome: Outcome::One(Err(RetryError::new(
                    engine::error::ErrorCode::Internal,
                    "the operation ended without an outcome",
                ))),
            });
        }
    }
}
