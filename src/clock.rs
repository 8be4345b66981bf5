//! Wall-clock milliseconds (due times are absolute so every process agrees on them) and cheap
//! random ids.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

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
    const DIGITS: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(22);
    for i in 0..21 {
        out.push(DIGITS[((bits >> (122 - 6 * i)) & 0x3f) as usize] as char);
    }
    // The last character holds the 2 remaining bits, like base64 of 16 bytes.
    out.push(DIGITS[((bits & 0x3) << 4) as usize] as char);
    out
}

/// A random 128-bit id as [`id_text`], from the same fast generator as [`random_uuid`].
pub fn random_id() -> String {
    id_text(fastrand::u128(..))
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
}
