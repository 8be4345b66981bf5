//! The engine of kafka-redis-retry: a Redis-backed retry queue with backoff and a dead letter
//! queue for Kafka consumers. It has no napi dependency (the compiler holds that: this crate's
//! `Cargo.toml` does not name napi); the Node binding at the repository root converts JavaScript
//! values and delegates here. `ARCHITECTURE.md` maps the modules.

#![deny(clippy::all)]

pub mod backoff;
pub mod batch;
pub mod clock;
pub mod config;
pub mod error;
pub mod events;
pub mod headers;
pub mod ids;
pub mod listener;
pub mod options;
pub mod payload;
pub mod publisher;
pub mod registry;
pub mod retry;
pub mod stats;
pub mod store;
