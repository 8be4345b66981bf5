//! Every Lua script of the store and the libraries they include, in one table, and the one
//! resolver that puts a script together.
//!
//! Scripts live under `crates/engine/lua/` by concept (`schedule/`, `dead_letters/`, `gates/`,
//! `ordered/`, `jobs/`, `audit/`), libraries under `lua/lib/`. A script names what it needs in its own text,
//! one line per library: `--- @include "lib/tally"` (as BullMQ's scripts do). [`resolve`] replaces
//! such a line with the library's text, after the libraries that one includes, each library once
//! per script even when several include lines name it. Redis runs the resolved text: one script,
//! as before, so the stored format and the keys a script touches do not depend on how its text is
//! split into files.
//!
//! The store's modules take their scripts by name with [`load`]; a name missing here fails the
//! unit test that resolves every script, not a call at run time.

use redis::Script;
use std::collections::HashSet;

/// A library or script: its name (path under `crates/engine/lua/` without `.lua`) and its text.
type Source = (&'static str, &'static str);

/// Expands to the name and text of `lua/<name>.lua`.
macro_rules! lua {
    ($name:literal) => {
        ($name, include_str!(concat!("../../lua/", $name, ".lua")))
    };
}

/// The libraries: functions only, no keys of their own (the caller passes them).
pub const LIBRARIES: &[Source] = &[
    lua!("lib/base36"),
    lua!("lib/breaker"),
    lua!("lib/clock"),
    lua!("lib/counts"),
    lua!("lib/gate"),
    lua!("lib/ordered"),
    lua!("lib/seen"),
    lua!("lib/tally"),
];

/// Every script Redis runs, by concept.
pub const SCRIPTS: &[Source] = &[
    lua!("schedule/push"),
    lua!("schedule/claim"),
    lua!("schedule/ack"),
    lua!("schedule/release"),
    lua!("schedule/renew"),
    lua!("schedule/count"),
    lua!("schedule/record_shards"),
    lua!("schedule/drop_bucket"),
    lua!("dead_letters/count_topic"),
    lua!("dead_letters/take"),
    lua!("dead_letters/requeue"),
    lua!("gates/pause"),
    lua!("gates/resume"),
    lua!("gates/paused"),
    lua!("breaker/reset"),
    lua!("ordered/turn"),
    lua!("ordered/park"),
    lua!("ordered/done"),
    lua!("ordered/count"),
    lua!("jobs/start"),
    lua!("jobs/beat"),
    lua!("jobs/stop"),
    lua!("jobs/continue"),
    lua!("jobs/read"),
    lua!("audit/record"),
    lua!("audit/read"),
];

/// What an include line starts with; the library's name follows in double quotes.
const INCLUDE: &str = "--- @include ";

/// The library an include line names, or `None` for any other line. `Err` for an include line
/// whose name is not in double quotes.
pub fn included(line: &str) -> Result<Option<&str>, String> {
    let Some(rest) = line.trim_end().strip_prefix(INCLUDE) else {
        return Ok(None);
    };
    rest.strip_prefix('"')
        .and_then(|name| name.strip_suffix('"'))
        .filter(|name| !name.is_empty())
        .map(Some)
        .ok_or_else(|| format!("malformed include line {line:?}"))
}

/// A script (by its name in [`SCRIPTS`]) put together: its text with every include line replaced
/// by the library's text, libraries first included first, each once. Also the libraries it holds,
/// in the order they appear. `Err` names an unknown script or library, or an include cycle.
pub fn resolve(name: &str) -> Result<(String, Vec<&'static str>), String> {
    let text = find(SCRIPTS, name).ok_or_else(|| format!("no script {name:?}"))?;
    let mut out = String::with_capacity(text.len() * 2);
    let mut done = Vec::new();
    expand(name, text, &mut out, &mut done, &mut HashSet::new())?;
    Ok((out, done))
}

/// The text of `name` in `sources`.
fn find(sources: &[Source], name: &str) -> Option<&'static str> {
    sources
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, text)| *text)
}

/// Appends `text` (of `name`) to `out`, each include line replaced by its library unless `done`
/// holds it already; `open` holds the libraries being expanded, to refuse a cycle.
fn expand(
    name: &str,
    text: &str,
    out: &mut String,
    done: &mut Vec<&'static str>,
    open: &mut HashSet<String>,
) -> Result<(), String> {
    for line in text.split_inclusive('\n') {
        let Some(library) = included(line).map_err(|e| format!("{name}: {e}"))? else {
            out.push_str(line);
            continue;
        };
        let (library, body) = LIBRARIES
            .iter()
            .find(|(n, _)| *n == library)
            .copied()
            .ok_or_else(|| format!("{name} includes {library:?}, which is not a library"))?;
        if done.contains(&library) {
            continue;
        }
        if !open.insert(library.to_string()) {
            return Err(format!("{name} includes {library:?} inside itself"));
        }
        expand(library, body, out, done, open)?;
        open.remove(library);
        done.push(library);
        if !out.ends_with('\n') {
            out.push('\n');
        }
    }
    Ok(())
}

/// The script `name` resolved, ready to run (kept by the caller in a `LazyLock`, so it is put
/// together once per process).
///
/// # Panics
/// When `name` does not resolve, which the unit test `every_script_resolves` rules out.
pub fn load(name: &str) -> Script {
    match resolve(name) {
        Ok((text, _)) => Script::new(&text),
        Err(e) => panic!("Lua script {name}: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The opening comment lines of `text` (up to its first line that is not a comment).
    fn header(text: &str) -> Vec<&str> {
        text.lines().take_while(|l| l.starts_with("--")).collect()
    }

    #[test]
    fn every_script_resolves_with_each_library_once() {
        for (name, _) in SCRIPTS {
            let (text, libraries) = resolve(name).unwrap();
            let unique: HashSet<_> = libraries.iter().collect();
            assert_eq!(unique.len(), libraries.len(), "{name}: {libraries:?}");
            assert!(!text.contains(INCLUDE), "{name} still has an include line");
            for library in &libraries {
                let body = find(LIBRARIES, library).unwrap();
                let first = body.lines().next().unwrap();
                assert_eq!(text.matches(first).count(), 1, "{name}: {library} twice");
            }
        }
    }

    #[test]
    fn every_include_names_a_library_once_per_file() {
        for (name, text) in SCRIPTS.iter().chain(LIBRARIES) {
            let mut seen = HashSet::new();
            for line in text.lines() {
                if let Some(library) = included(line).unwrap() {
                    assert!(find(LIBRARIES, library).is_some(), "{name}: {library}");
                    assert!(seen.insert(library), "{name} names {library} twice");
                }
            }
        }
    }

    #[test]
    fn every_library_is_included_somewhere() {
        for (library, _) in LIBRARIES {
            assert!(
                SCRIPTS
                    .iter()
                    .any(|(name, _)| resolve(name).unwrap().1.contains(library)),
                "{library} is included by no script"
            );
        }
    }

    #[test]
    fn every_script_opens_with_its_keys_arguments_and_reply() {
        for (name, text) in SCRIPTS {
            let header = header(text);
            for part in ["-- KEYS", "-- ARGV", "-- Returns"] {
                assert!(
                    header.iter().any(|l| l.starts_with(part)),
                    "{name}: no {part:?} line in its opening comment"
                );
            }
        }
        for (name, text) in LIBRARIES {
            assert!(!header(text).is_empty(), "{name} opens with no comment");
        }
    }

    #[test]
    fn only_the_clock_reads_redis_time() {
        for (name, text) in SCRIPTS.iter().chain(LIBRARIES) {
            let reads = text.contains("redis.call('TIME')");
            assert_eq!(reads, *name == "lib/clock", "{name}");
        }
    }

    #[test]
    fn libraries_read_no_keys_or_arguments_of_their_host() {
        for (name, text) in LIBRARIES {
            let code = text.lines().filter(|l| !l.trim_start().starts_with("--"));
            for line in code {
                assert!(
                    !line.contains("KEYS[") && !line.contains("ARGV["),
                    "{name}: {line}"
                );
            }
        }
    }

    #[test]
    fn an_include_is_expanded_in_place_after_its_own_includes() {
        let (text, libraries) = resolve("ordered/park").unwrap();
        // lib/ordered names base36, seen and tally (which names counts) before its own text.
        let order = [
            "lib/clock",
            "lib/base36",
            "lib/seen",
            "lib/counts",
            "lib/tally",
        ];
        assert_eq!(libraries, [&order[..], &["lib/ordered"]].concat());
        // Where a library's code starts (its comment may come before the libraries it names).
        let at = |library: &str| {
            let body = find(LIBRARIES, library).unwrap();
            let first = body.lines().find(|l| l.starts_with("local ")).unwrap();
            text.find(first).unwrap()
        };
        for pair in libraries.windows(2) {
            assert!(at(pair[0]) < at(pair[1]), "{pair:?}");
        }
        assert!(at("lib/ordered") < text.find("redis.replicate_commands()").unwrap());
        assert!(included("--- @include lib/x").is_err());
        assert!(resolve("no/such").is_err());
    }
}
