//! The per topic counts and the per-minute history that the scripts keep as they work
//! (`lua/lib/tally.lua`, included by push, claim, ack, release and requeue), read back for
//! `stats().topics` and `history()`. Reading costs one `HGETALL` per shard for the counts and one
//! per shard and hour for the history: bounded by topics and minutes, never by messages.
//!
//! `due` per topic is counted by due minute: a message counts as due from the start of the minute
//! it falls due in (up to 60 s early), or when a pause holds it. The schedule's own `due` stays
//! exact (`ZCOUNT`).

use super::connection::Redis;
use super::schedule::Schedule;
use crate::error::{Result, RetryError};
use std::collections::BTreeMap;

/// Most minutes `history()` reads back: the 48 hours the scripts keep.
pub const HISTORY_MINUTES_MAX: u32 = 48 * 60;
/// What `history()` reads without `minutes`.
pub const HISTORY_MINUTES_DEFAULT: u32 = 60;

/// The counts of one topic in `stats().topics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TopicCounts {
    /// Its breaker's state, when the breaker is on and has counted the topic (`store::breaker`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub breaker: Option<crate::store::breaker::BreakerState>,
    /// Messages waiting on the schedule (including those a pause holds).
    pub scheduled: u64,
    /// Of those, due: from the start of their due minute, or held by a pause.
    pub due: u64,
    /// Claimed by a listener and not yet acknowledged.
    pub leased: u64,
    /// Dead letters of the topic in the dead letter hash asked about (those this package wrote).
    pub dead_letters: u64,
}

impl TopicCounts {
    fn is_empty(&self) -> bool {
        // A topic whose breaker holds its messages is shown even with nothing counted.
        let closed = matches!(
            self.breaker,
            None | Some(crate::store::breaker::BreakerState::Closed)
        );
        closed
            && TopicCounts {
                breaker: None,
                ..*self
            } == TopicCounts::default()
    }
}

/// Adds one shard's topics hash (`field -> value` as `tally.lua` writes it) into `into`, at
/// Redis's clock `now_ms`.
pub fn add_shard_counts(
    into: &mut BTreeMap<String, TopicCounts>,
    fields: &[(String, i64)],
    now_ms: u64,
) {
    let minute_now = now_ms / 60_000;
    for (field, value) in fields {
        let Ok(n) = u64::try_from(*value) else {
            continue;
        };
        let (kind, rest) = field.split_at(field.chars().next().map_or(0, char::len_utf8));
        match kind {
            "s" => into.entry(rest.to_string()).or_default().scheduled += n,
            "l" => into.entry(rest.to_string()).or_default().leased += n,
            "p" => into.entry(rest.to_string()).or_default().due += n,
            _ => {
                let Some((minute, topic)) = field.split_once('\t') else {
                    continue;
                };
                match minute.parse::<u64>() {
                    Ok(minute) if minute <= minute_now => {
                        into.entry(topic.to_string()).or_default().due += n
                    }
                    Ok(_) => {}
                    Err(_) => continue,
                }
            }
        }
    }
}

/// Adds the dead letter counts of a dead letter hash (`topic -> count`) into `into`.
pub fn add_dead_letters(into: &mut BTreeMap<String, TopicCounts>, counts: &[(String, i64)]) {
    for (topic, count) in counts {
        if let Ok(n) = u64::try_from(*count) {
            into.entry(topic.clone()).or_default().dead_letters += n;
        }
    }
}

/// Drops topics with nothing to show (a field left at 0 by a race, or only future minutes).
pub fn without_empty(mut counts: BTreeMap<String, TopicCounts>) -> BTreeMap<String, TopicCounts> {
    counts.retain(|_, c| !c.is_empty());
    counts
}

/// The per topic counts of every shard of a schedule (without dead letters), by Redis's clock.
pub async fn topic_counts(
    redis: &Redis,
    schedules: &[Schedule],
) -> Result<BTreeMap<String, TopicCounts>> {
    let now = redis.time_ms().await?;
    let mut counts = BTreeMap::new();
    for schedule in schedules {
        let key = &schedule.keys().topics;
        let fields: Vec<(String, i64)> = schedule
            .redis()
            .run("per topic counts", |mut conn| async move {
                redis::cmd("HGETALL").arg(key).query_async(&mut conn).await
            })
            .await?;
        add_shard_counts(&mut counts, &fields, now);
    }
    Ok(counts)
}

/// Per-minute counts of one series: index `i` is the minute starting at `from + i * 60 000`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Series {
    /// Messages stored on the schedule (pushed, requeued from the dead letters, migrated).
    pub pushed: Vec<u64>,
    /// Messages published and acknowledged.
    pub published: Vec<u64>,
    /// Publishes that failed (the message went back on the schedule, or was counted as refused).
    pub failed: Vec<u64>,
    /// Messages dead-lettered.
    pub dead_lettered: Vec<u64>,
}

impl Series {
    fn zeros(minutes: usize) -> Self {
        Series {
            pushed: vec![0; minutes],
            published: vec![0; minutes],
            failed: vec![0; minutes],
            dead_lettered: vec![0; minutes],
        }
    }

    fn slot(&mut self, kind: char) -> Option<&mut Vec<u64>> {
        match kind {
            'p' => Some(&mut self.pushed),
            'o' => Some(&mut self.published),
            'f' => Some(&mut self.failed),
            'd' => Some(&mut self.dead_lettered),
            _ => None,
        }
    }
}

/// What `history()` resolves to: the schedule's series and each topic's, minute by minute, the
/// last minute being the current one (still counting).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct History {
    /// The start of the first minute (ms since the epoch, Redis's clock).
    pub from: u64,
    /// How many minutes each series holds.
    pub minutes: u32,
    /// The whole schedule.
    #[serde(flatten)]
    pub schedule: Series,
    /// Per topic, the topics with any count in the range.
    pub topics: BTreeMap<String, Series>,
}

impl History {
    /// An empty history of the `minutes` minutes up to and including the one of `now_ms`.
    pub fn empty(now_ms: u64, minutes: u32) -> Self {
        let last = now_ms / 60_000;
        let first = last.saturating_sub(u64::from(minutes) - 1);
        History {
            from: first * 60_000,
            minutes,
            schedule: Series::zeros(minutes as usize),
            topics: BTreeMap::new(),
        }
    }

    /// The hours (`ms // 3 600 000`) whose hashes hold these minutes.
    pub fn hours(&self) -> std::ops::RangeInclusive<u64> {
        let first = self.from / 60_000;
        let last = first + u64::from(self.minutes) - 1;
        first / 60..=last / 60
    }

    /// Adds one hour's hash (`field -> count` as `tally.lua` writes it: two-digit minute of the
    /// hour, kind, topic) of one shard.
    pub fn add_hour(&mut self, hour: u64, fields: &[(String, u64)]) {
        let first = self.from / 60_000;
        for (field, n) in fields {
            let (Some(minute), Some(kind)) = (
                field.get(..2).and_then(|m| m.parse::<u64>().ok()),
                field.get(2..3).and_then(|k| k.chars().next()),
            ) else {
                continue;
            };
            let Some(slot) = (hour * 60 + minute)
                .checked_sub(first)
                .filter(|slot| *slot < u64::from(self.minutes))
            else {
                continue;
            };
            let slot = slot as usize;
            let Some(series) = self.schedule.slot(kind) else {
                continue;
            };
            series[slot] += n;
            let topic = &field[3..];
            let minutes = self.minutes as usize;
            let per_topic = self
                .topics
                .entry(topic.to_string())
                .or_insert_with(|| Series::zeros(minutes));
            if let Some(series) = per_topic.slot(kind) {
                series[slot] += n;
            }
        }
    }
}

/// Checks `minutes` of `history({ minutes })`.
pub fn check_minutes(minutes: Option<f64>) -> Result<u32> {
    match minutes {
        None => Ok(HISTORY_MINUTES_DEFAULT),
        Some(m)
            if m.is_finite() && m.fract() == 0.0 && m >= 1.0 && m <= HISTORY_MINUTES_MAX as f64 =>
        {
            Ok(m as u32)
        }
        Some(m) => Err(RetryError::invalid_arg(format!(
            "options.minutes must be a whole number from 1 to {HISTORY_MINUTES_MAX} (48 hours), got {}",
            crate::message::options::format_js_number(m)
        ))),
    }
}

/// The history of the last `minutes` minutes of every shard of a schedule, by Redis's clock.
pub async fn history(redis: &Redis, schedules: &[Schedule], minutes: u32) -> Result<History> {
    let mut history = History::empty(redis.time_ms().await?, minutes);
    for schedule in schedules {
        let prefix = &schedule.keys().history;
        let hours: Vec<u64> = history.hours().collect();
        let hashes: Vec<Vec<(String, u64)>> = schedule
            .redis()
            .run("history", |mut conn| {
                let hours = hours.clone();
                async move {
                    let mut pipe = redis::pipe();
                    for hour in &hours {
                        pipe.cmd("HGETALL").arg(format!("{prefix}:{hour}"));
                    }
                    pipe.query_async(&mut conn).await
                }
            })
            .await?;
        for (hour, fields) in hours.iter().zip(hashes) {
            history.add_hour(*hour, &fields);
        }
    }
    Ok(history)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(list: &[(&str, i64)]) -> Vec<(String, i64)> {
        list.iter().map(|(f, n)| (f.to_string(), *n)).collect()
    }

    #[test]
    fn due_per_topic_counts_the_minutes_begun_and_the_parked() {
        let now = 1_000 * 60_000 + 30_000; // half way through minute 1000
        let mut counts = BTreeMap::new();
        add_shard_counts(
            &mut counts,
            &fields(&[
                ("sorders", 7),
                ("lorders", 2),
                ("porders", 1),
                ("999\torders", 2),
                ("1000\torders", 1),
                ("1001\torders", 3),
                ("spay\tments", 1),
                ("1005\tpay\tments", 1),
                ("sbroken", -2),
                ("x\tjunk", 5),
            ]),
            now,
        );
        add_shard_counts(&mut counts, &fields(&[("sorders", 1)]), now);
        add_dead_letters(&mut counts, &fields(&[("orders", 4), ("gone", 0)]));
        let counts = without_empty(counts);
        assert_eq!(
            counts["orders"],
            TopicCounts {
                scheduled: 8,
                due: 4,
                leased: 2,
                dead_letters: 4,
                breaker: None,
            }
        );
        assert_eq!(counts["pay\tments"].scheduled, 1);
        assert_eq!(counts["pay\tments"].due, 0);
        assert_eq!(
            counts.keys().collect::<Vec<_>>(),
            vec!["orders", "pay\tments"]
        );
    }

    #[test]
    fn history_places_each_minute_and_topic() {
        // now: minute 125 (hour 2, minute 5); 10 minutes: minutes 116..=125, hours 1 and 2.
        let mut h = History::empty(125 * 60_000 + 1, 10);
        assert_eq!(h.from, 116 * 60_000);
        assert_eq!(h.hours(), 1..=2);
        let hour = |list: &[(&str, u64)]| -> Vec<(String, u64)> {
            list.iter().map(|(f, n)| (f.to_string(), *n)).collect()
        };
        h.add_hour(
            1,
            &hour(&[("56pa", 3), ("59ob", 1), ("10pa", 9), ("59zz", 4)]),
        );
        h.add_hour(2, &hour(&[("05da", 2), ("05fa", 1), ("00pb", 1)]));
        h.add_hour(2, &hour(&[("05da", 1)])); // another shard
        assert_eq!(h.schedule.pushed, vec![3, 0, 0, 0, 1, 0, 0, 0, 0, 0]);
        assert_eq!(h.schedule.published[3], 1);
        assert_eq!(h.schedule.dead_lettered[9], 3);
        assert_eq!(h.schedule.failed[9], 1);
        assert_eq!(h.topics["a"].pushed[0], 3);
        assert_eq!(h.topics["a"].dead_lettered[9], 3);
        assert_eq!(h.topics["b"].published[3], 1);
        assert!(!h.topics.contains_key("z"));
        let json = serde_json::to_value(&h).unwrap();
        assert_eq!(json["deadLettered"][9], 3);
        assert_eq!(json["topics"]["a"]["pushed"][0], 3);
    }

    #[test]
    fn minutes_are_checked() {
        assert_eq!(check_minutes(None).unwrap(), 60);
        assert_eq!(check_minutes(Some(2880.0)).unwrap(), 2880);
        for bad in [0.0, 2881.0, 1.5, f64::NAN] {
            assert_eq!(
                check_minutes(Some(bad)).unwrap_err().code,
                crate::error::ErrorCode::InvalidArg
            );
        }
    }
}
