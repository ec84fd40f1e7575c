//! `kind: http` targets: URL, method, re-signing, extra headers and body.
//!
//! The URL and header values may hold credentials (userinfo, query, tokens),
//! so no message here ever shows them.

use http::{HeaderName, HeaderValue, Method};

use super::super::super::model::{BodyMode, HttpTarget, SignatureConfig, SignatureScheme};
use super::super::super::node::Node;
use super::super::super::secret::SigningKey;
use super::super::ctx::{Ctx, Fields, Pos, Problem, child};
use super::super::keys::{KeyFormat, signing_key};
use super::not_a_template;
use crate::templates::Escape;

pub(super) const KEYS: &[&str] = &[
    "url",
    "method",
    "secret",
    "signature",
    "headers",
    "body",
    "template",
    "content_type",
];
pub(super) const SIGNATURE_KEYS: &[&str] = &["scheme", "header"];

/// The headers of a Standard Webhooks signature. They must match the
/// `ID_HEADER`, `TIMESTAMP_HEADER` and `SIGNATURE_HEADER` constants of
/// `signing::standard_webhooks`: a copy, because `config` and `signing` are
/// leaves that never import each other (DESIGN.md section 11).
const STANDARD_WEBHOOKS_HEADERS: [&str; 3] =
    ["webhook-id", "webhook-timestamp", "webhook-signature"];

/// Headers hookgate sets itself; `headers` may not set them.
const RESERVED_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "host",
    "transfer-encoding",
    "connection",
    "user-agent",
];

pub(super) fn http(cx: &mut Ctx<'_>, f: &Fields<'_>) -> Option<HttpTarget> {
    let url = f.req(cx, "url", |cx, n, p| target_url(cx, n, p, "url"));
    let method = f
        .opt(cx, "method", |cx, n, p| {
            cx.parse(n, p, |s| {
                Method::from_bytes(s.trim().to_ascii_uppercase().as_bytes())
                    .map_err(|_| Problem::new(format!("invalid HTTP method `{s}`")))
            })
        })
        .unwrap_or(Method::POST);
    let signature = match f.get("signature") {
        Some(n) => signature(cx, n, &f.path("signature")),
        None => Some(default_signature()),
    };
    let secret = secret(cx, f, signature.as_ref().map(|s| s.scheme));
    let headers = match f.get("headers") {
        Some(n) => {
            let reserved = signature_headers(signature.as_ref().unwrap_or(&default_signature()));
            headers(cx, n, &f.path("headers"), &reserved)
        }
        None => Some(Vec::new()),
    };
    let body = body(cx, f);
    let content_type = f
        .opt(cx, "content_type", |cx, n, p| {
            cx.parse(n, p, |s| {
                HeaderValue::from_str(s)
                    .map_err(|_| Problem::new(format!("invalid content type `{s}`")))
            })
        })
        .unwrap_or(HeaderValue::from_static("application/json"));
    Some(HttpTarget {
        url: url?,
        method,
        secret: secret?,
        signature: signature?,
        headers: headers?,
        body: body?,
        content_type,
    })
}

/// An `http`/`https` URL, never shown in messages.
pub(super) fn target_url(
    cx: &mut Ctx<'_>,
    node: &Node,
    path: &str,
    key: &str,
) -> Option<reqwest::Url> {
    cx.parse_or_standin(
        node,
        path,
        |s| {
            if let Some(problem) = not_a_template(s, key) {
                return Err(problem);
            }
            match reqwest::Url::parse(s) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.has_host() => Ok(u),
                Ok(_) => Err(Problem::new(format!(
                    "`{key}` must be an http:// or https:// URL"
                ))),
                Err(e) => Err(Problem::new(format!(
                    "invalid URL in `{key}`: {e} (value not shown: it may hold credentials)"
                ))),
            }
        },
        || reqwest::Url::parse("http://unresolved.invalid/").ok(),
    )
}

fn default_signature() -> SignatureConfig {
    SignatureConfig {
        scheme: SignatureScheme::Outrival,
        header: HeaderName::from_static("x-signature"),
    }
}

fn signature(cx: &mut Ctx<'_>, node: &Node, path: &str) -> Option<SignatureConfig> {
    let f = cx.fields(node, path, SIGNATURE_KEYS)?;
    let scheme = match f.get("scheme") {
        Some(n) => match cx.choice(n, &f.path("scheme"), &["outrival", "standard-webhooks"])? {
            "standard-webhooks" => SignatureScheme::StandardWebhooks,
            _ => SignatureScheme::Outrival,
        },
        None => SignatureScheme::Outrival,
    };
    let header = match (f.get("header"), scheme) {
        (Some(n), SignatureScheme::Outrival) => header_name(cx, n, &f.path("header"))?,
        (Some(_), SignatureScheme::StandardWebhooks) => {
            let at: Pos = f.entry("header").map_or(node.into(), |(k, _)| k.into());
            cx.error_help(
                at,
                &f.path("header"),
                "`header` is only used with `scheme: outrival`",
                "remove `header`: standard-webhooks always sends `webhook-id`, \
                 `webhook-timestamp` and `webhook-signature`",
            );
            return None;
        }
        (None, _) => default_signature().header,
    };
    Some(SignatureConfig { scheme, header })
}

/// `secret`: the re-signing key, in the form the scheme wants. Outer `None`:
/// an error was reported; inner `None`: no signature.
fn secret(
    cx: &mut Ctx<'_>,
    f: &Fields<'_>,
    scheme: Option<SignatureScheme>,
) -> Option<Option<SigningKey>> {
    let path = f.path("secret");
    let text = match f.get("secret") {
        Some(n) => Some((n, cx.text(n, &path)?)),
        None => None,
    };
    let text = text.filter(|(_, t)| !t.value.is_empty());
    match (scheme, text) {
        (Some(SignatureScheme::StandardWebhooks), Some((n, t))) => {
            signing_key(cx, n, &path, &t, KeyFormat::Whsec).map(Some)
        }
        (Some(SignatureScheme::StandardWebhooks), None) => {
            // Signing is what the scheme is for: a missing secret is a
            // mistake (an unset variable, usually), not "send unsigned".
            let at: Pos = f.get("secret").map_or(f.node.into(), Pos::from);
            cx.error_help(
                at,
                &path,
                "signature scheme `standard-webhooks` needs a non-empty `secret`",
                "set `secret` to the receiver's `whsec_...` secret, or remove `signature` \
                 to send unsigned requests",
            );
            None
        }
        (_, Some((n, t))) => signing_key(cx, n, &path, &t, KeyFormat::Raw).map(Some),
        (_, None) => Some(None),
    }
}

/// The headers the signature scheme sets, which `headers` may not set.
fn signature_headers(signature: &SignatureConfig) -> Vec<HeaderName> {
    match signature.scheme {
        SignatureScheme::Outrival => vec![signature.header.clone()],
        SignatureScheme::StandardWebhooks => STANDARD_WEBHOOKS_HEADERS
            .into_iter()
            .map(HeaderName::from_static)
            .collect(),
    }
}

fn header_name(cx: &mut Ctx<'_>, node: &Node, path: &str) -> Option<HeaderName> {
    cx.parse(node, path, |s| {
        HeaderName::from_bytes(s.as_bytes())
            .map_err(|_| Problem::new(format!("invalid header name `{s}`")))
    })
}

/// `headers: { name: value }`. Values are secrets: never shown.
fn headers(
    cx: &mut Ctx<'_>,
    node: &Node,
    path: &str,
    signature_headers: &[HeaderName],
) -> Option<Vec<(HeaderName, HeaderValue)>> {
    let map = cx.any_map(node, path)?;
    let mut out = Vec::with_capacity(map.entries.len());
    let mut ok = true;
    for (key, value) in map.entries {
        let p = child(path, &key.name);
        let name = match HeaderName::from_bytes(key.name.as_bytes()) {
            Ok(n) => n,
            Err(_) => {
                cx.error(key, &p, format!("invalid header name `{}`", key.name));
                ok = false;
                continue;
            }
        };
        let lower = name.as_str();
        if RESERVED_HEADERS.contains(&lower)
            || lower.starts_with("x-hookgate-")
            || signature_headers.contains(&name)
        {
            let help = if lower == "content-type" {
                "use `content_type` instead"
            } else {
                "hookgate sets this header itself"
            };
            cx.error_help(
                key,
                &p,
                format!("header `{lower}` cannot be set in `headers`"),
                help,
            );
            ok = false;
            continue;
        }
        let Some(text) = cx.text(value, &p) else {
            ok = false;
            continue;
        };
        match HeaderValue::from_str(&text.value) {
            Ok(mut v) => {
                v.set_sensitive(true);
                out.push((name, v));
            }
            Err(_) => {
                cx.error(
                    value,
                    &p,
                    format!(
                        "invalid value for header `{lower}` (value not shown): \
                         only visible ASCII, spaces and tabs are allowed"
                    ),
                );
                ok = false;
            }
        }
    }
    ok.then_some(out)
}

/// `body: original | template`, with `template` when templated.
fn body(cx: &mut Ctx<'_>, f: &Fields<'_>) -> Option<BodyMode> {
    let mode = f.opt(cx, "body", |cx, n, p| {
        cx.choice(n, p, &["original", "template"])
    });
    if f.has("body") && mode.is_none() {
        return None;
    }
    match mode.unwrap_or("original") {
        "template" => {
            let t = f.req(cx, "template", |cx, n, p| cx.template(n, p, Escape::None))?;
            Some(BodyMode::Template(t))
        }
        _ => {
            if let Some((k, _)) = f.entry("template").filter(|_| f.has("template")) {
                cx.error_help(
                    k,
                    &f.path("template"),
                    "`template` is only used with `body: template`",
                    "add `body: template`, or remove `template`",
                );
                return None;
            }
            Some(BodyMode::Original)
        }
    }
}
