//! The status report and the status page on the admin endpoint:
//!
//! | request | does |
//! |---|---|
//! | `GET /status` | the report of `status::Sampler` plus each route's active and previous transform version |
//! | `GET /` | the status page: static HTML (`page/index.html`), no data of its own |
//! | `GET /status.js` | the page's script (`page/status.js`): reads `/status`, calls the transform routes |
//!
//! `/status` passes the same guard as the transform routes (a token when
//! one is configured): it names versions, records and error causes. The page
//! and its script are part of the binary and hold nothing but code; the
//! page asks for the token and sends it with every request it makes.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::Value;

use super::transforms::{self, version_json, Json};
use crate::status::Sampler;

const PAGE: &str = include_str!("page/index.html");
const SCRIPT: &str = include_str!("page/status.js");

/// Who may run what: the page is served same-origin only, cannot be framed,
/// and loads nothing from elsewhere.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; \
                   connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; \
                   base-uri 'none'; form-action 'none'";

/// What the status routes need.
#[derive(Clone)]
pub struct StatusApi {
    pub sampler: Arc<Sampler>,
    /// The transform routes' state, for the versions (absent: no versions).
    pub transforms: Option<transforms::Api>,
}

pub fn router(api: StatusApi) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/status.js", get(script))
        .route("/status", get(report))
        .with_state(api)
}

fn without_config(mut v: Value) -> Value {
    if let Some(o) = v.as_object_mut() {
        o.remove("config");
    }
    v
}

async fn report(State(api): State<StatusApi>) -> Response {
    let mut report = api.sampler.report();
    if let Some(t) = &api.transforms {
        for r in report.routes.iter_mut() {
            if let Some((active, previous, _)) = t.swapper.registry().status(&r.transform) {
                r.active = Some(without_config(version_json(&active)));
                r.previous = previous.as_ref().map(|p| without_config(version_json(p)));
            }
        }
    }
    Json(report).into_response()
}

fn static_response(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::CACHE_CONTROL, "no-store"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

async fn page() -> Response {
    static_response("text/html; charset=utf-8", PAGE)
}

async fn script() -> Response {
    static_response("text/javascript; charset=utf-8", SCRIPT)
}
