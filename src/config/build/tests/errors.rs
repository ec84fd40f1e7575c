//! Every error the loader reports: its line, column, key path and message.
//!
//! Each table row is one document with exactly one error: the line, the text
//! the error points at on that line (its first occurrence gives the column),
//! the key path, part of the message and optionally part of the help.

use super::{HEAD, design_env, errors, load_with, with_target};
use crate::config::Diagnostic;

/// (yaml, line, text pointed at, key path, message part, help part)
type Case = (
    String,
    u64,
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
);

/// 1-based column of `needle` on 1-based `line` of `yaml`.
fn col(yaml: &str, line: u64, needle: &str) -> u64 {
    let text = yaml.lines().nth(line as usize - 1).unwrap_or_default();
    match text.find(needle) {
        Some(i) => text[..i].chars().count() as u64 + 1,
        None => panic!("`{needle}` is not on line {line} of:\n{yaml}"),
    }
}

fn check(cases: Vec<Case>) {
    let mut failures = Vec::new();
    for (i, (yaml, line, at, path, message, help)) in cases.iter().enumerate() {
        let errs = errors(yaml);
        let want = (*line, col(yaml, *line, at), *path);
        let ok = errs.len() == 1
            && (errs[0].line, errs[0].column, errs[0].key_path.as_str()) == want
            && errs[0].message.contains(message)
            && help.is_none_or(|h| errs[0].help.as_deref().is_some_and(|got| got.contains(h)));
        if !ok {
            let got: Vec<_> = errs.iter().map(|d| format!("{d:?}")).collect();
            failures.push(format!(
                "case {i}: want {want:?} `{message}` help {help:?}\n  got: {}\n  yaml:\n{yaml}",
                got.join("\n       ")
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

fn head(rest: &str) -> String {
    format!("{HEAD}{rest}")
}

/// Two targets `t` and `crm`, and one route (line 6) written in flow style.
fn route(r: &str) -> String {
    format!(
        "{HEAD}targets: {{ t: {{ kind: log }}, crm: {{ kind: log }} }}\nunmatched: [t, crm]\nroutes:\n  - {r}\n"
    )
}

/// One source (line 3) written in flow style.
fn source(s: &str) -> String {
    format!("version: 1\nsources:\n  - {s}\n")
}

/// An email target (line 4) with `extra` keys appended.
fn email(extra: &str) -> String {
    with_target(&format!(
        "{{ kind: email, smtp: {{ host: m }}, from: a@b.c, to: [a@b.c], subject: s, body: b{extra} }}"
    ))
}

#[test]
#[rustfmt::skip]
fn document_errors() {
    check(vec![
        ("sources: [{ name: s, path: /in, verify: { scheme: none } }]\n".into(), 1, "sources", "version", "`version` is required", Some("add `version: 1`")),
        (HEAD.replace("version: 1", "version: 2"), 1, "2", "version", "unsupported config version", None),
        (HEAD.replace("version: 1", "version: '1'"), 1, "'1'", "version", "unsupported config version", None),
        (head("routs: []\n"), 3, "routs", "routs", "unknown key `routs`", Some("did you mean `routes`?")),
        ("version: 1\n".into(), 1, "version", "sources", "`sources` is required", None),
        ("version: 1\nsources: []\n".into(), 2, "[]", "sources", "at least one source is required", None),
        ("version: 1\nsources: {}\n".into(), 2, "{}", "sources", "expected a list, found a map", None),
        ("- 1\n".into(), 1, "-", "", "expected a map, found a list", None),
        (head("server: [1]\n"), 3, "[1]", "server", "expected a map, found a list", None),
    ]);
}

#[test]
#[rustfmt::skip]
fn server_queue_errors() {
    check(vec![
        (head("server: { listen: nope }\n"), 3, "nope", "server.listen", "invalid listen address `nope`", None),
        (head("server: { max_connections: 0 }\n"), 3, "0", "server.max_connections", "must be at least 1", None),
        (head("server: { max_inflight_bytes: 1MiB }\n"), 3, "1MiB", "server.max_inflight_bytes", "must be at least server.max_body_bytes", None),
        (head("server: { max_body_bytes: 300MiB }\n"), 3, "300MiB", "server.max_body_bytes", "a body at the limit would never fit", None),
        (head("server: { max_header_bytes: 4KiB }\n"), 3, "4KiB", "server.max_header_bytes", "at least 8KiB", None),
        (head("server: { max_headers: 0 }\n"), 3, "0", "server.max_headers", "must be at least 1", None),
        (head("server: { read_timeout: 10x }\n"), 3, "10x", "server.read_timeout", "invalid duration `10x`", None),
        (head("server: { read_timeout: 0s }\n"), 3, "0s", "server.read_timeout", "must be greater than 0", None),
        (head("server: { shutdown_timeout: 10 }\n"), 3, "10", "server.shutdown_timeout", "without a unit", None),
        (head("server: { max_body_bytes: 10 megs }\n"), 3, "10 megs", "server.max_body_bytes", "unknown unit `megs`", None),
        (head("server: { max_body_bytes: -1 }\n"), 3, "-1", "server.max_body_bytes", "cannot be negative", None),
        (head("server: { lisen: 1.2.3.4:5 }\n"), 3, "lisen", "server.lisen", "unknown key `lisen`", Some("did you mean `listen`?")),
        (head("queue: { backend: redis, url: 'redis://h', path: x }\n"), 3, "path", "queue.path", "only valid with `backend: sqlite`", None),
        (head("queue: { backend: sqlite, prefix: x }\n"), 3, "prefix", "queue.prefix", "only valid with `backend: redis`", None),
        (head("queue: { backend: redis }\n"), 3, "{", "queue.url", "`url` is required", None),
        (head("queue: { backend: redis, url: 'http://h' }\n"), 3, "'http", "queue.url", "must start with `redis://`", None),
        (head("queue: { backend: redsi }\n"), 3, "redsi", "queue.backend", "expected one of `sqlite`, `redis`", Some("did you mean `redis`?")),
        (head("queue: { max_pending: 0 }\n"), 3, "0", "queue.max_pending", "must be at least 1", None),
        (head("dedupe: { window: soon }\n"), 3, "soon", "dedupe.window", "invalid duration", None),
        (head("admin: { listen: 'localhost' }\n"), 3, "'localhost'", "admin.listen", "invalid listen address", None),
    ]);
}

#[test]
#[rustfmt::skip]
fn source_errors() {
    let two = |a: &str, b: &str| format!("version: 1\nsources:\n  - {a}\n  - {b}\n");
    check(vec![
        (source("{ name: 'a b', path: /in, verify: { scheme: none } }"), 3, "'a b'", "sources[0].name", "invalid source name `a b`", None),
        (source("{ path: /in, verify: { scheme: none } }"), 3, "{", "sources[0].name", "`name` is required", None),
        (source("{ name: s, path: in, verify: { scheme: none } }"), 3, "in,", "sources[0].path", "must start with `/`", None),
        (source("{ name: s, path: '/in?x=1', verify: { scheme: none } }"), 3, "'/in", "sources[0].path", "cannot hold `?`", None),
        (two("{ name: s, path: /in, verify: { scheme: none } }", "{ name: s, path: /in2, verify: { scheme: none } }"), 4, "s,", "sources[1].name", "duplicate source name `s`", None),
        (two("{ name: s, path: /in, verify: { scheme: none } }", "{ name: t, path: /in, verify: { scheme: none } }"), 4, "/in", "sources[1].path", "duplicate source path `/in`", None),
        (source("{ name: s, path: /in }"), 3, "{", "sources[0].verify", "`verify` is required", None),
        (source("{ name: s, path: /in, verify: { scheme: gihtub, secrets: [aaaaaaaaaaaaaaaaaaaa] } }"), 3, "gihtub", "sources[0].verify.scheme", "expected one of `outrival`, `github`, `standard-webhooks`, `none`", Some("did you mean `github`?")),
        (source("{ name: s, path: /in, verify: { scheme: github } }"), 3, "{ scheme", "sources[0].verify.secrets", "verify scheme `github` needs at least one non-empty secret", None),
        (source("{ name: s, path: /in, verify: { scheme: standard-webhooks, secrets: [] } }"), 3, "[]", "sources[0].verify.secrets", "verify scheme `standard-webhooks` needs at least one non-empty secret", Some("whsec_")),
        (source("{ name: s, path: /in, verify: { scheme: standard-webhooks, secrets: [MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw] } }"), 3, "MfKQ", "sources[0].verify.secrets[0]", "must start with `whsec_` (value not shown)", Some("put `whsec_` in front")),
        (source("{ name: s, path: /in, verify: { scheme: standard-webhooks, secrets: [whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw, 'whsec_not base64!'] } }"), 3, "'whsec_not", "sources[0].verify.secrets[1]", "the part after `whsec_` is not standard base64 (value not shown)", Some("copied whole")),
        (source("{ name: s, path: /in, verify: { scheme: standard-webhooks, secrets: [whsec_] } }"), 3, "whsec_", "sources[0].verify.secrets[0]", "the part after `whsec_` is empty", Some("openssl rand -base64 32")),
        (source("{ name: s, path: /in, verify: { scheme: outrival, secrets: ['${UNSET_SECRET:-}', ''] } }"), 3, "['", "sources[0].verify.secrets", "needs at least one non-empty secret", Some("`UNSET_SECRET`")),
        (source("{ name: s, path: /in, verify: { scheme: outrival } }"), 3, "{ scheme", "sources[0].verify.secrets", "needs at least one non-empty secret", None),
        (source("{ name: s, path: /in, verify: { scheme: none, secrets: [abc] } }"), 3, "[abc]", "sources[0].verify.secrets", "`scheme: none` does not use secrets", None),
        (source("{ name: s, path: /in, verify: { secrets: ['${NOPE}'] } }"), 3, "'${NOPE}'", "sources[0].verify.secrets[0]", "environment variable `NOPE` is not set", Some("${NOPE:-default}")),
        (source("{ name: s, path: /in, verify: { secrets: '${CRM_TOKEN}' } }"), 3, "'${", "sources[0].verify.secrets", "expected a list, found a string", None),
        (source("{ name: s, path: /in, verify: { secrets: ['${BAD-NAME}'] } }"), 3, "'${", "sources[0].verify.secrets[0]", "malformed variable reference", None),
        (source("{ name: s, path: /in, verify: { scheme: none }, schema: xml }"), 3, "xml", "sources[0].schema", "expected one of `outrival`, `json`", None),
        (source("{ name: s, path: /in, verify: { scheme: none }, strict: no }"), 3, "no }", "sources[0].strict", "expected `true` or `false`", None),
        (source("{ name: s, path: /in, verify: { scheme: none }, rate_limit: { per_second: 0 } }"), 3, "0 }", "sources[0].rate_limit.per_second", "must be at least 1", None),
        (source("{ name: s, path: /in, verify: { scheme: none }, rate_limit: { burst: 2 } }"), 3, "{ burst", "sources[0].rate_limit.per_second", "`per_second` is required", None),
    ]);
}

#[test]
#[rustfmt::skip]
fn target_errors() {
    check(vec![
        (with_target("{ kind: htp, url: 'https://x' }"), 4, "htp", "targets.t.kind", "expected one of `http`, `slack`, `email`, `log`", Some("did you mean `http`?")),
        (with_target("{ url: 'https://x' }"), 4, "{", "targets.t.kind", "`kind` is required", None),
        (format!("{HEAD}targets:\n  1: {{ kind: log }}\n  '1': {{ kind: log }}\nunmatched: ['1']\n"), 5, "'1'", "targets.1", "duplicate target name `1`", None),
        (format!("{HEAD}targets:\n  'a b': {{ kind: log }}\nunmatched: ['a b']\n"), 4, "'a b'", "targets.a b", "invalid target name", None),
        (with_target("{ kind: http, url: 'https://x', timout: 1s }"), 4, "timout", "targets.t.timout", "unknown key `timout`", Some("did you mean `timeout`?")),
        (with_target("{ kind: slack, url: 'https://x', text: hi, webhook_url: 'https://h' }"), 4, "url", "targets.t.url", "unknown key `url`", Some("did you mean `webhook_url`?")),
        (with_target("{ kind: log, concurrency: 0 }"), 4, "0", "targets.t.concurrency", "must be at least 1", None),
        (with_target("{ kind: log, enabled: yes }"), 4, "yes", "targets.t.enabled", "found the string `yes`", Some("YAML 1.2")),
        (with_target("{ kind: log, timeout: 0s }"), 4, "0s", "targets.t.timeout", "must be greater than 0", None),
        (with_target("{ kind: log, circuit_breaker: { failures: 0 } }"), 4, "0 }", "targets.t.circuit_breaker.failures", "must be at least 1", None),
        (with_target("{ kind: log, rate_limit: { per_second: 5, burst: 0 } }"), 4, "0 }", "targets.t.rate_limit.burst", "must be at least 1", None),
        (with_target("{ kind: log, concurrency: '8' }"), 4, "'8'", "targets.t.concurrency", "expected an integer, found a string", None),
    ]);
}

#[test]
#[rustfmt::skip]
fn http_target_errors() {
    check(vec![
        (with_target("{ kind: http }"), 4, "{", "targets.t.url", "`url` is required", None),
        (with_target("{ kind: http, url: null }"), 4, "null", "targets.t.url", "`url` is required", None),
        (with_target("{ kind: http, url: 'not a url' }"), 4, "'not", "targets.t.url", "invalid URL in `url`", None),
        (with_target("{ kind: http, url: 'ftp://x.example' }"), 4, "'ftp", "targets.t.url", "must be an http:// or https:// URL", None),
        (with_target("{ kind: http, url: 'https://x.example/{{ id }}' }"), 4, "'https", "targets.t.url", "`url` is not a template", None),
        (with_target("{ kind: http, url: 'https://x', method: 'GE T' }"), 4, "'GE T'", "targets.t.method", "invalid HTTP method `GE T`", None),
        (with_target("{ kind: http, url: 'https://x', signature: { scheme: standard-webhooks } }"), 4, "{", "targets.t.secret", "signature scheme `standard-webhooks` needs a non-empty `secret`", Some("`whsec_...`")),
        (with_target("{ kind: http, url: 'https://x', secret: '${UNSET_SECRET:-}', signature: { scheme: standard-webhooks } }"), 4, "'${", "targets.t.secret", "needs a non-empty `secret`", None),
        (with_target("{ kind: http, url: 'https://x', secret: plain-secret-0123456789, signature: { scheme: standard-webhooks } }"), 4, "plain-secret", "targets.t.secret", "must start with `whsec_`", None),
        (with_target("{ kind: http, url: 'https://x', secret: 'whsec_%%%%', signature: { scheme: standard-webhooks } }"), 4, "'whsec_", "targets.t.secret", "is not standard base64 (value not shown)", None),
        (with_target("{ kind: http, url: 'https://x', secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw, signature: { scheme: standard-webhooks, header: x-sig } }"), 4, "header", "targets.t.signature.header", "`header` is only used with `scheme: outrival`", Some("remove `header`")),
        (with_target("{ kind: http, url: 'https://x', secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw, signature: { scheme: standard-webhooks }, headers: { Webhook-Id: x } }"), 4, "Webhook-Id", "targets.t.headers.Webhook-Id", "cannot be set in `headers`", Some("sets this header itself")),
        (with_target("{ kind: http, url: 'https://x', secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw, signature: { scheme: standard-webhooks }, headers: { webhook-timestamp: x } }"), 4, "webhook-timestamp", "targets.t.headers.webhook-timestamp", "cannot be set in `headers`", Some("sets this header itself")),
        (with_target("{ kind: http, url: 'https://x', secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw, signature: { scheme: standard-webhooks }, headers: { webhook-signature: x } }"), 4, "webhook-signature", "targets.t.headers.webhook-signature", "cannot be set in `headers`", Some("sets this header itself")),
        (with_target("{ kind: http, url: 'https://x', signature: { scheme: hmac } }"), 4, "hmac", "targets.t.signature.scheme", "expected one of `outrival`, `standard-webhooks`", None),
        (with_target("{ kind: http, url: 'https://x', signature: { header: 'bad header' } }"), 4, "'bad", "targets.t.signature.header", "invalid header name", None),
        (with_target("{ kind: http, url: 'https://x', headers: { 'bad header': v } }"), 4, "'bad", "targets.t.headers.bad header", "invalid header name `bad header`", None),
        (with_target("{ kind: http, url: 'https://x', headers: { Content-Type: text/plain } }"), 4, "Content-Type", "targets.t.headers.Content-Type", "cannot be set in `headers`", Some("use `content_type`")),
        (with_target("{ kind: http, url: 'https://x', headers: { x-signature: v } }"), 4, "x-signature", "targets.t.headers.x-signature", "cannot be set", None),
        (with_target("{ kind: http, url: 'https://x', headers: { x-a: \"s3cr\\u0001t\" } }"), 4, "\"s3cr", "targets.t.headers.x-a", "invalid value for header `x-a` (value not shown)", None),
        (with_target("{ kind: http, url: 'https://x', headers: { x-a: 1 } }"), 4, "1 }", "targets.t.headers.x-a", "expected a string, found an integer", None),
        (with_target("{ kind: http, url: 'https://x', body: template }"), 4, "{", "targets.t.template", "`template` is required", None),
        (with_target("{ kind: http, url: 'https://x', template: '{{ x }}' }"), 4, "template", "targets.t.template", "only used with `body: template`", Some("add `body: template`")),
        (with_target("{ kind: http, url: 'https://x', body: template, template: '{{ x ' }"), 4, "'{{", "targets.t.template", "invalid template: ", None),
        (with_target("{ kind: http, url: 'https://x', body: template, template: '{{ x | nope }}' }"), 4, "'{{", "targets.t.template", "unknown filter", None),
        (with_target("{ kind: http, url: 'https://x', body: raw }"), 4, "raw", "targets.t.body", "expected one of `original`, `template`", None),
        (with_target("{ kind: http, url: 'https://x', content_type: \"a\\nb\" }"), 4, "\"a", "targets.t.content_type", "invalid content type", None),
    ]);
}

#[test]
#[rustfmt::skip]
fn slack_and_email_errors() {
    check(vec![
        (with_target("{ kind: slack, text: hi }"), 4, "{", "targets.t.webhook_url", "`webhook_url` is required", None),
        (with_target("{ kind: slack, webhook_url: 'hooks/T0/SECRET', text: hi }"), 4, "'hooks", "targets.t.webhook_url", "not a valid http(s) URL (value not shown)", None),
        (with_target("{ kind: slack, webhook_url: 'https://h', icon_emoji: phone }"), 4, "phone", "targets.t.icon_emoji", "not a Slack emoji name", Some("between colons")),
        (with_target("{ kind: slack, webhook_url: 'https://h', blocks: [{ text: { text: '{{ x | nope }}' } }] }"), 4, "'{{", "targets.t.blocks[0].text.text", "invalid template", None),
        (with_target("{ kind: slack, webhook_url: 'https://h', text: '{% if %}' }"), 4, "'{%", "targets.t.text", "invalid template", None),
        (email(", to: []").replace("to: [a@b.c], ", ""), 4, "[]", "targets.t.to", "`to` needs at least one address", None),
        (email("").replace("from: a@b.c", "from: 'not an address'"), 4, "'not", "targets.t.from", "invalid email address", None),
        (email("").replace("to: [a@b.c]", "to: [a@b.c, 'x@']"), 4, "'x@'", "targets.t.to[1]", "invalid email address", None),
        (email("").replace("to: [a@b.c]", "to: a@b.c"), 4, "a@b.c, subject", "targets.t.to", "expected a list, found a string", None),
        (email("").replace("{ host: m }", "{ port: 25 }"), 4, "{ port", "targets.t.smtp.host", "`host` is required", None),
        (email("").replace("{ host: m }", "{ host: m, tls: ssl }"), 4, "ssl", "targets.t.smtp.tls", "expected one of `none`, `starttls`, `tls`", None),
        (email("").replace("{ host: m }", "{ host: m, port: 70000 }"), 4, "70000", "targets.t.smtp.port", "port 70000 is out of range", Some("1 to 65535")),
        (email("").replace("{ host: m }", "{ host: m, port: 0 }"), 4, "0 }", "targets.t.smtp.port", "port 0 is out of range", Some("1 to 65535")),
        (email("").replace("{ host: m }", "{ host: m, password: pw }"), 4, "pw", "targets.t.smtp.username", "`password` is set but `username` is missing", None),
        (email("").replace("{ host: m }", "{ host: m, username: u, password: '${NOT_SET:-}' }"), 4, "'${", "targets.t.smtp.password", "`username` is set but `password` is missing or empty", None),
        (email("").replace("subject: s, ", ""), 4, "{", "targets.t.subject", "`subject` is required", None),
        (email(", html: '{{ x '"), 4, "'{{", "targets.t.html", "invalid template", Some("templates are minijinja")),
        (email(", html: '<b>{{ x | nope }}</b>'"), 4, "'<b>", "targets.t.html", "unknown filter", Some("templates are minijinja")),
    ]);
}

#[test]
#[rustfmt::skip]
fn retry_errors() {
    check(vec![
        (head("defaults: { retry: { schedule: [1s], initial_delay: 1s } }\n"), 3, "initial_delay", "defaults.retry.initial_delay", "`initial_delay` cannot be combined with `schedule`", Some("either a `schedule`")),
        (with_target("{ kind: log, retry: { multiplier: 3, schedule: [1s] } }"), 4, "multiplier", "targets.t.retry.multiplier", "cannot be combined with `schedule`", None),
        (with_target("{ kind: log, retry: { multiplier: 1 } }"), 4, "1 }", "targets.t.retry.multiplier", "must be greater than 1", None),
        (with_target("{ kind: log, retry: { max_attempts: 0 } }"), 4, "0 }", "targets.t.retry.max_attempts", "must be at least 1", None),
        (with_target("{ kind: log, retry: { retry_on: [429, 600] } }"), 4, "600", "targets.t.retry.retry_on[1]", "600 is not an HTTP status", None),
        (with_target("{ kind: log, retry: { retry_on: ['5xx'] } }"), 4, "'5xx'", "targets.t.retry.retry_on[0]", "invalid status range `5xx`", None),
        (with_target("{ kind: log, retry: { schedule: [1s, 2 hours, soon] } }"), 4, "soon", "targets.t.retry.schedule[2]", "invalid duration `soon`", None),
        (with_target("{ kind: log, retry: { schedule: [], max_attempts: 3 } }"), 4, "{ schedule", "targets.t.retry", "needs at least one delay", None),
        (head("defaults: { retry: { schedule: [], max_attempts: 3 } }\n"), 3, "{ schedule", "defaults.retry", "needs at least one delay", None),
        (with_target("{ kind: log, retry: { jiter: true } }"), 4, "jiter", "targets.t.retry.jiter", "unknown key", Some("did you mean `jitter`?")),
        (head("defaults: { timeout: 0s }\n"), 3, "0s", "defaults.timeout", "must be greater than 0", None),
        (head("defaults: { circuit_breaker: { cooldown: 0s } }\n"), 3, "0s", "defaults.circuit_breaker.cooldown", "must be greater than 0", None),
    ]);
}

#[test]
#[rustfmt::skip]
fn route_errors() {
    check(vec![
        (route("{ match: {}, targets: [t] }"), 6, "{", "routes[0].name", "`name` is required", None),
        (route("{ name: 'x y', match: {}, targets: [t] }"), 6, "'x y'", "routes[0].name", "invalid route name", None),
        (route("{ name: unmatched, match: {}, targets: [t] }"), 6, "unmatched", "routes[0].name", "`unmatched` is reserved", Some("choose another name")),
        (route("{ name: a, match: {}, targets: [t] }\n  - { name: a, match: {}, targets: [t] }"), 7, "a,", "routes[1].name", "duplicate route name `a`", None),
        (route("{ name: a, match: {}, any: [], targets: [t] }"), 6, "any", "routes[0].any", "`match` or `any`, not both", None),
        (route("{ name: a, targets: [t] }"), 6, "{", "routes[0].match", "needs `match` or `any`", Some("`match: {}`")),
        (route("{ name: a, match: {} }"), 6, "{", "routes[0].targets", "`targets` is required", None),
        (route("{ name: a, match: {}, targets: [] }"), 6, "[]", "routes[0].targets", "at least one target", None),
        (route("{ name: a, match: {}, targets: [t, crn] }"), 6, "crn", "routes[0].targets[1]", "unknown target `crn`", Some("did you mean `crm`?")),
        (route("{ name: a, match: {}, targets: [t], stpo: true }"), 6, "stpo", "routes[0].stpo", "unknown key `stpo`", Some("did you mean `stop`?")),
        (route("{ name: a, match: {}, targets: [t], stop: 1 }"), 6, "1 }", "routes[0].stop", "expected `true` or `false`, found an integer", None),
        (route("{ name: a, match: [], targets: [t] }"), 6, "[]", "routes[0].match", "expected a map, found a list", None),
        (route("{ name: a, any: [{ event: x }, [1]], targets: [t] }"), 6, "[1]", "routes[0].any[1]", "expected a map, found a list", None),
        (route("{ name: a, match: { event: { regx: x } }, targets: [t] }"), 6, "regx", "routes[0].match.event.regx", "unknown operator `regx`", Some("did you mean `regex`?")),
        (route("{ name: a, match: { event: { regex: '(' } }, targets: [t] }"), 6, "'('", "routes[0].match.event.regex", "invalid regex: ", None),
        (route(&format!("{{ name: a, match: {{ event: {{ regex: '{}x{}' }} }}, targets: [t] }}", "(".repeat(70), ")".repeat(70))), 6, "'((", "routes[0].match.event.regex", "nested parentheses/brackets (64)", None),
        (route("{ name: a, match: { event: { regex: '\\w{1000}{1000}' } }, targets: [t] }"), 6, "'\\w", "routes[0].match.event.regex", "size limit", None),
        (route("{ name: a, match: { data.n: { gt: ten } }, targets: [t] }"), 6, "ten", "routes[0].match.data.n.gt", "expected a number, found a string", None),
        (route("{ name: a, match: { data.n: { exists: yes } }, targets: [t] }"), 6, "yes", "routes[0].match.data.n.exists", "expected `true` or `false`", None),
        (route("{ name: a, match: { type: [VOICE, [SMS]] }, targets: [t] }"), 6, "[SMS]", "routes[0].match.type[1]", "expected a scalar", None),
        (route("{ name: a, match: { event: { in: x } }, targets: [t] }"), 6, "x }", "routes[0].match.event.in", "expected a list, found a string", None),
        (route("{ name: a, match: { event: { prefix: 1 } }, targets: [t] }"), 6, "1 }", "routes[0].match.event.prefix", "expected a string, found an integer", None),
        (route("{ name: a, match: { event: {} }, targets: [t] }"), 6, "{} }", "routes[0].match.event", "needs at least one operator", None),
        (route("{ name: a, match: { data..x: 1 }, targets: [t] }"), 6, "data..x", "routes[0].match.data..x", "invalid match key", None),
        (format!("{HEAD}targets: {{ t: {{ kind: log }} }}\nunmatched: [tt]\n"), 4, "tt", "unmatched[0]", "unknown target `tt`", Some("did you mean `t`?")),
    ]);
}

#[test]
fn yaml_syntax_errors_are_one_diagnostic() {
    let yaml = "version: 1\nsources: [1, 2\nroutes: []\n";
    let errs = errors(yaml);
    assert_eq!(errs.len(), 1, "{errs:?}");
    let d = &errs[0];
    assert!(d.line >= 2 && d.column > 0, "{d:?}");
    assert!(
        d.message.starts_with("invalid YAML: ") && !d.message.contains('\n'),
        "{d:?}"
    );
    assert!(
        d.to_string().starts_with(&format!(
            "error: rules.yaml:{}:{}: invalid YAML",
            d.line, d.column
        )),
        "{d}"
    );

    let errs = errors("version: 1\nversion: 1\n");
    assert_eq!(
        (errs.len(), errs[0].line, errs[0].column),
        (1, 2, 1),
        "{errs:?}"
    );
    assert!(errs[0].message.contains("duplicate"), "{errs:?}");

    let errs = errors("");
    assert_eq!(errs[0].key_path, "version");
    assert_eq!(
        errs[0].help.as_deref(),
        Some("add `version: 1` at the top of the file")
    );

    let opts = crate::config::LoadOptions {
        allow_missing_env: false,
        lookup: &design_env,
    };
    let err = crate::config::load_bytes(std::path::Path::new("x.yaml"), b"version: \xff\n", &opts)
        .unwrap_err();
    assert_eq!(
        (err.diagnostics[0].line, err.diagnostics[0].column),
        (1, 10)
    );
}

#[test]
fn every_error_is_reported_in_one_run() {
    let yaml = "version: 1
server: { listen: nope, read_timeout: 10x }
sources:
  - { name: s, path: in, verify: { scheme: github } }
targets:
  a: { kind: http }
  b: { kind: slack, webhook_url: 'https://h', icon_emoji: x }
routes:
  - { name: r, match: { event: { regx: x } }, targets: [a, c] }
  - { name: r, any: [], targets: [b] }
unmatched: [z]
";
    let errs = errors(yaml);
    let got: Vec<(u64, &str)> = errs.iter().map(|d| (d.line, d.key_path.as_str())).collect();
    assert_eq!(
        got,
        [
            (2, "server.listen"),
            (2, "server.read_timeout"),
            (4, "sources[0].path"),
            (4, "sources[0].verify.secrets"),
            (6, "targets.a.url"),
            (7, "targets.b.icon_emoji"),
            (9, "routes[0].match.event.regx"),
            (9, "routes[0].targets[1]"),
            (10, "routes[1].name"),
            (11, "unmatched[0]"),
        ],
        "{errs:#?}"
    );
    let warnings: Vec<_> = load_with(yaml, false, &design_env)
        .unwrap_err()
        .diagnostics
        .into_iter()
        .filter(|d| d.severity == crate::config::Severity::Warning)
        .map(|d| d.key_path)
        .collect();
    assert_eq!(warnings, ["routes[1].any"]);
}

#[test]
fn secrets_never_appear_in_diagnostics() {
    let lookup = |name: &str| {
        Some(
            match name {
                "S1" => "TOPSECRET1\u{1}",
                "S2" => "not a url TOPSECRET2",
                "S3" => "http://TOPSECRET3@:bad",
                "S4" => "TOPSECRET4",
                "S5" => "TOPSECRET5://x",
                "S6" => "whsec_TOPSECRET8!!",
                "S7" => "TOPSECRET9",
                _ => return None,
            }
            .to_owned(),
        )
    };
    let yaml = "version: 1
sources: [{ name: s, path: /in, verify: { secrets: ['${S4}'] } }]
queue: { backend: redis, url: '${S5}' }
targets:
  h: { kind: http, url: '${S3}', headers: { x-a: '${S1}' }, secret: '${S4}' }
  s: { kind: slack, webhook_url: '${S2}', text: hi }
  e: { kind: email, smtp: { host: m, password: '${S4}' }, from: a@b.c, to: [a@b.c], subject: s, body: b }
  u: { kind: http, url: 'https://user:TOPSECRET6@x.example/?token=TOPSECRET7', method: 'G T' }
  w: { kind: http, url: 'https://x.example', secret: '${S6}', signature: { scheme: standard-webhooks } }
  v: { kind: http, url: 'https://x.example', secret: '${S7}', signature: { scheme: standard-webhooks } }
unmatched: [h, s, e, u, w, v]
";
    let err = load_with(yaml, false, &lookup).unwrap_err();
    let text = err.to_string();
    let n = err.errors().count();
    assert!(n >= 8, "{text}");
    assert!(!text.contains("TOPSECRET"), "{text}");
    let all: Vec<&Diagnostic> = err.diagnostics.iter().collect();
    assert!(
        all.iter().all(|d| !format!("{d:?}").contains("TOPSECRET")),
        "{all:#?}"
    );
}

#[test]
fn a_file_is_limited_in_routes_and_targets() {
    let many_routes: String = (0..10_001)
        .map(|i| format!("  - {{ name: r{i}, match: {{}}, targets: [t] }}\n"))
        .collect();
    let yaml = format!("{HEAD}targets: {{ t: {{ kind: log }} }}\nroutes:\n{many_routes}");
    let errs = errors(&yaml);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!((errs[0].line, errs[0].key_path.as_str()), (5, "routes"));
    assert!(
        errs[0]
            .message
            .contains("10001 routes is more than the 10000"),
        "{errs:?}"
    );

    let many_targets: String = (0..1_001)
        .map(|i| format!("  t{i}: {{ kind: log }}\n"))
        .collect();
    let yaml = format!("{HEAD}targets:\n{many_targets}unmatched: [t0]\n");
    let errs = errors(&yaml);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!((errs[0].line, errs[0].key_path.as_str()), (4, "targets"));
    assert!(
        errs[0]
            .message
            .contains("1001 targets is more than the 1000"),
        "{errs:?}"
    );
}
