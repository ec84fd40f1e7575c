//! docs/rules.md documents every key the loader accepts: the keys come from
//! the loader's own lists ([`key_lists`]), and every `fields(…)` call of the
//! builders must use one of those lists, so a key added in code without a
//! line in the reference fails here.

use std::path::{Path, PathBuf};

use super::super::key_lists;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The heading of docs/rules.md under which the keys of the map at `at`
/// are documented. A new map fails until it is given one here.
fn heading(at: &str) -> &'static str {
    match at {
        "" => "Top level",
        "server" => "`server`",
        "admin" => "`admin`",
        "queue" => "`queue`",
        "dedupe" => "`dedupe`",
        "defaults" | "circuit_breaker" => "`defaults`",
        "retry" => "Retry policy",
        "rate_limit" => "Rate limits (`rate_limit`)",
        "sources[]" | "sources[].verify" => "`sources`",
        "targets.NAME" | "targets.NAME.ordering" => "`targets`",
        "targets.NAME (http)" | "targets.NAME.signature" => "`kind: http`",
        "targets.NAME (slack)" => "`kind: slack`",
        "targets.NAME (email)" | "targets.NAME.smtp" => "`kind: email`",
        "targets.NAME (log)" => "`kind: log`",
        "routes[]" => "Routes",
        "routes[].match.FIELD" => "Conditions",
        other => panic!("the keys of `{other}` have no heading in docs/rules.md: add one"),
    }
}

/// The words inside backticks in the first cell of each table row under
/// `## heading` (or any level), up to the next heading: `` `smtp.username`,
/// `smtp.password` `` gives `smtp`, `username`, `password`.
fn documented_words(doc: &str, heading: &str) -> Vec<String> {
    let mut lines = doc
        .lines()
        .skip_while(|l| !(l.starts_with('#') && l.trim_start_matches('#').trim() == heading));
    assert!(
        lines.next().is_some(),
        "docs/rules.md has no heading `{heading}`"
    );
    let mut words = Vec::new();
    for line in lines.take_while(|l| !l.starts_with('#')) {
        let Some(row) = line.strip_prefix('|') else {
            continue;
        };
        let first = row.split('|').next().unwrap_or_default();
        for (i, span) in first.split('`').enumerate() {
            if i % 2 == 1 {
                words.extend(
                    span.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                        .filter(|w| !w.is_empty())
                        .map(str::to_owned),
                );
            }
        }
    }
    words
}

#[test]
fn rules_md_documents_every_key_the_loader_accepts() {
    let doc = std::fs::read_to_string(root().join("docs/rules.md")).unwrap();
    let mut missing = Vec::new();
    for (at, _, keys) in key_lists() {
        let heading = heading(at);
        let words = documented_words(&doc, heading);
        for key in keys {
            if !words.iter().any(|w| w == key) {
                missing.push(format!("`{key}` of `{at}` (under \"{heading}\")"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "docs/rules.md does not document, in the first column of a table:\n  {}",
        missing.join("\n  ")
    );
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            // The tests feed the loader; they check no keys of their own.
            if path.file_name() != Some("tests".as_ref()) {
                rust_files(&path, out);
            }
        } else if path.extension() == Some("rs".as_ref()) {
            out.push(path);
        }
    }
}

/// The last argument of each `.fields(` call in `text` (calls may span lines).
fn fields_call_lists(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (start, _) in text.match_indices(".fields(") {
        let args = &text[start + ".fields(".len()..];
        let (mut depth, mut last_start, mut end) = (0usize, 0, args.len());
        for (i, c) in args.char_indices() {
            match c {
                '(' | '[' | '{' => depth += 1,
                ')' | ']' | '}' if depth == 0 => {
                    end = i;
                    break;
                }
                ')' | ']' | '}' => depth -= 1,
                ',' if depth == 0 && !args[i + 1..].trim_start().starts_with(')') => {
                    last_start = i + 1;
                }
                _ => {}
            }
        }
        out.push(
            args[last_start..end]
                .trim()
                .trim_end_matches(',')
                .to_owned(),
        );
    }
    out
}

#[test]
fn every_checked_map_uses_a_listed_key_list() {
    let names: Vec<String> = key_lists()
        .iter()
        .map(|(_, name, _)| name.rsplit("::").next().unwrap_or(name).trim().to_owned())
        .collect();
    let mut files = Vec::new();
    rust_files(&root().join("src/config/build"), &mut files);
    let mut calls = 0;
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for list in fields_call_lists(&text) {
            calls += 1;
            let name = list.rsplit("::").next().unwrap_or(&list).trim();
            assert!(
                names.iter().any(|n| n == name),
                "{}: `fields(…, {list})`: name the key list and add it to \
                 `key_lists()` in src/config/build/mod.rs (and document its keys)",
                file.display()
            );
        }
    }
    // Guards the scan itself: the builders do call `fields`.
    assert!(calls >= 10, "found only {calls} fields(…) calls");
}
