//! The breaker of each topic (config `breaker`, docs/breaker.md), beside the gates it joins:
//! pushes count failures and acks count attempts into one hash per shard (`GateKeys::breaker`),
//! and every claim decides each topic's state and holds an open topic's due messages in the
//! parked set a pause uses (`lua/lib/breaker.lua`, included by `lib/gate.lua`). All of it is
//! decided by Redis's clock inside those scripts, so every process and listener shares one
//! breaker per topic and shard.

use super::schedule::Schedule;
use crate::error::Result;
use crate::store::scripts;
use redis::Script;
use std::collections::BTreeMap;
use std::sync::LazyLock;

static RESET: LazyLock<Script> = LazyLock::new(|| scripts::load("breaker/reset"));

/// Where a topic's breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum BreakerState {
    /// Retries go out (also while the held messages of a closed breaker go out over its ramp).
    Closed,
    /// Due retries are held; no probe is out.
    Open,
    /// Due retries are held; a round of probes is out.
    HalfOpen,
}

impl BreakerState {
    /// The name `stats()` gives it.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "halfOpen",
        }
    }

    /// The state of a stored state record (`kind since ...`, `lib/breaker.lua`).
    fn of_record(record: &str) -> BreakerState {
        match record.split(' ').next() {
            Some("o") => BreakerState::Open,
            Some("h") => BreakerState::HalfOpen,
            _ => BreakerState::Closed,
        }
    }
}

/// A breaker that a claim opened or closed.
#[derive(Debug, Clone, PartialEq)]
pub struct BreakerChange {
    /// `true`: it opened; `false`: it closed.
    pub opened: bool,
    /// Its topic.
    pub topic: String,
    /// What the script said about it: `failures`, `attempts` (in the window) when it opened,
    /// `openMs`, `held` when it closed.
    pub detail: serde_json::Map<String, serde_json::Value>,
}

/// The transitions a claim reply carries after its time: kind, topic, detail JSON, repeated.
pub fn parse_changes(values: &[redis::Value]) -> std::result::Result<Vec<BreakerChange>, String> {
    use redis::FromRedisValue;
    let mut changes = Vec::with_capacity(values.len() / 3);
    for triple in values.chunks(3) {
        let [kind, topic, detail] = triple else {
            return Err("breaker transitions not in threes".into());
        };
        let text = |v: &redis::Value| String::from_redis_value(v).map_err(|e| e.to_string());
        let kind = text(kind)?;
        let detail = match serde_json::from_str(&text(detail)?) {
            Ok(serde_json::Value::Object(map)) => map,
            _ => serde_json::Map::new(),
        };
        changes.push(BreakerChange {
            opened: kind == "open",
            topic: text(topic)?,
            detail,
        });
    }
    Ok(changes)
}

/// The breaker state of every topic that has one on any shard; the most closed-off state wins
/// when shards disagree (open over half-open over closed).
pub async fn states(schedules: &[Schedule]) -> Result<BTreeMap<String, BreakerState>> {
    let mut states = BTreeMap::new();
    for schedule in schedules {
        let key = &schedule.gate_keys().breaker;
        let fields: Vec<(String, String)> = schedule
            .redis()
            .run("read of the breakers", |mut conn| async move {
                redis::cmd("HGETALL").arg(key).query_async(&mut conn).await
            })
            .await?;
        for (field, value) in fields {
            let (topic, state) = if let Some(topic) = field.strip_prefix("s\t") {
                (topic, BreakerState::of_record(&value))
            } else if let Some(topic) = field.strip_prefix("n\t") {
                (topic, BreakerState::Closed)
            } else {
                continue;
            };
            let worst = |old: BreakerState| match (old, state) {
                (BreakerState::Open, _) | (_, BreakerState::Open) => BreakerState::Open,
                (BreakerState::HalfOpen, _) | (_, BreakerState::HalfOpen) => BreakerState::HalfOpen,
                _ => BreakerState::Closed,
            };
            let entry = states.entry(topic.to_string()).or_insert(state);
            *entry = worst(*entry);
        }
    }
    Ok(states)
}

/// Closes the breaker of `topic` (`None`: of every topic) on every shard by hand: its state and
/// counts are forgotten and its held messages go back on the schedule over the next claims.
/// Returns the topics whose breaker was open or half-open.
pub async fn reset(schedules: &[Schedule], topic: Option<&str>) -> Result<Vec<String>> {
    let mut closed = Vec::new();
    for schedule in schedules {
        let (key, wake) = (&schedule.gate_keys().breaker, &schedule.keys().wake);
        let topics: Vec<String> = schedule
            .redis()
            .run("breaker reset", |mut conn| async move {
                let mut call = RESET.key(key);
                call.key(wake);
                if let Some(topic) = topic {
                    call.arg(topic);
                }
                call.invoke_async(&mut conn).await
            })
            .await?;
        for topic in topics {
            if !closed.contains(&topic) {
                closed.push(topic);
            }
        }
    }
    Ok(closed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_record_names_its_state() {
        assert_eq!(
            BreakerState::of_record("o 1 2 3 4 0 0 0"),
            BreakerState::Open
        );
        assert_eq!(
            BreakerState::of_record("h 1 2 3 4 0 0 0"),
            BreakerState::HalfOpen
        );
        assert_eq!(
            BreakerState::of_record("r 1 2 3 4 0 9 0"),
            BreakerState::Closed
        );
    }

    #[test]
    fn transitions_come_in_threes() {
        use redis::Value;
        let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        let changes = parse_changes(&[
            bulk("open"),
            bulk("t"),
            bulk(r#"{"failures":20,"attempts":21}"#),
        ])
        .unwrap();
        assert!(changes[0].opened);
        assert_eq!(changes[0].topic, "t");
        assert_eq!(changes[0].detail["failures"], 20);
        assert!(parse_changes(&[bulk("open"), bulk("t")]).is_err());
    }
}
