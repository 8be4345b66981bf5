//! The JavaScript the native module calls back into, received from the package's entry
//! (`lib/index.js`) instead of evaluated from Rust: the batch publish loop, the producer shape
//! detection, `handleInOrder`, the event delivery and the `onProgress` guard, each a module of
//! `lib/` with its own unit tests. `lib/index.js` calls `installHelpers` once per Node
//! environment (the main thread, each worker); the object is kept as a reference in the
//! environment's instance data, so it lives as long as that environment and no longer.

use napi::bindgen_prelude::*;
use napi::{JsValue, ValueType};
use napi_derive::napi;

/// The names `installHelpers` requires, each a function (see `lib/index.js`).
// napi-derive registers no export in a `cargo test` build, so there nothing calls the export.
#[cfg_attr(test, allow(dead_code))]
const NAMES: [&str; 5] = [
    "publishBatch",
    "producerShape",
    "handleInOrder",
    "deliverEvents",
    "progressGuard",
];

/// The installed helpers object of one environment.
struct Installed(ObjectRef<false>);

/// Keeps `helpers` (an object with a function under each of `publishBatch`, `producerShape`,
/// `handleInOrder`, `deliverEvents`, `progressGuard`) for this environment's `KafkaRetry`
/// instances. Called by `lib/index.js` when the package loads; a second call replaces the first
/// (jest, for one, loads the entry again per test file over the same addon). Not part of the
/// package's API: the entry does not export it, and the types do not declare it.
#[napi(js_name = "installHelpers", skip_typescript)]
#[cfg_attr(test, allow(dead_code))]
pub fn install_helpers(env: Env, helpers: Object) -> Result<()> {
    for name in NAMES {
        let value: Unknown = helpers.get_named_property(name)?;
        if value.get_type()? != ValueType::Function {
            return Err(Error::new(
                Status::InvalidArg,
                format!("installHelpers: {name} must be a function"),
            ));
        }
    }
    // SAFETY: `helpers` is a live object of this env; the reference is created on its thread.
    let reference = unsafe { ObjectRef::<false>::from_napi_value(env.raw(), helpers.raw()) }?;
    if let Some(installed) = env.get_instance_data::<Installed>()? {
        let previous = std::mem::replace(&mut installed.0, reference);
        previous.unref(&env)?;
        return Ok(());
    }
    // The reference is not released in the finalizer: Node deletes an environment's references
    // when it tears the environment down.
    env.set_instance_data(Installed(reference), (), |_| {})
}

/// The helper `name` of this environment, typed as the caller calls it. Fails when the native
/// module was loaded without the package's entry (`native.js` required on its own), which is the
/// only way no helpers are installed.
pub fn helper<'env, Args: JsValuesTupleIntoVec, Return>(
    env: &'env Env,
    name: &str,
) -> Result<Function<'env, Args, Return>> {
    let Some(installed) = env.get_instance_data::<Installed>()? else {
        return Err(Error::new(
            Status::GenericFailure,
            "kafka-redis-retry: the native module was loaded without its JavaScript layer: require the package (lib/index.js), not native.js",
        ));
    };
    installed.0.get_value(env)?.get_named_property(name)
}
