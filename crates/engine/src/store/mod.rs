//! What lives in Redis, by concept, one folder or file each:
//! - `connection/`: the Redis connection shared per URL (`mod.rs`) and where Redis is and how to
//!   reach it (`target.rs`: URL, Cluster seeds, Sentinel, TLS).
//! - `schedule/`: the schedule of retries: push (batched), claim, ack, release, renew, counts
//!   (`mod.rs`), the push batcher (`push.rs`), the wake channel (`signal.rs`), the recorded shard
//!   count (`shard_record.rs`) and the migration of the original class's buckets (`migrate.rs`).
//! - `dead_letters/`: the dead letter queue: record, index and pages (`mod.rs`), search
//!   (`search.rs`) and requeue into the schedule (`requeue.rs`).
//! - `gate.rs`: the operator gates (pauses, the rate cap); `breaker.rs`: the breaker per topic;
//!   `ordered.rs`: ordered chains;
//!   `tally.rs`: the per topic counts and history the scripts keep; `jobs.rs`: operator jobs;
//!   `audit.rs`: the trail of operator actions.
//! - `keys.rs` (every key name) and `entry.rs` (the stored format) are shared by all of them;
//!   `scripts.rs` is the table of every Lua script and the resolver of their `--- @include` lines.
//!
//! Every multi-key change is a Lua script under `crates/engine/lua/`; the scripts hold the
//! guarantees. Imports run one way: `connection` knows none of the others; `dead_letters::requeue`
//! and `schedule::migrate` use the schedule; the schedule does not know the dead letters.

pub mod audit;
pub mod breaker;
pub mod connection;
pub mod dead_letters;
pub mod entry;
pub mod gate;
pub mod jobs;
pub mod keys;
pub mod ordered;
pub mod schedule;
pub mod scripts;
pub mod tally;
