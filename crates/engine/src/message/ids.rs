//! Ids: the schedule id of a message (hashed from its msgId, or random), cheap random ids and
//! UUIDs, and the stable hash that picks a message's shard.

/// A random (version 4) UUID from a fast per-thread generator: ids only need to be unique, and
/// the system's cryptographic source costs a system call per id on the publish path.
pub fn random_uuid() -> uuid::Uuid {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&fastrand::u64(..).to_le_bytes());
    bytes[8..].copy_from_slice(&fastrand::u64(..).to_le_bytes());
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

/// 128 bits as 22 characters of unpadded base64url: the shortest printable id that keeps them
/// all (ids are stored twice per scheduled message, so their length is memory).
pub fn id_text(bits: u128) -> String {
    let mut out = String::with_capacity(22);
    push_id_text(&mut out, bits);
    out
}

/// Appends [`id_text`] of `bits` to `out`.
fn push_id_text(out: &mut String, bits: u128) {
    const DIGITS: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    for i in 0..21 {
        out.push(DIGITS[((bits >> (122 - 6 * i)) & 0x3f) as usize] as char);
    }
    // The last character holds the 2 remaining bits, like base64 of 16 bytes.
    out.push(DIGITS[((bits & 0x3) << 4) as usize] as char);
}

/// A random 128-bit id as [`id_text`], from the same fast generator as [`random_uuid`].
pub fn random_id() -> String {
    id_text(fastrand::u128(..))
}

/// The schedule id of a message: `m:` or `u:` and 22 characters. With a `msgId` the id is a
/// 128-bit hash (XXH3) of the retry count, topic and msgId, so a consumer redelivery of the same
/// failure maps to the same id and is stored once; the length prefixes keep the hashed text
/// unambiguous whatever characters topic and msgId hold. Without one it is random. Ids are stored
/// twice per scheduled message (entries hash and due set), so they are kept short, whatever the
/// length of topic and msgId.
pub fn message_id(topic: &str, msg_id: Option<&str>, retry_count: u64) -> String {
    match msg_id {
        Some(msg_id) => {
            // `{retry_count}:{topic length}:{topic}:{msg_id}`, built without reallocating (this
            // runs once per push).
            use std::fmt::Write;
            let mut framed = String::with_capacity(topic.len() + msg_id.len() + 44);
            let _ = write!(framed, "{retry_count}:{}:", topic.len());
            framed.push_str(topic);
            framed.push(':');
            framed.push_str(msg_id);
            let hash = xxhash_rust::xxh3::xxh3_128(framed.as_bytes());
            let mut id = String::with_capacity(24);
            id.push_str("m:");
            push_id_text(&mut id, hash);
            id
        }
        None => format!("u:{}", random_id()),
    }
}

/// The schedule id a requeue on a Redis Cluster gives dead letter `field` of `dlq` holding
/// `record`: an `m:` id hashed from all three, so running the requeue again (after a crash
/// between scheduling and removing, or from two operators at once) finds the same id stored, or
/// remembered as published within the seen window, and stores nothing. A later death of the
/// message is a new record (its `diedAt` differs), hence a new id. The `requeue:` frame keeps
/// these apart from [`message_id`]'s, which start with a digit.
pub fn requeue_id(dlq: &str, field: &str, record: &str) -> String {
    let framed = format!(
        "requeue:{}:{dlq}:{}:{field}:{record}",
        dlq.len(),
        field.len()
    );
    let mut id = String::with_capacity(24);
    id.push_str("m:");
    push_id_text(&mut id, xxhash_rust::xxh3::xxh3_128(framed.as_bytes()));
    id
}

/// The shard of message `id` among `shards`: a stable FNV-1a hash.
pub fn shard_index(id: &str, shards: usize) -> usize {
    (fnv1a(id) % shards.max(1) as u64) as usize
}

/// 64-bit FNV-1a: stable across versions and platforms (shards depend on it), and cheap.
pub fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf29ce484222325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_uuids_are_version_4_and_distinct() {
        let a = random_uuid();
        assert_eq!(a.get_version_num(), 4);
        let ids: std::collections::HashSet<_> = (0..10_000).map(|_| random_uuid()).collect();
        assert_eq!(ids.len(), 10_000);
    }

    #[test]
    fn id_text_keeps_every_bit() {
        assert_eq!(id_text(0), "AAAAAAAAAAAAAAAAAAAAAA");
        assert_eq!(id_text(u128::MAX), "_____________________w");
        assert_eq!(id_text(1), "AAAAAAAAAAAAAAAAAAAAAQ");
        assert_eq!(id_text(1 << 127), "gAAAAAAAAAAAAAAAAAAAAA");
        let ids: std::collections::HashSet<_> = (0..10_000).map(|_| random_id()).collect();
        assert_eq!(ids.len(), 10_000);
        assert!(ids.iter().all(|id| id.len() == 22));
    }

    #[test]
    fn ids_with_msg_id_are_stable_per_retry_count() {
        assert_eq!(message_id("t", Some("a"), 1), message_id("t", Some("a"), 1));
        assert_ne!(message_id("t", Some("a"), 1), message_id("t", Some("a"), 2));
        assert_ne!(
            message_id("t:x", Some("a"), 1),
            message_id("t", Some("x:a"), 1)
        );
    }

    #[test]
    fn requeue_ids_are_stable_per_record_and_seen_window_shaped() {
        let id = requeue_id("dlq", "m:abc", "{\"diedAt\":1}");
        assert_eq!(id, requeue_id("dlq", "m:abc", "{\"diedAt\":1}"));
        // The seen window remembers only 'm:' ids of 24 characters.
        assert!(id.starts_with("m:") && id.len() == 24);
        assert_ne!(id, requeue_id("dlq", "m:abc", "{\"diedAt\":2}"));
        assert_ne!(id, requeue_id("dlq2", "m:abc", "{\"diedAt\":1}"));
        assert_ne!(requeue_id("a:b", "c", "r"), requeue_id("a", "b:c", "r"));
    }

    #[test]
    fn shards_are_stable_and_spread() {
        assert_eq!(shard_index("abc", 1), 0);
        assert_eq!(shard_index("abc", 7), shard_index("abc", 7));
        let used: std::collections::HashSet<usize> = (0..100)
            .map(|i| shard_index(&format!("id{i}"), 4))
            .collect();
        assert_eq!(used.len(), 4);
    }

    #[test]
    fn ids_without_msg_id_are_unique() {
        assert_ne!(message_id("t", None, 1), message_id("t", None, 1));
    }

    #[test]
    fn ids_are_short_and_keep_their_kind() {
        // The hash is part of the stored format: ids written by one version must match the ids
        // the next version derives, or redeliveries across an upgrade would be stored twice.
        // The expected value is Python's `xxhash.xxh3_128(b"1:6:orders:abc")`, base64url.
        assert_eq!(
            message_id("orders", Some("abc"), 1),
            "m:jFtt1ZOHnohSYYpvWgvLGw"
        );
        assert_eq!(message_id("t", Some(&"x".repeat(500)), 1).len(), 24);
        assert!(message_id("t", None, 1).starts_with("u:"));
        assert_eq!(message_id("t", None, 1).len(), 24);
    }
}
