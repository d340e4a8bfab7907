//! The admin HTTP endpoint: `/metrics` (Prometheus text), `/health`
//! (the process runs and the pipeline has not failed), `/ready` (consuming:
//! MongoDB reached, subscribed to Kafka, no partition stalled), the
//! transform management routes of [`transforms`] (hot swap), the status
//! report and page of [`status`], and the live rewind of [`routes`]. Every request passes [`guard`]
//! first (Host, Origin, token).

pub mod guard;
pub mod routes;
pub mod status;
pub mod transforms;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio_util::sync::CancellationToken;

use crate::config::AdminConfig;
use crate::telemetry::{Metrics, Status};

#[derive(Clone)]
struct AppState {
    metrics: Arc<Metrics>,
    status: Arc<Status>,
}

/// Binds `admin.listen` (a clear error when it cannot) and serves until `shutdown`.
pub async fn serve(
    admin: &AdminConfig,
    metrics: Arc<Metrics>,
    status: Arc<Status>,
    transforms: Option<transforms::Api>,
    report: Option<status::StatusApi>,
    rewinds: Option<routes::RoutesApi>,
    shutdown: CancellationToken,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let listen = admin.listen;
    let guard = guard::Guard::new(admin, metrics.clone());
    let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| {
        anyhow::anyhow!("cannot listen on the admin address {listen} (admin.listen): {e}")
    })?;
    let bound = listener.local_addr()?;
    tracing::info!(address = %bound, "Admin endpoint listening.");
    let mut app = Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .with_state(AppState { metrics, status });
    if let Some(api) = transforms {
        app = app.merge(transforms::router(api));
    }
    if let Some(api) = report {
        app = app.merge(status::router(api));
    }
    if let Some(api) = rewinds {
        app = app.merge(routes::router(api));
    }
    // On every route, matched or not: a refused request learns nothing.
    let app = app.layer(axum::middleware::from_fn_with_state(guard, guard::enforce));
    Ok(tokio::spawn(async move {
        // The caller's address goes into the audit lines.
        let result = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, "The admin endpoint stopped.");
        }
    }))
}

async fn metrics_handler(State(s): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.encode(),
    )
}

async fn health(State(s): State<AppState>) -> impl IntoResponse {
    if s.status.failed.load(Ordering::Relaxed) {
        (StatusCode::SERVICE_UNAVAILABLE, "failed\n")
    } else {
        (StatusCode::OK, "ok\n")
    }
}

async fn ready(State(s): State<AppState>) -> impl IntoResponse {
    if !s.status.ready.load(Ordering::Relaxed) || s.status.failed.load(Ordering::Relaxed) {
        return (StatusCode::SERVICE_UNAVAILABLE, "not ready\n".to_owned());
    }
    let stalled = s
        .status
        .stalled
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    if stalled.is_empty() {
        (StatusCode::OK, "ready\n".to_owned())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("stalled: {}\n", stalled.join("; ")),
        )
    }
}
