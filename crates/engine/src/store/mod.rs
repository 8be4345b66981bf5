//! What lives in Redis: the schedule (due messages, leases, entries, the seen window), the dead
//! letter queue, the stored entry format, the original class's buckets, the per topic counts and
//! history the scripts keep (`tally`), and the connection they share. Every multi-key change is a
//! Lua script in `lua/`; the scripts hold the guarantees.
//!
//! Imports run one way: `requeue` and `migrate` use `schedule` and `dead_letters`; those two do
//! not know each other.

pub mod connection;
pub mod dead_letter_search;
pub mod dead_letters;
pub mod entry;
pub mod gate;
pub mod jobs;
pub mod keys;
pub mod migrate;
pub mod ordered;
mod push;
pub mod requeue;
pub mod schedule;
pub mod shard_record;
pub mod signal;
pub mod tally;
pub mod target;
