//! The JavaScript-facing layer: the `KafkaRetry` class. Thin by design: it reads arguments,
//! calls the core in `engine::retry`, and turns core errors into `Error`s with a `code`.
//!
//! `class` is the class; `args` reads method arguments and `convert` single JavaScript values;
//! `settle` and `hub` settle promises; `producer` and `js_publisher` publish through the user's
//! producer or the package's own; `observer` forwards events and log lines; `requeue_watch` turns a filtered requeue's `signal`
//! and `onProgress` into the core's stop and progress report; `helpers` keeps the JavaScript of
//! `lib/` these call back into, handed over by the package's entry (`lib/index.js`).

#![deny(clippy::all)]

mod args;
mod class;
mod convert;
mod helpers;
mod hub;
mod jobs;
mod js_publisher;
mod observer;
mod ordered;
mod packed;
mod producer;
mod requeue_watch;
mod results;
mod settle;

#[cfg(test)]
mod types_test;
