//! The dead letter queue: a Redis hash (`dlqName`, one field per message, compatible with the
//! original class) plus a sorted set `<dlqName>:index` of fields by time of death, for paging
//! newest first. Listing, requeueing and removing dead letters.
//!
//! The index is kept in line with the hash incrementally. This package writes both (`write`), so
//! normally they agree and a page costs a `ZREVRANGE` and an `HMGET`: O(page · log N), plus an
//! O(1) check (`HLEN` against `ZCARD`) on the first page and per page of `requeue_all`.
//! - Fields without an index entry (the original class, `HSET` by other tools, a write that died
//!   between its two commands) are indexed only when the hash has more fields than the index, by
//!   one step of an `HSCAN` per call: at most [`INDEX_STEP_FIELDS`] fields examined, score their
//!   `diedAt`, else 0 (the oldest). The scan's cursor is kept in Redis (`<dlqName>:index:scan`,
//!   expiring after an hour, present only mid-scan), so each call goes further even when each
//!   call is a new process (the CLI) and processes sharing the hash share the progress. A listing
//!   that runs past the index while fields are still unindexed goes on with pages of those fields
//!   (cursor `"unindexed"`, one step each), so a full listing sees every field once.
//! - Index entries whose field is gone are removed where a page's `HMGET` meets them (at most
//!   [`STALE_PER_PAGE`] per call); an empty hash's whole index is dropped.
//!
//! Left as they are (each heals itself or is harmless):
//! - k unindexed fields and k stale entries cancel out in the counts: the fields stay unlisted
//!   until paging meets the stale entries (a full listing or `requeue_all` meets all of them).
//! - A listener's write between its `HSET` and its `ZADD` looks like a missing field (a second
//!   `ZCARD` makes that rare); then it costs one bounded step, and `ZADD NX` keeps its score.
//! - A field removed after the scan saw it and before its `ZADD NX` leaves a stale entry (dropped
//!   when met). A field written again between a page's `HMGET` (nil) and its `ZREM`, or between
//!   an `HLEN` of 0 and the `UNLINK` of the index, loses its entry and is found by a later scan (as
//!   the oldest if its text has no `diedAt`: `pushToDlq` of such a record).
//! - A field added while a scan cycle is under way may wait for the next cycle; a listing in its
//!   `"unindexed"` pages misses fields another process's scan indexed meanwhile.
//! - Cursors are offsets into the index, as before: dead letters others add or remove between
//!   pages shift them.

pub mod reasons;
pub mod requeue;
pub mod search;

use crate::error::{Result, RetryError};
use crate::message::payload::json_text;
use crate::store::connection::Redis;
use crate::store::entry::{Entry, ErrorInfo};
use crate::store::keys::{dead_letter_topics_key, index_key, index_scan_key};
use crate::store::scripts;
use redis::Script;
use serde::Serialize;
use std::sync::LazyLock;

static COUNT_TOPIC: LazyLock<Script> = LazyLock::new(|| scripts::load("dead_letters/count_topic"));
static TAKE: LazyLock<Script> = LazyLock::new(|| scripts::load("dead_letters/take"));

/// One dead letter as `deadLetters()` returns it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetterItem {
    /// Its field in the dead letter hash.
    pub id: String,
    /// Topic it was meant for.
    pub topic: String,
    /// Kafka key.
    pub event: String,
    /// The payload, parsed: as the original class's dead letters held it. Records written by 0.2
    /// (payload as escaped JSON text) read the same way. Text that is not JSON stays a string.
    pub value: serde_json::Value,
    /// The payload's JSON text, as a requeue schedules it.
    #[serde(skip)]
    pub payload: String,
    /// The retry options at death, as header strings, and the caller's own headers.
    pub options: serde_json::Value,
    /// The last failure's error, when known.
    pub error: Option<ErrorInfo>,
    /// When it first failed (ms since the epoch), when known.
    pub first_failed_at: Option<u64>,
    /// When it was dead-lettered (ms since the epoch); for a record without one, when
    /// `pushToDlq` wrote it, or 0 for a field written without an index entry (the original
    /// class, other tools).
    pub died_at: u64,
    /// The `keyPrefix` of the schedule it came from, where a requeue sends it back.
    pub key_prefix: Option<String>,
    /// How often it was requeued and died again: the [`REPLAYS_HEADER`] header a requeue gives
    /// the message (0 when absent).
    pub replays: u64,
}

/// The header a requeued message carries, how often it was requeued before (1 for its first
/// requeue): `KafkaRetry.headers()` returns it like `firstFailedAt`, so a consumer's push of the
/// failed replay carries it on, and its next dead letter reads it as its `replays`. A plain
/// header, so the dead letter record stays `{ value, headers }` plus keys, as the original
/// class's readers expect.
pub const REPLAYS_HEADER: &str = "replays";

/// The `replays` header of a dead letter's options (a string or a number); 0 when absent or
/// unreadable.
fn replays_of(options: &serde_json::Value) -> u64 {
    match options.get(REPLAYS_HEADER) {
        Some(serde_json::Value::String(s)) => s.trim().parse().unwrap_or(0),
        Some(serde_json::Value::Number(n)) => n.as_u64().unwrap_or(0),
        _ => 0,
    }
}

impl DeadLetterItem {
    /// Reads a stored dead letter: this package's format, or the original class's
    /// `{ topic, event, value, options }`. `None` for text that is neither.
    pub fn parse(id: &str, text: &str) -> Option<Self> {
        let json: serde_json::Value = serde_json::from_str(text).ok()?;
        let object = json.as_object()?;
        let string = |key: &str| json_text(object.get(key));
        let number = |key: &str| object.get(key).and_then(serde_json::Value::as_u64);
        let topic = string("topic")?;
        let (payload, value) = payload_of(text);
        let options = object
            .get("options")
            .cloned()
            .unwrap_or(serde_json::Value::Null);
        Some(DeadLetterItem {
            id: id.to_string(),
            topic,
            event: string("event").unwrap_or_default(),
            value,
            payload,
            replays: replays_of(&options),
            options,
            error: object
                .get("error")
                .and_then(|e| serde_json::from_value(e.clone()).ok()),
            first_failed_at: number("firstFailedAt"),
            died_at: number("diedAt").unwrap_or(0),
            key_prefix: string("keyPrefix"),
        })
    }

    /// The `maxRetry` and `delay` of the dead letter's options, as a requeued entry needs them.
    fn option_text(&self, key: &str, default: &str) -> String {
        match self.options.get(key) {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Number(n)) => n.to_string(),
            _ => default.to_string(),
        }
    }

    /// The schedule entry of this dead letter requeued: `retryCount` reset to 0, so the
    /// consumer gets all its retries again. Its due time is left to the requeue (Redis's clock).
    pub fn requeued_entry(&self) -> Entry {
        // One more replay: if it dies again, its dead letter says so.
        let mut options = self.options.clone();
        if let Some(object) = options.as_object_mut() {
            object.insert(
                REPLAYS_HEADER.to_string(),
                serde_json::Value::String((self.replays + 1).to_string()),
            );
        } else {
            options = serde_json::json!({ REPLAYS_HEADER: (self.replays + 1).to_string() });
        }
        Entry {
            topic: self.topic.clone(),
            event: self.event.clone(),
            value: self.payload.clone(),
            delay: self.option_text("delay", crate::message::options::DEFAULT_DELAY),
            max_retry: self
                .option_text("maxRetry", crate::message::options::DEFAULT_MAX_RETRY)
                .parse()
                .unwrap_or(3),
            retry_count: 0,
            due_at: 0,
            first_failed_at: self.first_failed_at,
            last_error: self.error.clone(),
            waited_ms: Some(0),
            extra: crate::message::headers::from_json(&options),
        }
    }
}

/// The payload of a stored dead letter record (`text`), as JSON text and parsed. Its `value`
/// member is the parsed payload (this version, the original class), or a string holding the JSON
/// text (0.2; also this version for a payload that is a JSON string, see `entry::value_json`):
/// a string that is JSON text is read as that text, any other string as the string itself.
/// The payload text is taken verbatim from the record, never re-serialized, so numbers and key
/// order stay as they were.
fn payload_of(record: &str) -> (String, serde_json::Value) {
    #[derive(serde::Deserialize)]
    struct Raw<'a> {
        #[serde(borrow, default)]
        value: Option<&'a serde_json::value::RawValue>,
    }
    let raw = serde_json::from_str::<Raw>(record)
        .ok()
        .and_then(|r| r.value);
    let Some(raw) = raw.filter(|r| r.get() != "null") else {
        return ("null".to_string(), serde_json::Value::Null);
    };
    let parsed = |text: &str| serde_json::from_str::<serde_json::Value>(text).ok();
    if raw.get().starts_with('"') {
        let text: String = serde_json::from_str(raw.get()).unwrap_or_default();
        if serde_json::from_str::<&serde_json::value::RawValue>(&text).is_ok() {
            let value = parsed(&text).unwrap_or_else(|| serde_json::Value::String(text.clone()));
            return (text, value);
        }
        return (raw.get().to_string(), serde_json::Value::String(text));
    }
    let value = parsed(raw.get()).unwrap_or(serde_json::Value::Null);
    (raw.get().to_string(), value)
}

/// A page of dead letters.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Page {
    /// Newest first.
    pub items: Vec<DeadLetterItem>,
    /// Pass back to get the next page; `None` after the last page.
    pub cursor: Option<String>,
}

/// Hash fields one indexing step examines, about (the last `HSCAN` may go over by a batch).
pub const INDEX_STEP_FIELDS: usize = 2_000;
/// `COUNT` of one `HSCAN` call.
const HSCAN_COUNT: usize = 250;
/// Index entries whose field is gone that one page read drops before it returns, at most (plus
/// one page's worth).
pub const STALE_PER_PAGE: usize = 1_000;
/// How long the scan cursor is kept between steps; after that a scan starts over.
const SCAN_CURSOR_TTL_S: u64 = 3_600;
/// The largest rank a cursor may hold: a sorted set holds at most 2^32 - 1 members.
const MAX_RANK: usize = u32::MAX as usize;
/// The cursor of the pages of fields the index lacks, after the indexed ones.
const UNINDEXED: &str = "unindexed";

/// The sizes of a dead letter hash and its index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sizes {
    /// Fields of the hash (`HLEN`).
    pub fields: u64,
    /// Entries of the index (`ZCARD`), counting the ones a step just added.
    pub indexed: u64,
    /// Entries a step just added.
    pub added: u64,
}

impl Sizes {
    /// Whether the hash has fields the index lacks (at least `fields - indexed` of them).
    pub fn behind(&self) -> bool {
        self.fields > self.indexed
    }
}

/// Dead letters read from the index.
pub(crate) struct IndexPage {
    /// Newest first.
    pub items: Vec<DeadLetterItem>,
    /// The rank to read on from; `None` when the index has nothing after these.
    pub next: Option<usize>,
}

/// A listed dead letter from its field, stored text and index score. Text in no known format is
/// listed raw as `value`; without a time of death its index score stands in (when `pushToDlq`
/// wrote it, or 0 for a field indexed by the scan).
fn item_of(field: String, text: String, score: f64) -> DeadLetterItem {
    let mut item = match DeadLetterItem::parse(&field, &text) {
        Some(item) => item,
        None => DeadLetterItem {
            id: field,
            topic: String::new(),
            event: String::new(),
            payload: text.clone(),
            value: serde_json::Value::String(text),
            options: serde_json::Value::Null,
            error: None,
            first_failed_at: None,
            died_at: 0,
            key_prefix: None,
            replays: 0,
        },
    };
    if item.died_at == 0 {
        item.died_at = score as u64;
    }
    item
}

/// The latest time of death a record may state, ms since the epoch: the latest a JavaScript
/// `Date` holds (and well within the integers a sorted set's score holds exactly).
pub const LATEST_DIED_AT: u64 = 8_640_000_000_000_000;

/// The time of death a record to be written states (`diedAt`), which its index entry must carry
/// too, so that listing (by the index) and counting (by the record) agree: `None` when it states
/// none (absent or `null`, or not an object); `ERR_INVALID_ARG` when its `diedAt` is not a whole
/// number of ms from 0 to [`LATEST_DIED_AT`] (a string, a fraction, a negative or huge number
/// would be listed at one time and counted at another).
pub fn stated_died_at(record: &str) -> Result<Option<u64>> {
    let Ok(serde_json::Value::Object(object)) = serde_json::from_str::<serde_json::Value>(record)
    else {
        return Ok(None);
    };
    match object.get("diedAt") {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::Number(n)) if n.as_u64().is_some_and(|t| t <= LATEST_DIED_AT) => {
            Ok(n.as_u64())
        }
        Some(other) => Err(RetryError::invalid_arg(format!(
            "entry.diedAt must be a time in ms since the epoch (a whole number from 0 to {LATEST_DIED_AT}), got {}",
            match other {
                serde_json::Value::Number(n) => n.to_string(),
                other => crate::message::payload::preview(&other.to_string()),
            }
        ))),
    }
}

/// The `diedAt` of a stored dead letter's text, 0 when it has none.
fn died_at_of(text: &str) -> u64 {
    serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|json| json.get("diedAt").and_then(serde_json::Value::as_u64))
        .unwrap_or(0)
}

/// Dead letter operations on one Redis server or cluster.
#[derive(Clone)]
pub struct DeadLetters {
    redis: Redis,
}

impl DeadLetters {
    /// Dead letters on `redis`.
    pub fn new(redis: Redis) -> Self {
        DeadLetters { redis }
    }

    /// The Redis the dead letters live on.
    pub fn redis(&self) -> &Redis {
        &self.redis
    }

    /// Writes one dead letter and indexes it. Both writes are idempotent, so a retried write after
    /// a crash leaves one copy. With `waitReplicas`, done only once replicas hold the record: on a
    /// cluster the hash lives on another master than the schedule, whose ack's `WAIT` (which
    /// follows) does not cover it. (The index can be rebuilt from the hash; its write is not
    /// waited for on a cluster.) A new field of `topic` counts one more dead letter of it
    /// ([`dead_letter_topics_key`]); a record written again counts nothing.
    pub async fn write(
        &self,
        dlq: &str,
        field: &str,
        record: &str,
        died_at: u64,
        topic: Option<&str>,
    ) -> Result<()> {
        let index = index_key(dlq);
        let topics = &dead_letter_topics_key(dlq);
        self.redis
            .run_replicated("write of a dead letter", dlq, |mut conn| async move {
                // Two keys of different slots on a cluster: separate commands, not one script.
                let added: i64 = redis::cmd("HSET")
                    .arg(dlq)
                    .arg(field)
                    .arg(record)
                    .query_async(&mut conn)
                    .await?;
                if let (1, Some(topic)) = (added, topic) {
                    COUNT_TOPIC
                        .key(topics)
                        .arg(topic)
                        .arg(1)
                        .invoke_async::<i64>(&mut conn)
                        .await?;
                }
                redis::cmd("ZADD")
                    .arg(index)
                    .arg(died_at)
                    .arg(field)
                    .query_async::<i64>(&mut conn)
                    .await
                    .map(drop)
            })
            .await
    }

    /// How many dead letters the hash holds.
    pub async fn count(&self, dlq: &str) -> Result<u64> {
        self.redis
            .run("HLEN of the dead letter queue", |mut conn| async move {
                redis::cmd("HLEN").arg(dlq).query_async(&mut conn).await
            })
            .await
    }

    /// The sizes of the hash and its index: the O(1) check that the index covers the hash.
    /// `HLEN` is read first, so a write (`HSET`, then `ZADD`) landing between the two reads counts
    /// on the index's side rather than as a missing field; when the hash still looks bigger,
    /// `ZCARD` is read once more, for a write caught between its `HSET` and its `ZADD`.
    async fn sizes(&self, dlq: &str) -> Result<Sizes> {
        let index = &index_key(dlq);
        let fields = self.count(dlq).await?;
        let zcard = || async move {
            self.redis
                .run("ZCARD of the dead letter index", |mut conn| async move {
                    redis::cmd("ZCARD").arg(index).query_async(&mut conn).await
                })
                .await
        };
        let mut indexed: u64 = zcard().await?;
        if fields > indexed {
            indexed = zcard().await?;
        }
        Ok(Sizes {
            fields,
            indexed,
            added: 0,
        })
    }

    /// The O(1) check that the index covers the hash, and its repairs: one indexing step (bounded,
    /// see [`INDEX_STEP_FIELDS`]) when the hash has more fields than the index; the index dropped
    /// when the hash is empty. Done before the first page of a listing and before each page of
    /// `requeue_all`.
    pub(crate) async fn sync_index(&self, dlq: &str) -> Result<Sizes> {
        let mut sizes = self.sizes(dlq).await?;
        if sizes.fields == 0 {
            if sizes.indexed > 0 {
                self.drop_index(dlq).await?;
                sizes.indexed = 0;
            }
        } else if sizes.behind() {
            sizes.added = self.index_step(dlq, usize::MAX).await?.len() as u64;
            sizes.indexed += sizes.added;
        }
        Ok(sizes)
    }

    /// Drops the index of an empty hash, and the scan cursor with it. `UNLINK`: O(1) here, the
    /// memory is freed by Redis in the background.
    async fn drop_index(&self, dlq: &str) -> Result<()> {
        for key in [index_key(dlq), index_scan_key(dlq)] {
            let key = &key;
            self.redis
                .run("UNLINK of the dead letter index", |mut conn| async move {
                    // One key per command: on a cluster the two live in different slots.
                    redis::cmd("UNLINK")
                        .arg(key)
                        .query_async::<i64>(&mut conn)
                        .await
                        .map(drop)
                })
                .await?;
        }
        Ok(())
    }

    /// One step of the incremental scan of the hash: from where the previous step stopped (the
    /// cursor at `<dlqName>:index:scan`), `HSCAN`s at most about [`INDEX_STEP_FIELDS`] fields and
    /// indexes the ones without an index entry, at most `max_new` of them, by their `diedAt`
    /// (else 0: the oldest). Returns those (field, text, score) in scan order.
    async fn index_step(&self, dlq: &str, max_new: usize) -> Result<Vec<(String, String, f64)>> {
        let index = &index_key(dlq);
        let cursor_key = &index_scan_key(dlq);
        let saved: Option<String> = self
            .redis
            .run(
                "GET of the dead letter scan cursor",
                |mut conn| async move {
                    redis::cmd("GET")
                        .arg(cursor_key)
                        .query_async(&mut conn)
                        .await
                },
            )
            .await?;
        let mut cursor: u64 = saved.and_then(|text| text.parse().ok()).unwrap_or(0);
        let mut examined = 0;
        let mut found = Vec::new();
        loop {
            let (next, pairs): (u64, Vec<(String, String)>) = self
                .redis
                .run("HSCAN of the dead letter queue", |mut conn| async move {
                    redis::cmd("HSCAN")
                        .arg(dlq)
                        .arg(cursor)
                        .arg("COUNT")
                        .arg(HSCAN_COUNT)
                        .query_async(&mut conn)
                        .await
                })
                .await?;
            examined += pairs.len();
            let scores: Vec<Option<f64>> = if pairs.is_empty() {
                Vec::new()
            } else {
                let mut lookup = redis::pipe();
                for (field, _) in &pairs {
                    lookup.zscore(index, field);
                }
                let lookup = &lookup;
                self.redis
                    .run("ZSCORE of scanned dead letters", |mut conn| async move {
                        lookup.query_async(&mut conn).await
                    })
                    .await?
            };
            let missing: Vec<(String, String)> = pairs
                .into_iter()
                .zip(scores)
                .filter_map(|(pair, score)| score.is_none().then_some(pair))
                .collect();
            let room = max_new - found.len();
            let whole = missing.len() <= room;
            let taken: Vec<(String, String, f64)> = missing
                .into_iter()
                .take(room)
                .map(|(field, text)| {
                    let score = died_at_of(&text) as f64;
                    (field, text, score)
                })
                .collect();
            if !taken.is_empty() {
                let mut add = redis::cmd("ZADD");
                // NX: a concurrent writer's own time of death wins.
                add.arg(index).arg("NX");
                for (field, _, score) in &taken {
                    add.arg(*score).arg(field);
                }
                let add = &add;
                self.redis
                    .run(
                        "indexing of unindexed dead letters",
                        |mut conn| async move { add.query_async::<i64>(&mut conn).await.map(drop) },
                    )
                    .await?;
                found.extend(taken);
            }
            if !whole {
                // The rest of this batch is read again by the next step.
                break;
            }
            cursor = next;
            if cursor == 0 || examined >= INDEX_STEP_FIELDS {
                break;
            }
        }
        let mut save = if cursor == 0 {
            let mut del = redis::cmd("DEL");
            del.arg(cursor_key);
            del
        } else {
            let mut set = redis::cmd("SET");
            set.arg(cursor_key)
                .arg(cursor)
                .arg("EX")
                .arg(SCAN_CURSOR_TTL_S);
            set
        };
        let save = &mut save;
        self.redis
            .run("save of the dead letter scan cursor", |mut conn| async move {
                save.query_async::<redis::Value>(&mut conn).await.map(drop)
            })
            .await?;
        Ok(found)
    }

    /// A page of at most `limit` dead letters, newest first, from `cursor` (as returned by the
    /// previous page; `None` for the first page). Dead letters that are not this package's or
    /// the original class's format are listed with their raw text as `value`.
    pub async fn list(&self, dlq: &str, limit: usize, cursor: Option<&str>) -> Result<Page> {
        let offset: usize = match cursor {
            None | Some("") => {
                if self.sync_index(dlq).await?.fields == 0 {
                    return Ok(Page {
                        items: Vec::new(),
                        cursor: None,
                    });
                }
                0
            }
            Some(UNINDEXED) => return self.unindexed_page(dlq, limit, Vec::new()).await,
            // A rank past what a sorted set can hold is no cursor of ours (and Redis would refuse
            // it as out of range, an error that would blame Redis).
            Some(text) => text
                .parse()
                .ok()
                .filter(|&rank: &usize| rank <= MAX_RANK)
                .ok_or_else(|| {
                    RetryError::invalid_arg(format!(
                        "cursor must be a value returned by deadLetters(), got {text:?}"
                    ))
                })?,
        };
        let page = self.page_at(dlq, offset, limit).await?;
        match page.next {
            Some(next) => Ok(Page {
                items: page.items,
                cursor: Some(next.to_string()),
            }),
            None => self.unindexed_page(dlq, limit, page.items).await,
        }
    }

    /// The rest of a listing once the index ran out: while the hash has more fields than the
    /// index (more than the first page's step indexed), the fields the index lacks, indexed as
    /// they are listed, one bounded step per page. Their pages' cursor is [`UNINDEXED`].
    async fn unindexed_page(
        &self,
        dlq: &str,
        limit: usize,
        mut items: Vec<DeadLetterItem>,
    ) -> Result<Page> {
        let sizes = self.sizes(dlq).await?;
        if !sizes.behind() {
            return Ok(Page {
                items,
                cursor: None,
            });
        }
        let mut indexed = sizes.indexed;
        let room = limit.saturating_sub(items.len());
        if room > 0 {
            let found = self.index_step(dlq, room).await?;
            indexed += found.len() as u64;
            items.extend(
                found
                    .into_iter()
                    .map(|(field, text, score)| item_of(field, text, score)),
            );
        }
        Ok(Page {
            items,
            cursor: (sizes.fields > indexed).then(|| UNINDEXED.to_string()),
        })
    }

    /// At most `limit` dead letters from rank `offset` of the index, newest first: one
    /// `ZREVRANGE` and one `HMGET`, O(limit · log N). Index entries whose field is gone are
    /// removed as they are met and the read goes on past them, dropping about
    /// [`STALE_PER_PAGE`] per call at most.
    pub(crate) async fn page_at(
        &self,
        dlq: &str,
        offset: usize,
        limit: usize,
    ) -> Result<IndexPage> {
        let index = &index_key(dlq);
        let mut items = Vec::with_capacity(limit);
        // The rank of the next entry to read: entries dropped at or after `offset` move the ones
        // after them up, so it advances by the dead letters read, not by the entries.
        let mut next = offset;
        let mut dropped = 0;
        loop {
            // One more than the page needs tells whether more follow; after stale entries, read
            // further ahead (as far as the budget allows), so a run of them takes few round trips.
            let ahead = dropped.min(STALE_PER_PAGE.saturating_sub(dropped));
            let want = limit - items.len() + 1 + ahead;
            let scored: Vec<(String, f64)> = self
                .redis
                .run(
                    "ZREVRANGE of the dead letter index",
                    |mut conn| async move {
                        redis::cmd("ZREVRANGE")
                            .arg(index)
                            .arg(next)
                            .arg(next + want - 1)
                            .arg("WITHSCORES")
                            .query_async(&mut conn)
                            .await
                    },
                )
                .await?;
            let read = scored.len();
            let texts: Vec<Option<String>> = if scored.is_empty() {
                Vec::new()
            } else {
                let fields: Vec<&String> = scored.iter().map(|(field, _)| field).collect();
                let fields = &fields;
                self.redis
                    .run("HMGET of dead letters", |mut conn| async move {
                        redis::cmd("HMGET")
                            .arg(dlq)
                            .arg(fields)
                            .query_async(&mut conn)
                            .await
                    })
                    .await?
            };
            let mut stale = Vec::new();
            let mut more = false;
            for ((field, score), text) in scored.into_iter().zip(texts) {
                match text {
                    None => stale.push(field),
                    Some(_) if items.len() == limit => {
                        more = true;
                        break;
                    }
                    Some(text) => {
                        items.push(item_of(field, text, score));
                        next += 1;
                    }
                }
            }
            if !stale.is_empty() {
                dropped += stale.len();
                let stale = &stale;
                self.redis
                    .run("removal of stale index entries", |mut conn| async move {
                        redis::cmd("ZREM")
                            .arg(index)
                            .arg(stale)
                            .query_async::<i64>(&mut conn)
                            .await
                            .map(drop)
                    })
                    .await?;
            }
            if more || (read == want && dropped >= STALE_PER_PAGE) {
                return Ok(IndexPage {
                    items,
                    next: Some(next),
                });
            }
            if read < want {
                return Ok(IndexPage { items, next: None });
            }
        }
    }

    /// The stored text of dead letter `id`, if there is one.
    pub async fn get(&self, dlq: &str, id: &str) -> Result<Option<String>> {
        self.redis
            .run("HGET of a dead letter", |mut conn| async move {
                redis::cmd("HGET")
                    .arg(dlq)
                    .arg(id)
                    .query_async(&mut conn)
                    .await
            })
            .await
    }

    /// Dead letter `id` as a listing shows it (its index score standing in for a missing time of
    /// death), if there is one: one `HGET` and one `ZSCORE`, whatever the hash's size. Two
    /// commands, not a pipeline: on a Cluster the hash and its index are in different slots.
    pub async fn item(&self, dlq: &str, id: &str) -> Result<Option<DeadLetterItem>> {
        let Some(text) = self.get(dlq, id).await? else {
            return Ok(None);
        };
        let index = &index_key(dlq);
        let score: Option<f64> = self
            .redis
            .run("read of a dead letter", |mut conn| async move {
                redis::cmd("ZSCORE")
                    .arg(index)
                    .arg(id)
                    .query_async(&mut conn)
                    .await
            })
            .await?;
        Ok(Some(item_of(id.to_string(), text, score.unwrap_or(0.0))))
    }

    /// Removes dead letter `id`, and counts one fewer of its topic. Returns whether it was there.
    pub async fn remove(&self, dlq: &str, id: &str) -> Result<bool> {
        Ok(self.take(dlq, id).await?.0)
    }

    /// [`Self::remove`], also handing back the record this call removed when it is one of this
    /// package's (the read the topic count needs anyway, so a caller need not read it first).
    pub async fn take(&self, dlq: &str, id: &str) -> Result<(bool, Option<DeadLetterItem>)> {
        self.take_record(dlq, id, None).await
    }

    /// [`Self::remove`], only while `id` still holds exactly `record` (as read before): a newer
    /// dead letter written under the same field meanwhile stays.
    pub async fn remove_unchanged(&self, dlq: &str, id: &str, record: &str) -> Result<bool> {
        Ok(self.take_record(dlq, id, Some(record)).await?.0)
    }

    async fn take_record(
        &self,
        dlq: &str,
        id: &str,
        expected: Option<&str>,
    ) -> Result<(bool, Option<DeadLetterItem>)> {
        let index = index_key(dlq);
        let topics = &dead_letter_topics_key(dlq);
        self.redis
            .run("removal of a dead letter", |mut conn| async move {
                let mut take = TAKE.key(dlq);
                take.arg(id);
                if let Some(expected) = expected {
                    take.arg(expected);
                }
                // Read and removed in one script: only the call that removed it counts it,
                // however many remove it at once.
                let text: Option<String> = take.invoke_async(&mut conn).await?;
                // A record that changed keeps its index entry; a field already gone loses any.
                if text.is_some() || expected.is_none() {
                    redis::cmd("ZREM")
                        .arg(index)
                        .arg(id)
                        .query_async::<i64>(&mut conn)
                        .await?;
                }
                let Some(text) = text else {
                    return Ok((false, None));
                };
                let item = DeadLetterItem::parse(id, &text);
                if let Some(item) = &item {
                    COUNT_TOPIC
                        .key(topics)
                        .arg(&item.topic)
                        .arg(-1)
                        .invoke_async::<i64>(&mut conn)
                        .await?;
                }
                Ok((true, item))
            })
            .await
    }

    /// How many dead letters of each topic this package wrote into `dlq` and has not removed
    /// (records others write into the hash are not counted).
    pub async fn topic_counts(&self, dlq: &str) -> Result<Vec<(String, i64)>> {
        let topics = &dead_letter_topics_key(dlq);
        self.redis
            .run("dead letters per topic", |mut conn| async move {
                redis::cmd("HGETALL")
                    .arg(topics)
                    .query_async(&mut conn)
                    .await
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_packages_dead_letters() {
        let text = r#"{"id":"m:4:1:t:x","topic":"t","event":"E","value":"{\"a\":1}","options":{"delay":"0.5","maxRetry":"3","retryCount":"4","executeAt":"9"},"diedAt":10,"firstFailedAt":5,"error":{"message":"boom","name":"TypeError"}}"#;
        let item = DeadLetterItem::parse("m:4:1:t:x", text).unwrap();
        assert_eq!(item.topic, "t");
        assert_eq!(item.died_at, 10);
        assert_eq!(item.first_failed_at, Some(5));
        assert_eq!(item.error.as_ref().unwrap().name, "TypeError");
        let entry = item.requeued_entry();
        assert_eq!(entry.retry_count, 0);
        assert_eq!(entry.max_retry, 3);
        assert_eq!(entry.delay, "0.5");
        assert!(!entry.exhausted());
    }

    #[test]
    fn a_0_2_dead_letter_and_a_new_one_read_alike() {
        let old = r#"{"id":"m:x","topic":"t","event":"E","value":"{\"msgId\":\"a\",\"big\":12345678901234567890}","options":{"delay":"2","maxRetry":"3","retryCount":"4","executeAt":"9"},"diedAt":10,"keyPrefix":"p"}"#;
        let new = r#"{"id":"m:x","topic":"t","event":"E","value":{"msgId":"a","big":12345678901234567890},"options":{"delay":"2","maxRetry":"3","retryCount":"4","executeAt":"9","tenant":"acme","bin":{"type":"Buffer","data":[0,255]}},"diedAt":10,"keyPrefix":"p"}"#;
        let old = DeadLetterItem::parse("m:x", old).unwrap();
        let new = DeadLetterItem::parse("m:x", new).unwrap();
        assert_eq!(old.value["msgId"], "a");
        assert_eq!(old.value, new.value);
        // The payload text is kept verbatim (a big number is not rounded through f64).
        assert_eq!(old.payload, r#"{"msgId":"a","big":12345678901234567890}"#);
        assert_eq!(new.payload, old.payload);
        // A requeue adds one header: `replays`, 1 for the first.
        let replay = crate::message::headers::Header {
            name: REPLAYS_HEADER.into(),
            value: crate::message::headers::HeaderValue::Text("1".into()),
            in_array: false,
        };
        assert_eq!(old.requeued_entry().extra, vec![replay]);
        let extra = new.requeued_entry().extra;
        assert_eq!(extra.len(), 3);
        assert_eq!(
            extra[1].value,
            crate::message::headers::HeaderValue::Bytes(vec![0, 255])
        );
        // A JSON string payload is written escaped (entry::value_json) and reads back as itself.
        let record = r#"{"topic":"t","value":"\"{\\\"a\\\":1}\""}"#;
        let item = DeadLetterItem::parse("x", record).unwrap();
        assert_eq!(item.payload, r#""{\"a\":1}""#);
        assert_eq!(item.value, r#"{"a":1}"#);
    }

    #[test]
    fn reads_the_original_classs_dead_letters() {
        let text = r#"{"topic":"t","event":"E","value":{"success":false},"options":{"delay":"2","maxRetry":"3","retryCount":"4"}}"#;
        let item = DeadLetterItem::parse("E", text).unwrap();
        assert_eq!(item.value, serde_json::json!({ "success": false }));
        assert_eq!(item.payload, r#"{"success":false}"#);
        assert_eq!(item.died_at, 0);
        // A string payload, as the original parsed it: requeued as JSON text.
        let text = r#"{"topic":"t","event":"E","value":"hello","options":{"tenant":"acme"}}"#;
        let item = DeadLetterItem::parse("E", text).unwrap();
        assert_eq!(item.value, "hello");
        assert_eq!(item.requeued_entry().value, r#""hello""#);
        assert_eq!(item.requeued_entry().extra.len(), 2);
        assert_eq!(item.replays, 0);
        assert!(DeadLetterItem::parse("x", "not json").is_none());
        assert!(DeadLetterItem::parse("x", r#"{"event":"no topic"}"#).is_none());
    }

    #[test]
    fn replays_are_read_from_the_header_and_counted_up_by_a_requeue() {
        let parse = |options: &str| {
            DeadLetterItem::parse(
                "x",
                &format!(r#"{{"topic":"t","value":1,"options":{options}}}"#),
            )
            .unwrap()
        };
        assert_eq!(parse(r#"{"replays":"2"}"#).replays, 2);
        assert_eq!(parse(r#"{"replays":3}"#).replays, 3);
        assert_eq!(parse(r#"{"replays":"many"}"#).replays, 0);
        assert_eq!(parse("null").replays, 0);
        let again = parse(r#"{"replays":"2","tenant":"acme"}"#).requeued_entry();
        let replays: Vec<_> = again
            .extra
            .iter()
            .filter(|h| h.name == REPLAYS_HEADER)
            .collect();
        assert_eq!(replays.len(), 1);
        assert_eq!(
            replays[0].value,
            crate::message::headers::HeaderValue::Text("3".into())
        );
        // Options that are no object (a record of other tools) still get the header.
        assert_eq!(parse("null").requeued_entry().extra.len(), 1);
    }
}
