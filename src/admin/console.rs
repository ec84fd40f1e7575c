//! The operator console: `GET /ui/` and its assets, on the admin listener.
//!
//! A single page (`console/index.html`, `app.js`, `style.css`) compiled into
//! the binary with `include_str!`, so a sidecar with no internet and a build
//! with no Node toolchain both get it. The page holds no data of its own: it
//! signs in with the admin token (kept in `sessionStorage`, sent as a bearer
//! header) and reads and acts only through the `/admin/*` API, so it is
//! exactly as guarded as that API. The assets themselves are not secret and
//! are served without the token, which is what lets the sign-in form load.
//!
//! Every answer carries a Content-Security-Policy that allows nothing but
//! this origin's own script, style and `fetch`: the page cannot load or send
//! anything elsewhere, even if a stored event smuggled markup into it.

use http::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION};
use http::{HeaderValue, StatusCode};
use warp::Filter;
use warp::reply::Response;

/// One embedded file.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static str,
}

/// Everything under `/ui/`. `""` is the page itself.
const ASSETS: &[Asset] = &[
    Asset {
        path: "",
        content_type: "text/html; charset=utf-8",
        body: include_str!("console/index.html"),
    },
    Asset {
        path: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("console/app.js"),
    },
    Asset {
        path: "style.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("console/style.css"),
    },
    Asset {
        path: "api.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("console/api.js"),
    },
    Asset {
        path: "dom.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("console/dom.js"),
    },
    Asset {
        path: "views/overview.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("console/views/overview.js"),
    },
    Asset {
        path: "views/deliveries.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("console/views/deliveries.js"),
    },
    Asset {
        path: "views/delivery.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("console/views/delivery.js"),
    },
    Asset {
        path: "views/actions.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("console/views/actions.js"),
    },
    Asset {
        path: "views/config.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("console/views/config.js"),
    },
    Asset {
        path: "views/try.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("console/views/try.js"),
    },
];

/// Only this origin's script, style and `fetch`; no frames, forms or plugins.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

/// `GET /ui` (redirected to `/ui/`), `GET /ui/` and `GET /ui/<asset>`.
pub fn filter() -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone + Send + Sync
{
    warp::path("ui")
        .and(warp::get())
        .and(warp::path::full())
        .map(
            |full: warp::path::FullPath| match full.as_str().strip_prefix("/ui/") {
                Some(asset) => serve(asset),
                // `/ui` itself: relative asset names need the trailing slash.
                None => {
                    let mut r = Response::new(Default::default());
                    *r.status_mut() = StatusCode::PERMANENT_REDIRECT;
                    r.headers_mut()
                        .insert(LOCATION, HeaderValue::from_static("/ui/"));
                    r
                }
            },
        )
}

fn serve(path: &str) -> Response {
    let Some(asset) = ASSETS.iter().find(|a| a.path == path) else {
        return crate::error_body::error_response(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such console file",
        );
    };
    let mut r = Response::new(asset.body.into());
    let headers = r.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    // Small files that change with the binary: always revalidate.
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("content-security-policy", HeaderValue::from_static(CSP));
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_the_page_names_is_embedded() {
        let page = ASSETS[0].body;
        for asset in &ASSETS[1..] {
            assert!(
                page.contains(&format!("\"{}\"", asset.path)),
                "index.html does not load {}",
                asset.path
            );
        }
    }

    #[test]
    fn the_page_loads_nothing_from_elsewhere() {
        for asset in ASSETS {
            for scheme in ["http://", "https://", "//cdn", "@import"] {
                assert!(
                    !asset.body.contains(scheme),
                    "{} mentions {scheme}",
                    if asset.path.is_empty() {
                        "index.html"
                    } else {
                        asset.path
                    }
                );
            }
        }
    }
}
