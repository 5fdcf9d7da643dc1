//! The web UI, embedded in the binary from `web/` (no JavaScript toolchain: edit the files
//! and rebuild). The page carries the session token for the UI's mutations.

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::AppState;

const INDEX_HTML: &str = include_str!("../../web/index.html");
const TOKEN_PLACEHOLDER: &str = "__TILTRS_TOKEN__";

/// The UI's own files, with their content types.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/app.js"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("../../web/app.css"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_str!("../../web/favicon.svg"),
    ),
];

/// Scripts and styles only from this origin; no framing.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' data:; \
     style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'";

/// The page, with the token in place (the token is hex, so it needs no escaping).
pub(super) fn index_html(token: &str) -> String {
    INDEX_HTML.replace(TOKEN_PLACEHOLDER, token)
}

fn with_headers(mut response: Response, content_type: &'static str) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    response
}

pub(super) async fn index(State(shared): State<AppState>) -> Response {
    with_headers(
        shared.index_html.clone().into_response(),
        "text/html; charset=utf-8",
    )
}

pub(super) async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, content_type, body)) => with_headers(body.into_response(), content_type),
        None => super::error_reply(StatusCode::NOT_FOUND, format!("no asset {file:?}")),
    }
}
