//! kafka-retry: a Redis-backed retry queue with backoff and a dead letter queue for Kafka
//! consumers, as a Node.js native addon. The core modules have no napi dependency; `binding` is
//! the thin JavaScript-facing layer.

#![deny(clippy::all)]

pub mod backoff;
pub mod clock;
pub mod config;
pub mod connection;
pub mod dead_letters;
pub mod entry;
pub mod error;
pub mod events;
pub mod listener;
pub mod migrate;
pub mod options;
pub mod payload;
pub mod publisher;
pub mod retry;
pub mod schedule;
pub mod shared;

mod binding;
