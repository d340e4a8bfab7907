//! The worker of one partition: batches its records in order, runs them
//! through the active version of the route's transform, writes the batch as
//! one bulk write, applies the error policy to failed records, and
//! acknowledges the batch's offsets.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::policy::{self, Breaker, RecordFailure, Verdict};
use super::Shared;
use crate::config::ErrorPolicy;
use crate::contract::Message;
use crate::dlq;
use crate::engine::{CallError, TransformInstance};
use crate::registry::Active;
use crate::retry::GiveUp;
use crate::telemetry::Metrics;
use crate::writeop::WriteOp;

/// How a batch ended when it did not complete.
enum Stop {
    /// Revoked or shutting down mid-batch: nothing of it is acknowledged.
    Stopped,
    /// The pipeline must stop; `ack` is the offset up to which it is done.
    Fatal { ack: Option<i64>, message: String },
}

pub(super) async fn run(
    shared: Arc<Shared>,
    (topic, partition): (String, i32),
    generation: u64,
    mut rx: mpsc::Receiver<Message>,
    stop: CancellationToken,
) {
    let Some(super::RouteOf {
        transform,
        policy,
        write_lock,
        formats,
    }) = shared.route(&topic)
    else {
        tracing::error!(
            topic,
            "No route for a consumed topic; its records are not processed."
        );
        return;
    };
    tracing::debug!(topic, partition, transform, "Partition worker started.");
    let mut instance: Option<(u64, TransformInstance)> = None;
    let max = shared.pipeline.max_batch_size;
    let linger = Duration::from_millis(shared.pipeline.linger_ms);
    let mut breaker = Breaker::new(
        shared.pipeline.breaker_percent,
        shared.pipeline.breaker_window,
    );
    loop {
        let Some(batch) = collect(&mut rx, &stop, max, linger).await else {
            break;
        };
        let started = Instant::now();
        let size = batch.len();
        let route = (transform.as_str(), policy, write_lock.as_deref(), formats);
        match process(&shared, route, &mut instance, &mut breaker, batch, &stop).await {
            Ok(next) => {
                if !shared.acks.ack(&topic, partition, generation, next) {
                    // The partition was given up meanwhile: this worker is stale.
                    break;
                }
                shared.board.progress(&topic, partition, next);
                shared.board.batch(&topic, size, started.elapsed());
                shared
                    .metrics
                    .batch_duration
                    .observe(started.elapsed().as_secs_f64());
                shared.metrics.batch_size.observe(size as f64);
                shared
                    .metrics
                    .records_processed
                    .get_or_create(&Metrics::topic(&topic))
                    .inc_by(size as u64);
            }
            Err(Stop::Stopped) => break,
            Err(Stop::Fatal { ack, message }) => {
                if let Some(next) = ack {
                    shared.acks.ack(&topic, partition, generation, next);
                }
                shared.fail(message);
                break;
            }
        }
    }
    tracing::debug!(topic, partition, "Partition worker stopped.");
}

/// Waits for a first record, then takes more until `max` or `linger`.
/// `None` when stopped or the queue closed with nothing pending.
async fn collect(
    rx: &mut mpsc::Receiver<Message>,
    stop: &CancellationToken,
    max: usize,
    linger: Duration,
) -> Option<Vec<Message>> {
    let first = tokio::select! {
        biased;
        _ = stop.cancelled() => return None,
        m = rx.recv() => m?,
    };
    let mut batch = Vec::with_capacity(max.min(1024));
    batch.push(first);
    let deadline = tokio::time::Instant::now() + linger;
    while batch.len() < max {
        match rx.try_recv() {
            Ok(m) => {
                batch.push(m);
                continue;
            }
            Err(mpsc::error::TryRecvError::Disconnected) => break,
            Err(mpsc::error::TryRecvError::Empty) => {}
        }
        tokio::select! {
            biased;
            _ = stop.cancelled() => return None,
            m = rx.recv() => match m {
                Some(m) => batch.push(m),
                None => break,
            },
            _ = tokio::time::sleep_until(deadline) => break,
        }
    }
    if stop.is_cancelled() {
        return None;
    }
    Some(batch)
}

/// The records of one batch transformed by one version of the transform.
struct Transformed {
    version: String,
    results: Vec<Result<Vec<WriteOp>, CallError>>,
    batch: Vec<Message>,
}

/// Runs `batch` through the active version of `transform` (one version for
/// the whole batch), on a blocking thread, keeping the instance in `slot`.
async fn transform_batch(
    shared: &Arc<Shared>,
    (transform, formats): (&str, crate::decode::Formats),
    slot: &mut Option<(u64, TransformInstance)>,
    batch: Vec<Message>,
    stop: &CancellationToken,
) -> Result<Transformed, Stop> {
    let active: Active = shared
        .registry
        .active(transform)
        .ok_or_else(|| Stop::Fatal {
            ack: None,
            message: format!("transform `{transform}` is not registered"),
        })?;
    let version = active.module.version().to_owned();
    let current = match slot.take() {
        Some((generation, inst)) if generation == active.generation => Some(inst),
        _ => None,
    };
    let histogram = shared
        .metrics
        .transform_duration
        .get_or_create(&[
            ("transform", transform.to_owned()),
            ("version", version.clone()),
        ])
        .clone();
    // Keys and values in a schema-registry format, as the JSON converter writes them.
    let inputs = shared
        .decoder
        .batch(formats, &batch, stop)
        .await
        .map_err(|g| match g {
            GiveUp::Stopped => Stop::Stopped,
            GiveUp::Exhausted(m) | GiveUp::Permanent(m) => Stop::Fatal {
                ack: None,
                message: format!(
                    "the schema registry failed after {} retries: {m}",
                    shared.pipeline.max_retries
                ),
            },
        })?;
    let (instance, results, batch, inputs) = tokio::task::spawn_blocking(move || {
        let mut instance = match current {
            Some(i) => i,
            // The first worker after a swap takes the instance validation warmed up.
            None => match active
                .warm
                .take()
                .map(Ok)
                .unwrap_or_else(|| active.module.instantiate(&active.config))
            {
                Ok(i) => i,
                Err(e) => return Err(e.to_string()),
            },
        };
        let decoded: Vec<Result<&Message, CallError>> = batch
            .iter()
            .enumerate()
            .map(|(i, original)| {
                inputs.get(i, original).map_err(|reason| CallError {
                    transform: String::new(),
                    topic: original.topic.clone(),
                    partition: original.partition,
                    offset: original.offset,
                    kind: crate::engine::FailureKind::BadInput,
                    message: reason.to_owned(),
                })
            })
            .collect();
        // A guest of the world `batch-transform` takes the batch in one call.
        let msgs: Vec<&Message> = decoded
            .iter()
            .filter_map(|d| d.as_ref().ok().copied())
            .collect();
        let t = Instant::now();
        let whole = instance.transform_batch(&msgs);
        if whole.is_some() {
            histogram.observe(t.elapsed().as_secs_f64());
        }
        let mut whole = whole.map(Vec::into_iter);
        let results: Vec<Result<Vec<WriteOp>, CallError>> = decoded
            .into_iter()
            .map(|d| {
                let msg = d?;
                if let Some(r) = whole.as_mut().and_then(Iterator::next) {
                    return r;
                }
                let t = Instant::now();
                let mut r = instance.transform(msg);
                // A deadline, a memory cap or an instantiation may not fail
                // again on a fresh instance (the failed one was dropped):
                // one more try before the error policy applies.
                if r.as_ref()
                    .is_err_and(|e| policy::worth_a_second_try(e.kind))
                {
                    r = instance.transform(msg);
                }
                histogram.observe(t.elapsed().as_secs_f64());
                r
            })
            .collect();
        Ok((instance, results, batch, inputs))
    })
    .await
    .map_err(|e| Stop::Fatal {
        ack: None,
        message: format!("a transform worker panicked: {e}"),
    })?
    .map_err(|e| Stop::Fatal {
        ack: None,
        message: format!("cannot instantiate transform `{transform}` version {version}: {e}"),
    })?;
    *slot = Some((active.generation, instance));
    // The version that produced this batch's operations: logged, counted, in DLQ headers.
    tracing::debug!(
        topic = %batch[0].topic,
        partition = batch[0].partition,
        first_offset = batch[0].offset,
        last_offset = batch[batch.len() - 1].offset,
        records = batch.len(),
        transform,
        version,
        generation = active.generation,
        "Batch transformed."
    );
    shared
        .metrics
        .transform_records
        .get_or_create(&[
            ("transform", transform.to_owned()),
            ("version", version.clone()),
        ])
        .inc_by(batch.len() as u64);
    // Validation samples for the next version: records this version handled.
    shared.registry.remember(
        transform,
        results
            .iter()
            .zip(batch.iter().enumerate())
            .filter(|(r, _)| r.is_ok())
            .filter_map(|(_, (i, m))| inputs.get(i, m).ok()),
    );
    Ok(Transformed {
        version,
        results,
        batch,
    })
}

/// One batch: transform, decide what to write, write, apply the policy to
/// the failed records. Returns the next offset to acknowledge.
async fn process(
    shared: &Arc<Shared>,
    (transform, policy, write_lock, formats): (
        &str,
        ErrorPolicy,
        Option<&tokio::sync::Mutex<()>>,
        crate::decode::Formats,
    ),
    slot: &mut Option<(u64, TransformInstance)>,
    breaker: &mut Breaker,
    batch: Vec<Message>,
    stop: &CancellationToken,
) -> Result<i64, Stop> {
    let Transformed {
        version,
        results,
        batch,
    } = transform_batch(shared, (transform, formats), slot, batch, stop).await?;
    let plan = policy::to_write(results, policy);

    // `serial-writes`: no other partition of the route writes meanwhile.
    let _serial = match write_lock {
        Some(lock) => Some(lock.lock().await),
        None => None,
    };
    let write_failures = shared
        .sink
        .write_with(&plan.ops, policy == ErrorPolicy::Fail, stop)
        .await
        .map_err(|g| match g {
            GiveUp::Stopped => Stop::Stopped,
            GiveUp::Exhausted(m) => Stop::Fatal {
                ack: None,
                message: format!(
                    "MongoDB writes of {}/{} from offset {} failed after {} retries: {m}",
                    batch[0].topic,
                    batch[0].partition,
                    batch[0].offset,
                    shared.pipeline.max_retries
                ),
            },
            GiveUp::Permanent(m) => Stop::Fatal {
                ack: None,
                message: format!(
                    "MongoDB refuses the writes of {}/{} from offset {}: {m}",
                    batch[0].topic, batch[0].partition, batch[0].offset
                ),
            },
        })?;
    drop(_serial);
    let verdict = policy::decide(plan.failed, write_failures, policy);
    let offsets: Vec<i64> = batch.iter().map(|m| m.offset).collect();
    let ack = policy::ack_after(&offsets, &verdict);

    let failed = match verdict {
        Verdict::Stop(f) => {
            let msg = &batch[f.record];
            count_error(shared, (transform, &version), policy, msg, &f.failure);
            let message = format!(
                "record {}/{}@{} failed in transform `{transform}` version {version}: {}; stopping (on-error = \"fail\")",
                msg.topic, msg.partition, msg.offset, f.failure
            );
            tracing::error!(topic = %msg.topic, partition = msg.partition, offset = msg.offset, transform, version, kind = f.failure.kind(), error = %f.failure.message(), "A record failed; stopping without committing past it.");
            return Err(Stop::Fatal {
                ack: Some(ack),
                message,
            });
        }
        Verdict::Done { failed } => failed,
    };
    if breaker.trips(batch.len(), failed.len()) {
        // Nothing of this batch is skipped, dead-lettered or acknowledged.
        return Err(Stop::Fatal {
            ack: None,
            message: format!(
                "too many failed records on {}/{} (batch from offset {}): {}; stopping without skipping or dead-lettering them (pipeline.breaker-percent); the last error: {}",
                batch[0].topic,
                batch[0].partition,
                batch[0].offset,
                breaker.describe(),
                failed.last().map(|f| f.failure.to_string()).unwrap_or_default()
            ),
        });
    }
    for f in &failed {
        let msg = &batch[f.record];
        count_error(shared, (transform, &version), policy, msg, &f.failure);
        let (kind, error) = (f.failure.kind(), f.failure.message());
        match policy {
            ErrorPolicy::Fail => unreachable!("`decide` stops at the first failure under fail"),
            ErrorPolicy::Skip => {
                tracing::warn!(topic = %msg.topic, partition = msg.partition, offset = msg.offset, transform, version, kind, error, "A record failed and is skipped.");
                shared
                    .metrics
                    .skipped_records
                    .get_or_create(&Metrics::topic(&msg.topic))
                    .inc();
            }
            ErrorPolicy::Dlq => {
                tracing::warn!(topic = %msg.topic, partition = msg.partition, offset = msg.offset, transform, version, kind, error, "A record failed and goes to the dead-letter topic.");
                let dlq = shared
                    .dlq
                    .as_ref()
                    .expect("validated: a dlq route has a [dlq]");
                let failure = dlq::Failure {
                    transform: transform.to_owned(),
                    version: version.clone(),
                    kind,
                    message: error.to_owned(),
                };
                dlq.send(msg, &failure, stop).await.map_err(|g| match g {
                    GiveUp::Stopped => Stop::Stopped,
                    GiveUp::Exhausted(m) | GiveUp::Permanent(m) => Stop::Fatal {
                        ack: None,
                        message: format!(
                            "producing {}/{}@{} to the dead-letter topic failed: {m}",
                            msg.topic, msg.partition, msg.offset
                        ),
                    },
                })?;
            }
        }
    }
    Ok(ack)
}

fn count_error(
    shared: &Shared,
    (transform, version): (&str, &str),
    policy: ErrorPolicy,
    msg: &Message,
    failure: &RecordFailure,
) {
    shared.board.record_error(crate::board::RecordError {
        at_ms: crate::board::now_ms(),
        topic: msg.topic.clone(),
        partition: msg.partition,
        offset: msg.offset,
        transform: transform.to_owned(),
        version: version.to_owned(),
        kind: failure.kind().to_owned(),
        policy: policy.as_str().to_owned(),
        cause: failure.message().to_owned(),
    });
    shared
        .metrics
        .record_errors
        .get_or_create(&[
            ("transform", transform.to_owned()),
            ("kind", failure.kind().to_owned()),
            ("policy", policy.as_str().to_owned()),
        ])
        .inc();
}
