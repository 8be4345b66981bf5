//! The audit log: one Redis stream per schedule (`{keyPrefix}:audit`, shard 0's hash tag) with an
//! entry per operator action (requeue, remove, pause, resume, ...): when (Redis's clock), who (the
//! caller's `actor`), what, on what, how many, and how it ended. One script writes an entry and
//! trims the stream in the same call (`audit/record.lua`), so writing costs one round trip; the
//! stream holds at most [`MAX_ENTRIES`] entries and none older than [`MAX_AGE_MS`].

use super::connection::Redis;
use crate::error::{Result, RetryError};
use crate::store::scripts;
use redis::Script;
use std::sync::LazyLock;

static RECORD: LazyLock<Script> = LazyLock::new(|| scripts::load("audit/record"));
static READ: LazyLock<Script> = LazyLock::new(|| scripts::load("audit/read"));

/// The most entries the stream keeps (the oldest go first).
pub const MAX_ENTRIES: u64 = 10_000;
/// The oldest entry the stream keeps: 30 days.
pub const MAX_AGE_MS: u64 = 30 * 24 * 60 * 60 * 1000;
/// The longest `actor`, in characters.
pub const MAX_ACTOR_CHARS: usize = 200;
/// The actor recorded for a call that names none.
pub const DEFAULT_ACTOR: &str = "api";
/// The most entries one page of `auditLog()` holds, and how many without a `limit`.
pub const MAX_LIMIT: usize = 1_000;
/// See [`MAX_LIMIT`].
pub const DEFAULT_LIMIT: usize = 100;
/// The longest error message an entry keeps.
const MAX_ERROR_CHARS: usize = 500;

/// Checks an `actor` a caller gave: 1 to [`MAX_ACTOR_CHARS`] characters, no control characters
/// (it is shown on a terminal and a web page as it is).
pub fn check_actor(actor: &str) -> Result<()> {
    let chars = actor.chars().count();
    if chars == 0 || chars > MAX_ACTOR_CHARS || actor.chars().any(char::is_control) {
        return Err(RetryError::invalid_arg(format!(
            "options.actor must be a name of 1 to {MAX_ACTOR_CHARS} characters without control characters, got {:?}",
            actor.chars().take(MAX_ACTOR_CHARS + 1).collect::<String>()
        )));
    }
    Ok(())
}

/// One action to record.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Who acted.
    pub actor: String,
    /// What was done: `requeue`, `remove`, `pause`, `resume`, ...
    pub action: &'static str,
    /// What it was done to (`{ dlq, filter }`, `{ dlq, id }`, `{ topic }`, ...).
    pub target: serde_json::Value,
    /// How many dead letters it moved or removed; 1 or 0 for a pause, resume or job action.
    pub count: u64,
    /// `ok`, or the error code it failed with.
    pub outcome: String,
    /// The message of the error it failed with.
    pub error: Option<String>,
}

/// One recorded action, as `auditLog()` returns it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// Its id in the stream (also the cursor of the page it ends).
    pub id: String,
    /// When it was recorded, ms since the epoch (Redis's clock).
    pub at: u64,
    /// See [`Record`].
    pub actor: String,
    /// See [`Record`].
    pub action: String,
    /// See [`Record`].
    pub target: serde_json::Value,
    /// See [`Record`].
    pub count: u64,
    /// See [`Record`].
    pub outcome: String,
    /// See [`Record`].
    pub error: Option<String>,
}

/// Writes `record` to the stream `key` and trims it to its bounds.
pub async fn record(redis: &Redis, key: &str, record: &Record) -> Result<()> {
    let target = record.target.to_string();
    let error: String = record
        .error
        .as_deref()
        .unwrap_or("")
        .chars()
        .take(MAX_ERROR_CHARS)
        .collect();
    let _: String = redis
        .run("write of the audit log", |mut conn| async move {
            RECORD
                .key(key)
                .arg(&record.actor)
                .arg(record.action)
                .arg(&target)
                .arg(record.count)
                .arg(&record.outcome)
                .arg(&error)
                .arg(MAX_ENTRIES)
                .arg(MAX_AGE_MS)
                .invoke_async(&mut conn)
                .await
        })
        .await?;
    Ok(())
}

/// A cursor is a stream id (`<ms>-<seq>`) a previous page returned.
fn check_cursor(cursor: &str) -> Result<()> {
    let valid = cursor.split_once('-').is_some_and(|(ms, seq)| {
        [ms, seq]
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 20 && p.bytes().all(|b| b.is_ascii_digit()))
    });
    if valid {
        Ok(())
    } else {
        Err(RetryError::invalid_arg(format!(
            "options.cursor must be a cursor auditLog() returned, got {cursor:?}"
        )))
    }
}

/// One page of the stream `key`, newest first: at most `limit` entries recorded at or after
/// `since` (ms), older than `cursor`; and the cursor of the next page (`None` at the end).
pub async fn read(
    redis: &Redis,
    key: &str,
    limit: usize,
    since: Option<u64>,
    cursor: Option<&str>,
) -> Result<(Vec<Entry>, Option<String>)> {
    if let Some(cursor) = cursor {
        check_cursor(cursor)?;
    }
    let raw: Vec<(String, Vec<(String, String)>)> = redis
        .run("read of the audit log", |mut conn| async move {
            READ.key(key)
                .arg(cursor.unwrap_or(""))
                .arg(since.unwrap_or(0))
                .arg(limit)
                .arg(MAX_AGE_MS)
                .invoke_async(&mut conn)
                .await
        })
        .await?;
    let full = raw.len() >= limit;
    let entries: Vec<Entry> = raw
        .into_iter()
        .map(|(id, fields)| parse(id, fields))
        .collect();
    let next = if full {
        entries.last().map(|e| e.id.clone())
    } else {
        None
    };
    Ok((entries, next))
}

/// An entry from its stream fields (one written by another version may lack some: defaults).
fn parse(id: String, fields: Vec<(String, String)>) -> Entry {
    let mut entry = Entry {
        at: id
            .split_once('-')
            .and_then(|(ms, _)| ms.parse().ok())
            .unwrap_or(0),
        id,
        actor: String::new(),
        action: String::new(),
        target: serde_json::Value::Null,
        count: 0,
        outcome: String::new(),
        error: None,
    };
    for (field, value) in fields {
        match field.as_str() {
            "at" => entry.at = value.parse().unwrap_or(entry.at),
            "actor" => entry.actor = value,
            "action" => entry.action = value,
            "target" => {
                entry.target = serde_json::from_str(&value).unwrap_or(serde_json::Value::Null)
            }
            "count" => entry.count = value.parse().unwrap_or(0),
            "outcome" => entry.outcome = value,
            "error" if !value.is_empty() => entry.error = Some(value),
            _ => {}
        }
    }
    entry
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_actor_is_a_bounded_printable_name() {
        check_actor("alice@host").unwrap();
        check_actor(&"é".repeat(MAX_ACTOR_CHARS)).unwrap();
        for bad in [
            String::new(),
            "x".repeat(MAX_ACTOR_CHARS + 1),
            "a\nb".to_string(),
        ] {
            let err = check_actor(&bad).unwrap_err();
            assert_eq!(err.code, crate::error::ErrorCode::InvalidArg, "{bad:?}");
        }
    }

    #[test]
    fn a_cursor_is_a_stream_id() {
        check_cursor("1733572800000-0").unwrap();
        for bad in ["", "1-", "-1", "a-b", "1-2-3", "+", "(1-0"] {
            assert!(check_cursor(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn an_entry_reads_back_from_its_fields() {
        let fields = [
            ("at", "1700000000123"),
            ("actor", "ops"),
            ("action", "remove"),
            ("target", r#"{"dlq":"d"}"#),
            ("count", "4"),
            ("outcome", "ok"),
            ("error", ""),
        ]
        .map(|(f, v)| (f.to_string(), v.to_string()))
        .to_vec();
        let e = parse("1700000000124-0".into(), fields);
        assert_eq!(e.at, 1_700_000_000_123);
        assert_eq!(
            (e.actor.as_str(), e.action.as_str(), e.count),
            ("ops", "remove", 4)
        );
        assert!(e.error.is_none());
        assert_eq!(e.target["dlq"], "d");
    }
}
