//! Whole-document tests of the loader: DESIGN.md's example, defaults,
//! warnings, environment handling and secrecy. This file holds the shared
//! helpers and DESIGN.md's example; `documents.rs` the other valid documents,
//! `errors.rs` the error cases, `schemes.rs` the signing schemes, and
//! `documented.rs` holds docs/rules.md to the keys the loader accepts.

mod documented;
mod documents;
mod errors;
mod schemes;
mod smtp;

use std::path::Path;
use std::time::Duration;

use http::Method;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::config::model::*;
use crate::config::{ConfigError, Diagnostic, LoadOptions, Loaded, load_bytes};

/// DESIGN.md section 3's example, verbatim.
pub(super) const DESIGN_EXAMPLE: &str = r#"version: 1
server:
  listen: 0.0.0.0:8080
  max_body_bytes: 10485760        # default 10 MiB, as in the provider's own example
  read_timeout: 30s               # headers and body must arrive within it, else 408 (slowloris)
  max_connections: 10000          # beyond it new connections wait in the accept queue
  max_inflight_bytes: 256MiB      # request bodies held in memory at once, all connections together
  shutdown_timeout: 10s
admin:
  listen: 127.0.0.1:9090          # /healthz /readyz /metrics /admin/*
  token: ${HOOKGATE_ADMIN_TOKEN:-} # when non-empty, /admin/* needs "Authorization: Bearer <token>"
                                  # on a non-loopback listen with no token, /admin/* answers 403
                                  # admin_token_required (probes and /metrics stay open)
queue:
  backend: sqlite                 # default, embedded; `redis` for several replicas (section 9)
  path: ./hookgate-data/queue.db  # relative to the working directory (a ConfigMap mount is read-only)
  retention: 24h                  # delivered records kept for inspection
  max_pending: 10000000           # non-terminal deliveries; above it ingress answers 503 (nothing lost)
  max_bytes: 8GiB                 # stored bodies of non-terminal deliveries; above it 503 too
dedupe:
  window: 10m                     # same source + same body within the window: accepted once; 0s turns it off
                                  # (key = source + webhook-id for standard-webhooks sources, + x-github-delivery
                                  #  for github sources, else source + sha256(raw body))
defaults:                         # apply to every target unless it overrides them
  timeout: 10s
  retry:                          # the default: the Standard Webhooks / Svix schedule, 8 attempts over ~28 h
    schedule: [5s, 5m, 30m, 2h, 5h, 10h, 10h]   # delays after attempt 1, 2, ...: N delays = N+1 attempts
    jitter: true                  # +-20% on each delay
    retry_on: [408, 425, 429, "500-599"]        # shown at its default; connect errors and timeouts always retry
  # or exponential (exclusive with schedule once merged; max_attempts counts the first attempt):
  # retry: { max_attempts: 12, initial_delay: 1s, max_delay: 1h, multiplier: 2, jitter: true }
  circuit_breaker: { failures: 5, cooldown: 30s }
sources:
  - name: outrival
    path: /webhooks/outrival
    verify:
      scheme: outrival            # outrival | github (x-hub-signature-256: sha256=<hex>) |
                                  # standard-webhooks (webhook-id/-timestamp/-signature, 5 min tolerance
                                  # past or future) | none
      secrets: ["${OUTRIVAL_WEBHOOK_SECRET}", "${OUTRIVAL_WEBHOOK_SECRET_OLD:-}"]  # empty entries dropped; any one may match (rotation)
    schema: outrival              # outrival (section 1) | json (any JSON object)
    strict: false
    rate_limit: { per_second: 500, burst: 1000 }   # optional; checked after verification, over it: 429 + Retry-After
targets:
  crm:
    kind: http
    enabled: true                 # every target; a disabled target is skipped by routes, not an error
    url: https://crm.example.com/hooks/outrival
    method: POST
    secret: ${CRM_WEBHOOK_SECRET}  # re-sign (the UTF-8 bytes of the string); omitted: no signature header
    signature: { scheme: outrival, header: x-signature }  # or scheme: standard-webhooks
    headers: { authorization: "Bearer ${CRM_TOKEN}" }
    body: original                # original (byte-exact) | template
    template: null                # with body: template, a template whose output is the body
    content_type: application/json   # a templated JSON body that does not parse is a render_error
    timeout: 5s
    rate_limit: { per_second: 20, burst: 40 }
    concurrency: 8                # max requests in flight to this target
    retry: { max_attempts: 8 }    # merged over defaults.retry
  ops-slack:
    kind: slack
    webhook_url: ${SLACK_WEBHOOK_URL}
    text: "{{ type }} chat {{ companionId }} is {{ data.status }} ({{ data.endedReason | default('-') | slack_escape }})"
    blocks: null                  # optional: YAML structure whose strings are templates, sent as Slack blocks
    rate_limit: { per_second: 1, burst: 1 }   # the default for slack targets: Slack's own limit
  support-email:
    kind: email
    smtp: { host: smtp.example.com, port: 587, tls: starttls, username: hookgate, password: "${SMTP_PASSWORD}", timeout: 30s }
                                  # tls: none | starttls | tls; username/password optional
    from: "hookgate <hookgate@example.com>"
    to: [support@example.com]
    subject: "Call {{ companionId }} ended: {{ data.endedReason }}"
    body: "..."                   # template, text/plain; optional html: template (HTML-autoescaped; |safe opts out)
  audit:
    kind: log                     # one JSON line per delivery, to stdout or `path:`
routes:
  - name: ended-calls
    match: { event: status-changed, type: [VOICE, SMS], status: ended }
    targets: [crm, ops-slack]
  - name: failed-calls
    match: { status: ended, data.endedReason: { in: [error, pipeline-error] } }
    targets: [support-email]
  - name: function-calls
    match: { event: function-call }
    targets: [crm]
    stop: true
unmatched: [audit]                # targets for events that no route matched; default none
                                  # (a target named only here still counts as used)
"#;

/// A valid document head: version and one unverified source (2 lines).
pub(super) const HEAD: &str =
    "version: 1\nsources: [{ name: s, path: /in, verify: { scheme: none } }]\n";

pub(super) fn design_env(name: &str) -> Option<String> {
    let v = match name {
        "OUTRIVAL_WEBHOOK_SECRET" => "whsec-outrival-0123456789abcdef",
        "CRM_WEBHOOK_SECRET" => "crm-secret-0123456789abcdef",
        "CRM_TOKEN" => "crm-token-value",
        "SLACK_WEBHOOK_URL" => "https://hooks.slack.com/services/T000/B000/XXXXSECRET",
        "SMTP_PASSWORD" => "smtp-password-value",
        "INJECT" => "a: [1, 2]\nb: {c: d}",
        "CONC" => "4",
        "FLAG" => "false",
        _ => return None,
    };
    Some(v.to_owned())
}

pub(super) fn load_with(
    yaml: &str,
    allow_missing_env: bool,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Loaded, ConfigError> {
    let options = LoadOptions {
        allow_missing_env,
        lookup,
    };
    load_bytes(Path::new("rules.yaml"), yaml.as_bytes(), &options)
}

pub(super) fn load(yaml: &str) -> Result<Loaded, ConfigError> {
    load_with(yaml, false, &design_env)
}

pub(super) fn loaded(yaml: &str) -> Loaded {
    match load(yaml) {
        Ok(l) => l,
        Err(e) => panic!("expected a valid config, got:\n{e}"),
    }
}

pub(super) fn errors(yaml: &str) -> Vec<Diagnostic> {
    match load(yaml) {
        Ok(_) => panic!("expected errors for:\n{yaml}"),
        Err(e) => e.errors().cloned().collect(),
    }
}

/// A document with one target `t` (written in flow style on line 4) used by one route.
pub(super) fn with_target(body: &str) -> String {
    format!("{HEAD}targets:\n  t: {body}\nroutes: [{{ name: r, match: {{}}, targets: [t] }}]\n")
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[test]
fn design_example_loads() {
    let Loaded { config, warnings } = loaded(DESIGN_EXAMPLE);
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(config.file, Path::new("rules.yaml"));
    assert_eq!(
        config.version,
        hex::encode(Sha256::digest(DESIGN_EXAMPLE.as_bytes()))
    );
    assert_eq!(config.version.len(), 64);

    assert_eq!(config.server.listen.to_string(), "0.0.0.0:8080");
    assert_eq!(config.server.max_body_bytes, 10_485_760);
    assert_eq!(config.server.read_timeout, secs(30));
    assert_eq!(config.server.max_connections, 10_000);
    assert_eq!(config.server.shutdown_timeout, secs(10));
    assert_eq!(config.admin.listen.to_string(), "127.0.0.1:9090");
    assert!(config.admin.token.is_none());
    match &config.queue.backend {
        QueueBackend::Sqlite { path } => assert_eq!(path, Path::new("./hookgate-data/queue.db")),
        other => panic!("{other:?}"),
    }
    assert_eq!(config.queue.retention, secs(24 * 3600));
    assert_eq!(config.queue.max_pending, 10_000_000);
    assert_eq!(config.queue.max_bytes, 8 << 30);
    assert_eq!(config.dedupe.window, secs(600));

    assert_eq!(config.sources.len(), 1);
    let s = &config.sources[0];
    assert_eq!(
        (s.name.as_str(), s.path.as_str()),
        ("outrival", "/webhooks/outrival")
    );
    assert_eq!(s.verify.scheme, VerifyScheme::Outrival);
    assert_eq!(s.verify.secrets.len(), 1, "the empty OLD secret is dropped");
    assert_eq!(
        s.verify.secrets[0].expose(),
        b"whsec-outrival-0123456789abcdef"
    );
    assert_eq!(s.schema, Schema::Outrival);
    assert!(!s.strict);
    assert_eq!(
        s.rate_limit,
        Some(RateLimit {
            per_second: 500,
            burst: 1000
        })
    );

    let names: Vec<_> = config.targets.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["crm", "ops-slack", "support-email", "audit"]);

    let crm = config.target_by_name("crm").unwrap();
    assert!(crm.enabled);
    assert_eq!(crm.timeout, secs(5));
    assert_eq!(
        crm.rate_limit,
        Some(RateLimit {
            per_second: 20,
            burst: 40
        })
    );
    assert_eq!(crm.concurrency, 8);
    assert_eq!(
        crm.retry.backoff,
        Backoff::Schedule {
            delays: [5, 300, 1800, 7200, 18000, 36000, 36000].map(secs).to_vec(),
            max_attempts: 8,
        }
    );
    assert!(crm.retry.jitter);
    assert_eq!(
        crm.circuit_breaker,
        CircuitBreaker {
            failures: 5,
            cooldown: secs(30)
        }
    );
    let TargetKind::Http(http) = &crm.kind else {
        panic!("{:?}", crm.kind)
    };
    assert_eq!(http.url.as_str(), "https://crm.example.com/hooks/outrival");
    assert_eq!(http.method, Method::POST);
    assert_eq!(
        http.secret.as_ref().unwrap().expose(),
        b"crm-secret-0123456789abcdef"
    );
    assert_eq!(http.signature.scheme, SignatureScheme::Outrival);
    assert_eq!(http.signature.header.as_str(), "x-signature");
    assert_eq!(http.headers.len(), 1);
    assert_eq!(http.headers[0].0.as_str(), "authorization");
    assert_eq!(
        http.headers[0].1.to_str().unwrap(),
        "Bearer crm-token-value"
    );
    assert!(matches!(http.body, BodyMode::Original));
    assert_eq!(http.content_type.to_str().unwrap(), "application/json");

    let slack = config.target_by_name("ops-slack").unwrap();
    assert_eq!(
        slack.rate_limit,
        Some(RateLimit {
            per_second: 1,
            burst: 1
        })
    );
    let TargetKind::Slack(sl) = &slack.kind else {
        panic!("{:?}", slack.kind)
    };
    assert_eq!(
        sl.webhook_url.expose(),
        "https://hooks.slack.com/services/T000/B000/XXXXSECRET"
    );
    assert!(sl.blocks.is_none());

    let email = config.target_by_name("support-email").unwrap();
    let TargetKind::Email(em) = &email.kind else {
        panic!("{:?}", email.kind)
    };
    assert_eq!(em.smtp.host, "smtp.example.com");
    assert_eq!(em.smtp.port, 587);
    assert_eq!(em.smtp.tls, SmtpTls::Starttls);
    assert_eq!(em.smtp.username.as_deref(), Some("hookgate"));
    assert_eq!(
        em.smtp.password.as_ref().unwrap().expose(),
        "smtp-password-value"
    );
    assert_eq!(em.smtp.timeout, secs(30));
    assert_eq!(em.from.to_string(), "hookgate <hookgate@example.com>");
    assert_eq!(em.to.len(), 1);
    assert_eq!(em.to[0].email.to_string(), "support@example.com");
    assert!(em.html.is_none());

    let audit = config.target_by_name("audit").unwrap();
    assert!(matches!(
        &audit.kind,
        TargetKind::Log(LogTarget { path: None })
    ));
    assert_eq!(audit.rate_limit, None);

    let routes: Vec<_> = config
        .routes
        .iter()
        .map(|r| (r.name.as_str(), r.stop))
        .collect();
    assert_eq!(
        routes,
        [
            ("ended-calls", false),
            ("failed-calls", false),
            ("function-calls", true)
        ]
    );
    assert_eq!(config.routes[0].targets, [TargetId(0), TargetId(1)]);
    assert_eq!(config.routes[1].targets, [TargetId(2)]);
    let Condition::All(m) = &config.routes[0].condition else {
        panic!()
    };
    let summary: Vec<_> = m
        .iter()
        .map(|f| (f.key.as_str(), f.path.join(".")))
        .collect();
    assert_eq!(
        summary,
        [
            ("event", "event".into()),
            ("type", "type".into()),
            ("status", "data.status".to_owned())
        ]
    );
    assert!(
        matches!(&m[1].tests[..], [FieldTest::OneOf(v)] if *v == [json!("VOICE"), json!("SMS")])
    );
    let Condition::All(m) = &config.routes[1].condition else {
        panic!()
    };
    assert_eq!(m[1].path, ["data", "endedReason"]);
    assert!(
        matches!(&m[1].tests[..], [FieldTest::OneOf(v)] if *v == [json!("error"), json!("pipeline-error")])
    );
    assert_eq!(config.unmatched, [TargetId(3)]);
}

#[test]
fn rotation_secret_is_kept_when_set() {
    let lookup = |name: &str| match name {
        "OUTRIVAL_WEBHOOK_SECRET_OLD" => Some("old-secret-0123456789abcdef".to_owned()),
        "HOOKGATE_ADMIN_TOKEN" => Some("admin-token".to_owned()),
        other => design_env(other),
    };
    let config = load_with(DESIGN_EXAMPLE, false, &lookup).unwrap().config;
    assert_eq!(config.sources[0].verify.secrets.len(), 2);
    assert_eq!(config.admin.token.as_ref().unwrap().expose(), "admin-token");
}
