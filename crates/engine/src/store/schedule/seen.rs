//! The ids an ack remembers for the dedupe window, sorted and grouped here as `ack.lua` takes
//! them (`lua/lib/seen.lua` says why): grouping in Redis was a string cut and a table insert per
//! id in the one thread every client shares.

use std::collections::HashMap;

/// What `ack.lua` remembers of acked ids: the bucket's fields with their records, and the ids
/// for the sorted set.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct SeenArgs<'a> {
    /// `(field, records)`: an id's first 2 characters after `m:`, and the other 20 of each of
    /// its ids, joined; fields in the order their first id came.
    pub fields: Vec<([u8; 2], Vec<u8>)>,
    /// Ids kept in the sorted set: `legacy:` ids, and `m:` ids not of the bucket's size.
    pub set_ids: Vec<&'a str>,
}

/// Sorts `ids` as `ack.lua` remembers them with a dedupe window of `window_ms`: none with a
/// window of 0 (push.lua looks nothing up then).
pub(super) fn seen_args<'a>(
    window_ms: u64,
    ids: impl IntoIterator<Item = &'a str>,
) -> SeenArgs<'a> {
    let mut args = SeenArgs::default();
    if window_ms == 0 {
        return args;
    }
    let mut index: HashMap<[u8; 2], usize> = HashMap::new();
    for id in ids {
        let bytes = id.as_bytes();
        if bytes.len() == 24 && bytes.starts_with(b"m:") {
            let field = [bytes[2], bytes[3]];
            let at = *index.entry(field).or_insert_with(|| {
                args.fields.push((field, Vec::with_capacity(20)));
                args.fields.len() - 1
            });
            args.fields[at].1.extend_from_slice(&bytes[4..]);
        } else if bytes.starts_with(b"m:") || bytes.starts_with(b"legacy:") {
            args.set_ids.push(id);
        }
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_ids_are_grouped_by_their_first_two_characters_in_order_of_arrival() {
        let a1 = "m:abCDEFGHIJKLMNOPQRSTUV";
        let b1 = "m:xyCDEFGHIJKLMNOPQRSTUV";
        let a2 = "m:ab0123456789012345678_";
        let args = seen_args(1000, [a1, b1, a2]);
        assert_eq!(
            args.fields,
            vec![
                (*b"ab", b"CDEFGHIJKLMNOPQRSTUV0123456789012345678_".to_vec()),
                (*b"xy", b"CDEFGHIJKLMNOPQRSTUV".to_vec()),
            ]
        );
        assert!(args.set_ids.is_empty());
    }

    #[test]
    fn legacy_ids_and_odd_sized_msg_ids_go_to_the_sorted_set_others_nowhere() {
        let args = seen_args(
            1000,
            [
                "legacy:x:1",
                "m:short",
                "u:abcdefghijklmnopqrstuv",
                "m:abCDEFGHIJKLMNOPQRSTUV",
            ],
        );
        assert_eq!(args.set_ids, vec!["legacy:x:1", "m:short"]);
        assert_eq!(args.fields.len(), 1);
    }

    #[test]
    fn without_a_window_nothing_is_remembered() {
        let args = seen_args(0, ["m:abCDEFGHIJKLMNOPQRSTUV", "legacy:x:1"]);
        assert_eq!(args, SeenArgs::default());
    }
}
