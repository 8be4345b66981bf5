//! The operator gates of a schedule, beside the schedule they hold back: pauses (the whole
//! schedule, or one topic, until resumed or until a time) and the publish rate cap. Their state
//! lives in Redis under each shard's hash tag ([`GateKeys`]); every claim reads it (`lua/lib/gate.lua`,
//! included by `claim.lua`), so every listener in every process honours a pause from its next
//! claim, and a resume is announced on the wake channel so they claim at once.
//!
//! While a topic is paused, its messages that fall due are moved by the claim from the due set to
//! a parked set of the same shard: they are not leased, not published, not dead-lettered, and do
//! not stand in the way of other topics' messages. Once the pause ends (a resume, or its
//! `untilMs` passing by Redis's clock) the claims put them back, a bounded number per claim.

use super::schedule::Schedule;
use crate::error::{Result, RetryError};
use crate::store::scripts;
use redis::Script;
use std::sync::LazyLock;

pub use super::keys::GateKeys;

static PAUSE: LazyLock<Script> = LazyLock::new(|| scripts::load("gates/pause"));
static RESUME: LazyLock<Script> = LazyLock::new(|| scripts::load("gates/resume"));
static PAUSED: LazyLock<Script> = LazyLock::new(|| scripts::load("gates/paused"));

/// The field of the paused hash that stands for the whole schedule (no Kafka topic has a `*`).
const WHOLE: &str = "*";

/// One pause in force.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Pause {
    /// The paused topic; `None` for the whole schedule.
    pub topic: Option<String>,
    /// When it ends by itself (ms since the epoch, Redis's clock); `None`: when resumed.
    pub until_ms: Option<u64>,
}

fn check_topic(topic: Option<&str>) -> Result<&str> {
    match topic {
        None => Ok(WHOLE),
        Some("") | Some(WHOLE) => Err(RetryError::invalid_arg(format!(
            "topic must be a topic name (or absent for the whole schedule), got {:?}",
            topic.unwrap_or_default()
        ))),
        Some(t) if t.contains('\n') => Err(RetryError::invalid_arg(format!(
            "topic must not contain a newline, got {t:?}"
        ))),
        Some(t) => Ok(t),
    }
}

/// Pauses `topic` (`None`: the whole schedule) on every shard of a schedule, until `until_ms`
/// (ms since the epoch, Redis's clock) or until resumed. Returns `false` when `until_ms` is
/// already past by Redis's clock (nothing paused).
pub async fn pause(
    schedules: &[Schedule],
    topic: Option<&str>,
    until_ms: Option<u64>,
) -> Result<bool> {
    let field = check_topic(topic)?;
    let until = until_ms.unwrap_or(0);
    let mut paused = true;
    for schedule in schedules {
        let key = &schedule.gate_keys().paused;
        let now: u64 = schedule
            .redis()
            .run("pause", |mut conn| async move {
                PAUSE
                    .key(key)
                    .arg(field)
                    .arg(until)
                    .invoke_async(&mut conn)
                    .await
            })
            .await?;
        paused &= now > 0;
    }
    Ok(paused)
}

/// Ends the pause of `topic` (`None`: the whole schedule's), or with `every` every pause, on
/// every shard, and wakes every listener. Returns whether a pause ended.
pub async fn resume(schedules: &[Schedule], topic: Option<&str>, every: bool) -> Result<bool> {
    let field = if every {
        None
    } else {
        Some(check_topic(topic)?)
    };
    let mut ended = 0u64;
    for schedule in schedules {
        let (key, wake) = (&schedule.gate_keys().paused, &schedule.keys().wake);
        let n: u64 = schedule
            .redis()
            .run("resume", |mut conn| async move {
                let mut call = RESUME.key(key);
                call.key(wake);
                if let Some(field) = field {
                    call.arg(field);
                }
                call.invoke_async(&mut conn).await
            })
            .await?;
        ended += n;
    }
    Ok(ended > 0)
}

/// The pauses in force now (Redis's clock), read from shard 0 (every shard holds the same).
pub async fn paused(schedule: &Schedule) -> Result<Vec<Pause>> {
    let key = &schedule.gate_keys().paused;
    let flat: Vec<String> = schedule
        .redis()
        .run("read of the pauses", |mut conn| async move {
            PAUSED.key(key).invoke_async(&mut conn).await
        })
        .await?;
    let mut pauses: Vec<Pause> = flat
        .chunks(2)
        .filter_map(|pair| match pair {
            [topic, until] => Some(Pause {
                topic: (topic != WHOLE).then(|| topic.clone()),
                until_ms: until.parse::<u64>().ok().filter(|u| *u > 0),
            }),
            _ => None,
        })
        .collect();
    pauses.sort_by(|a, b| a.topic.cmp(&b.topic));
    Ok(pauses)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_topic_is_a_name_or_absent() {
        assert_eq!(check_topic(None).unwrap(), WHOLE);
        assert_eq!(check_topic(Some("orders")).unwrap(), "orders");
        for bad in ["", "*", "a\nb"] {
            assert!(check_topic(Some(bad)).is_err(), "{bad:?}");
        }
    }
}
