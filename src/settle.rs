//! Core results to JavaScript: promises settled from core futures, and core errors as `Error`s
//! whose `code` is the stable error code.

use crate::convert::clear_pending_exception;
use engine::error::{Result as CoreResult, RetryError};
use napi::bindgen_prelude::*;
use std::future::Future;

/// Turns a core error into a JavaScript `Error` whose `code` is the stable error code (and, for a
/// bulk operation that failed midway, how many it had done: `requeued` or `removed`).
pub fn js_error(env: &Env, err: &RetryError) -> Error {
    // An exception left by a throwing getter would make creating the error fail.
    clear_pending_exception(env.raw());
    match env.create_error(Error::new(Status::GenericFailure, err.to_string())) {
        Ok(mut object) => {
            let _ = object.set_named_property("code", err.code.as_ref());
            if let Some((what, count)) = err.done_before {
                let _ = object.set_named_property(what, count as f64);
            }
            Error::from(object.to_unknown())
        }
        Err(fallback) => fallback,
    }
}

/// Runs a core future and settles a promise with its result; a core error rejects with a coded
/// `Error`. Validation errors go through here too, so every method rejects rather than throws.
pub fn settle<'env, T, V, F>(
    env: &'env Env,
    work: F,
    to_js: impl FnOnce(T) -> V + 'static,
) -> Result<PromiseRaw<'env, V>>
where
    T: Send + 'static,
    V: ToNapiValue,
    F: Future<Output = CoreResult<T>> + Send + 'static,
{
    env.spawn_future_with_callback(
        async move { Ok(work.await) },
        move |env, outcome| match outcome {
            Ok(value) => Ok(to_js(value)),
            Err(err) => Err(js_error(env, &err)),
        },
    )
}

/// `settle` for work that needs valid arguments first: invalid ones reject with their error.
pub fn settle_with<'env, A, T, V, F>(
    env: &'env Env,
    args: CoreResult<A>,
    work: impl FnOnce(A) -> F,
    to_js: impl FnOnce(T) -> V + 'static,
) -> Result<PromiseRaw<'env, V>>
where
    T: Send + 'static,
    V: ToNapiValue + Send + 'static,
    F: Future<Output = CoreResult<T>> + Send + 'static,
{
    match args {
        Ok(args) => settle(env, work(args), to_js),
        Err(err) => rejected(env, err),
    }
}

/// A promise already rejected with `err`.
fn rejected<'env, V: ToNapiValue + Send + 'static>(
    env: &'env Env,
    err: RetryError,
) -> Result<PromiseRaw<'env, V>> {
    settle(env, async move { Err::<V, _>(err) }, |v| v)
}
