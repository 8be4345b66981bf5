//! Failure reasons: a dead letter's error with its variable parts masked, so that ten thousand
//! "timed out after 5012 ms" and "timed out after 4990 ms" are one reason, and the reasons of a
//! dead letter queue counted.
//!
//! [`mask`] is pure: numbers become `<n>`, hex ids and long mixed ids `<id>`, UUIDs `<uuid>`,
//! IP and `host:port` addresses and URLs `<addr>`, e-mail addresses `<email>`, quoted values
//! `'…'`. It is idempotent (a masked reason masks to itself), so a reason given back as a filter
//! is masked again and still matches. [`reasons`] reads at most [`REASONS_BUDGET`] dead letters,
//! newest first, and says how many it read and whether the queue holds more.

use super::search::Filter;
use super::{DeadLetterItem, DeadLetters, Page};
use crate::error::Result;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// Dead letters one `deadLetterReasons` call reads at most (the newest); beyond, the result says
/// `truncated`.
pub const REASONS_BUDGET: usize = 10_000;
/// Records read per round trip.
const CHUNK: usize = 500;
/// The reason of a dead letter that records no error.
pub const NO_ERROR: &str = "(no error recorded)";
/// Longest reason kept, in characters: a longer masked text is cut there (with `…`).
pub const MAX_REASON_CHARS: usize = 300;
/// Longest quoted value masked as one (a quote opened without a close within this is left).
const MAX_QUOTED_CHARS: usize = 200;

/// One reason and the dead letters it covers.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Reason {
    /// The masked error: `Name: message`.
    pub reason: String,
    /// Dead letters read with this reason.
    pub count: u64,
    /// Of them, per topic.
    pub topics: BTreeMap<String, u64>,
    /// One full error text of the reason (the newest).
    pub example: String,
    /// The newest time of death among them (ms since the epoch).
    pub last_at: u64,
}

/// The reasons of a dead letter queue.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reasons {
    /// Largest count first (ties: newest first, then by text).
    pub reasons: Vec<Reason>,
    /// Dead letters read (at most [`REASONS_BUDGET`]).
    pub scanned: u64,
    /// Dead letters the queue holds.
    pub total: u64,
    /// Whether the queue held more than was read (the counts are of the newest `scanned`).
    pub truncated: bool,
}

/// The full error text of a dead letter, `Name: message` (just the one present when the other is
/// empty), or `None` when it records none.
pub fn error_text(item: &DeadLetterItem) -> Option<String> {
    let error = item.error.as_ref()?;
    Some(match (error.name.is_empty(), error.message.is_empty()) {
        (true, true) => return None,
        (false, false) => format!("{}: {}", error.name, error.message),
        (false, true) => error.name.clone(),
        (true, false) => error.message.clone(),
    })
}

/// The reason of a dead letter: its error text masked, or [`NO_ERROR`].
pub fn reason_of(item: &DeadLetterItem) -> String {
    error_text(item).map_or_else(|| NO_ERROR.to_string(), |text| mask(&text))
}

/// `text` with its variable parts masked (see the module), whitespace runs made one space, cut
/// at [`MAX_REASON_CHARS`].
pub fn mask(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            if !out.ends_with(' ') && !out.is_empty() {
                out.push(' ');
            }
            i += 1;
            continue;
        }
        if let Some(end) = quoted_end(&chars, i) {
            out.push_str("'…'");
            i = end + 1;
            continue;
        }
        if is_delimiter(c) {
            out.push(c);
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && !chars[i].is_whitespace() && !is_delimiter(chars[i]) {
            i += 1;
        }
        let token: String = chars[start..i].iter().collect();
        // Sentence punctuation after a token is not part of it ("at 10.0.0.1:6379.").
        let trimmed = token.trim_end_matches(['.', ',', ':', ';', '!', '?']);
        out.push_str(&mask_token(trimmed));
        out.push_str(&token[trimmed.len()..]);
    }
    let out = out.trim_end().to_string();
    if out.chars().count() > MAX_REASON_CHARS {
        let mut cut: String = out.chars().take(MAX_REASON_CHARS).collect();
        cut.push('…');
        return cut;
    }
    out
}

/// Characters that end a token and are kept as they are.
fn is_delimiter(c: char) -> bool {
    matches!(
        c,
        '(' | ')' | '{' | '}' | '<' | '>' | ',' | ';' | '=' | '"' | '\'' | '`' | '|'
    )
}

/// Where the quoted value opening at `start` closes: a quote char not inside a word (so `can't`
/// is no quote), closed by the same char within [`MAX_QUOTED_CHARS`] and not followed by a
/// letter or digit.
fn quoted_end(chars: &[char], start: usize) -> Option<usize> {
    let quote = chars[start];
    if !matches!(quote, '\'' | '"' | '`' | '‘' | '“') {
        return None;
    }
    if start > 0 && chars[start - 1].is_alphanumeric() {
        return None;
    }
    let close = match quote {
        '‘' => '’',
        '“' => '”',
        q => q,
    };
    let end = chars
        .iter()
        .enumerate()
        .skip(start + 1)
        .take(MAX_QUOTED_CHARS)
        .find(|(_, c)| **c == close)
        .map(|(i, _)| i)?;
    if chars.get(end + 1).is_some_and(|c| c.is_alphanumeric()) {
        return None;
    }
    Some(end)
}

/// One whitespace-free token masked: whole when it is an address or e-mail, else part by part.
fn mask_token(token: &str) -> String {
    if token.is_empty() {
        return String::new();
    }
    if is_email(token) {
        return "<email>".into();
    }
    if is_address(token) {
        return "<addr>".into();
    }
    mask_parts(token)
}

/// `local@domain.tld`.
fn is_email(token: &str) -> bool {
    let Some((local, domain)) = token.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && domain
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
}

/// A URL, an IPv4 address (with a port or not), a bracketed IPv6 address, a bare IPv6 address,
/// or `host:port`.
fn is_address(token: &str) -> bool {
    if let Some((scheme, rest)) = token.split_once("://") {
        return !scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '+')
            && !rest.is_empty();
    }
    if let Some(rest) = token.strip_prefix('[') {
        if let Some((ip, port)) = rest.split_once(']') {
            return ip.contains(':')
                && (port.is_empty() || port.strip_prefix(':').is_some_and(is_port));
        }
    }
    if is_ipv6(token) {
        return true;
    }
    let (host, port) = match token.rsplit_once(':') {
        Some((host, port)) if is_port(port) => (host, Some(port)),
        _ => (token, None),
    };
    if is_ipv4(host) {
        return true;
    }
    // host:port: a dotted host name with a letter, or localhost (`order:42` is a key, no address).
    port.is_some()
        && (host == "localhost"
            || (host.contains('.') && host.chars().any(|c| c.is_ascii_alphabetic())))
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
}

fn is_port(text: &str) -> bool {
    !text.is_empty() && text.len() <= 5 && text.chars().all(|c| c.is_ascii_digit())
}

fn is_ipv4(text: &str) -> bool {
    let parts: Vec<&str> = text.split('.').collect();
    parts.len() == 4
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 3 && p.chars().all(|c| c.is_ascii_digit()))
}

/// Hex groups with `::` or seven colons, as `fe80::1` or `2001:db8:0:0:0:0:0:1` (a time such as
/// `12:30:45` is no address).
fn is_ipv6(text: &str) -> bool {
    (text.contains("::") || text.matches(':').count() == 7)
        && text.chars().all(|c| c.is_ascii_hexdigit() || c == ':')
        && text.chars().any(|c| c.is_ascii_hexdigit())
}

/// A token that is no address: UUIDs inside it become `<uuid>`, then each run of letters and
/// digits is masked ([`mask_word`]), the characters between kept; `<n>.<n>` (a decimal) is one
/// `<n>`.
fn mask_parts(token: &str) -> String {
    let chars: Vec<char> = token.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        if is_uuid_at(&chars, i) {
            out.push_str("<uuid>");
            i += 36;
            continue;
        }
        if chars[i].is_alphanumeric() {
            let start = i;
            while i < chars.len() && chars[i].is_alphanumeric() && !is_uuid_at(&chars, i) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            out.push_str(&mask_word(&word));
            continue;
        }
        out.push(chars[i]);
        i += 1;
    }
    while let Some(at) = out.find("<n>.<n>") {
        out.replace_range(at..at + "<n>.<n>".len(), "<n>");
    }
    out
}

/// 8-4-4-4-12 hex digits at `at`, not inside a longer hex run.
fn is_uuid_at(chars: &[char], at: usize) -> bool {
    const GROUPS: [usize; 5] = [8, 4, 4, 4, 12];
    if at > 0 && chars[at - 1].is_ascii_hexdigit() {
        return false;
    }
    let mut i = at;
    for (n, len) in GROUPS.iter().enumerate() {
        if n > 0 {
            if chars.get(i) != Some(&'-') {
                return false;
            }
            i += 1;
        }
        for _ in 0..*len {
            if !chars.get(i).is_some_and(|c| c.is_ascii_hexdigit()) {
                return false;
            }
            i += 1;
        }
    }
    !chars.get(i).is_some_and(|c| c.is_ascii_hexdigit())
}

/// One run of letters and digits: an id (`0x` hex; 8 or more hex digits with a letter and a
/// digit; 16 or more letters and digits with both) is `<id>`, else each run of digits is `<n>`.
fn mask_word(word: &str) -> String {
    let has_digit = word.chars().any(|c| c.is_ascii_digit());
    if !has_digit {
        return word.to_string();
    }
    let has_letter = word.chars().any(|c| c.is_alphabetic());
    let hex = word.strip_prefix("0x").or_else(|| word.strip_prefix("0X"));
    if hex.is_some_and(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_hexdigit())) {
        return "<id>".into();
    }
    if has_letter
        && ((word.len() >= 8 && word.chars().all(|c| c.is_ascii_hexdigit()))
            || (word.chars().count() >= 16 && word.chars().all(|c| c.is_ascii_alphanumeric())))
    {
        return "<id>".into();
    }
    let mut out = String::new();
    let mut in_number = false;
    for c in word.chars() {
        if c.is_ascii_digit() {
            if !in_number {
                out.push_str("<n>");
                in_number = true;
            }
        } else {
            in_number = false;
            out.push(c);
        }
    }
    out
}

/// Adds one dead letter to the counts.
#[derive(Default)]
struct Tally {
    by_reason: HashMap<String, Reason>,
}

impl Tally {
    fn add(&mut self, item: &DeadLetterItem) {
        let reason = reason_of(item);
        let entry = self
            .by_reason
            .entry(reason.clone())
            .or_insert_with(|| Reason {
                reason,
                count: 0,
                topics: BTreeMap::new(),
                example: error_text(item).unwrap_or_default(),
                last_at: item.died_at,
            });
        entry.count += 1;
        *entry.topics.entry(item.topic.clone()).or_default() += 1;
        if item.died_at > entry.last_at {
            entry.last_at = item.died_at;
            entry.example = error_text(item).unwrap_or_default();
        }
    }

    fn sorted(self) -> Vec<Reason> {
        let mut reasons: Vec<Reason> = self.by_reason.into_values().collect();
        reasons.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then(b.last_at.cmp(&a.last_at))
                .then(a.reason.cmp(&b.reason))
        });
        reasons
    }
}

/// The reasons of the newest (at most [`REASONS_BUDGET`]) dead letters of `dlq` that `filter`
/// matches.
pub async fn reasons(store: &DeadLetters, dlq: &str, filter: &Filter) -> Result<Reasons> {
    let mut tally = Tally::default();
    let mut scanned = 0usize;
    let mut cursor: Option<String> = None;
    loop {
        let chunk = CHUNK.min(REASONS_BUDGET - scanned);
        let Page {
            items,
            cursor: next,
        } = store.list(dlq, chunk, cursor.as_deref()).await?;
        scanned += items.len();
        for item in items.iter().filter(|item| filter.matches(item)) {
            tally.add(item);
        }
        cursor = next;
        if cursor.is_none() || scanned >= REASONS_BUDGET {
            break;
        }
    }
    let total = store.count(dlq).await?.max(scanned as u64);
    Ok(Reasons {
        reasons: tally.sorted(),
        scanned: scanned as u64,
        total,
        truncated: cursor.is_some() && scanned as u64 != total,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_become_n() {
        assert_eq!(
            mask("Request timed out after 5012 ms (attempt 3 of 5)"),
            "Request timed out after <n> ms (attempt <n> of <n>)"
        );
        assert_eq!(mask("took 1.25s, limit 500ms"), "took <n>s, limit <n>ms");
        assert_eq!(
            mask("HTTP 503 Service Unavailable"),
            "HTTP <n> Service Unavailable"
        );
        assert_eq!(mask("order-42 failed"), "order-<n> failed");
        assert_eq!(mask("balance -17.5"), "balance -<n>");
    }

    #[test]
    fn ids_uuids_addresses_emails_and_quotes_are_masked() {
        assert_eq!(mask("order 5f3a9c2e81b4 not found"), "order <id> not found");
        assert_eq!(mask("pointer 0x7ffd1a"), "pointer <id>");
        assert_eq!(
            mask("token aB3dE5fG7hJ9kL1mN2 expired"),
            "token <id> expired"
        );
        assert_eq!(
            mask("user 3f2504e0-4f89-11d3-9a0c-0305e82c3301 locked"),
            "user <uuid> locked"
        );
        assert_eq!(
            mask("key order:3F2504E0-4F89-11D3-9A0C-0305E82C3301/lines"),
            "key order:<uuid>/lines"
        );
        assert_eq!(
            mask("connect ECONNREFUSED 10.0.3.17:5432"),
            "connect ECONNREFUSED <addr>"
        );
        assert_eq!(mask("no route to 192.168.1.1."), "no route to <addr>.");
        assert_eq!(mask("ETIMEDOUT [::1]:6379"), "ETIMEDOUT <addr>");
        assert_eq!(
            mask("host fe80::1ff:fe23:4567:890a down"),
            "host <addr> down"
        );
        assert_eq!(
            mask("getaddrinfo ENOTFOUND payments.internal:8443"),
            "getaddrinfo ENOTFOUND <addr>"
        );
        assert_eq!(
            mask("POST https://api.example.com/v1/orders/77 failed"),
            "POST <addr> failed"
        );
        assert_eq!(
            mask("no account for jane.doe+x@example.co.uk"),
            "no account for <email>"
        );
        assert_eq!(
            mask("field 'email' must match \"^[a-z]+$\", got `x 1`"),
            "field '…' must match '…', got '…'"
        );
        assert_eq!(mask("can't parse it"), "can't parse it");
        assert_eq!(mask("an 'unclosed quote"), "an 'unclosed quote");
        // A word with a colon but no port is no address.
        assert_eq!(
            mask("ValidationError: sku missing"),
            "ValidationError: sku missing"
        );
        assert_eq!(
            mask("key order:42 at 12:30:45"),
            "key order:<n> at <n>:<n>:<n>"
        );
        assert_eq!(mask("localhost:9092 down"), "<addr> down");
    }

    #[test]
    fn the_same_failure_with_other_values_is_one_reason() {
        let a = mask("Timeout of 5000ms exceeded calling 10.1.2.3:8080 for order 'A-17' (id 9f86d081884c7d65)");
        let b = mask("Timeout of 30000ms exceeded calling 10.9.9.9:80 for order 'B-2000' (id 2c26b46b68ffc68f)");
        assert_eq!(a, b);
        assert_eq!(
            a,
            "Timeout of <n>ms exceeded calling <addr> for order '…' (id <id>)"
        );
    }

    #[test]
    fn masking_is_idempotent_so_a_reason_filters_as_itself() {
        for text in [
            "Request timed out after 5012 ms",
            "user 3f2504e0-4f89-11d3-9a0c-0305e82c3301 at 10.0.0.1:1 said 'no' to a@b.io",
            "pointer 0x7ffd1a order 5f3a9c2e81b4",
            "  spaced\tout \n text  ",
            "",
        ] {
            let once = mask(text);
            assert_eq!(mask(&once), once, "{text:?}");
        }
    }

    #[test]
    fn whitespace_is_one_space_and_long_reasons_are_cut() {
        assert_eq!(mask("  a \t b\n\nc  "), "a b c");
        let long = "word ".repeat(200);
        let masked = mask(&long);
        assert_eq!(masked.chars().count(), MAX_REASON_CHARS + 1);
        assert!(masked.ends_with('…'));
        // Multibyte text is cut on a character boundary.
        assert!(mask(&"é".repeat(1000)).ends_with('…'));
    }

    fn item(topic: &str, name: &str, message: &str, died_at: u64) -> DeadLetterItem {
        let text = serde_json::json!({
            "topic": topic, "event": "k", "value": {}, "options": {}, "diedAt": died_at,
            "error": { "name": name, "message": message },
        })
        .to_string();
        DeadLetterItem::parse("id", &text).unwrap()
    }

    #[test]
    fn the_reason_holds_the_name_and_the_masked_message() {
        assert_eq!(
            reason_of(&item("t", "TimeoutError", "after 30 s", 1)),
            "TimeoutError: after <n> s"
        );
        assert_eq!(reason_of(&item("t", "", "after 30 s", 1)), "after <n> s");
        assert_eq!(reason_of(&item("t", "Error", "", 1)), "Error");
        assert_eq!(reason_of(&item("t", "", "", 1)), NO_ERROR);
        let none = DeadLetterItem::parse("id", r#"{"topic":"t","value":1}"#).unwrap();
        assert_eq!(reason_of(&none), NO_ERROR);
    }

    #[test]
    fn reasons_are_counted_per_topic_largest_first_with_the_newest_example() {
        let mut tally = Tally::default();
        tally.add(&item("orders", "TimeoutError", "after 30 s", 5));
        tally.add(&item("payments", "TimeoutError", "after 31 s", 9));
        tally.add(&item("orders", "TimeoutError", "after 12 s", 7));
        tally.add(&item("orders", "ValidationError", "sku 'x' unknown", 20));
        let reasons = tally.sorted();
        assert_eq!(reasons.len(), 2);
        assert_eq!(reasons[0].reason, "TimeoutError: after <n> s");
        assert_eq!(reasons[0].count, 3);
        assert_eq!(reasons[0].topics.get("orders"), Some(&2));
        assert_eq!(reasons[0].topics.get("payments"), Some(&1));
        assert_eq!(reasons[0].last_at, 9);
        assert_eq!(reasons[0].example, "TimeoutError: after 31 s");
        assert_eq!(reasons[1].reason, "ValidationError: sku '…' unknown");
    }
}
