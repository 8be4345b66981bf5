//! The engine of kafka-redis-retry: a Redis-backed retry queue with backoff and a dead letter
//! queue for Kafka consumers. It has no napi dependency (the compiler holds that: this crate's
//! `Cargo.toml` does not name napi); the Node binding at the repository root converts JavaScript
//! values and delegates here. `ARCHITECTURE.md` maps the modules.
//!
//! Imports run downward: `retry` (the facade the binding calls) uses `listener`, `publisher` and
//! `store`; everything may use `message`, `observe`, `config`, `error` and the small plumbing
//! modules (`clock`, `registry`, `batch`).

#![deny(clippy::all)]

pub mod batch;
pub mod clock;
pub mod config;
pub mod error;
pub mod listener;
pub mod message;
pub mod observe;
pub mod publisher;
pub mod registry;
pub mod retry;
pub mod store;
