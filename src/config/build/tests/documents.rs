//! Valid documents: defaults, value syntaxes, matchers, templates, environment
//! handling and warnings.

use std::path::Path;
use std::time::Duration;

use http::Method;
use serde_json::json;

use super::{HEAD, errors, load_with, loaded, with_target};
use crate::config::model::*;
use crate::config::{Loaded, Severity};

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[test]
fn defaults_apply() {
    let yaml = format!(
        "{HEAD}targets:
  h: {{ kind: http, url: 'http://h.example/x' }}
  s: {{ kind: slack, webhook_url: 'https://hooks.slack.com/x', text: hi }}
  e1: {{ kind: email, smtp: {{ host: m }}, from: a@b.c, to: [a@b.c], subject: s, body: b }}
  e2: {{ kind: email, smtp: {{ host: m, tls: tls }}, from: a@b.c, to: [a@b.c], subject: s, body: b }}
  e3: {{ kind: email, smtp: {{ host: m, tls: none }}, from: a@b.c, to: [a@b.c], subject: s, body: b }}
  l: {{ kind: log, path: /var/log/hookgate.jsonl }}
unmatched: [h, s, e1, e2, e3, l]
"
    );
    let Loaded { config, warnings } = loaded(&yaml);
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(config.server.listen.to_string(), "0.0.0.0:8080");
    assert_eq!(config.server.max_body_bytes, 10 << 20);
    assert_eq!(config.server.read_timeout, secs(30));
    assert_eq!(config.server.max_connections, 10_000);
    assert_eq!(config.server.shutdown_timeout, secs(10));
    assert_eq!(config.server.max_inflight_bytes, 256 << 20);
    assert_eq!(config.server.max_header_bytes, 64 << 10);
    assert_eq!(config.server.max_headers, 100);
    assert_eq!(config.admin.listen.to_string(), "127.0.0.1:9090");
    assert!(config.admin.token.is_none());
    assert!(
        matches!(&config.queue.backend, QueueBackend::Sqlite { path } if path == Path::new("./hookgate-data/queue.db"))
    );
    assert_eq!(config.queue.retention, secs(86400));
    assert_eq!(config.queue.max_pending, 10_000_000);
    assert_eq!(config.queue.max_bytes, 8 << 30);
    assert_eq!(config.dedupe.window, secs(600));
    assert!(config.routes.is_empty());

    let s = &config.sources[0];
    assert_eq!(s.verify.scheme, VerifyScheme::None);
    assert!(s.verify.secrets.is_empty());
    assert_eq!(
        (s.schema, s.strict, s.rate_limit),
        (Schema::Outrival, false, None)
    );

    for t in &config.targets {
        assert!(t.enabled);
        assert_eq!(t.timeout, secs(10));
        assert_eq!(t.concurrency, 16);
        assert_eq!(
            t.circuit_breaker,
            CircuitBreaker {
                failures: 5,
                cooldown: secs(30)
            }
        );
        assert_eq!(
            t.retry,
            RetryPolicy {
                backoff: Backoff::Schedule {
                    delays: [5, 300, 1800, 7200, 18000, 36000, 36000].map(secs).to_vec(),
                    max_attempts: 8,
                },
                jitter: true,
                retry_on: StatusSet(vec![408..=408, 425..=425, 429..=429, 500..=599]),
            }
        );
        let want_rate = (t.name == "s").then_some(RateLimit {
            per_second: 1,
            burst: 1,
        });
        assert_eq!(t.rate_limit, want_rate, "{}", t.name);
    }
    let TargetKind::Http(h) = &config.targets[0].kind else {
        panic!()
    };
    assert_eq!(h.method, Method::POST);
    assert!(h.secret.is_none());
    assert_eq!(h.signature.header.as_str(), "x-signature");
    assert!(h.headers.is_empty());
    assert!(matches!(h.body, BodyMode::Original));
    assert_eq!(h.content_type.to_str().unwrap(), "application/json");
    let ports: Vec<_> = config.targets[2..5]
        .iter()
        .map(|t| match &t.kind {
            TargetKind::Email(e) => (e.smtp.port, e.smtp.tls, e.smtp.timeout),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        ports,
        [
            (587, SmtpTls::Starttls, secs(30)),
            (465, SmtpTls::Tls, secs(30)),
            (25, SmtpTls::None, secs(30))
        ]
    );
    let TargetKind::Log(l) = &config.targets[5].kind else {
        panic!()
    };
    assert_eq!(
        l.path.as_deref(),
        Some(Path::new("/var/log/hookgate.jsonl"))
    );
}

#[test]
fn values_are_parsed() {
    let yaml = format!(
        "{HEAD}server: {{ listen: '[::1]:80', max_body_bytes: 512KiB, read_timeout: 250ms, max_connections: 5, shutdown_timeout: 0s, max_inflight_bytes: 1MiB, max_header_bytes: 16KiB, max_headers: 20 }}
admin: {{ listen: 0.0.0.0:9999, token: tok }}
queue: {{ backend: redis, url: 'redis://:pw@redis:6379/0', retention: 2h, max_pending: 7, max_bytes: 10MB }}
dedupe: {{ window: 0s }}
defaults:
  timeout: 3s
  retry: {{ max_attempts: 4, initial_delay: 2s, max_delay: 1m, multiplier: 1.5, jitter: false, retry_on: [429, '502-504'] }}
  circuit_breaker: {{ failures: 2 }}
targets:
  a: {{ kind: http, url: 'https://a.example', method: put, concurrency: 1, enabled: false, circuit_breaker: {{ cooldown: 1m }} }}
  b: {{ kind: http, url: 'https://b.example', retry: {{ schedule: [1s, 2s] }}, rate_limit: {{ per_second: 3 }} }}
  c: {{ kind: http, url: 'https://c.example', concurrency: '${{CONC}}', enabled: '${{FLAG}}', retry: {{ max_attempts: 1 }} }}
routes: [{{ name: r, match: {{}}, targets: [a, b, c] }}]
"
    );
    let config = loaded(&yaml).config;
    assert_eq!(config.server.listen.to_string(), "[::1]:80");
    assert_eq!(config.server.max_body_bytes, 512 * 1024);
    assert_eq!(config.server.read_timeout, Duration::from_millis(250));
    assert_eq!(config.server.max_connections, 5);
    assert_eq!(config.server.shutdown_timeout, Duration::ZERO);
    assert_eq!(config.server.max_inflight_bytes, 1 << 20);
    assert_eq!(config.server.max_header_bytes, 16 << 10);
    assert_eq!(config.server.max_headers, 20);
    assert_eq!(config.admin.token.as_ref().unwrap().expose(), "tok");
    match &config.queue.backend {
        QueueBackend::Redis { url, prefix } => {
            assert_eq!(url.expose(), "redis://:pw@redis:6379/0");
            assert_eq!(prefix, "hookgate");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(config.queue.max_bytes, 10_000_000);
    assert_eq!(config.dedupe.window, Duration::ZERO);

    let exp = Backoff::Exponential {
        max_attempts: 4,
        initial_delay: secs(2),
        max_delay: secs(60),
        multiplier: 1.5,
    };
    let a = &config.targets[0];
    assert!(!a.enabled);
    assert_eq!(a.timeout, secs(3));
    assert_eq!(a.concurrency, 1);
    assert_eq!(
        a.circuit_breaker,
        CircuitBreaker {
            failures: 2,
            cooldown: secs(60)
        }
    );
    assert_eq!(a.retry.backoff, exp);
    assert!(!a.retry.jitter);
    assert!(a.retry.retry_on.contains(503) && !a.retry.retry_on.contains(500));
    let TargetKind::Http(h) = &a.kind else {
        panic!()
    };
    assert_eq!(h.method, Method::PUT);

    // A schedule on the target drops the inherited exponential keys; max_attempts is shared.
    let b = &config.targets[1];
    assert_eq!(
        b.retry.backoff,
        Backoff::Schedule {
            delays: vec![secs(1), secs(2)],
            max_attempts: 4
        }
    );
    assert_eq!(
        b.rate_limit,
        Some(RateLimit {
            per_second: 3,
            burst: 3
        })
    );

    let c = &config.targets[2];
    assert_eq!(
        (c.concurrency, c.enabled),
        (4, false),
        "numbers and booleans from ${{VAR}}"
    );
    assert_eq!(
        c.retry.backoff,
        Backoff::Exponential {
            max_attempts: 1,
            initial_delay: secs(2),
            max_delay: secs(60),
            multiplier: 1.5
        }
    );
}

#[test]
fn match_operators_compile() {
    let yaml = format!(
        "{HEAD}targets: {{ t: {{ kind: log }} }}
routes:
  - name: ops
    targets: [t]
    match:
      event: {{ eq: status-changed, not: [x, 1] }}
      companionId: {{ prefix: a, suffix: z, contains: m, regex: '^a.*z$' }}
      data.duration: {{ gt: 1, gte: 1.5, lt: 10, lte: 9 }}
      data.messages.0.role: {{ exists: true, in: [user, null, true, 2.5] }}
      data.endedAt: {{ not: null }}
  - name: anyof
    targets: [t, t]
    any:
      - {{ type: VOICE }}
      - {{ type: SMS, status: [ended, queued] }}
"
    );
    let config = loaded(&yaml).config;
    let Condition::All(m) = &config.routes[0].condition else {
        panic!()
    };
    assert_eq!(m.len(), 5);
    assert!(
        matches!(&m[0].tests[..], [FieldTest::OneOf(a), FieldTest::NoneOf(b)]
        if *a == [json!("status-changed")] && *b == [json!("x"), json!(1)])
    );
    assert!(
        matches!(&m[1].tests[..], [FieldTest::Prefix(p), FieldTest::Suffix(s), FieldTest::Contains(c), FieldTest::Regex(r)]
        if p == "a" && s == "z" && c == "m" && r.is_match("amz"))
    );
    assert!(
        matches!(&m[2].tests[..], [FieldTest::Gt(a), FieldTest::Gte(b), FieldTest::Lt(c), FieldTest::Lte(d)]
        if (*a, *b, *c, *d) == (1.0, 1.5, 10.0, 9.0))
    );
    assert_eq!(m[3].path, ["data", "messages", "0", "role"]);
    assert!(
        matches!(&m[3].tests[..], [FieldTest::Exists(true), FieldTest::OneOf(v)]
        if *v == [json!("user"), json!(null), json!(true), json!(2.5)])
    );
    assert!(matches!(&m[4].tests[..], [FieldTest::NoneOf(v)] if *v == [json!(null)]));

    let any = &config.routes[1];
    assert_eq!(any.targets, [TargetId(0)], "duplicates dropped");
    let Condition::Any(maps) = &any.condition else {
        panic!()
    };
    assert_eq!(maps.len(), 2);
    assert_eq!(maps[1][1].path, ["data", "status"]);
}

#[test]
fn yaml_1_1_booleans_stay_strings() {
    let yaml = format!(
        "{HEAD}targets: {{ t: {{ kind: log }} }}\nroutes: [{{ name: r, match: {{ event: no, type: [yes, off] }}, targets: [t] }}]\n"
    );
    let config = loaded(&yaml).config;
    let Condition::All(m) = &config.routes[0].condition else {
        panic!()
    };
    assert!(matches!(&m[0].tests[..], [FieldTest::OneOf(v)] if *v == [json!("no")]));
    assert!(matches!(&m[1].tests[..], [FieldTest::OneOf(v)] if *v == [json!("yes"), json!("off")]));
}

#[test]
fn env_values_stay_strings() {
    let yaml = format!(
        "{HEAD}targets:
  t: {{ kind: http, url: 'https://x.example', headers: {{ x-data: '${{INJECT}}x' }} }}
routes: [{{ name: r, match: {{ event: '${{INJECT}}' }}, targets: [t] }}]
"
    );
    // A header value cannot hold a newline: the env value must not be parsed as YAML,
    // so this is an error about the header value, not a new map.
    let errs = errors(&yaml);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].key_path, "targets.t.headers.x-data");

    let yaml = format!(
        "{HEAD}targets: {{ t: {{ kind: log }} }}\nroutes: [{{ name: r, match: {{ event: '${{INJECT}}' }}, targets: [t] }}]\n"
    );
    let config = loaded(&yaml).config;
    let Condition::All(m) = &config.routes[0].condition else {
        panic!()
    };
    assert!(
        matches!(&m[0].tests[..], [FieldTest::OneOf(v)] if *v == [json!("a: [1, 2]\nb: {c: d}")])
    );
}

#[test]
fn allow_missing_env_keeps_literals() {
    let yaml = "version: 1
sources: [{ name: s, path: /in, verify: { secrets: ['${NOT_SET_1}'] } }]
server: { listen: '0.0.0.0:${PORT}' }
queue: { backend: redis, url: '${REDIS_URL}' }
targets:
  h: { kind: http, url: '${CRM_URL}', secret: '${CRM_SECRET}', headers: { authorization: 'Bearer ${TOKEN}' }, concurrency: '${N}' }
  s: { kind: slack, webhook_url: '${SLACK_URL}', text: hi }
  e: { kind: email, smtp: { host: '${SMTP_HOST}', port: '${SMTP_PORT}' }, from: '${FROM}', to: ['${TO}'], subject: s, body: b }
unmatched: [h, s, e]
";
    let none = |_: &str| None;
    let errs = load_with(yaml, false, &none).unwrap_err();
    let missing: Vec<_> = errs.errors().map(|d| d.message.clone()).collect();
    assert!(
        missing
            .iter()
            .all(|m| m.starts_with("environment variable `")),
        "{missing:?}"
    );
    assert!(
        missing.iter().any(|m| m.contains("`CRM_URL`")),
        "{missing:?}"
    );
    let d = errs
        .errors()
        .find(|d| d.message.contains("NOT_SET_1"))
        .unwrap();
    assert_eq!(d.key_path, "sources[0].verify.secrets[0]");
    assert_eq!(missing.len(), 12, "{missing:?}");

    let Loaded { config, warnings } = load_with(yaml, true, &none).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(
        config.sources[0].verify.secrets[0].expose(),
        b"${NOT_SET_1}"
    );
    assert_eq!(config.server.listen.to_string(), "0.0.0.0:8080");
    let TargetKind::Http(h) = &config.targets[0].kind else {
        panic!()
    };
    assert_eq!(h.secret.as_ref().unwrap().expose(), b"${CRM_SECRET}");
    assert_eq!(h.headers[0].1.to_str().unwrap(), "Bearer ${TOKEN}");
    let TargetKind::Slack(s) = &config.targets[1].kind else {
        panic!()
    };
    assert_eq!(s.webhook_url.expose(), "${SLACK_URL}");
}

#[test]
fn warnings_are_returned() {
    let yaml = "version: 1
sources: [{ name: s, path: /in, verify: { secrets: [short-secret, '${CRM_WEBHOOK_SECRET}'] } }]
targets:
  used: { kind: log }
  idle: { kind: log }
routes: [{ name: r, match: { companyId: x }, targets: [used] }]
";
    let Loaded { warnings, .. } = loaded(yaml);
    let got: Vec<_> = warnings
        .iter()
        .map(|w| {
            (
                w.severity,
                w.line,
                w.column,
                w.key_path.as_str(),
                w.message.as_str(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                Severity::Warning,
                2,
                53,
                "sources[0].verify.secrets[0]",
                "verify secret is shorter than 16 bytes"
            ),
            (
                Severity::Warning,
                5,
                3,
                "targets.idle",
                "target `idle` is not used by any route"
            ),
            (
                Severity::Warning,
                6,
                30,
                "routes[0].match.companyId",
                "`companyId` is not a field of an OutRival event"
            ),
        ]
    );
    assert_eq!(
        warnings[2].help.as_deref(),
        Some("did you mean `companionId`?")
    );
    assert!(
        warnings
            .iter()
            .all(|w| !w.to_string().contains("short-secret"))
    );
}

#[test]
fn json_sources_do_not_warn_on_match_keys() {
    let yaml = "version: 1
sources: [{ name: s, path: /in, schema: json, verify: { scheme: none } }]
targets: { t: { kind: log } }
routes: [{ name: r, match: { anything.goes: 1 }, targets: [t] }]
";
    assert!(loaded(yaml).warnings.is_empty());
}

#[test]
fn slack_blocks_and_templates() {
    let yaml = with_target(
        "{ kind: slack, webhook_url: 'https://hooks.slack.com/x', blocks: [{ type: section, text: { type: mrkdwn, text: '*{{ type }}*' }, n: 1, ok: true, none: null }] }",
    );
    let config = loaded(&yaml).config;
    let TargetKind::Slack(s) = &config.targets[0].kind else {
        panic!()
    };
    let blocks = s.blocks.as_ref().unwrap();
    let payload = json!({"type": "VOICE"});
    let vars = crate::templates::DeliveryVars {
        event_id: "e",
        delivery_id: "d",
        route: "r",
        target: "t",
        source: "s",
        received_at: "now",
        attempt: 1,
    };
    // No `text` in the file: the built-in text, with end-user text escaped.
    let event = json!({"event": "status-changed", "type": "SMS", "companionId": "c<!channel>",
        "data": {"status": "ended", "endedReason": "customer-ended-call"}});
    assert_eq!(
        config.templates.render(s.text, &event, &vars).unwrap(),
        "status-changed SMS chat c&lt;!channel&gt;: status ended, reason customer-ended-call"
    );
    assert_eq!(
        config.templates.render(s.text, &json!({}), &vars).unwrap(),
        "event  chat -: status -, reason -"
    );
    let rendered = config
        .templates
        .render_json(blocks, &payload, &vars)
        .unwrap();
    assert_eq!(
        rendered,
        json!([{"type": "section", "text": {"type": "mrkdwn", "text": "*VOICE*"}, "n": 1, "ok": true, "none": null}])
    );
}

#[test]
fn http_template_body_and_email_html() {
    let yaml = format!(
        "{HEAD}targets:
  h: {{ kind: http, url: 'https://x.example', body: template, template: '{{{{ data | tojson }}}}', content_type: text/plain, signature: {{ header: X-Sig }}, headers: {{ X-Api-Key: k }} }}
  e: {{ kind: email, smtp: {{ host: m, username: u, password: p }}, from: a@b.c, to: [a@b.c, 'B <b@c.d>'], subject: s, body: b, html: '<b>{{{{ companionId }}}}</b>' }}
unmatched: [h, e]
"
    );
    let config = loaded(&yaml).config;
    let TargetKind::Http(h) = &config.targets[0].kind else {
        panic!()
    };
    assert!(matches!(h.body, BodyMode::Template(_)));
    assert_eq!(h.content_type.to_str().unwrap(), "text/plain");
    assert_eq!(h.signature.header.as_str(), "x-sig");
    assert_eq!(h.headers[0].0.as_str(), "x-api-key");
    let TargetKind::Email(e) = &config.targets[1].kind else {
        panic!()
    };
    assert!(e.html.is_some());
    assert_eq!(e.to.len(), 2);
}

#[test]
fn literal_dollar_brace_is_escaped() {
    let yaml = with_target(
        "{ kind: slack, webhook_url: 'https://hooks.slack.com/x', text: 'costs $${{ amount }}' }",
    );
    let config = loaded(&yaml).config;
    let TargetKind::Slack(s) = &config.targets[0].kind else {
        panic!()
    };
    let vars = crate::templates::DeliveryVars {
        event_id: "e",
        delivery_id: "d",
        route: "r",
        target: "t",
        source: "s",
        received_at: "now",
        attempt: 1,
    };
    let out = config
        .templates
        .render(s.text, &json!({"amount": 5}), &vars)
        .unwrap();
    assert_eq!(out, "costs $5");
}

#[test]
fn conditions_that_can_never_hold_are_warned_about() {
    let yaml = "version: 1
sources: [{ name: s, path: /in, schema: json, verify: { scheme: none } }]
targets: { t: { kind: log } }
routes:
  - { name: a, match: { x: { exists: false, prefix: p } }, targets: [t] }
  - { name: b, match: { x: { exists: false, not: [1] } }, targets: [t] }
  - { name: c, match: { x: { regex: '^a', gte: 1 } }, targets: [t] }
  - { name: d, match: { x: { gt: 5, lt: 3 } }, targets: [t] }
  - { name: e, match: { x: { gte: 3, lte: 3 } }, targets: [t] }
  - { name: f, match: { x: { gt: 3, lte: 3 } }, targets: [t] }
  - { name: g, match: { x: { in: [] } }, targets: [t] }
  - { name: h, match: { x: { not: [] } }, targets: [t] }
";
    let Loaded { warnings, .. } = loaded(yaml);
    let got: Vec<(&str, &str)> = warnings
        .iter()
        .map(|w| (w.key_path.as_str(), w.message.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (
                "routes[0].match.x",
                "this condition can never hold: `exists: false` with `prefix`, which needs the field to be present"
            ),
            (
                "routes[2].match.x",
                "this condition can never hold: `regex` needs a string and `gte` needs a number"
            ),
            (
                "routes[3].match.x",
                "this condition can never hold: no number is both above 5 and below 3"
            ),
            (
                "routes[5].match.x",
                "this condition can never hold: no number is both above 3 and below 3"
            ),
            ("routes[6].match.x.in", "an empty list never matches"),
        ]
    );
}

#[test]
fn a_zero_max_bytes_is_an_error() {
    let yaml = "version: 1
sources: [{ name: s, path: /in, verify: { scheme: none } }]
queue: { max_bytes: 0 }
";
    let none = |_: &str| None;
    let err = load_with(yaml, false, &none).unwrap_err();
    let d = err.errors().next().unwrap();
    assert_eq!(d.key_path, "queue.max_bytes");
    assert!(d.message.contains("more than 0"), "{}", d.message);
}
