//! `GET /admin/config`: the loaded config as JSON, with every secret redacted.

use serde_json::{Value, json};

use crate::clock::format_rfc3339_ms;
use crate::config::{
    Backoff, BodyMode, Condition, FieldMatch, FieldTest, SignatureScheme, SmtpTls, Target,
    TargetKind, redacted_url,
};
use crate::reload::LastReloadError;
use crate::snapshot::Snapshot;

const REDACTED: &str = "<redacted>";

/// The body of `GET /admin/config`: `snapshot` and the last failed reload
/// (`None` once the file on disk is the running config again).
pub fn render(snapshot: &Snapshot, last_reload_error: Option<&LastReloadError>) -> Value {
    let config = &snapshot.config;
    let sources: Vec<Value> = config
        .sources
        .iter()
        .map(|s| {
            json!({
                "name": s.name,
                "path": s.path,
                "verify": {
                    "scheme": s.verify.scheme.name(),
                    "secrets": vec![REDACTED; s.verify.secrets.len()],
                },
                "schema": format!("{:?}", s.schema).to_lowercase(),
                "strict": s.strict,
            })
        })
        .collect();
    let targets: Vec<Value> = config.targets.iter().map(target).collect();
    let routes: Vec<Value> = config
        .routes
        .iter()
        .map(|r| {
            let (key, cond) = match &r.condition {
                Condition::All(fields) => ("match", fields_json(fields)),
                Condition::Any(maps) => ("any", Value::Array(maps.iter().map(|m| fields_json(m)).collect())),
            };
            json!({
                "name": r.name,
                key: cond,
                "targets": r.targets.iter().map(|&t| config.target(t).name.as_str()).collect::<Vec<_>>(),
                "stop": r.stop,
            })
        })
        .collect();
    json!({
        "version": config.version,
        "file": config.file.display().to_string(),
        "loaded_at": format_rfc3339_ms(snapshot.loaded_at_ms),
        "sources": sources,
        "targets": targets,
        "routes": routes,
        "unmatched": config.unmatched.iter().map(|&t| config.target(t).name.as_str()).collect::<Vec<_>>(),
        "last_reload_error": last_reload_error.map_or(Value::Null, |e| json!({
            "at": format_rfc3339_ms(e.at_ms),
            "message": e.message,
        })),
    })
}

fn target(t: &Target) -> Value {
    let mut v = json!({
        "name": t.name,
        "kind": t.kind_name(),
        "enabled": t.enabled,
        "timeout_ms": t.timeout.as_millis() as u64,
        "concurrency": t.concurrency,
        "rate_limit": t.rate_limit.map(|r| json!({ "per_second": r.per_second, "burst": r.burst })),
        "circuit_breaker": {
            "failures": t.circuit_breaker.failures,
            "cooldown_ms": t.circuit_breaker.cooldown.as_millis() as u64,
        },
        "retry": match &t.retry.backoff {
            Backoff::Schedule { delays, max_attempts } => json!({
                "schedule_ms": delays.iter().map(|d| d.as_millis() as u64).collect::<Vec<_>>(),
                "max_attempts": max_attempts,
                "jitter": t.retry.jitter,
            }),
            Backoff::Exponential { max_attempts, initial_delay, max_delay, multiplier } => json!({
                "max_attempts": max_attempts,
                "initial_delay_ms": initial_delay.as_millis() as u64,
                "max_delay_ms": max_delay.as_millis() as u64,
                "multiplier": multiplier,
                "jitter": t.retry.jitter,
            }),
        },
    });
    let extra = match &t.kind {
        TargetKind::Http(h) => json!({
            "url": redacted_url(&h.url),
            "method": h.method.as_str(),
            "secret": h.secret.as_ref().map(|_| REDACTED),
            "signature_scheme": match h.signature.scheme {
                SignatureScheme::Outrival => "outrival",
                SignatureScheme::StandardWebhooks => "standard-webhooks",
            },
            // standard-webhooks' header names are fixed; only outrival's is configurable.
            "signature_header": match h.signature.scheme {
                SignatureScheme::Outrival => Some(h.signature.header.as_str()),
                SignatureScheme::StandardWebhooks => None,
            },
            "headers": h.headers.iter().map(|(k, _)| (k.as_str().to_owned(), json!(REDACTED))).collect::<serde_json::Map<_, _>>(),
            "body": match h.body { BodyMode::Original => "original", BodyMode::Template(_) => "template" },
        }),
        TargetKind::Slack(_) => json!({ "webhook_url": REDACTED }),
        TargetKind::Email(e) => json!({
            "smtp": {
                "host": e.smtp.host,
                "port": e.smtp.port,
                "tls": match e.smtp.tls { SmtpTls::None => "none", SmtpTls::Starttls => "starttls", SmtpTls::Tls => "tls" },
                "username": e.smtp.username,
                "password": e.smtp.password.as_ref().map(|_| REDACTED),
                "timeout_ms": e.smtp.timeout.as_millis() as u64,
                "ca_file": e.smtp.ca_file.as_ref().map(|p| p.display().to_string()),
            },
            "from": e.from.to_string(),
            "to": e.to.iter().map(ToString::to_string).collect::<Vec<_>>(),
        }),
        TargetKind::Log(l) => json!({ "path": l.path.as_ref().map(|p| p.display().to_string()) }),
    };
    if let (Value::Object(base), Value::Object(more)) = (&mut v, extra) {
        base.extend(more);
    }
    v
}

fn fields_json(fields: &[FieldMatch]) -> Value {
    let mut map = serde_json::Map::new();
    for f in fields {
        let ops: serde_json::Map<String, Value> = f.tests.iter().map(test_json).collect();
        map.insert(f.key.clone(), Value::Object(ops));
    }
    Value::Object(map)
}

fn test_json(t: &FieldTest) -> (String, Value) {
    let (k, v) = match t {
        FieldTest::OneOf(v) => ("in", json!(v)),
        FieldTest::NoneOf(v) => ("not", json!(v)),
        FieldTest::Prefix(s) => ("prefix", json!(s)),
        FieldTest::Suffix(s) => ("suffix", json!(s)),
        FieldTest::Contains(s) => ("contains", json!(s)),
        FieldTest::Regex(r) => ("regex", json!(r.as_str())),
        FieldTest::Exists(b) => ("exists", json!(b)),
        FieldTest::Gt(n) => ("gt", json!(n)),
        FieldTest::Gte(n) => ("gte", json!(n)),
        FieldTest::Lt(n) => ("lt", json!(n)),
        FieldTest::Lte(n) => ("lte", json!(n)),
    };
    (k.to_owned(), v)
}
