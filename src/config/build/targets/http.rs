//! `kind: http` targets: URL, method, re-signing, extra headers and body.
//!
//! The URL and header values may hold credentials (userinfo, query, tokens),
//! so no message here ever shows them.

use http::{HeaderName, HeaderValue, Method};

use super::super::super::model::{BodyMode, HttpTarget, SignatureConfig, SignatureScheme};
use super::super::super::node::Node;
use super::super::super::secret::Secret;
use super::super::ctx::{Ctx, Fields, Problem, child};
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
    let secret = f
        .opt(cx, "secret", |cx, n, p| cx.string(n, p))
        .filter(|s| !s.is_empty())
        .map(Secret::new);
    let signature = match f.get("signature") {
        Some(n) => signature(cx, n, &f.path("signature")),
        None => Some(default_signature()),
    };
    let headers = match (f.get("headers"), &signature) {
        (Some(n), Some(sig)) => headers(cx, n, &f.path("headers"), &sig.header),
        (Some(n), None) => headers(cx, n, &f.path("headers"), &default_signature().header),
        (None, _) => Some(Vec::new()),
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
        secret,
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
    let f = cx.fields(node, path, &["scheme", "header"])?;
    let scheme = f.opt(cx, "scheme", |cx, n, p| {
        let s = cx.choice(n, p, &["outrival", "standard-webhooks"])?;
        if s == "standard-webhooks" {
            cx.error_help(
                n,
                p,
                "signature scheme `standard-webhooks` is not supported yet by this build",
                "use `scheme: outrival`",
            );
            return None;
        }
        Some(SignatureScheme::Outrival)
    });
    if f.has("scheme") && scheme.is_none() {
        return None;
    }
    let header = match f.get("header") {
        Some(n) => header_name(cx, n, &f.path("header"))?,
        None => default_signature().header,
    };
    Some(SignatureConfig {
        scheme: SignatureScheme::Outrival,
        header,
    })
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
    signature_header: &HeaderName,
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
            || lower == signature_header.as_str()
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
