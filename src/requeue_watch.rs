//! `requeueDeadLetters()`'s `signal` and `onProgress`, turned into the core's
//! [`Watch`](engine::store::dead_letters::requeue::Watch): an `AbortSignal`'s abort sets the requeue's
//! [`Stop`](engine::store::dead_letters::requeue::Stop), and the counts of its progress reach the caller's
//! function through a threadsafe function. That function is wrapped so that a throw becomes a
//! process warning (`lib/progress-guard.js`, the helper `progressGuard`): a throw in a
//! threadsafe-function call would be Node's uncaught exception.

use crate::convert::{describe, is_nullish, object_arg, property};
use engine::error::{Result as CoreResult, RetryError};
use engine::store::dead_letters::requeue::{Stop, Watch};
use napi::bindgen_prelude::*;
use napi::threadsafe_function::ThreadsafeFunctionCallMode;
use std::sync::Arc;

/// `lib/progress-guard.js`: wraps the caller's progress function, so that what it throws is
/// reported as a warning, not thrown.
type Guard<'env> = Function<'env, Function<'env, f64, Unknown<'env>>, Function<'env, f64, ()>>;
/// `signal.addEventListener` called with the event name and the listener.
type AddListener<'env> = Function<'env, FnArgs<(&'env str, Function<'env, (), ()>)>, Unknown<'env>>;

/// The watch `options.signal` and `options.onProgress` ask for (none when absent);
/// `ERR_INVALID_ARG` when `signal` is not an `AbortSignal` or `onProgress` not a function.
pub fn requeue_watch(env: &Env, options: Option<&Unknown>) -> CoreResult<Watch> {
    let mut watch = Watch::default();
    let Some(options) = object_arg("options", options)? else {
        return Ok(watch);
    };
    if let Some(signal) = property(&options, "signal").filter(|v| !is_nullish(Some(v))) {
        watch.stop = Some(listen(env, &signal)?);
    }
    if let Some(report) = property(&options, "onProgress").filter(|v| !is_nullish(Some(v))) {
        watch.progress = Some(progress(env, &report)?);
    }
    Ok(watch)
}

/// A stop set when `signal` aborts (at once when it already has).
fn listen(env: &Env, signal: &Unknown) -> CoreResult<Arc<Stop>> {
    let invalid = || {
        RetryError::invalid_arg(format!(
            "options.signal must be an AbortSignal, got {}",
            describe(signal)
        ))
    };
    if signal.get_type().ok() != Some(ValueType::Object) {
        return Err(invalid());
    }
    let object = unsafe { signal.cast::<Object>() }.map_err(|_| invalid())?;
    let aborted = property(&object, "aborted")
        .filter(|v| v.get_type().ok() == Some(ValueType::Boolean))
        .and_then(|v| unsafe { v.cast::<bool>() }.ok())
        .ok_or_else(invalid)?;
    let add = property(&object, "addEventListener")
        .filter(|v| v.get_type().ok() == Some(ValueType::Function))
        .ok_or_else(invalid)?;
    let stop = Arc::new(Stop::default());
    if aborted {
        stop.stop();
        return Ok(stop);
    }
    let on_abort = {
        let stop = stop.clone();
        env.create_function_from_closure::<(), (), _>("kafkaRetryStopRequeue", move |_| {
            stop.stop();
            Ok(())
        })
    }
    .map_err(internal)?;
    let add: AddListener = unsafe { add.cast() }.map_err(|_| invalid())?;
    add.apply(object, FnArgs::from(("abort", on_abort)))
        .map_err(|err| {
            crate::convert::clear_pending_exception(env.raw());
            RetryError::invalid_arg(format!(
                "options.signal.addEventListener('abort') failed: {}",
                err.reason
            ))
        })?;
    Ok(stop)
}

/// The progress function of the core: each count goes to `report` on the JS thread.
fn progress(env: &Env, report: &Unknown) -> CoreResult<Box<dyn Fn(u64) + Send + Sync>> {
    if report.get_type().ok() != Some(ValueType::Function) {
        return Err(RetryError::invalid_arg(format!(
            "options.onProgress must be a function, got {}",
            describe(report)
        )));
    }
    let report: Function<f64, Unknown> = unsafe { report.cast() }.map_err(internal)?;
    let guard: Guard = crate::helpers::helper(env, "progressGuard").map_err(internal)?;
    let guarded = guard.call(report).map_err(internal)?;
    // Weak: the pending promise keeps Node alive, not the progress reports.
    let tsfn = guarded
        .build_threadsafe_function::<f64>()
        .weak::<true>()
        .build()
        .map_err(internal)?;
    Ok(Box::new(move |count| {
        tsfn.call(count as f64, ThreadsafeFunctionCallMode::NonBlocking);
    }))
}

fn internal(err: napi::Error) -> RetryError {
    RetryError::new(
        engine::error::ErrorCode::Internal,
        format!("cannot watch the requeue: {}", err.reason),
    )
}
