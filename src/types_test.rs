//! Holds the TypeScript types to the Rust code. The hand-written ones (`header.d.ts`, copied into
//! `index.d.ts` by `napi build`): every config key the binding reads is declared and every
//! declared key is read (and so for `DeadLetterFilter` and `DeadLetterQuery`), each documented
//! default is the one `config.rs` applies, and `ErrorCode` is every code of the engine. The generated ones (the class, and the results and events of
//! `results.rs`): the committed `index.d.ts` declares them, with the keys of the JSON they
//! replaced, and the events `onEvent` receives have the declared keys. CI checks that the
//! committed `index.d.ts` is what the build generates.

use engine::config::ConfigInput;
use engine::message::options::{DEFAULT_DELAY, DEFAULT_MAX_RETRY, DEFAULT_RETRY_COUNT};
use engine::observe::events::Event;
use engine::observe::stats::Stats;
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
        .unwrap_or_else(|| panic!("no interface {name} is declared"));
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
fn the_keys_the_constructor_accepts_are_the_declared_keys() {
    use crate::args::{BACKOFF_KEYS, CONFIG_KEYS, SENTINEL_KEYS, SENTINEL_NODE_KEYS, TLS_KEYS};
    let set = |keys: &[&str]| keys.iter().map(|k| k.to_string()).collect::<BTreeSet<_>>();
    // An unknown key is refused: a key declared but missing here would refuse a valid config.
    assert_eq!(
        set(CONFIG_KEYS),
        keys(interface(HEADER, "KafkaRetryConfig"))
    );
    assert_eq!(set(TLS_KEYS), keys(interface(HEADER, "RedisTlsOptions")));
    assert_eq!(
        set(SENTINEL_KEYS),
        keys(interface(HEADER, "RedisSentinelOptions"))
    );
    let sentinels = interface(HEADER, "RedisSentinelOptions");
    assert!(sentinels.contains("sentinels: { host: string; port?: number }[]"));
    assert_eq!(set(SENTINEL_NODE_KEYS), set(&["host", "port"]));
    let backoff = HEADER
        .split("export type BackoffPolicy =")
        .nth(1)
        .expect("BackoffPolicy is declared");
    let backoff = &backoff[..backoff.find("\n\n").expect("its end")];
    let declared: BTreeSet<String> = backoff
        .split(['{', ';', ','])
        .filter_map(|part| part.trim().split(['?', ':']).next())
        .map(|k| k.trim().to_string())
        .filter(|k| !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric()))
        .collect();
    assert_eq!(set(BACKOFF_KEYS), declared);
    assert_eq!(
        set(engine::config::BREAKER_KEYS),
        keys(interface(HEADER, "BreakerOptions"))
    );
}

/// The keys a function of args.rs reads with `optional_*(<object>, "<key>", ...)`.
fn keys_read_by(function: &str) -> BTreeSet<String> {
    let args = READERS[0];
    let start = args
        .find(&format!("pub fn {function}("))
        .unwrap_or_else(|| panic!("args.rs has no {function}"));
    let body = &args[start..];
    let body = &body[..body.find("\n}\n").expect("end of the function")];
    let mut keys = BTreeSet::new();
    for (at, _) in body.match_indices("optional_") {
        let call = &body[at..];
        let Some(open) = call.find(", \"") else {
            continue;
        };
        let key: String = call[open + 3..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect();
        if !key.is_empty() && call[..open].chars().all(|c| c != '\n') {
            keys.insert(key);
        }
    }
    keys
}

#[test]
fn dead_letter_filter_and_query_declare_the_keys_args_reads() {
    assert_eq!(
        keys(interface(HEADER, "DeadLetterFilter")),
        keys_read_by("filter_input"),
        "DeadLetterFilter in header.d.ts vs args.rs filter_input"
    );
    assert_eq!(
        keys(interface(
            HEADER,
            "DeadLetterQuery extends DeadLetterFilter"
        )),
        keys_read_by("parse_page"),
        "DeadLetterQuery in header.d.ts (besides the filter) vs args.rs parse_page"
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
        ("maxReplays", config.max_replays.to_string()),
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

/// The keys of the generated interface `name` in `index.d.ts`.
fn generated(name: &str) -> BTreeSet<String> {
    keys(interface(INDEX, name))
}

#[test]
fn results_are_generated_with_the_keys_of_the_json_they_replaced() {
    // The result types come from `results.rs` (`#[napi(object)]`), not from header.d.ts.
    for name in [
        "RetryStats",
        "RetryTopicStats",
        "RetryHistorySeries",
        "RetryHistory",
        "OperatorJob",
        "DeadLetter",
        "DeadLetterError",
        "DeadLetterPage",
        "RetryPause",
    ] {
        assert!(
            !HEADER.contains(&format!("export interface {name} ")),
            "{name} is generated from results.rs: remove it from header.d.ts"
        );
        assert!(
            INDEX.contains(&format!("export interface {name} {{")),
            "index.d.ts lacks the generated {name}: run `npm run build` and commit index.d.ts"
        );
    }
    // Until 0.3 the engine's types went out as their JSON: the generated objects have exactly
    // those keys, so nothing a caller reads moved.
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
        generated("RetryStats"),
        json_keys(serde_json::to_value(stats).unwrap()),
        "RetryStats vs stats::Stats"
    );
    assert_eq!(
        generated("RetryTopicStats"),
        // With a breaker state: the key is left out when the topic has none.
        json_keys(
            serde_json::to_value(engine::store::tally::TopicCounts {
                breaker: Some(engine::store::breaker::BreakerState::Closed),
                ..Default::default()
            })
            .unwrap()
        ),
        "RetryTopicStats vs store::tally::TopicCounts"
    );
    assert_eq!(
        generated("RetryHistorySeries"),
        json_keys(serde_json::to_value(engine::store::tally::Series::default()).unwrap()),
        "RetryHistorySeries vs store::tally::Series"
    );
    assert_eq!(
        generated("RetryHistory"),
        json_keys(serde_json::to_value(engine::store::tally::History::empty(0, 1)).unwrap()),
        "RetryHistory vs store::tally::History"
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
        generated("OperatorJob"),
        json_keys(serde_json::to_value(job).unwrap()),
        "OperatorJob vs store::jobs::Job"
    );
    let item = DeadLetterItem::parse(
        "id",
        r#"{"topic":"t","event":"e","value":"1","options":{},"error":{"message":"m","name":"n"}}"#,
    )
    .unwrap();
    assert_eq!(
        generated("DeadLetterError"),
        json_keys(serde_json::to_value(item.error.clone()).unwrap()),
        "DeadLetterError vs store::entry::ErrorInfo"
    );
    let page = engine::store::dead_letters::search::SearchPage {
        items: vec![item.clone()],
        cursor: None,
        scanned: 1,
    };
    assert_eq!(
        generated("DeadLetterPage"),
        json_keys(serde_json::to_value(page).unwrap()),
        "DeadLetterPage vs store::dead_letter_search::SearchPage"
    );
    assert_eq!(
        generated("DeadLetter"),
        json_keys(serde_json::to_value(item).unwrap()),
        "DeadLetter vs store::dead_letters::DeadLetterItem"
    );
    let pause = engine::store::gate::Pause {
        topic: None,
        until_ms: None,
    };
    assert_eq!(
        generated("RetryPause"),
        json_keys(serde_json::to_value(pause).unwrap()),
        "RetryPause vs store::gate::Pause"
    );
}

/// The keys of each member of the generated `RetryEvent` union, by its `type`.
fn event_members() -> Vec<(String, BTreeSet<String>)> {
    let start = INDEX
        .find("export type RetryEvent =")
        .expect("index.d.ts declares RetryEvent");
    let body = &INDEX[start..];
    let body = &body[body.find('=').unwrap() + 1..body.find("\n\n").unwrap_or(body.len())];
    // Drop the TSDoc of the fields (`/** ... */`), then read each `| { type: '...'; ... }`.
    let mut plain = String::new();
    let mut rest = body;
    while let Some(at) = rest.find("/**") {
        plain.push_str(&rest[..at]);
        rest = &rest[at..][rest[at..].find("*/").expect("end of a doc comment") + 2..];
    }
    plain.push_str(rest);
    plain
        .split("| {")
        .map(|member| member.trim().trim_end_matches('}'))
        .filter(|member| !member.is_empty())
        .map(|member| {
            let mut kind = String::new();
            let mut keys = BTreeSet::new();
            for field in member.split(';') {
                let Some((name, ty)) = field.split_once(':') else {
                    continue;
                };
                let name = name.trim().trim_end_matches('?').to_string();
                if name == "type" {
                    kind = ty.trim().trim_matches('\'').to_string();
                }
                keys.insert(name);
            }
            (kind, keys)
        })
        .collect()
}

#[test]
fn events_have_the_generated_keys() {
    let events = [
        Event::Retry {
            id: "1".into(),
            topic: "t".into(),
            event: "e".into(),
            retry_count: 1,
            late_ms: 2,
        },
        Event::DeadLetter {
            id: "1".into(),
            topic: "t".into(),
            event: "e".into(),
            dlq_name: "d".into(),
        },
        Event::DeadLetterCap {
            dlq_name: "d".into(),
            count: 2,
            max: 1,
        },
        Event::BreakerOpen {
            topic: "t".into(),
            failures: 20,
            attempts: 21,
        },
        Event::BreakerClose {
            topic: "t".into(),
            open_ms: 5,
            held: 3,
            by_hand: false,
        },
        Event::from_error(&engine::error::RetryError::closed()),
    ];
    let declared = event_members();
    assert_eq!(
        declared.len(),
        events.len(),
        "RetryEvent members: {declared:?}"
    );
    for event in &events {
        let json = crate::observer::event_json(event);
        let kind = json["type"].as_str().expect("a type").to_string();
        let (_, keys) = declared
            .iter()
            .find(|(k, _)| *k == kind)
            .unwrap_or_else(|| panic!("index.d.ts RetryEvent has no member of type {kind:?}"));
        assert_eq!(
            &json_keys(json),
            keys,
            "the {kind} event onEvent receives vs RetryEvent in index.d.ts"
        );
    }
    // Numbers stay numbers.
    let json = crate::observer::event_json(&events[0]);
    assert_eq!(json["retryCount"].as_f64(), Some(1.0));
    assert_eq!(json["lateMs"].as_f64(), Some(2.0));
}

/// Every code of the engine's `ErrorCode`, as JavaScript sees it. The match is exhaustive: a
/// code added to the engine fails to compile here until it is listed (in the match and the
/// array), and then `ErrorCode` in header.d.ts must name it.
fn engine_codes() -> BTreeSet<String> {
    use engine::error::ErrorCode::{self, *};
    let listed = |code: ErrorCode| match code {
        InvalidArg | RedisUnavailable | KafkaPublish | Closed | Internal => code,
    };
    [InvalidArg, RedisUnavailable, KafkaPublish, Closed, Internal]
        .map(listed)
        .iter()
        .map(|code| code.as_ref().to_string())
        .collect()
}

#[test]
fn error_code_union_is_every_engine_code() {
    let start = HEADER
        .find("export type ErrorCode =")
        .expect("header.d.ts declares ErrorCode");
    let body = &HEADER[start..];
    let body = &body[..body.find("\n\n").expect("end of ErrorCode")];
    let declared: BTreeSet<String> = body
        .lines()
        .filter_map(|line| line.trim().strip_prefix("| '"))
        .map(|code| code.trim_end_matches('\'').to_string())
        .collect();
    assert_eq!(
        declared,
        engine_codes(),
        "ErrorCode in header.d.ts vs engine::error::ErrorCode"
    );
    // The error type carries the code, and the counts `RetryError::after` sets.
    let error = keys(interface(HEADER, "KafkaRetryError extends Error"));
    assert!(error.contains("code") && error.contains("requeued") && error.contains("removed"));
    assert!(
        interface(HEADER, "KafkaRetryError extends Error").contains("code: ErrorCode"),
        "KafkaRetryError.code is an ErrorCode"
    );
}

#[test]
fn index_d_ts_declares_every_method_of_the_class() {
    // The class's methods live in class.rs, ordered.rs (ordered retries) and jobs.rs.
    let class = concat!(
        include_str!("class.rs"),
        include_str!("ordered.rs"),
        include_str!("jobs.rs")
    );
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
        // An internal method (`pushPacked`, which lib/kafka-retry.js calls) is not declared.
        let attribute = &class[class[..at].rfind("#[napi").unwrap_or(0)..at];
        if attribute.contains("skip_typescript") {
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
