//! `sources`: where events come in, and how each is verified.

use std::collections::HashMap;

use super::super::env;
use super::super::model::{Schema, Source, VerifyConfig, VerifyScheme};
use super::super::node::{Node, NodeValue};
use super::ctx::{Ctx, Pos, index};
use super::keys::{KeyFormat, signing_key};
use super::values::{NAME_HELP, is_valid_name, rate_limit};

pub(super) const SOURCE_KEYS: &[&str] =
    &["name", "path", "verify", "schema", "strict", "rate_limit"];
pub(super) const VERIFY_KEYS: &[&str] = &["scheme", "secrets"];
const SCHEMES: &[&str] = &["outrival", "github", "standard-webhooks", "none"];

/// Shorter verify keys get a warning.
const MIN_SECRET_BYTES: usize = 16;

pub(super) fn sources(cx: &mut Ctx<'_>, node: Option<&Node>, root: &Node) -> Vec<Source> {
    let Some(node) = node else {
        cx.error_help(
            root,
            "sources",
            "`sources` is required",
            "add at least one source, e.g. `sources: [{ name: outrival, path: /webhooks/outrival, \
             verify: { scheme: outrival, secrets: [\"${OUTRIVAL_WEBHOOK_SECRET}\"] } }]`",
        );
        return Vec::new();
    };
    let Some(items) = cx.list(node, "sources") else {
        return Vec::new();
    };
    if items.is_empty() {
        cx.error(node, "sources", "at least one source is required");
    }
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut paths: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let path = index("sources", i);
        let Some(f) = cx.fields(item, &path, SOURCE_KEYS) else {
            continue;
        };
        let name = f.req(cx, "name", |cx, n, p| {
            let name = cx.string(n, p)?;
            if !is_valid_name(&name) {
                cx.error_help(n, p, format!("invalid source name `{name}`"), NAME_HELP);
                return None;
            }
            if let Some(first) = names.insert(name.clone(), i) {
                cx.error(
                    n,
                    p,
                    format!("duplicate source name `{name}` (first used by sources[{first}])"),
                );
            }
            Some(name)
        });
        let url_path = f.req(cx, "path", |cx, n, p| {
            let s = cx.string(n, p)?;
            if !s.starts_with('/') {
                cx.error_help(
                    n,
                    p,
                    format!("source path `{s}` must start with `/`"),
                    "e.g. `/webhooks/outrival`",
                );
                return None;
            }
            if s.contains(['?', '#']) || s.contains(char::is_whitespace) {
                cx.error(
                    n,
                    p,
                    format!("source path `{s}` cannot hold `?`, `#` or whitespace"),
                );
                return None;
            }
            if let Some(first) = paths.insert(s.clone(), i) {
                cx.error(
                    n,
                    p,
                    format!("duplicate source path `{s}` (first used by sources[{first}])"),
                );
            }
            Some(s)
        });
        let verify = f.opt(cx, "verify", verify);
        if !f.has("verify") {
            cx.error_help(
                f.node,
                &f.path("verify"),
                "`verify` is required",
                "use `verify: { scheme: outrival, secrets: [...] }`, or `verify: { scheme: none }` \
                 to accept unsigned requests",
            );
        }
        let schema = f
            .opt(cx, "schema", |cx, n, p| {
                cx.choice(n, p, &["outrival", "json"])
            })
            .map_or(Schema::Outrival, |s| match s {
                "json" => Schema::Json,
                _ => Schema::Outrival,
            });
        let strict = f
            .opt(cx, "strict", |cx, n, p| cx.bool(n, p))
            .unwrap_or(false);
        let rate_limit = f.opt(cx, "rate_limit", rate_limit);
        if let (Some(name), Some(path), Some(verify)) = (name, url_path, verify) {
            out.push(Source {
                name,
                path,
                verify,
                schema,
                strict,
                rate_limit,
            });
        }
    }
    out
}

fn verify(cx: &mut Ctx<'_>, node: &Node, path: &str) -> Option<VerifyConfig> {
    let f = cx.fields(node, path, VERIFY_KEYS)?;
    // Absent: `outrival`; present but invalid: `None` (reported).
    let scheme = match f.get("scheme") {
        Some(n) => cx.choice(n, &f.path("scheme"), SCHEMES).map(|s| match s {
            "github" => VerifyScheme::Github,
            "standard-webhooks" => VerifyScheme::StandardWebhooks,
            "none" => VerifyScheme::None,
            _ => VerifyScheme::Outrival,
        }),
        None => Some(VerifyScheme::Outrival),
    };
    let format = match scheme {
        Some(VerifyScheme::StandardWebhooks) => KeyFormat::Whsec,
        _ => KeyFormat::Raw,
    };
    let secrets_path = f.path("secrets");
    let mut secrets = Vec::new();
    let mut vars = Vec::new();
    let mut ok = true;
    let items = match f.get("secrets") {
        Some(n) => cx.list(n, &secrets_path)?,
        None => &[][..],
    };
    for (i, item) in items.iter().enumerate() {
        let p = index(&secrets_path, i);
        if let NodeValue::Str(raw) = &item.value {
            vars.extend(env::referenced_vars(raw));
        }
        let Some(text) = cx.text(item, &p) else {
            ok = false;
            continue;
        };
        if text.value.is_empty() {
            continue; // empty entries are dropped (an unset `${OLD:-}`)
        }
        let Some(key) = signing_key(cx, item, &p, &text, format) else {
            ok = false;
            continue;
        };
        // Measured on the key itself: a `whsec_` secret's string is longer
        // than the key it encodes.
        if text.unresolved.is_empty() && key.expose().len() < MIN_SECRET_BYTES {
            let (message, help) = match format {
                KeyFormat::Raw => (
                    format!("verify secret is shorter than {MIN_SECRET_BYTES} bytes"),
                    "use a long random secret, e.g. `openssl rand -hex 32`",
                ),
                KeyFormat::Whsec => (
                    format!(
                        "verify secret's key is shorter than {MIN_SECRET_BYTES} bytes once decoded"
                    ),
                    "use a key of 24 to 64 random bytes, as the Standard Webhooks spec advises",
                ),
            };
            cx.warn_help(item, &p, message, help);
        }
        secrets.push(key);
    }
    let scheme = scheme?;
    if scheme == VerifyScheme::None {
        if !items.is_empty() {
            let at: Pos = f.get("secrets").map_or(node.into(), Pos::from);
            cx.error_help(
                at,
                &secrets_path,
                "`scheme: none` does not use secrets",
                "remove `secrets`, or choose a verifying scheme",
            );
            return None;
        }
        return Some(VerifyConfig {
            scheme,
            secrets: Vec::new(),
        });
    }
    if ok && secrets.is_empty() {
        let at: Pos = f.get("secrets").map_or(node.into(), Pos::from);
        let help = if !vars.is_empty() {
            let names: Vec<_> = vars.iter().map(|v| format!("`{v}`")).collect();
            format!(
                "set {} to the webhook secret (it is empty or unset)",
                names.join(" or ")
            )
        } else if scheme == VerifyScheme::StandardWebhooks {
            "add the sender's secret, e.g. `secrets: [\"${WEBHOOK_SECRET}\"]` holding `whsec_...`"
                .to_owned()
        } else {
            "add a secret, e.g. `secrets: [\"${OUTRIVAL_WEBHOOK_SECRET}\"]`".to_owned()
        };
        cx.error_help(
            at,
            &secrets_path,
            format!(
                "verify scheme `{}` needs at least one non-empty secret",
                scheme.name()
            ),
            help,
        );
        return None;
    }
    ok.then_some(VerifyConfig { scheme, secrets })
}
