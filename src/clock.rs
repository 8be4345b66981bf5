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
}
