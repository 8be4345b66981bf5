//! Holds the hand-written TypeScript types (`header.d.ts`, copied into `index.d.ts` by `napi build`)
//! to the Rust code: every config key the binding reads is declared and every declared key is
//! read, each documented default is the one `config.rs` applies, and the objects the methods
//! resolve to have exactly the declared keys. The class's methods are generated from the Rust
//! code by `napi build`; CI checks that the committed `index.d.ts` is what the build generates.

use engine::config::ConfigInput;
use engine::options::{DEFAULT_DELAY, DEFAULT_MAX_RETRY, DEFAULT_RETRY_COUNT};
use engine::stats::Stats;
use engine::store::dead_letters::DeadLetterItem;
use std::collections::BTreeSet;

const HEADER: &str = include_str!("header.d.ts");
const INDEX: &str = include_str!("../index.d.ts");
/// The sources that read config keys from JavaScript.
const READERS: [&str; 2] = [include_str!("args.rs"), include_str!("observer.rs")];

/// The body of `interface <name> { ... }` in `text`.
fn interface<'a>(text: &'a str, name: &str) -> &'a str {
    let start = text
        .find(&format!("export interface {name} {{"))
        .unwrap_or_else(|| panic!("header.d.ts declares no interface {name}"));
    let body = &text[start..];
    let open = body.find('{').expect("an opening brace") + 1;
    let close = body.find("\n}").expect("a closing brace");
    &body[open..close]
}

/// The declared keys of an interface body, each with the doc comment just above it.
fn members(body: &str) -> Vec<(String, String)> {
    let mut members = Vec::new();
    let mut doc = String::new();
    for line in body.lines().map(str::trim) {
        if line.starts_with("/**") || line.starts_with('*') {
            doc.push_str(line);
            doc.push(' ');
            continue;
        }
        let name: String = line
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() && line[name.len()..].trim_start().starts_with(['?', ':']) {
            members.push((name, std::mem::take(&mut doc)));
        } else if !line.is_empty() {
            doc.clear();
        }
    }
    members
}

fn keys(body: &str) -> BTreeSet<String> {
    members(body).into_iter().map(|(name, _)| name).collect()
}

/// The top-level config keys the binding reads: every error names them as `config.<key>`.
fn keys_read_by_the_binding() -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    for source in READERS {
        for (at, _) in source.match_indices("\"config.") {
            let key: String = source[at + 8..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect();
            if !key.is_empty() {
                keys.insert(key);
            }
        }
    }
    keys
}

/// Whether `text` holds `value` as a whole token (`1000` is not in `10000`).
fn states(text: &str, value: &str) -> bool {
    text.match_indices(value).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + value.len()..].chars().next();
        !before.is_some_and(|c| c.is_ascii_alphanumeric())
            && !after.is_some_and(|c| c.is_ascii_alphanumeric())
    })
}

fn json_keys(value: serde_json::Value) -> BTreeSet<String> {
    value
        .as_object()
        .expect("an object")
        .keys()
        .cloned()
        .collect()
}

#[test]
fn every_config_key_is_declared_and_every_declared_key_is_read() {
    let declared = keys(interface(HEADER, "KafkaRetryConfig"));
    let read = keys_read_by_the_binding();
    assert_eq!(
        declared, read,
        "KafkaRetryConfig in header.d.ts vs the keys args.rs and observer.rs read"
    );
}

#[test]
fn documented_defaults_are_the_applied_ones() {
    let config = ConfigInput::default().resolve_with(|_| None).unwrap();
    let ms = |d: std::time::Duration| d.as_millis().to_string();
    // Keys whose default is a value: the text the doc must hold, from the resolved config.
    let applied: Vec<(&str, String)> = vec![
        ("redisUrl", format!("`{}`", config.redis_url)),
        ("brokers", format!("`{}`", config.brokers)),
        ("keyPrefix", format!("`{}`", config.key_prefix)),
        ("pollIntervalMs", ms(config.poll_interval)),
        ("leaseMs", ms(config.lease)),
        ("batchSize", config.batch_size.to_string()),
        ("redisTimeoutMs", ms(config.redis_timeout)),
        ("dedupeWindowMs", ms(config.dedupe_window)),
        ("cluster", config.cluster.to_string()),
        ("migrateLegacy", config.migrate_legacy.to_string()),
        ("shards", config.shards.to_string()),
        ("waitReplicas", config.wait_replicas.to_string()),
        ("waitTimeoutMs", ms(config.wait_timeout)),
        (
            "maxPublishFailures",
            config.max_publish_failures.to_string(),
        ),
    ];
    let documented = members(interface(HEADER, "KafkaRetryConfig"));
    for (key, doc) in &documented {
        let Some(at) = doc.find("Default") else {
            continue;
        };
        let Some((_, value)) = applied.iter().find(|(k, _)| k == key) else {
            // A default that is not a plain value (a policy, a callback): checked by its own tests.
            assert!(
                ["backoff", "logger"].contains(&key.as_str()),
                "header.d.ts documents a default for {key}: add it to this test"
            );
            continue;
        };
        let stated = &doc[at..];
        let stated = &stated[..stated.find(". ").unwrap_or(stated.len())];
        assert!(
            states(stated, value),
            "header.d.ts says {key} {stated:?}; config.rs applies {value}"
        );
    }
    for (key, _) in &applied {
        assert!(
            documented
                .iter()
                .any(|(k, doc)| k == key && doc.contains("Default")),
            "header.d.ts does not document the default of {key}"
        );
    }
    let options = members(interface(HEADER, "RetryOptions"));
    for (key, default) in [
        ("delay", DEFAULT_DELAY),
        ("maxRetry", DEFAULT_MAX_RETRY),
        ("retryCount", DEFAULT_RETRY_COUNT),
    ] {
        let (_, doc) = options.iter().find(|(k, _)| k == key).expect("declared");
        assert!(
            doc.contains(&format!("Default `'{default}'`")),
            "header.d.ts RetryOptions.{key}: {doc:?}, the code's default is {default:?}"
        );
    }
}

#[test]
fn resolved_objects_have_exactly_the_declared_keys() {
    let stats = Stats {
        scheduled: 0,
        due: 0,
        inflight: 0,
        dead_lettered: 0,
        published: 0,
        publish_failures: 0,
        dead_lettered_total: 0,
        dead_letter_cap_exceeded: false,
        paused: Vec::new(),
        blocked_keys: 0,
        parked_messages: 0,
        events_dropped: 0,
        late_ms: 0,
        topics: Default::default(),
    };
    assert_eq!(
        keys(interface(HEADER, "RetryStats")),
        json_keys(serde_json::to_value(stats).unwrap()),
        "RetryStats in header.d.ts vs stats::Stats"
    );
    assert_eq!(
        keys(interface(HEADER, "RetryTopicStats")),
        json_keys(serde_json::to_value(engine::store::tally::TopicCounts::default()).unwrap()),
        "RetryTopicStats in header.d.ts vs store::tally::TopicCounts"
    );
    let history = engine::store::tally::History::empty(0, 1);
    assert_eq!(
        keys(interface(HEADER, "RetryHistorySeries")),
        json_keys(serde_json::to_value(engine::store::tally::Series::default()).unwrap()),
        "RetryHistorySeries in header.d.ts vs store::tally::Series"
    );
    assert_eq!(
        keys(interface(HEADER, "RetryHistory")),
        json_keys(serde_json::to_value(history).unwrap()),
        "RetryHistory (with RetryHistorySeries) in header.d.ts vs store::tally::History"
    );
    let job = engine::store::jobs::Job {
        id: 1,
        spec: serde_json::json!({}),
        state: "running".into(),
        run: 1,
        done: 0,
        interruptions: 0,
        started_at: 0,
        updated_at: 0,
        continued_at: None,
        finished_at: None,
        lease_until: 0,
        error: None,
    };
    assert_eq!(
        keys(interface(HEADER, "OperatorJob")),
        json_keys(serde_json::to_value(job).unwrap()),
        "OperatorJob in header.d.ts vs store::jobs::Job"
    );
    let item = DeadLetterItem::parse(
        "id",
        r#"{"topic":"t","event":"e","value":"1","options":{}}"#,
    )
    .unwrap();
    assert_eq!(
        keys(interface(HEADER, "DeadLetter")),
        json_keys(serde_json::to_value(item).unwrap()),
        "DeadLetter in header.d.ts vs store::dead_letters::DeadLetterItem"
    );
}

#[test]
fn index_d_ts_declares_every_method_of_the_class() {
    // The class's methods live in class.rs and, for ordered retries, ordered.rs.
    let class = concat!(include_str!("class.rs"), include_str!("ordered.rs"));
    let start = INDEX
        .find("export declare class KafkaRetry")
        .expect("index.d.ts declares the class");
    let declared = &INDEX[start..];
    let declared = &declared[..declared.find("\n}").expect("end of the class")];
    let mut methods = 0;
    for (at, _) in class.match_indices("    pub fn ") {
        let name: String = class[at + 11..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if name == "new" {
            assert!(declared.contains("constructor("), "constructor missing");
            continue;
        }
        let mut camel = String::new();
        let mut upper = false;
        for c in name.chars() {
            if c == '_' {
                upper = true;
            } else if upper {
                camel.push(c.to_ascii_uppercase());
                upper = false;
            } else {
                camel.push(c);
            }
        }
        assert!(
            declared.contains(&format!(" {camel}(")) || declared.contains(&format!(" {camel}<")),
            "index.d.ts lacks KafkaRetry.{camel}: run `npm run build` and commit index.d.ts"
        );
        methods += 1;
    }
    assert!(methods >= 10, "found only {methods} methods in class.rs");
}
