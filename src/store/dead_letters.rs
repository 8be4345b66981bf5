//! The dead letter queue: a Redis hash (`dlqName`, one field per message, compatible with the
//! original class) plus a sorted set `<dlqName>:index` of fields by time of death, for paging
//! newest first. Listing, requeueing and removing dead letters.

use super::connection::Redis;
use super::entry::{Entry, ErrorInfo};
use super::keys::index_key;
use crate::error::{Result, RetryError};
use crate::payload::json_text;
use serde::Serialize;

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
    /// Payload JSON text.
    pub value: String,
    /// The retry options at death, as header strings.
    pub options: serde_json::Value,
    /// The last failure's error, when known.
    pub error: Option<ErrorInfo>,
    /// When it first failed (ms since the epoch), when known.
    pub first_failed_at: Option<u64>,
    /// When it was dead-lettered (ms since the epoch); for entries written by other tools, when
    /// this package first indexed them.
    pub died_at: u64,
    /// The `keyPrefix` of the schedule it came from, where a requeue sends it back.
    pub key_prefix: Option<String>,
}

impl DeadLetterItem {
    /// Reads a stored dead letter: this package's format, or the original class's
    /// `{ topic, event, value, options }`. `None` for text that is neither.
    pub fn parse(id: &str, text: &str) -> Option<Self> {
        let json: serde_json::Value = serde_json::from_str(text).ok()?;
        let object = json.as_object()?;
        let string = |key: &str| json_text(object.get(key));
        let number = |key: &str| object.get(key).and_then(serde_json::Value::as_u64);
        Some(DeadLetterItem {
            id: id.to_string(),
            topic: string("topic")?,
            event: string("event").unwrap_or_default(),
            value: string("value").unwrap_or_else(|| "null".to_string()),
            options: object
                .get("options")
                .cloned()
                .unwrap_or(serde_json::Value::Null),
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
        Entry {
            topic: self.topic.clone(),
            event: self.event.clone(),
            value: self.value.clone(),
            delay: self.option_text("delay", crate::options::DEFAULT_DELAY),
            max_retry: self
                .option_text("maxRetry", crate::options::DEFAULT_MAX_RETRY)
                .parse()
                .unwrap_or(3),
            retry_count: 0,
            due_at: 0,
            first_failed_at: self.first_failed_at,
            last_error: self.error.clone(),
            waited_ms: Some(0),
        }
    }
}

/// A page of dead letters.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Page {
    /// Newest first.
    pub items: Vec<DeadLetterItem>,
    /// Pass back to get the next page; `None` after the last page.
    pub cursor: Option<String>,
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
    /// a crash leaves one copy.
    pub async fn write(&self, dlq: &str, field: &str, record: &str, died_at: u64) -> Result<()> {
        let index = index_key(dlq);
        self.redis
            .run("write of a dead letter", |mut conn| async move {
                // Two keys of different slots on a cluster: separate commands, not one script.
                redis::cmd("HSET")
                    .arg(dlq)
                    .arg(field)
                    .arg(record)
                    .query_async::<i64>(&mut conn)
                    .await?;
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

    /// Brings the index in line with the hash: indexes fields written by the original class or
    /// other tools (by their `diedAt`, else as the oldest) and drops index entries whose field is
    /// gone.
    /// O(dead letters); done when the first page is listed.
    async fn reconcile(&self, dlq: &str) -> Result<()> {
        let index = &index_key(dlq);
        let (fields, indexed): (Vec<String>, Vec<String>) = self
            .redis
            .run("read of the dead letter index", |mut conn| async move {
                redis::pipe()
                    .hkeys(dlq)
                    .zrange(index, 0, -1)
                    .query_async(&mut conn)
                    .await
            })
            .await?;
        let field_set: std::collections::HashSet<&String> = fields.iter().collect();
        let indexed_set: std::collections::HashSet<&String> = indexed.iter().collect();
        let missing: Vec<&String> = fields.iter().filter(|f| !indexed_set.contains(f)).collect();
        let stale: Vec<&String> = indexed.iter().filter(|f| !field_set.contains(f)).collect();
        if missing.is_empty() && stale.is_empty() {
            return Ok(());
        }
        let texts: Vec<Option<String>> = if missing.is_empty() {
            Vec::new()
        } else {
            let missing = &missing;
            self.redis
                .run("HMGET of unindexed dead letters", |mut conn| async move {
                    redis::cmd("HMGET")
                        .arg(dlq)
                        .arg(missing)
                        .query_async(&mut conn)
                        .await
                })
                .await?
        };
        let mut fix = redis::pipe();
        for (field, text) in missing.iter().zip(texts) {
            let died_at = text
                .and_then(|text| DeadLetterItem::parse(field, &text))
                .map_or(0, |item| item.died_at);
            // Unknown time of death (the original class's entries): oldest, listed last.
            let score = died_at;
            // NX: a concurrent writer's own time of death wins.
            fix.cmd("ZADD")
                .arg(index)
                .arg("NX")
                .arg(score)
                .arg(*field)
                .ignore();
        }
        for field in stale {
            fix.zrem(index, field).ignore();
        }
        self.redis
            .run("repair of the dead letter index", |mut conn| async move {
                fix.query_async::<()>(&mut conn).await
            })
            .await
    }

    /// A page of at most `limit` dead letters, newest first, from `cursor` (as returned by the
    /// previous page; `None` for the first page). Dead letters that are not this package's or
    /// the original class's format are listed with their raw text as `value`.
    pub async fn list(&self, dlq: &str, limit: usize, cursor: Option<&str>) -> Result<Page> {
        let offset: usize = match cursor {
            None | Some("") => 0,
            Some(text) => text.parse().map_err(|_| {
                RetryError::invalid_arg(format!(
                    "cursor must be a value returned by deadLetters(), got {text:?}"
                ))
            })?,
        };
        if offset == 0 {
            self.reconcile(dlq).await?;
        }
        let index = &index_key(dlq);
        let scored: Vec<(String, f64)> = self
            .redis
            .run(
                "ZREVRANGE of the dead letter index",
                |mut conn| async move {
                    redis::cmd("ZREVRANGE")
                        .arg(index)
                        .arg(offset)
                        .arg(offset + limit)
                        .arg("WITHSCORES")
                        .query_async(&mut conn)
                        .await
                },
            )
            .await?;
        let more = scored.len() > limit;
        let (fields, scores): (Vec<String>, Vec<f64>) = scored.into_iter().take(limit).unzip();
        let field_list = &fields;
        let texts: Vec<Option<String>> = if fields.is_empty() {
            Vec::new()
        } else {
            self.redis
                .run("HMGET of dead letters", |mut conn| async move {
                    redis::cmd("HMGET")
                        .arg(dlq)
                        .arg(field_list)
                        .query_async(&mut conn)
                        .await
                })
                .await?
        };
        let mut items = Vec::with_capacity(fields.len());
        for ((field, text), score) in fields.iter().zip(texts).zip(scores) {
            let Some(text) = text else { continue };
            let mut item = DeadLetterItem::parse(field, &text).unwrap_or_else(|| DeadLetterItem {
                id: field.clone(),
                topic: String::new(),
                event: String::new(),
                value: text,
                options: serde_json::Value::Null,
                error: None,
                first_failed_at: None,
                died_at: 0,
                key_prefix: None,
            });
            if item.died_at == 0 {
                // Written without a time of death (pushToDlq, other tools): when it was indexed.
                item.died_at = score as u64;
            }
            items.push(item);
        }
        Ok(Page {
            items,
            cursor: more.then(|| (offset + limit).to_string()),
        })
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

    /// Removes dead letter `id`. Returns whether it was there.
    pub async fn remove(&self, dlq: &str, id: &str) -> Result<bool> {
        let index = index_key(dlq);
        let removed: i64 = self
            .redis
            .run("removal of a dead letter", |mut conn| async move {
                let removed: i64 = redis::cmd("HDEL")
                    .arg(dlq)
                    .arg(id)
                    .query_async(&mut conn)
                    .await?;
                redis::cmd("ZREM")
                    .arg(index)
                    .arg(id)
                    .query_async::<i64>(&mut conn)
                    .await?;
                Ok(removed)
            })
            .await?;
        Ok(removed == 1)
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
    fn reads_the_original_classs_dead_letters() {
        let text = r#"{"topic":"t","event":"E","value":{"success":false},"options":{"delay":"2","maxRetry":"3","retryCount":"4"}}"#;
        let item = DeadLetterItem::parse("E", text).unwrap();
        assert_eq!(item.value, r#"{"success":false}"#);
        assert_eq!(item.died_at, 0);
        assert!(DeadLetterItem::parse("x", "not json").is_none());
        assert!(DeadLetterItem::parse("x", r#"{"event":"no topic"}"#).is_none());
    }
}
