//! The name of every Redis key the package writes. The schedule's keys of one shard share one
//! hash tag, so each script touches a single Redis Cluster slot; a dead letter hash is named by
//! the user (the original class's `dlqName`) and its index sits beside it.

/// The Redis keys of one schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    /// Sorted set: id -> due time (ms).
    pub due: String,
    /// Sorted set: claimed batch name -> lease deadline (ms); before 0.4, claimed id -> lease
    /// deadline (still read: `claim.lua`).
    pub lease: String,
    /// Hash: claimed batch name -> its claim time (ms) and its ids still leased or acknowledged
    /// (`claim.lua`), until its listener settled it all.
    pub batches: String,
    /// Hash: id -> entry (`Entry::encode`).
    pub entries: String,
    /// Sorted set: acknowledged legacy id -> ack time (ms), for dropping redeliveries that come
    /// after the message was published. Also the start of the seen buckets' names
    /// (`<seen>:<n>`, hashes `ack.lua` writes for ids derived from a `msgId`, see there).
    pub seen: String,
    /// String: when the listeners next look (ms, Redis's clock), written by each claim. Also the
    /// name of the pub/sub channel a push announces an earlier message on.
    pub wake: String,
    /// Hash: id -> how many of its publishes failed with an error retrying cannot fix (see
    /// `release.lua`); an id is in it only while such failures are counted for it.
    pub failures: String,
    /// Hash: the per topic counters the scripts keep (`tally.lua`: scheduled, leased, parked, and
    /// scheduled per due minute).
    pub topics: String,
    /// The start of the per-minute history's names: one hash per hour, `<history>:<hour>`
    /// (`tally.lua`), each expiring 48 hours after its last minute.
    pub history: String,
}

impl Keys {
    /// The keys of shard `shard` of the schedule named by `prefix`. The braces make one shard's
    /// keys one Redis Cluster slot, so every script touches a single slot; shard 0 is `{prefix}`,
    /// shard n is `{prefix#n}`, so different shards land on different slots (and masters).
    pub fn new(prefix: &str, shard: u32) -> Self {
        let tag = if shard == 0 {
            prefix.to_string()
        } else {
            format!("{prefix}#{shard}")
        };
        Keys {
            due: format!("{{{tag}}}:due"),
            lease: format!("{{{tag}}}:lease"),
            batches: format!("{{{tag}}}:batches"),
            entries: format!("{{{tag}}}:entries"),
            seen: format!("{{{tag}}}:seen"),
            wake: format!("{{{tag}}}:wake"),
            failures: format!("{{{tag}}}:failures"),
            topics: format!("{{{tag}}}:topics"),
            history: format!("{{{tag}}}:history"),
        }
    }
}

/// The keys of one schedule shard's operator gates (read by every claim, see `gate.lua`): the
/// same hash tag as its [`Keys`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateKeys {
    /// Hash: topic, or `*` for the whole schedule -> until ms (Redis's clock), 0 for no end.
    pub paused: String,
    /// Sorted set (score 0): `topic \n id` of due messages of a paused topic, out of the due set.
    pub parked: String,
    /// Hash: `tokens`, `at`: the token bucket of `maxPublishRate`.
    pub rate: String,
    /// Hash: the breaker of each topic, its counts and state (`lib/breaker.lua`).
    pub breaker: String,
}

impl GateKeys {
    /// The gate keys of shard `shard` of the schedule `prefix` (see [`Keys::new`]).
    pub fn new(prefix: &str, shard: u32) -> Self {
        let due = Keys::new(prefix, shard).due;
        let tag = due.strip_suffix(":due").unwrap_or(&due);
        GateKeys {
            paused: format!("{tag}:paused"),
            parked: format!("{tag}:parked"),
            rate: format!("{tag}:rate"),
            breaker: format!("{tag}:breaker"),
        }
    }
}

/// The string recording how many shards the schedule `prefix` is spread over, written by the
/// first instance that uses it (shard 0's hash tag, so it sits beside shard 0's keys).
pub fn shards_key(prefix: &str) -> String {
    format!("{{{prefix}}}:shards")
}

/// The stream of the schedule `prefix`'s operator actions (`store::audit`), beside shard 0's
/// keys: one key, so one slot on a cluster.
pub fn audit_key(prefix: &str) -> String {
    format!("{{{prefix}}}:audit")
}

/// The index key of a dead letter hash.
pub fn index_key(dlq_name: &str) -> String {
    format!("{dlq_name}:index")
}

/// The per topic counts of a dead letter hash: topic -> how many of its dead letters this
/// package wrote (and has not removed since). Its own slot on a cluster, like the index.
pub fn dead_letter_topics_key(dlq_name: &str) -> String {
    format!("{dlq_name}:topics")
}

/// The key holding where the incremental `HSCAN` of a dead letter hash stopped (a string, with an
/// expiry), present only while the hash has fields its index lacks. Its own slot on a cluster,
/// like the index: every command on it is single-key.
pub fn index_scan_key(dlq_name: &str) -> String {
    format!("{dlq_name}:index:scan")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_share_one_hash_tag() {
        let k = Keys::new("svc", 0);
        for key in [
            &k.due,
            &k.lease,
            &k.batches,
            &k.entries,
            &k.seen,
            &k.wake,
            &k.failures,
            &k.topics,
            &k.history,
        ] {
            assert!(key.starts_with("{svc}:"), "{key}");
        }
        let g = GateKeys::new("svc", 0);
        for key in [&g.paused, &g.parked, &g.rate, &g.breaker] {
            assert!(key.starts_with("{svc}:"), "{key}");
        }
        let k = Keys::new("svc", 3);
        for key in [&k.due, &k.lease, &k.entries, &k.topics, &k.history] {
            assert!(key.starts_with("{svc#3}:"), "{key}");
        }
    }
}
