//! Finding dead letters by what they are: a [`Filter`] (topic, error text, a substring of the key,
//! payload or a header value, time of death) and pages of the dead letters it matches.
//!
//! A search walks the time index of the hash (newest first) from the cursor's rank, reading at
//! most [`SCAN_BUDGET`] records per call, and returns what matched among them: a call costs the
//! same whatever the queue holds (100,000 dead letters or more, on one server or a cluster, where
//! the hash is one key), and `scanned` says how many records it read. A page may hold fewer than
//! `limit` items (none, even) and still have a cursor: the rest of the queue was not read yet.
//! `until` starts the walk at the first dead letter at or before it (`ZCOUNT`, O(log N)); `since`
//! ends it at the first one before it.

use super::{DeadLetterItem, DeadLetters, Page, INDEX_STEP_FIELDS};
use crate::error::{Result, RetryError};
use crate::store::keys::index_key;

/// Records one search call reads at most.
pub const SCAN_BUDGET: usize = 5_000;
/// Records read per round trip.
const CHUNK: usize = 500;

/// Which dead letters an operation applies to. Every condition given must hold (AND); the
/// empty filter matches every dead letter.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    /// The topic, exactly.
    pub topic: Option<String>,
    /// A substring of the error's name or message, any case (kept lower-cased).
    pub error_contains: Option<String>,
    /// A substring of the key (`event`), the payload's JSON text or a header value.
    pub search: Option<String>,
    /// Died at or after this (ms since the epoch).
    pub since: Option<u64>,
    /// Died at or before this (ms since the epoch).
    pub until: Option<u64>,
    /// The failure reason, masked (see `reasons::mask`): the dead letter's must equal it.
    pub reason: Option<String>,
}

/// A filter as the caller gave it, before it is checked.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FilterInput {
    /// `topic`.
    pub topic: Option<String>,
    /// `errorContains`.
    pub error_contains: Option<String>,
    /// `search`.
    pub search: Option<String>,
    /// `since`, ms since the epoch.
    pub since: Option<f64>,
    /// `until`, ms since the epoch.
    pub until: Option<f64>,
    /// `reason`, as `deadLetterReasons` gives it (masked again, so an unmasked error text works too).
    pub reason: Option<String>,
}

/// A time bound: a whole, non-negative number of ms.
fn bound(name: &str, value: Option<f64>) -> Result<Option<u64>> {
    match value {
        None => Ok(None),
        Some(v) if v.is_finite() && v >= 0.0 && v.fract() == 0.0 && v <= 9.0e15 => {
            Ok(Some(v as u64))
        }
        Some(v) => Err(RetryError::invalid_arg(format!(
            "{name} must be a time in ms since the epoch (a whole number >= 0), got {}",
            crate::message::options::format_js_number(v)
        ))),
    }
}

impl Filter {
    /// Checks a filter: `since` and `until` whole ms, `since` not after `until`; empty strings
    /// mean "no condition".
    pub fn parse(input: FilterInput) -> Result<Filter> {
        let since = bound("filter.since", input.since)?;
        let until = bound("filter.until", input.until)?;
        if let (Some(since), Some(until)) = (since, until) {
            if since > until {
                return Err(RetryError::invalid_arg(format!(
                    "filter.since ({since}) is after filter.until ({until})"
                )));
            }
        }
        let given = |s: Option<String>| s.filter(|s| !s.is_empty());
        Ok(Filter {
            topic: given(input.topic),
            error_contains: given(input.error_contains).map(|s| s.to_lowercase()),
            search: given(input.search),
            since,
            until,
            reason: given(input.reason).map(|r| {
                if r == super::reasons::NO_ERROR {
                    r
                } else {
                    super::reasons::mask(&r)
                }
            }),
        })
    }

    /// Whether the filter matches every dead letter.
    pub fn is_empty(&self) -> bool {
        *self == Filter::default()
    }

    /// Whether `item` satisfies every condition.
    pub fn matches(&self, item: &DeadLetterItem) -> bool {
        if self.topic.as_ref().is_some_and(|t| *t != item.topic) {
            return false;
        }
        if self.since.is_some_and(|s| item.died_at < s)
            || self.until.is_some_and(|u| item.died_at > u)
        {
            return false;
        }
        if let Some(needle) = &self.error_contains {
            let Some(error) = &item.error else {
                return false;
            };
            if !error.name.to_lowercase().contains(needle)
                && !error.message.to_lowercase().contains(needle)
            {
                return false;
            }
        }
        if self
            .reason
            .as_ref()
            .is_some_and(|reason| *reason != super::reasons::reason_of(item))
        {
            return false;
        }
        if let Some(needle) = &self.search {
            let in_headers = item
                .options
                .as_object()
                .is_some_and(|options| options.values().any(|v| value_contains(v, needle)));
            if !item.event.contains(needle.as_str())
                && !item.payload.contains(needle.as_str())
                && !in_headers
            {
                return false;
            }
        }
        true
    }
}

/// Whether a header value (a string, or an array of them) contains `needle`.
fn value_contains(value: &serde_json::Value, needle: &str) -> bool {
    match value {
        serde_json::Value::String(s) => s.contains(needle),
        serde_json::Value::Array(items) => items.iter().any(|v| value_contains(v, needle)),
        _ => false,
    }
}

/// A page of a search: the matched dead letters, where to go on, and how many records it read.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SearchPage {
    /// Matched dead letters, newest first.
    pub items: Vec<DeadLetterItem>,
    /// Pass back to read on; `None` once the whole queue (or the `since` bound) was read.
    pub cursor: Option<String>,
    /// Dead letters this call read.
    pub scanned: u64,
}

/// At most `limit` dead letters of `dlq` that `filter` matches, from `cursor` (as returned by the
/// previous page; `None` for the first), reading at most [`SCAN_BUDGET`] records.
pub async fn search(
    store: &DeadLetters,
    dlq: &str,
    filter: &Filter,
    limit: usize,
    cursor: Option<&str>,
) -> Result<SearchPage> {
    if filter.is_empty() {
        let Page { items, cursor } = store.list(dlq, limit, cursor).await?;
        let scanned = items.len() as u64;
        return Ok(SearchPage {
            items,
            cursor,
            scanned,
        });
    }
    // The first page starts at the newest dead letter at or before `until` (the index is scored
    // by time of death).
    let mut cursor: Option<String> = match (cursor, filter.until) {
        (None | Some(""), Some(until)) => {
            // Brings the index in line first, as the first page of a listing does.
            store.sync_index(dlq).await?;
            let index = &index_key(dlq);
            let newer: u64 = store
                .redis()
                .run("ZCOUNT of the dead letter index", |mut conn| async move {
                    redis::cmd("ZCOUNT")
                        .arg(index)
                        .arg(format!("({until}"))
                        .arg("+inf")
                        .query_async(&mut conn)
                        .await
                })
                .await?;
            Some(newer.to_string())
        }
        (None | Some(""), None) => None,
        (Some(c), _) => Some(c.to_string()),
    };
    let mut items = Vec::new();
    let mut scanned = 0usize;
    loop {
        // Offset cursors let a page stop in the middle of what it read; the others ("unindexed")
        // are read no further than the page still needs.
        let offset: Option<usize> = cursor.as_deref().map_or(Some(0), |c| c.parse().ok());
        let chunk = match offset {
            Some(_) => CHUNK.min(SCAN_BUDGET - scanned),
            None => (limit - items.len()).min(SCAN_BUDGET - scanned),
        };
        let page = store.list(dlq, chunk, cursor.as_deref()).await?;
        let read = page.items.len();
        let mut stopped_at = None;
        let mut past_since = false;
        for (i, item) in page.items.into_iter().enumerate() {
            if filter.since.is_some_and(|s| item.died_at < s) && offset.is_some() {
                // The index is newest first: nothing after this one is recent enough.
                past_since = true;
                scanned += i + 1;
                break;
            }
            if filter.matches(&item) {
                items.push(item);
                if items.len() == limit {
                    stopped_at = Some(i + 1);
                    break;
                }
            }
        }
        if past_since {
            return Ok(SearchPage {
                items,
                cursor: None,
                scanned: scanned as u64,
            });
        }
        if let (Some(offset), Some(taken)) = (offset, stopped_at) {
            scanned += taken;
            // Resume right after the last match of this page, unless that was the last record.
            let cursor = if taken < read || page.cursor.is_some() {
                Some((offset + taken).to_string())
            } else {
                None
            };
            return Ok(SearchPage {
                items,
                cursor,
                scanned: scanned as u64,
            });
        }
        scanned += read;
        cursor = page.cursor;
        if cursor.is_none() || items.len() == limit || scanned >= SCAN_BUDGET {
            return Ok(SearchPage {
                items,
                cursor,
                scanned: scanned as u64,
            });
        }
    }
}

/// Dead letters read per page while acting on what a filter matches.
const WALK_PAGE: usize = 200;

/// A walk over every dead letter of a queue that a filter matches, newest first, handing them
/// out a page at a time for the caller to act on (requeue, remove), one dead letter at a time.
///
/// It pages through the index: letters that leave the queue leave the index, so each page is read
/// at the rank after the letters that stayed (unmatched, or kept by the caller, see
/// [`Walk::stayed`]): per page an O(1) check and O(page · log N), never a read of the whole hash.
/// Fields the index lacks are indexed as it goes (one bounded `HSCAN` step per page while the hash
/// has more fields than the index). Each act is one dead letter's whole move, so a walk stopped
/// anywhere (a killed process) leaves every other dead letter untouched, and walking again
/// finishes the job. A dry run counts the matches and hands out none.
pub struct Walk<'a> {
    store: &'a DeadLetters,
    dlq: &'a str,
    filter: &'a Filter,
    dry_run: bool,
    /// Letters that stayed in the index before the walk's position.
    stayed: usize,
    /// Whether a step indexed fields while letters had stayed: one whose time of death is newer
    /// than such a letter's lands before the walk's position, so the walk starts over once more
    /// (a dry run counts from scratch then).
    indexed: bool,
    /// Steps in a row that found nothing while the hash still looked bigger than the index.
    idle: u64,
    /// Matches counted by a dry run.
    counted: u64,
    /// Matches with at least this many `replays` are passed over (left in the queue, counted).
    max_replays: Option<u64>,
    /// Matches passed over for their replays.
    skipped: u64,
}

impl<'a> Walk<'a> {
    /// A walk over the dead letters of `dlq` that `filter` matches.
    pub fn new(store: &'a DeadLetters, dlq: &'a str, filter: &'a Filter, dry_run: bool) -> Self {
        Walk {
            store,
            dlq,
            filter,
            dry_run,
            stayed: 0,
            indexed: false,
            idle: 0,
            counted: 0,
            max_replays: None,
            skipped: 0,
        }
    }

    /// The walk, passing over (never handing out, nor counting in a dry run) the matches that
    /// were replayed `max_replays` times or more; [`Walk::skipped`] counts them.
    pub fn skipping_replays(mut self, max_replays: Option<u64>) -> Self {
        self.max_replays = max_replays;
        self
    }

    /// The matches passed over for their replays.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// What a dry run counted.
    pub fn counted(&self) -> u64 {
        self.counted
    }

    /// The caller kept a handed-out letter in the queue (it could not act on it).
    pub fn stayed(&mut self) {
        self.stayed += 1;
    }

    /// The next matched dead letters (one page at most); `None` once the walk is done. Each one
    /// handed out must leave the queue, or be reported with [`Walk::stayed`].
    pub async fn next_page(&mut self) -> Result<Option<Vec<DeadLetterItem>>> {
        loop {
            let sizes = self.store.sync_index(self.dlq).await?;
            self.indexed |= sizes.added > 0 && self.stayed > 0;
            let page = self.store.page_at(self.dlq, self.stayed, WALK_PAGE).await?;
            if page.items.is_empty() {
                if page.next.is_some() || sizes.added > 0 {
                    // Only stale entries (dropped), or just-indexed fields to read: read on.
                    continue;
                }
                if self.stayed > 0 && self.indexed {
                    self.stayed = 0;
                    self.indexed = false;
                    self.counted = 0;
                    self.skipped = 0;
                    continue;
                }
                // The index is done; fields it lacks remain while the hash is bigger. Step on
                // until a whole scan cycle found none (see `dead_letters`).
                self.idle += 1;
                if !sizes.behind() || self.idle > sizes.fields / INDEX_STEP_FIELDS as u64 + 2 {
                    return Ok(None);
                }
                continue;
            }
            self.idle = 0;
            let mut matched = Vec::new();
            for item in page.items {
                if !self.filter.matches(&item) {
                    self.stayed += 1;
                } else if self.max_replays.is_some_and(|max| item.replays >= max) {
                    self.skipped += 1;
                    self.stayed += 1;
                } else if self.dry_run {
                    self.counted += 1;
                    self.stayed += 1;
                } else {
                    matched.push(item);
                }
            }
            if !matched.is_empty() {
                return Ok(Some(matched));
            }
        }
    }
}

/// Removes every dead letter of `dlq` that `filter` matches (see [`Walk`]); with `dry_run` only
/// counts them. Returns how many.
pub async fn remove_matching(
    store: &DeadLetters,
    dlq: &str,
    filter: &Filter,
    dry_run: bool,
) -> Result<u64> {
    remove_matching_then(store, dlq, filter, dry_run, |_| true, |_| {}).await
}

/// [`remove_matching`], asking `go_on` with the count removed so far before each removal (it
/// stops the walk by answering `false`: what was removed stays removed, the rest stays), and
/// handing each removed dead letter to `removed_one` (ordered retries release the key a removed
/// head blocked).
pub async fn remove_matching_then(
    store: &DeadLetters,
    dlq: &str,
    filter: &Filter,
    dry_run: bool,
    mut go_on: impl FnMut(u64) -> bool,
    mut removed_one: impl FnMut(DeadLetterItem),
) -> Result<u64> {
    let mut walk = Walk::new(store, dlq, filter, dry_run);
    let mut removed = 0;
    // What was removed stays removed: a failure says how many.
    let failed = |err: RetryError, removed: u64| {
        if dry_run {
            err
        } else {
            err.after("removed", removed)
        }
    };
    'walk: while let Some(items) = walk.next_page().await.map_err(|e| failed(e, removed))? {
        for item in items {
            if !go_on(removed) {
                break 'walk;
            }
            if store
                .remove(dlq, &item.id)
                .await
                .map_err(|e| failed(e, removed))?
            {
                removed += 1;
                removed_one(item);
            } else {
                walk.stayed();
            }
        }
    }
    Ok(if dry_run { walk.counted() } else { removed })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(topic: &str, error: Option<(&str, &str)>, died_at: u64) -> DeadLetterItem {
        let text = serde_json::json!({
            "topic": topic,
            "event": "order-42",
            "value": { "sku": "abc" },
            "options": { "delay": "1", "tenant": "acme", "tags": ["x", "blue"] },
            "diedAt": died_at,
            "error": error.map(|(name, message)| serde_json::json!({ "name": name, "message": message })),
        })
        .to_string();
        DeadLetterItem::parse("id", &text).unwrap()
    }

    fn filter(f: impl FnOnce(&mut FilterInput)) -> Filter {
        let mut input = FilterInput::default();
        f(&mut input);
        Filter::parse(input).unwrap()
    }

    #[test]
    fn each_condition_must_hold() {
        let a = item(
            "orders",
            Some(("TimeoutError", "Downstream timed out")),
            100,
        );
        assert!(filter(|_| {}).matches(&a));
        assert!(filter(|f| f.topic = Some("orders".into())).matches(&a));
        assert!(!filter(|f| f.topic = Some("order".into())).matches(&a));
        assert!(filter(|f| f.error_contains = Some("TIMED OUT".into())).matches(&a));
        assert!(filter(|f| f.error_contains = Some("timeouterr".into())).matches(&a));
        assert!(!filter(|f| f.error_contains = Some("refused".into())).matches(&a));
        assert!(filter(|f| f.search = Some("der-4".into())).matches(&a));
        assert!(filter(|f| f.search = Some("\"sku\"".into())).matches(&a));
        assert!(filter(|f| f.search = Some("acm".into())).matches(&a));
        assert!(filter(|f| f.search = Some("blue".into())).matches(&a));
        assert!(!filter(|f| f.search = Some("ACME".into())).matches(&a));
        assert!(filter(|f| f.since = Some(100.0)).matches(&a));
        assert!(!filter(|f| f.since = Some(101.0)).matches(&a));
        assert!(filter(|f| f.until = Some(100.0)).matches(&a));
        assert!(!filter(|f| f.until = Some(99.0)).matches(&a));
        assert!(!filter(|f| {
            f.topic = Some("orders".into());
            f.error_contains = Some("refused".into());
        })
        .matches(&a));
        // No error recorded: an error condition cannot hold.
        assert!(!filter(|f| f.error_contains = Some("e".into())).matches(&item("orders", None, 1)));
    }

    #[test]
    fn a_reason_matches_the_masked_error() {
        let a = item(
            "orders",
            Some(("TimeoutError", "timed out after 5012 ms")),
            1,
        );
        let b = item("orders", Some(("TimeoutError", "timed out after 30 ms")), 1);
        let c = item("orders", Some(("ValidationError", "sku 'x' unknown")), 1);
        let timeouts = filter(|f| f.reason = Some("TimeoutError: timed out after <n> ms".into()));
        assert!(timeouts.matches(&a) && timeouts.matches(&b) && !timeouts.matches(&c));
        // An unmasked error text is masked first, so it names its reason too.
        let raw = filter(|f| f.reason = Some("TimeoutError: timed out after 7 ms".into()));
        assert!(raw.matches(&a));
        // The reason of dead letters without an error.
        let none = filter(|f| f.reason = Some(super::super::reasons::NO_ERROR.into()));
        assert!(none.matches(&item("orders", None, 1)) && !none.matches(&a));
        // With other conditions: all must hold.
        assert!(!filter(|f| {
            f.reason = Some("TimeoutError: timed out after <n> ms".into());
            f.topic = Some("payments".into());
        })
        .matches(&a));
    }

    #[test]
    fn bad_bounds_are_refused() {
        for (since, until) in [
            (Some(-1.0), None),
            (Some(1.5), None),
            (None, Some(f64::NAN)),
            (Some(5.0), Some(4.0)),
        ] {
            let err = Filter::parse(FilterInput {
                since,
                until,
                ..Default::default()
            })
            .unwrap_err();
            assert_eq!(
                err.code,
                crate::error::ErrorCode::InvalidArg,
                "{since:?} {until:?}"
            );
        }
        assert!(Filter::parse(FilterInput {
            topic: Some(String::new()),
            ..Default::default()
        })
        .unwrap()
        .is_empty());
    }
}
