//! `smt run`: creates everything the pipeline needs (transforms, admin
//! endpoint, hot swap, sink, DLQ, source), runs it until shutdown or failure,
//! and says how it ended. The composition root: the one module that knows
//! every other.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::admin;
use crate::board::Board;
use crate::config::{Config, TopicMatcher};
use crate::decode::Decoder;
use crate::dlq::Dlq;
use crate::engine::{Engine, EngineMetrics, NamespacePolicy};
use crate::pipeline::{self, Shared};
use crate::registry::Registry;
use crate::sink::Sink;
use crate::source::{Acks, Source};
use crate::status::Sampler;
use crate::swap;
use crate::telemetry::{Metrics, Status};

/// How long startup waits for Kafka and MongoDB before giving up.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(15);

/// How `run` ended.
#[derive(Debug)]
pub enum Outcome {
    /// Shut down on request; everything acknowledged is committed.
    Stopped,
    /// Stopped by a record under `on-error = "fail"` or an error that cannot be retried.
    Failed(String),
}

/// Everything `run` needs that is created before the first record: a failure
/// here is a startup error (the message names the setting).
pub struct Prepared {
    config: Config,
    engine: Engine,
    registry: Arc<Registry>,
    metrics: Arc<Metrics>,
    status: Arc<Status>,
}

/// Loads and initialises every transform.
pub fn prepare(config: Config) -> anyhow::Result<Prepared> {
    let metrics = Arc::new(Metrics::new());
    let engine_metrics = EngineMetrics {
        log_lines_dropped: metrics.guest_log_lines_dropped.clone(),
    };
    let engine = Engine::with_metrics(&config.engine, engine_metrics)
        .context("cannot start the Wasm engine ([engine])")?
        .with_namespace_policy(NamespacePolicy::new(
            &config.mongodb.database,
            &config.mongodb.allowed_namespaces,
        ));
    let registry = Arc::new(Registry::with_recent_capacity(
        config.hot_swap.recent_samples,
    ));
    // From the config file, or the versions saved in `hot-swap.state-dir`.
    swap::persist::load_transforms(&config, &engine, &registry)?;
    Ok(Prepared {
        config,
        engine,
        registry,
        metrics,
        status: Arc::new(Status::default()),
    })
}

impl Prepared {
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }
}

/// Runs the pipeline until `shutdown` is cancelled or it fails. `Err` is a
/// startup error (Kafka or MongoDB unreachable, the admin address taken…).
pub async fn run(prepared: Prepared, shutdown: CancellationToken) -> anyhow::Result<Outcome> {
    let Prepared {
        config,
        engine,
        registry,
        metrics,
        status,
    } = prepared;
    let admin_stop = CancellationToken::new();
    // Hot swap (file watch + admin routes); stops with the admin endpoint.
    let swapper = swap::start(
        &config,
        engine,
        registry.clone(),
        metrics.clone(),
        admin_stop.clone(),
    )?;
    // Live rewinds: from the admin endpoint to the consumer thread.
    let (rewind_tx, rewind_rx) = std::sync::mpsc::channel();
    // The status report: offsets, rates, stalls, the catch-up progress log.
    let board = Arc::new(Board::new(config.status.recent_errors));
    let sampler = Arc::new(Sampler::new(
        &config,
        board.clone(),
        metrics.clone(),
        status.clone(),
    )?);
    tokio::spawn(sampler.clone().run(admin_stop.clone()));
    let admin_task = if config.admin.enabled {
        let transforms = admin::transforms::Api {
            swapper,
            max_module_bytes: config.hot_swap.max_module_mib << 20,
        };
        let report = admin::status::StatusApi {
            sampler,
            transforms: Some(transforms.clone()),
        };
        let mut routes = Vec::new();
        for (r, name) in config.routes.iter().zip(config.route_names()) {
            routes.push((name, TopicMatcher::new(r)?));
        }
        let rewinds = admin::routes::RoutesApi {
            routes: Arc::new(routes),
            rewinds: rewind_tx,
            timeout: Duration::from_millis(config.pipeline.shutdown_timeout_ms)
                + Duration::from_secs(30),
        };
        Some(
            admin::serve(
                &config.admin,
                metrics.clone(),
                status.clone(),
                Some(transforms),
                Some(report),
                Some(rewinds),
                admin_stop.clone(),
            )
            .await?,
        )
    } else {
        None
    };

    let sink = Arc::new(Sink::connect(&config, metrics.clone(), STARTUP_TIMEOUT).await?);
    let dlq = match Dlq::new(&config, metrics.clone())? {
        Some(d) => {
            let d = Arc::new(d);
            let check = d.clone();
            let brokers = config.kafka.brokers.clone();
            tokio::task::spawn_blocking(move || check.check(&brokers, STARTUP_TIMEOUT)).await??;
            Some(d)
        }
        None => None,
    };

    let decoder = Arc::new(Decoder::new(&config, metrics.clone())?);
    let acks = Arc::new(Acks::default());
    let shared = Arc::new(Shared::new(
        &config.routes,
        registry,
        sink,
        dlq.clone(),
        decoder,
        metrics.clone(),
        acks.clone(),
        config.pipeline.clone(),
        shutdown.clone(),
        status.clone(),
        board.clone(),
    )?);
    let spawner = pipeline::spawner(shared.clone());

    let source = {
        let config = config.clone();
        let metrics = metrics.clone();
        tokio::task::spawn_blocking(move || {
            Source::connect(
                &config,
                spawner,
                acks,
                metrics,
                board,
                rewind_rx,
                STARTUP_TIMEOUT,
            )
        })
        .await??
    };
    status.ready.store(true, Ordering::Relaxed);
    tracing::info!("Running.");

    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let poll_shutdown = shutdown.clone();
    std::thread::Builder::new()
        .name("smt-consumer".into())
        .spawn(move || {
            let _ = done_tx.send(source.run(poll_shutdown));
        })
        .context("spawning the consumer thread")?;
    match done_rx.await {
        Ok(Ok(())) => {}
        Ok(Err(kafka)) => shared.fail(kafka),
        Err(_) => shared.fail("the Kafka consumer thread panicked (see the log above)".into()),
    }
    status.ready.store(false, Ordering::Relaxed);
    if let Some(d) = &dlq {
        let d = d.clone();
        let _ = tokio::task::spawn_blocking(move || d.flush(Duration::from_secs(10))).await;
    }
    admin_stop.cancel();
    if let Some(t) = admin_task {
        let _ = t.await;
    }
    Ok(match shared.take_fatal() {
        Some(m) => Outcome::Failed(m),
        None => Outcome::Stopped,
    })
}
