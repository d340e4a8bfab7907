//! `smt run`: wires the source, the transforms, the sink and the DLQ
//! together, and decides how the process ends.
//!
//! Ordering: one worker per partition, records of a partition in order,
//! partitions concurrently. Delivery: at-least-once; a partition's offset is
//! acknowledged only after every write of the records before it (and every
//! DLQ produce) is acknowledged.

pub mod backoff;
mod worker;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use regex::Regex;
pub use tokio_util::sync::CancellationToken;

use crate::admin::{self, Metrics, Status};
use crate::config::{Config, ErrorPolicy, PipelineConfig};
use crate::dlq::Dlq;
use crate::engine::Engine;
use crate::registry::Registry;
use crate::sink::Sink;
use crate::source::{Acks, Source, Spawner};

/// How long startup waits for Kafka and MongoDB before giving up.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(15);

/// State shared by every partition worker.
pub(crate) struct Shared {
    routes: Vec<RouteEntry>,
    registry: Arc<Registry>,
    sink: Arc<Sink>,
    dlq: Option<Arc<Dlq>>,
    metrics: Arc<Metrics>,
    acks: Arc<Acks>,
    pipeline: PipelineConfig,
    shutdown: CancellationToken,
    fatal: Mutex<Option<String>>,
    status: Arc<Status>,
}

enum Route {
    Topics(Vec<String>),
    Pattern(Regex),
}

struct RouteEntry {
    route: Route,
    transform: String,
    policy: ErrorPolicy,
    /// Held while a batch of the route is written (`serial-writes`).
    write_lock: Option<Arc<tokio::sync::Mutex<()>>>,
}

/// What a partition worker needs of its route.
pub(crate) struct RouteOf {
    pub transform: String,
    pub policy: ErrorPolicy,
    pub write_lock: Option<Arc<tokio::sync::Mutex<()>>>,
}

impl Shared {
    /// The route of `topic`: the first one that names it or matches it.
    fn route(&self, topic: &str) -> Option<RouteOf> {
        self.routes
            .iter()
            .find(|r| match &r.route {
                Route::Topics(t) => t.iter().any(|t| t == topic),
                Route::Pattern(p) => p.is_match(topic),
            })
            .map(|r| RouteOf {
                transform: r.transform.clone(),
                policy: r.policy,
                write_lock: r.write_lock.clone(),
            })
    }

    /// Stops the pipeline with an error (first one wins).
    fn fail(&self, message: String) {
        let mut fatal = self.fatal.lock().expect("fatal lock");
        if fatal.is_none() {
            tracing::error!(error = %message, "The pipeline stops.");
            *fatal = Some(message);
        }
        self.status.failed.store(true, Ordering::Relaxed);
        self.shutdown.cancel();
    }
}

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
    let engine = Engine::new(&config.engine).context("cannot start the Wasm engine ([engine])")?;
    let registry = Arc::new(Registry::with_recent_capacity(
        config.hot_swap.recent_samples,
    ));
    for (name, t) in &config.transforms {
        let module = engine
            .load_file(name, &t.module)
            .map_err(|e| anyhow::anyhow!("transforms.{name}.module: {e}"))?;
        let transform_config = config.transform_config_json(name)?;
        module
            .instantiate(&transform_config)
            .map_err(|e| anyhow::anyhow!("transforms.{name}: {e}"))?;
        registry.activate(name, module, transform_config);
    }
    Ok(Prepared {
        config,
        engine,
        registry,
        metrics: Arc::new(Metrics::new()),
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
    let swapper = crate::swap::start(
        &config,
        engine,
        registry.clone(),
        metrics.clone(),
        admin_stop.clone(),
    )?;
    let admin_task = if config.admin.enabled {
        let transforms = admin::transforms::Api {
            swapper,
            token: config.admin.token.as_ref().map(|t| t.expose().into()),
            max_module_bytes: config.hot_swap.max_module_mib << 20,
        };
        Some(
            admin::serve(
                config.admin.listen,
                metrics.clone(),
                status.clone(),
                Some(transforms),
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

    let mut routes = Vec::new();
    for r in &config.routes {
        let route = match &r.topic_pattern {
            Some(p) => Route::Pattern(Regex::new(&format!(
                "^(?:{})$",
                p.trim_start_matches('^').trim_end_matches('$')
            ))?),
            None => Route::Topics(r.topics.clone()),
        };
        routes.push(RouteEntry {
            route,
            transform: r.transform.clone(),
            policy: r.on_error,
            write_lock: r
                .serial_writes
                .then(|| Arc::new(tokio::sync::Mutex::new(()))),
        });
    }
    let acks = Arc::new(Acks::default());
    let shared = Arc::new(Shared {
        routes,
        registry,
        sink,
        dlq: dlq.clone(),
        metrics: metrics.clone(),
        acks: acks.clone(),
        pipeline: config.pipeline.clone(),
        shutdown: shutdown.clone(),
        fatal: Mutex::new(None),
        status: status.clone(),
    });
    let spawn_shared = shared.clone();
    let spawner: Spawner = Arc::new(move |key, rx, stop| {
        let shared = spawn_shared.clone();
        tokio::spawn(async move {
            let (topic, partition) = (key.0.clone(), key.1);
            if let Err(e) = tokio::spawn(worker::run(shared.clone(), key, rx, stop)).await {
                shared.fail(format!("the worker of {topic}/{partition} panicked: {e}"));
            }
        })
    });

    let source = {
        let config = config.clone();
        let metrics = metrics.clone();
        tokio::task::spawn_blocking(move || {
            Source::connect(&config, spawner, acks, metrics, STARTUP_TIMEOUT)
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
            source.run(poll_shutdown);
            let _ = done_tx.send(());
        })
        .context("spawning the consumer thread")?;
    if done_rx.await.is_err() {
        shared.fail("the Kafka consumer thread panicked (see the log above)".into());
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
    let fatal = shared.fatal.lock().expect("fatal lock").take();
    Ok(match fatal {
        Some(m) => Outcome::Failed(m),
        None => Outcome::Stopped,
    })
}
