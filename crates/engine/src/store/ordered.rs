//! Ordered retries in Redis (issue 23): per topic and key, a chain of the messages not yet
//! handled, oldest first, whose head alone is on the schedule (or on its way to the consumer, or
//! dead-lettered); the others are held until the head is handled. Only ordered calls touch these
//! keys and scripts: the unordered push, claim and ack are unchanged. See `lua/lib/ordered.lua`
//! for the layout.

use super::schedule::Schedule;
use crate::error::{ErrorCode, Result, RetryError};
use crate::store::scripts;
use redis::Script;
use std::sync::LazyLock;
use std::time::Duration;

static TURN: LazyLock<Script> = LazyLock::new(|| scripts::load("ordered/turn"));
static PARK: LazyLock<Script> = LazyLock::new(|| scripts::load("ordered/park"));
static DONE: LazyLock<Script> = LazyLock::new(|| scripts::load("ordered/done"));
static COUNT: LazyLock<Script> = LazyLock::new(|| scripts::load("ordered/count"));

/// The keys of one ordered chain and of its shard's ordered state: the schedule shard's hash
/// tag, so every ordered script touches one Redis Cluster slot, the same as the schedule it
/// writes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainKeys {
    /// List: tokens of the key's messages not yet handled, oldest first.
    pub chain: String,
    /// Set: the names of the chains that exist in this shard (the blocked keys).
    pub chains: String,
    /// Hash: token -> stored entry without its due time, of each parked message.
    pub held: String,
}

impl ChainKeys {
    /// The keys of the chain of `key` on `topic` in `schedule`'s shard. The lengths make the
    /// name unambiguous whatever characters topic and key hold.
    pub fn new(schedule: &Schedule, topic: &str, key: &str) -> Self {
        let tag = shard_tag(schedule);
        ChainKeys {
            chain: format!("{tag}:chain:{}:{topic}:{}:{key}", topic.len(), key.len()),
            chains: format!("{tag}:chains"),
            held: format!("{tag}:held"),
        }
    }
}

/// `{prefix}` or `{prefix#n}`: the hash tag of a schedule shard's keys.
fn shard_tag(schedule: &Schedule) -> &str {
    let due = &schedule.keys().due;
    due.strip_suffix(":due").unwrap_or(due)
}

/// The shard a chain lives in among `shards`: every message of one topic and key goes to it, so
/// the chain, its held messages and its head's schedule entry share one hash tag.
pub fn chain_shard(topic: &str, key: &str, shards: usize) -> usize {
    let framed = format!("{}:{topic}:{key}", topic.len());
    crate::message::ids::shard_index(&framed, shards)
}

/// What the consumer may do with a message of an ordered key (`turn.lua`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turn {
    /// Nothing of its key waits: handle it.
    Free,
    /// It is its key's head coming back from the schedule: handle it.
    Mine,
    /// Something of its key waits: it was parked behind it.
    Parked,
    /// A copy of a message already handled or parked: drop it.
    Duplicate,
}

/// Where a park or an ordered push put the message (`park.lua`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placed {
    /// On the schedule, due at this time (Redis's clock): it is its key's head.
    Scheduled(u64),
    /// Held behind its key's head.
    Parked,
    /// Stored already (a redelivery): nothing changed.
    Duplicate,
}

/// One message as the ordered scripts store it.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderedMessage {
    /// Its token: the `retryOrder` header it came with, or empty for a first sight.
    pub token: String,
    /// Its schedule id (also its token when it joins a chain).
    pub id: String,
    /// Delay when it is scheduled.
    pub delay_ms: u64,
    /// The stored entry without its due time.
    pub entry: String,
    /// Whether the id comes from the payload's `msgId`.
    pub dedupe: bool,
}

/// The ordered operations of one schedule shard.
pub struct Ordered<'a> {
    schedule: &'a Schedule,
    window: Duration,
}

impl<'a> Ordered<'a> {
    /// Ordered operations on `schedule`, dropping redeliveries acked within `window`.
    pub fn new(schedule: &'a Schedule, window: Duration) -> Self {
        Ordered { schedule, window }
    }

    /// Whether `key` of `topic` has a chain (something of it waits, is on its way to the
    /// consumer, or is dead-lettered).
    pub async fn is_blocked(&self, topic: &str, key: &str) -> Result<bool> {
        let keys = ChainKeys::new(self.schedule, topic, key);
        let chain = &keys.chain;
        self.schedule
            .redis()
            .run("isBlocked", |mut conn| async move {
                redis::cmd("EXISTS")
                    .arg(chain)
                    .query_async::<bool>(&mut conn)
                    .await
            })
            .await
    }

    /// May the consumer handle `message` (of `key` on `topic`) now? Parks it when not.
    pub async fn turn(&self, topic: &str, key: &str, message: &OrderedMessage) -> Result<Turn> {
        let keys = ChainKeys::new(self.schedule, topic, key);
        let (keys, schedule_keys) = (&keys, self.schedule.keys());
        let window = self.window.as_millis() as u64;
        let reply: String = self
            .schedule
            .redis()
            .run_replicated("takeTurn", &keys.chain, |mut conn| async move {
                TURN.key(&keys.chain)
                    .key(&keys.chains)
                    .key(&keys.held)
                    .key(&schedule_keys.entries)
                    .key(&schedule_keys.seen)
                    .arg(window)
                    .arg(&message.token)
                    .arg(&message.id)
                    .arg(&message.entry)
                    .arg(if message.dedupe { "1" } else { "0" })
                    .invoke_async(&mut conn)
                    .await
            })
            .await?;
        match reply.as_str() {
            "free" => Ok(Turn::Free),
            "mine" => Ok(Turn::Mine),
            "parked" => Ok(Turn::Parked),
            "duplicate" => Ok(Turn::Duplicate),
            other => Err(unexpected("turn", other)),
        }
    }

    /// Parks `message` behind its key's head, or schedules it after `delay_ms` when nothing of
    /// its key waits (or it is the head failing again).
    pub async fn place(&self, topic: &str, key: &str, message: &OrderedMessage) -> Result<Placed> {
        let keys = ChainKeys::new(self.schedule, topic, key);
        let (keys, schedule_keys) = (&keys, self.schedule.keys());
        let window = self.window.as_millis() as u64;
        let (what, due): (String, u64) = self
            .schedule
            .redis()
            .run_replicated("park", &keys.chain, |mut conn| async move {
                PARK.key(&keys.chain)
                    .key(&keys.chains)
                    .key(&keys.held)
                    .key(&schedule_keys.due)
                    .key(&schedule_keys.entries)
                    .key(&schedule_keys.seen)
                    .key(&schedule_keys.wake)
                    .key(&schedule_keys.topics)
                    .key(&schedule_keys.history)
                    .arg(window)
                    .arg(&message.token)
                    .arg(&message.id)
                    .arg(message.delay_ms)
                    .arg(&message.entry)
                    .arg(if message.dedupe { "1" } else { "0" })
                    .arg(topic)
                    .invoke_async(&mut conn)
                    .await
            })
            .await?;
        match what.as_str() {
            "scheduled" => Ok(Placed::Scheduled(due)),
            "parked" => Ok(Placed::Parked),
            "duplicate" => Ok(Placed::Duplicate),
            other => Err(unexpected("park", other)),
        }
    }

    /// The head `token` of `key` on `topic` was handled: the next parked message becomes the
    /// head, due now. Returns its due time when one was released.
    pub async fn done(&self, topic: &str, key: &str, token: &str) -> Result<Option<u64>> {
        let keys = ChainKeys::new(self.schedule, topic, key);
        let (keys, schedule_keys) = (&keys, self.schedule.keys());
        let (_released, due): (Option<String>, u64) = self
            .schedule
            .redis()
            .run_replicated("endTurn", &keys.chain, |mut conn| async move {
                DONE.key(&keys.chain)
                    .key(&keys.chains)
                    .key(&keys.held)
                    .key(&schedule_keys.due)
                    .key(&schedule_keys.entries)
                    .key(&schedule_keys.wake)
                    .key(&schedule_keys.topics)
                    .key(&schedule_keys.history)
                    .arg(token)
                    .arg(topic)
                    .invoke_async(&mut conn)
                    .await
            })
            .await?;
        Ok((due > 0).then_some(due))
    }

    /// Blocked keys and parked messages of this shard.
    pub async fn count(&self) -> Result<(u64, u64)> {
        let tag = shard_tag(self.schedule);
        let (chains, held) = (format!("{tag}:chains"), format!("{tag}:held"));
        let (chains, held) = (&chains, &held);
        self.schedule
            .redis()
            .run("ordered count", |mut conn| async move {
                COUNT.key(chains).key(held).invoke_async(&mut conn).await
            })
            .await
    }
}

fn unexpected(script: &str, reply: &str) -> RetryError {
    RetryError::new(
        ErrorCode::Internal,
        format!("the {script} script answered {reply:?}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_names_are_unambiguous_and_tagged() {
        let a = format!("{}:{}:{}:{}", 3, "a:b", 1, "c");
        let b = format!("{}:{}:{}:{}", 1, "a", 5, "b:c");
        assert_ne!(a, b);
        assert_eq!(chain_shard("t", "k", 1), 0);
        let spread: std::collections::HashSet<usize> = (0..64)
            .map(|i| chain_shard("t", &format!("k{i}"), 4))
            .collect();
        assert_eq!(spread.len(), 4, "keys spread over every shard");
        assert_eq!(chain_shard("t", "k7", 4), chain_shard("t", "k7", 4));
    }
}
