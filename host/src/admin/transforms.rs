//! Transform management over the admin endpoint (docs/hot-swap.md):
//!
//! | request | does |
//! |---|---|
//! | `GET /transforms` | every transform: active version, previous version, last rejection |
//! | `GET /transforms/{name}` | one of them |
//! | `PUT /transforms/{name}[?config=<url-encoded JSON>]` | body: the `.wasm`; validates and activates it |
//! | `PUT /transforms/{name}/config` | body: the JSON config; same module, new config |
//! | `POST /transforms/{name}/rollback` | the previous version becomes active again |
//!
//! A rejected version answers 422 with `{"outcome":"rejected","stage",…,"reason"}`.
//! Who may call these routes is decided before they run, by `admin::guard`.
//! Every deploy, config change and rollback, accepted or not, writes an
//! audit line (target `smt::audit`) with the caller's address and the hash
//! of the module concerned.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use serde_json::{json, Value};

use crate::registry::{unix_ms, Trigger, Version};
use crate::swap::{SwapError, Swapped, Swapper};

/// What the transform routes need.
#[derive(Clone)]
pub struct Api {
    pub swapper: Arc<Swapper>,
    /// Largest module accepted, in bytes.
    pub max_module_bytes: usize,
}

/// The transform routes, with their state applied.
pub fn router(api: Api) -> Router {
    let limit = api.max_module_bytes;
    Router::new()
        .route("/transforms", get(list))
        .route("/transforms/{name}", get(show).put(upload))
        .route("/transforms/{name}/config", put(set_config))
        .route("/transforms/{name}/rollback", post(rollback))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(api)
}

/// Writes the audit line of one management request.
fn audit(
    action: &str,
    name: &str,
    caller: SocketAddr,
    hash: &str,
    result: Result<&Swapped, &SwapError>,
) {
    let (outcome, detail) = match result {
        Ok(s) => (s.outcome, String::new()),
        Err(SwapError::Rejected(r)) => ("rejected", format!("{}: {}", r.stage, r.reason)),
        Err(e) => ("refused", e.to_string()),
    };
    tracing::info!(
        target: "smt::audit",
        action,
        transform = name,
        caller = %caller,
        module_sha256 = hash,
        outcome,
        detail = %detail,
        "Admin change."
    );
}

pub(super) fn version_json(v: &Version) -> Value {
    let m = &v.active.module;
    json!({
        "version": m.version(),
        "contract": m.contract_version(),
        "hash": m.hash(),
        "source": m.source(),
        "trigger": v.trigger,
        "restored": v.restored,
        "generation": v.active.generation,
        "loaded_at_ms": unix_ms(m.loaded_at()),
        "activated_at_ms": unix_ms(v.activated_at),
        "config": serde_json::from_str::<Value>(&v.active.config).unwrap_or(Value::Null),
    })
}

fn transform_json(api: &Api, name: &str) -> Option<Value> {
    let (active, previous, rejection) = api.swapper.registry().status(name)?;
    Some(json!({
        "name": name,
        "active": version_json(&active),
        "previous": previous.as_ref().map(version_json),
        "last_rejection": rejection,
        "recent_samples": api.swapper.registry().recent(name).len(),
    }))
}

async fn list(State(api): State<Api>) -> Response {
    let all: Vec<Value> = api
        .swapper
        .registry()
        .names()
        .iter()
        .filter_map(|n| transform_json(&api, n))
        .collect();
    Json(json!({ "transforms": all })).into_response()
}

async fn show(State(api): State<Api>, Path(name): Path<String>) -> Response {
    match transform_json(&api, &name) {
        Some(v) => Json(v).into_response(),
        None => error(SwapError::Unknown(name)),
    }
}

async fn upload(
    State(api): State<Api>,
    ConnectInfo(caller): ConnectInfo<SocketAddr>,
    Path(name): Path<String>,
    uri: axum::http::Uri,
    body: Bytes,
) -> Response {
    let hash = crate::engine::content_hash(&body);
    let config = match query_param(uri.query().unwrap_or(""), "config") {
        Ok(c) => c,
        Err(e) => {
            let refused = SwapError::BadRequest(e);
            audit("deploy", &name, caller, &hash, Err(&refused));
            return error(refused);
        }
    };
    let swapper = api.swapper.clone();
    blocking(move || {
        let result = swapper.deploy(&name, &body, config, Trigger::Api, "admin API");
        audit("deploy", &name, caller, &hash, result.as_ref());
        result
    })
    .await
}

/// The full hash of the active module of `name` (empty if there is none).
fn active_hash(api: &Api, name: &str) -> String {
    api.swapper
        .registry()
        .active(name)
        .map(|a| a.module.hash().to_owned())
        .unwrap_or_default()
}

async fn set_config(
    State(api): State<Api>,
    ConnectInfo(caller): ConnectInfo<SocketAddr>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let config = match String::from_utf8(body.to_vec()) {
        Ok(c) => c,
        Err(_) => {
            let refused = SwapError::BadRequest("the config is not UTF-8 text".into());
            audit(
                "config",
                &name,
                caller,
                &active_hash(&api, &name),
                Err(&refused),
            );
            return error(refused);
        }
    };
    let swapper = api.swapper.clone();
    blocking(move || {
        let result = swapper.set_config(&name, config);
        audit(
            "config",
            &name,
            caller,
            &active_hash(&api, &name),
            result.as_ref(),
        );
        result
    })
    .await
}

async fn rollback(
    State(api): State<Api>,
    ConnectInfo(caller): ConnectInfo<SocketAddr>,
    Path(name): Path<String>,
) -> Response {
    let swapper = api.swapper.clone();
    blocking(move || {
        let result = swapper.rollback(&name);
        // After a rollback the active module is the one rolled back to.
        audit(
            "rollback",
            &name,
            caller,
            &active_hash(&api, &name),
            result.as_ref(),
        );
        result
    })
    .await
}

/// Runs a swap (compiles, runs the guest) off the async threads.
async fn blocking(f: impl FnOnce() -> Result<Swapped, SwapError> + Send + 'static) -> Response {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(swapped)) => Json(swapped).into_response(),
        Ok(Err(e)) => error(e),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"error": format!("the swap panicked: {e}")})),
        )
            .into_response(),
    }
}

fn error(e: SwapError) -> Response {
    let (status, body) = match &e {
        SwapError::Unknown(_) => (StatusCode::NOT_FOUND, json!({"error": e.to_string()})),
        SwapError::BadRequest(_) => (StatusCode::BAD_REQUEST, json!({"error": e.to_string()})),
        SwapError::NoPrevious(_) => (StatusCode::CONFLICT, json!({"error": e.to_string()})),
        SwapError::Rejected(r) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({
                "outcome": "rejected",
                "transform": r.transform,
                "version": r.version,
                "stage": r.stage,
                "reason": r.reason,
            }),
        ),
    };
    (status, Json(body)).into_response()
}

/// The value of `key` in a URL query string, percent-decoded.
pub(super) fn query_param(query: &str, key: &str) -> Result<Option<String>, String> {
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if k == key {
            return percent_decode(v).map(Some);
        }
    }
    Ok(None)
}

fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok());
                let byte = hex
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| "bad percent-encoding in the query string".to_owned())?;
                out.push(byte);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| "the query string is not UTF-8".to_owned())
}

/// A JSON response body (axum's `json` feature is not enabled).
pub(super) struct Json<T>(pub T);

impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        match serde_json::to_vec(&self.0) {
            Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
            Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_config_parameter() {
        assert_eq!(
            query_param("a=1&config=%7B%22v%22%3A+2%7D", "config")
                .unwrap()
                .as_deref(),
            Some(r#"{"v": 2}"#)
        );
        assert_eq!(query_param("a=1", "config").unwrap(), None);
        assert!(query_param("config=%zz", "config").is_err());
    }
}
