//! Process-wide sharing of one live value per key (a Redis connection per URL, a push batcher
//! or a listener wake-up per schedule), held weakly so it goes away with its last user.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, LazyLock, Mutex, Weak};

/// A map of weakly held values, for a `static`.
pub type Registry<K, V> = LazyLock<Mutex<HashMap<K, Weak<V>>>>;

/// An empty registry (for `static X: Registry<K, V> = registry();`).
pub const fn registry<K, V>() -> Registry<K, V> {
    LazyLock::new(|| Mutex::new(HashMap::new()))
}

/// The live value for `key`, or a new one from `make` when none is alive. Dead entries are
/// dropped on the way, so the map never grows past the values in use.
pub fn get_or_make<K: Eq + Hash, V>(
    registry: &Registry<K, V>,
    key: K,
    make: impl FnOnce() -> V,
) -> Arc<V> {
    let mut map = registry
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(existing) = map.get(&key).and_then(Weak::upgrade) {
        return existing;
    }
    map.retain(|_, weak| weak.strong_count() > 0);
    let value = Arc::new(make());
    map.insert(key, Arc::downgrade(&value));
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    static NUMBERS: Registry<&'static str, u32> = registry();

    #[test]
    fn one_live_value_per_key_until_dropped() {
        let a = get_or_make(&NUMBERS, "a", || 1);
        let again = get_or_make(&NUMBERS, "a", || 2);
        assert!(Arc::ptr_eq(&a, &again));
        assert_eq!(*get_or_make(&NUMBERS, "b", || 3), 3);
        drop((a, again));
        assert_eq!(*get_or_make(&NUMBERS, "a", || 4), 4);
    }
}
