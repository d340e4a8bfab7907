//! Reprocessing a route while `smt run` runs:
//!
//! | request | does |
//! |---|---|
//! | `POST /routes/{name}/rewind?to=earliest\|latest\|<offset>` | moves every partition of the route assigned to this process there |
//! | `POST /routes/{name}/rewind?time=<RFC 3339 or ms>` | to the first record at or after that time |
//!
//! The source pauses the partitions, lets their batches in flight finish,
//! seeks, commits the new offsets and resumes. Answers: 200 with the moves,
//! 400 a target that does not parse, 404 no such route, 409 no partition of
//! the route assigned here, 422 an offset out of a partition's range
//! (nothing moved), 502 Kafka refused, 503 the consumer is not running.
//! The guard's token rule applies (a write); every request writes an audit
//! line (`action="rewind"`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde_json::json;

use super::transforms::{query_param, Json};
use crate::config::TopicMatcher;
use crate::offsets::{MoveError, Target};
use crate::source::Rewind;

/// What the route routes need.
#[derive(Clone)]
pub struct RoutesApi {
    /// Every route: name and topics.
    pub routes: Arc<Vec<(String, TopicMatcher)>>,
    /// To the consumer thread.
    pub rewinds: std::sync::mpsc::Sender<Rewind>,
    /// How long a rewind may take (the batches in flight finish first).
    pub timeout: Duration,
}

pub fn router(api: RoutesApi) -> Router {
    Router::new()
        .route("/routes/{name}/rewind", post(rewind))
        .with_state(api)
}

fn answer(status: StatusCode, body: serde_json::Value) -> Response {
    (status, Json(body)).into_response()
}

/// The target of the query string: `to=…` or `time=…`, exactly one.
fn target(query: &str) -> Result<Target, String> {
    let to = query_param(query, "to")?;
    let time = query_param(query, "time")?;
    match (to, time) {
        (Some(t), None) => Target::parse_offset(&t),
        (None, Some(t)) => Target::parse_time(&t),
        _ => Err("give exactly one of `to=earliest|latest|<offset>` or `time=<RFC 3339 or ms since the epoch>`".into()),
    }
}

async fn rewind(
    State(api): State<RoutesApi>,
    ConnectInfo(caller): ConnectInfo<SocketAddr>,
    Path(name): Path<String>,
    uri: axum::http::Uri,
) -> Response {
    let query = uri.query().unwrap_or("").to_owned();
    let audit = |outcome: &str, detail: &str| {
        tracing::info!(
            target: "smt::audit",
            action = "rewind",
            route = %name,
            caller = %caller,
            query = %query,
            outcome,
            detail,
            "Admin change."
        );
    };
    let Some((_, matcher)) = api.routes.iter().find(|(n, _)| *n == name) else {
        let names: Vec<&str> = api.routes.iter().map(|(n, _)| n.as_str()).collect();
        let e = MoveError::UnknownRoute(name.clone(), names.join(", "));
        audit("refused", &e.to_string());
        return answer(StatusCode::NOT_FOUND, json!({"error": e.to_string()}));
    };
    let target = match target(&query) {
        Ok(t) => t,
        Err(e) => {
            audit("refused", &e);
            return answer(StatusCode::BAD_REQUEST, json!({"error": e}));
        }
    };
    let (reply, answer_rx) = tokio::sync::oneshot::channel();
    let sent = api.rewinds.send(Rewind {
        route: name.clone(),
        matcher: matcher.clone(),
        target,
        reply,
    });
    let result = match sent {
        Ok(()) => tokio::time::timeout(api.timeout, answer_rx).await,
        Err(_) => {
            audit("refused", "the consumer is not running");
            return answer(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"error": "the consumer is not running"}),
            );
        }
    };
    match result {
        Ok(Ok(Ok(moves))) => {
            audit("rewound", "");
            answer(
                StatusCode::OK,
                json!({"outcome": "rewound", "route": name.clone(), "moves": moves}),
            )
        }
        Ok(Ok(Err(e))) => {
            audit("refused", &e.to_string());
            let status = match e {
                MoveError::UnknownRoute(..) => StatusCode::NOT_FOUND,
                MoveError::OutOfRange(_) => StatusCode::UNPROCESSABLE_ENTITY,
                MoveError::Conflict(_) => StatusCode::CONFLICT,
                MoveError::Kafka(_) => StatusCode::BAD_GATEWAY,
            };
            answer(status, json!({"error": e.to_string()}))
        }
        Ok(Err(_)) | Err(_) => {
            audit("unknown", "no answer from the consumer");
            answer(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"error": format!("the consumer did not answer within {} s (stopping?)", api.timeout.as_secs())}),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_is_one_of_to_or_time() {
        assert_eq!(target("to=earliest"), Ok(Target::Earliest));
        assert_eq!(target("to=12"), Ok(Target::Offset(12)));
        assert_eq!(
            target("time=2023-11-14T22%3A13%3A20Z"),
            Ok(Target::Time(1_700_000_000_000))
        );
        assert!(target("").is_err());
        assert!(target("to=1&time=2").is_err());
        assert!(target("to=-5").is_err());
    }
}
