//! The partition workers and the state they share: which route a topic
//! takes, the sink, the DLQ, acknowledgements, and how the pipeline stops.
//! `app` builds it and starts the workers through [`spawner`].
//!
//! Ordering: one worker per partition, records of a partition in order,
//! partitions concurrently. Delivery: at-least-once; a partition's offset is
//! acknowledged only after every write of the records before it (and every
//! DLQ produce) is acknowledged.

mod policy;
mod worker;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

pub use tokio_util::sync::CancellationToken;

use crate::board::Board;
use crate::config::{ErrorPolicy, PipelineConfig, RouteConfig, TopicMatcher};
use crate::decode::{Decoder, Formats};
use crate::dlq::Dlq;
use crate::registry::Registry;
use crate::sink::Sink;
use crate::source::{Acks, Spawner, WorkerHandle};
use crate::telemetry::{Metrics, Status};

/// State shared by every partition worker.
pub(crate) struct Shared {
    routes: Vec<RouteEntry>,
    registry: Arc<Registry>,
    sink: Arc<Sink>,
    dlq: Option<Arc<Dlq>>,
    /// Key/value decoding before the transform (schema registry formats).
    decoder: Arc<Decoder>,
    metrics: Arc<Metrics>,
    acks: Arc<Acks>,
    pipeline: PipelineConfig,
    shutdown: CancellationToken,
    fatal: Mutex<Option<String>>,
    status: Arc<Status>,
    board: Arc<Board>,
}

struct RouteEntry {
    route: TopicMatcher,
    transform: String,
    policy: ErrorPolicy,
    /// Held while a batch of the route is written (`serial-writes`).
    write_lock: Option<Arc<tokio::sync::Mutex<()>>>,
    formats: Formats,
}

/// What a partition worker needs of its route.
pub(crate) struct RouteOf {
    pub transform: String,
    pub policy: ErrorPolicy,
    pub write_lock: Option<Arc<tokio::sync::Mutex<()>>>,
    /// The key and value formats (`key-format`, `value-format`).
    pub formats: Formats,
}

impl Shared {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        routes: &[RouteConfig],
        registry: Arc<Registry>,
        sink: Arc<Sink>,
        dlq: Option<Arc<Dlq>>,
        decoder: Arc<Decoder>,
        metrics: Arc<Metrics>,
        acks: Arc<Acks>,
        pipeline: PipelineConfig,
        shutdown: CancellationToken,
        status: Arc<Status>,
        board: Arc<Board>,
    ) -> anyhow::Result<Self> {
        let mut entries = Vec::new();
        for r in routes {
            entries.push(RouteEntry {
                route: TopicMatcher::new(r)?,
                transform: r.transform.clone(),
                policy: r.on_error,
                write_lock: r
                    .serial_writes
                    .then(|| Arc::new(tokio::sync::Mutex::new(()))),
                formats: Formats::of(r),
            });
        }
        Ok(Shared {
            routes: entries,
            registry,
            sink,
            dlq,
            decoder,
            metrics,
            acks,
            pipeline,
            shutdown,
            fatal: Mutex::new(None),
            status,
            board,
        })
    }

    /// The route of `topic`: the first one that names it or matches it.
    fn route(&self, topic: &str) -> Option<RouteOf> {
        self.routes
            .iter()
            .find(|r| r.route.matches(topic))
            .map(|r| RouteOf {
                transform: r.transform.clone(),
                policy: r.policy,
                write_lock: r.write_lock.clone(),
                formats: r.formats,
            })
    }

    /// Stops the pipeline with an error (first one wins).
    pub(crate) fn fail(&self, message: String) {
        let mut fatal = self.fatal.lock().expect("fatal lock");
        if fatal.is_none() {
            tracing::error!(error = %message, "The pipeline stops.");
            *fatal = Some(message);
        }
        self.status.failed.store(true, Ordering::Relaxed);
        self.shutdown.cancel();
    }

    /// The error that stopped the pipeline, if one did.
    pub(crate) fn take_fatal(&self) -> Option<String> {
        self.fatal.lock().expect("fatal lock").take()
    }
}

/// Starts a partition's worker; a worker that panics stops the pipeline.
/// The worker runs in a task of its own so that the source can abort it
/// (a revoke timeout) and still learn when it is gone.
pub(crate) fn spawner(shared: Arc<Shared>) -> Spawner {
    Arc::new(move |key, generation, rx, stop| {
        let shared = shared.clone();
        let (topic, partition) = (key.0.clone(), key.1);
        let worker = tokio::spawn(worker::run(shared.clone(), key, generation, rx, stop));
        let abort = worker.abort_handle();
        let task = tokio::spawn(async move {
            match worker.await {
                Err(e) if e.is_panic() => {
                    shared.fail(format!("the worker of {topic}/{partition} panicked: {e}"))
                }
                // Ended, or aborted by the source after a revoke timeout.
                _ => {}
            }
        });
        WorkerHandle { task, abort }
    })
}
