//! The Kafka source: one consumer in a consumer group, polled on a thread of
//! its own, dispatching each record to the worker of its partition through a
//! bounded queue. A partition whose queue is full is paused (its records stay
//! in Kafka) and resumed when the worker has caught up, so memory stays
//! bounded whatever the lag.
//!
//! Offsets: librdkafka's auto commit and auto offset store are off. Workers
//! report the next offset of each partition once every write up to it is
//! acknowledged ([`Acks`]); this thread commits those, periodically, before a
//! partition is revoked (after its worker finished the batch in flight), and
//! at shutdown.
//!
//! A live rewind ([`Rewind`], from the admin endpoint) is served by the same
//! thread between polls: the route's partitions are paused, their workers
//! finish the batch in flight (a batch boundary) and stop, the partitions
//! are moved (seek) and the new offsets committed, then they resume with
//! new workers in a new generation.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Headers, Message as _};
use rdkafka::statistics::Statistics;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinHandle};
use tokio_util::sync::CancellationToken;

use crate::board::Board;
use crate::config::{Config, TopicMatcher};
use crate::contract::{Header, Message};
use crate::kafka;
use crate::offsets::{self, Move, MoveError, Target};
use crate::telemetry::Metrics;

/// A live rewind of the partitions of a route that this process owns.
pub struct Rewind {
    /// The route's name (for the log).
    pub route: String,
    /// Its topics.
    pub matcher: TopicMatcher,
    pub target: Target,
    /// The moves done, or why nothing moved.
    pub reply: tokio::sync::oneshot::Sender<Result<Vec<Move>, MoveError>>,
}

/// How long a rewind's Kafka requests (watermarks, seek, commit) may take.
const REWIND_TIMEOUT: Duration = Duration::from_secs(10);

/// (topic, partition)
pub type PartitionKey = (String, i32);

/// Starts the worker of a newly seen partition: it reads the queue until the
/// token is cancelled (finishing the batch in flight) or the queue closes.
/// The `u64` is the partition's assignment generation: the worker's
/// acknowledgements carry it ([`Acks::ack`]).
pub type Spawner = Arc<
    dyn Fn(PartitionKey, u64, mpsc::Receiver<Message>, CancellationToken) -> WorkerHandle
        + Send
        + Sync,
>;

/// A running partition worker.
pub struct WorkerHandle {
    /// Ends once the worker ended, or was aborted and dropped (reaped).
    pub task: JoinHandle<()>,
    /// Aborts the worker itself (at its next await point).
    pub abort: AbortHandle,
}

/// Acknowledged positions: the next offset to consume of each owned
/// partition, once everything before it is written.
///
/// Each time this process takes a partition it gets a new generation; a
/// worker acknowledges with the generation it was started for, so a late
/// acknowledgement of a worker from before a revoke is refused even when
/// the partition came back to this process meanwhile.
#[derive(Default)]
pub struct Acks {
    inner: Mutex<HashMap<PartitionKey, AckEntry>>,
    dirty: AtomicBool,
    generations: std::sync::atomic::AtomicU64,
}

#[derive(Default, Clone, Copy)]
struct AckEntry {
    generation: u64,
    acked: Option<i64>,
    committed: Option<i64>,
}

impl Acks {
    /// Records that everything before `next_offset` is done, for the worker
    /// of `generation`. Returns false (and ignores it) when this process no
    /// longer owns the partition in that generation.
    pub fn ack(&self, topic: &str, partition: i32, generation: u64, next_offset: i64) -> bool {
        let mut map = self.inner.lock().expect("acks lock");
        match map.get_mut(&(topic.to_owned(), partition)) {
            Some(e) if e.generation == generation => {
                if e.acked.is_none_or(|a| next_offset > a) {
                    e.acked = Some(next_offset);
                    self.dirty.store(true, Ordering::Release);
                }
                true
            }
            _ => {
                tracing::warn!(
                    topic,
                    partition,
                    generation,
                    next_offset,
                    "A stale acknowledgement (from before a rebalance) is refused."
                );
                false
            }
        }
    }

    /// Takes `key` (if not owned yet, in a new generation); returns its generation.
    pub fn own(&self, key: &PartitionKey) -> u64 {
        let mut map = self.inner.lock().expect("acks lock");
        map.entry(key.clone())
            .or_insert_with(|| AckEntry {
                generation: self.generations.fetch_add(1, Ordering::Relaxed) + 1,
                ..AckEntry::default()
            })
            .generation
    }

    /// Offsets acked and not yet committed, of `keys` (all when `None`).
    fn pending(&self, keys: Option<&[PartitionKey]>) -> TopicPartitionList {
        let map = self.inner.lock().expect("acks lock");
        let mut tpl = TopicPartitionList::new();
        for ((topic, partition), e) in map.iter() {
            if keys.is_some_and(|k| !k.iter().any(|x| &x.0 == topic && x.1 == *partition)) {
                continue;
            }
            if let Some(a) = e.acked {
                if e.committed != Some(a) {
                    let _ = tpl.add_partition_offset(topic, *partition, Offset::Offset(a));
                }
            }
        }
        tpl
    }

    fn mark_committed(&self, tpl: &TopicPartitionList, ok: bool) {
        let mut map = self.inner.lock().expect("acks lock");
        for el in tpl.elements() {
            if let (Some(e), Offset::Offset(o)) = (
                map.get_mut(&(el.topic().to_owned(), el.partition())),
                el.offset(),
            ) {
                if ok {
                    e.committed = Some(o);
                } else if e.committed == Some(o) {
                    e.committed = None;
                }
            }
        }
    }

    /// Gives up `keys` (all when `None`).
    pub fn disown(&self, keys: Option<&[PartitionKey]>) {
        let mut map = self.inner.lock().expect("acks lock");
        match keys {
            Some(keys) => {
                for k in keys {
                    map.remove(k);
                }
            }
            None => map.clear(),
        }
    }

    /// The acknowledged next offset of a partition (tests, admin).
    pub fn acked(&self, topic: &str, partition: i32) -> Option<i64> {
        self.inner
            .lock()
            .expect("acks lock")
            .get(&(topic.to_owned(), partition))
            .and_then(|e| e.acked)
    }
}

struct Slot {
    tx: mpsc::Sender<Message>,
    consumed: prometheus_client::metrics::counter::Counter,
    stash: VecDeque<Message>,
    paused: bool,
    next_offset: Option<i64>,
    stop: CancellationToken,
    worker: WorkerHandle,
}

/// The consumer's context: rebalance callbacks, commit results, statistics.
pub struct SourceContext {
    rt: tokio::runtime::Handle,
    spawner: Spawner,
    slots: Mutex<HashMap<PartitionKey, Slot>>,
    acks: Arc<Acks>,
    metrics: Arc<Metrics>,
    /// Offsets, pauses and assignments for the status report.
    board: Arc<Board>,
    queue_capacity: usize,
    stop_timeout: Duration,
    any_stash: AtomicBool,
    /// Connection errors, for the startup check (`kafka::wait_for_metadata`).
    errors: kafka::ClientErrors,
    /// A Kafka error retrying cannot get past: the consumer stops.
    fatal: Mutex<Option<String>>,
}

impl ClientContext for SourceContext {
    fn stats(&self, statistics: Statistics) {
        for (topic, t) in &statistics.topics {
            for (partition, p) in &t.partitions {
                if *partition < 0 || !p.desired {
                    continue;
                }
                self.board.watermarks(
                    topic,
                    *partition,
                    p.committed_offset,
                    p.hi_offset,
                    p.consumer_lag,
                );
                if p.consumer_lag < 0 {
                    continue;
                }
                self.metrics
                    .consumer_lag
                    .get_or_create(&[
                        ("topic", topic.clone()),
                        ("partition", partition.to_string()),
                    ])
                    .set(p.consumer_lag);
            }
        }
    }

    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        kafka::log_line(&self.errors, level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.errors.record(&error, reason);
        if is_permanent(&error) {
            self.stop_with(format!("Kafka: {error} ({reason})"));
        } else {
            tracing::warn!(error = %error, reason, "Kafka client error (librdkafka retries by itself).");
        }
    }
}

impl ConsumerContext for SourceContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(tpl) => {
                let keys = keys_of(tpl);
                // A session that timed out (no coordinator answered for
                // session.timeout.ms) has lost the partitions: the group may
                // have given them to another member, and librdkafka refuses
                // or holds a commit until a coordinator answers. Nothing of
                // theirs is committed; the next owner re-processes from the
                // last committed offset (the writes are idempotent).
                let commit = if consumer.assignment_lost() {
                    tracing::warn!(partitions = ?keys, "Partitions lost (the group session timed out): finishing their batches in flight; what was not committed before is processed again by their next owner.");
                    Commit::No
                } else {
                    tracing::info!(partitions = ?keys, "Partitions revoked: finishing their batches in flight and committing.");
                    Commit::Sync
                };
                self.stop_partitions(consumer, Some(&keys), commit);
                tracing::info!(partitions = ?keys, "Partitions given up.");
                self.board.revoked(Some(&keys));
                self.metrics.assigned_partitions.set(0);
            }
            Rebalance::Assign(tpl) => {
                let keys = keys_of(tpl);
                tracing::info!(partitions = ?keys, "Partitions assigned.");
                for k in &keys {
                    self.acks.own(k);
                }
                self.board.assigned(&keys);
                self.metrics.assigned_partitions.set(keys.len() as i64);
            }
            Rebalance::Error(e) => tracing::warn!(error = %e, "Rebalance error."),
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            // librdkafka keeps an application pause across a revoke and a
            // new assignment of the same partition; its new worker starts
            // with an empty queue and would never see a record. Every
            // assigned partition starts resumed.
            if tpl.count() > 0 {
                if let Err(e) = consumer.resume(tpl) {
                    tracing::warn!(error = %e, "Resuming the assigned partitions failed.");
                }
            }
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        match result {
            Ok(()) => {
                self.metrics
                    .commits
                    .get_or_create(&[("outcome", "ok".into())])
                    .inc();
            }
            Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            Err(e) => {
                self.metrics
                    .commits
                    .get_or_create(&[("outcome", "error".into())])
                    .inc();
                tracing::warn!(error = %e, "Committing offsets failed; they are committed again later.");
                self.acks.mark_committed(offsets, false);
                // Commit again at the next interval, even without new acknowledgements.
                self.acks.dirty.store(true, Ordering::Release);
            }
        }
    }
}

impl SourceContext {
    /// Stops consuming because of `message` (first one wins).
    fn stop_with(&self, message: String) {
        let mut fatal = self.fatal.lock().expect("fatal lock");
        if fatal.is_none() {
            tracing::error!(error = %message, "A Kafka error that retrying cannot fix; stopping.");
            *fatal = Some(message);
        }
    }

    fn slot_for<'a>(
        &self,
        slots: &'a mut HashMap<PartitionKey, Slot>,
        key: &PartitionKey,
    ) -> &'a mut Slot {
        slots.entry(key.clone()).or_insert_with(|| {
            let generation = self.acks.own(key);
            let (tx, rx) = mpsc::channel(self.queue_capacity);
            let stop = CancellationToken::new();
            let _guard = self.rt.enter();
            let worker = (self.spawner)(key.clone(), generation, rx, stop.clone());
            Slot {
                tx,
                consumed: self
                    .metrics
                    .records_consumed
                    .get_or_create(&Metrics::topic(&key.0))
                    .clone(),
                stash: VecDeque::new(),
                paused: false,
                next_offset: None,
                stop,
                worker,
            }
        })
    }

    fn dispatch(&self, consumer: &BaseConsumer<Self>, msg: Message) {
        let key = (msg.topic.clone(), msg.partition);
        let mut slots = self.slots.lock().expect("slots lock");
        let slot = self.slot_for(&mut slots, &key);
        if slot.next_offset.is_some_and(|next| msg.offset < next) {
            // Delivered again after a pause/resume: already queued.
            return;
        }
        slot.consumed.inc();
        slot.next_offset = Some(msg.offset + 1);
        if !slot.stash.is_empty() {
            slot.stash.push_back(msg);
            return;
        }
        match slot.tx.try_send(msg) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(msg)) => {
                slot.stash.push_back(msg);
                self.any_stash.store(true, Ordering::Relaxed);
                if !slot.paused {
                    let mut tpl = TopicPartitionList::new();
                    tpl.add_partition(&key.0, key.1);
                    match consumer.pause(&tpl) {
                        Ok(()) => {
                            slot.paused = true;
                            self.board.paused(&key.0, key.1, true);
                            self.metrics.paused_partitions.inc();
                            self.metrics.partition_pauses.inc();
                            tracing::debug!(topic = %key.0, partition = key.1, "Paused a partition (its queue is full).");
                        }
                        Err(e) => tracing::warn!(error = %e, "Pausing a partition failed."),
                    }
                }
            }
            // The worker ended (the pipeline is stopping): drop the record, it is not acked.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    /// Moves stashed records into queues with room; resumes drained partitions.
    fn drain_stashes(&self, consumer: &BaseConsumer<Self>) {
        if !self.any_stash.load(Ordering::Relaxed) {
            return;
        }
        let mut slots = self.slots.lock().expect("slots lock");
        let mut still = false;
        for (key, slot) in slots.iter_mut() {
            while let Some(msg) = slot.stash.pop_front() {
                match slot.tx.try_send(msg) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(msg)) => {
                        slot.stash.push_front(msg);
                        break;
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => slot.stash.clear(),
                }
            }
            if slot.stash.is_empty() && slot.paused {
                let mut tpl = TopicPartitionList::new();
                tpl.add_partition(&key.0, key.1);
                match consumer.resume(&tpl) {
                    Ok(()) => {
                        slot.paused = false;
                        self.board.paused(&key.0, key.1, false);
                        self.metrics.paused_partitions.dec();
                    }
                    Err(e) => tracing::warn!(error = %e, "Resuming a partition failed."),
                }
            }
            still |= !slot.stash.is_empty();
        }
        self.any_stash.store(still, Ordering::Relaxed);
    }

    /// Stops the workers of `keys` (all when `None`), waits for their batches
    /// in flight, commits what they acknowledged (unless `commit` says not
    /// to), and forgets the partitions.
    /// A worker whose batch does not finish within `shutdown-timeout-ms` is
    /// aborted and reaped before this returns: once the partition is given
    /// up, nothing of this process writes for it any more.
    fn stop_partitions(
        &self,
        consumer: &BaseConsumer<Self>,
        keys: Option<&[PartitionKey]>,
        commit: Commit,
    ) {
        let removed: Vec<(PartitionKey, Slot)> = {
            let mut slots = self.slots.lock().expect("slots lock");
            let keys: Vec<PartitionKey> = match keys {
                Some(k) => k.to_vec(),
                None => slots.keys().cloned().collect(),
            };
            keys.into_iter()
                .filter_map(|k| slots.remove(&k).map(|s| (k, s)))
                .collect()
        };
        for (_, slot) in &removed {
            slot.stop.cancel();
        }
        let deadline = Instant::now() + self.stop_timeout;
        let mut late = Vec::new();
        for (key, slot) in removed {
            if slot.paused {
                self.metrics.paused_partitions.dec();
            }
            drop(slot.tx);
            let left = deadline.saturating_duration_since(Instant::now());
            let WorkerHandle { mut task, abort } = slot.worker;
            let finished = self
                .rt
                .block_on(async { tokio::time::timeout(left, &mut task).await })
                .is_ok();
            if !finished {
                late.push((key, task, abort));
            }
        }
        // Abort every late worker before reaping any: a reaped one releases
        // what it held (the `serial-writes` lock), and no other may use it.
        for (_, _, abort) in &late {
            abort.abort();
        }
        for (key, mut task, _) in late {
            // The abort takes effect at the worker's next await point (a
            // write in flight is dropped); wait until it is gone.
            let reaped = self
                .rt
                .block_on(async { tokio::time::timeout(REAP_TIMEOUT, &mut task).await })
                .is_ok();
            tracing::warn!(topic = %key.0, partition = key.1, timeout_ms = self.stop_timeout.as_millis() as u64, reaped, "A partition's batch in flight did not finish within pipeline.shutdown-timeout-ms; it was aborted, nothing of it is acknowledged, and it is processed again from the last committed offset.");
        }
        if let Commit::Sync = commit {
            self.commit(consumer, keys, CommitMode::Sync);
        }
        self.acks.disown(keys);
    }

    fn commit(
        &self,
        consumer: &BaseConsumer<Self>,
        keys: Option<&[PartitionKey]>,
        mode: CommitMode,
    ) {
        let tpl = self.acks.pending(keys);
        if tpl.count() == 0 {
            return;
        }
        self.acks.mark_committed(&tpl, true);
        match consumer.commit(&tpl, mode) {
            Ok(()) => {
                if matches!(mode, CommitMode::Sync) {
                    tracing::debug!(offsets = ?tpl, "Committed offsets.");
                    self.metrics
                        .commits
                        .get_or_create(&[("outcome", "ok".into())])
                        .inc();
                }
            }
            Err(e) => {
                self.acks.mark_committed(&tpl, false);
                self.acks.dirty.store(true, Ordering::Release);
                self.metrics
                    .commits
                    .get_or_create(&[("outcome", "error".into())])
                    .inc();
                tracing::warn!(error = %e, "Committing offsets failed; they are committed again at the next interval.");
            }
        }
    }
}

impl SourceContext {
    /// A live rewind: checks the target for every partition of the route
    /// assigned here (nothing moves when one is out of range), then pauses
    /// them, lets their workers finish the batch in flight and stop,
    /// commits what they acknowledged, seeks, commits the new offsets and
    /// resumes them with new workers (a new generation: a late
    /// acknowledgement from before the rewind is refused).
    fn rewind(
        &self,
        consumer: &BaseConsumer<Self>,
        route: &str,
        matcher: &TopicMatcher,
        target: Target,
    ) -> Result<Vec<Move>, MoveError> {
        let assignment = consumer
            .assignment()
            .map_err(|e| MoveError::Kafka(format!("cannot read the assignment: {e}")))?;
        let keys: Vec<PartitionKey> = keys_of(&assignment)
            .into_iter()
            .filter(|(t, _)| matcher.matches(t))
            .collect();
        if keys.is_empty() {
            return Err(MoveError::Conflict(format!(
                "no partition of route `{route}` is assigned to this process (other members of the group own them, or it is not consuming yet)"
            )));
        }
        let moves = offsets::plan(consumer, &keys, target, REWIND_TIMEOUT)?;
        let mut tpl = TopicPartitionList::new();
        for (t, p) in &keys {
            tpl.add_partition(t, *p);
        }
        consumer
            .pause(&tpl)
            .map_err(|e| MoveError::Kafka(format!("pausing the route's partitions: {e}")))?;
        // The workers finish their batch in flight; what they wrote is committed.
        self.stop_partitions(consumer, Some(&keys), Commit::Sync);
        let mut failed = Vec::new();
        for m in &moves {
            if let Err(e) =
                consumer.seek(&m.topic, m.partition, Offset::Offset(m.to), REWIND_TIMEOUT)
            {
                failed.push(format!("{}/{}: {e}", m.topic, m.partition));
            }
        }
        let committed = consumer.commit(&offsets::to_commit(&moves), CommitMode::Sync);
        for m in &moves {
            self.board.rewound(&m.topic, m.partition, m.to);
        }
        for k in &keys {
            self.acks.own(k);
            // Its slot (and a backpressure pause with it) is gone.
            self.board.paused(&k.0, k.1, false);
        }
        if let Err(e) = consumer.resume(&tpl) {
            failed.push(format!("resuming: {e}"));
        }
        if let Err(e) = committed {
            failed.push(format!("committing the new offsets: {e}"));
        }
        if !failed.is_empty() {
            return Err(MoveError::Kafka(format!(
                "the rewind of route `{route}` did not complete: {}",
                failed.join("; ")
            )));
        }
        tracing::info!(route, moves = ?moves.iter().map(|m| format!("{}/{}: {:?} -> {}", m.topic, m.partition, m.from, m.to)).collect::<Vec<_>>(), "Rewound a route's partitions.");
        Ok(moves)
    }
}

/// Whether [`SourceContext::stop_partitions`] commits what the stopped
/// workers acknowledged.
enum Commit {
    Sync,
    /// The partitions are lost: a commit would be refused.
    No,
}

/// How long an aborted worker may take to be dropped.
const REAP_TIMEOUT: Duration = Duration::from_secs(5);

/// The consumer, created and connected, not yet polling.
pub struct Source {
    consumer: BaseConsumer<SourceContext>,
    commit_interval: Duration,
    rewinds: std::sync::mpsc::Receiver<Rewind>,
}

impl Source {
    /// Creates the consumer, checks that the brokers answer within `timeout`, subscribes.
    pub fn connect(
        config: &Config,
        spawner: Spawner,
        acks: Arc<Acks>,
        metrics: Arc<Metrics>,
        board: Arc<Board>,
        rewinds: std::sync::mpsc::Receiver<Rewind>,
        timeout: Duration,
    ) -> anyhow::Result<Source> {
        let cc = kafka::client_config(config, kafka::Role::Consumer);
        tracing::debug!(config = %kafka::describe(&cc), "Kafka consumer configuration.");
        let errors = kafka::ClientErrors::default();
        let context = SourceContext {
            rt: tokio::runtime::Handle::current(),
            spawner,
            slots: Mutex::new(HashMap::new()),
            acks,
            metrics,
            board,
            queue_capacity: config.pipeline.queue_capacity,
            stop_timeout: Duration::from_millis(config.pipeline.shutdown_timeout_ms),
            any_stash: AtomicBool::new(false),
            errors: errors.clone(),
            fatal: Mutex::new(None),
        };
        let consumer: BaseConsumer<SourceContext> =
            cc.create_with_context(context).map_err(|e| {
                anyhow::anyhow!(
                    "cannot create the Kafka consumer ([kafka]): {}",
                    kafka::creation_error(&e)
                )
            })?;
        kafka::wait_for_metadata(
            consumer.client(),
            || drop(consumer.poll(Duration::ZERO)),
            &config.kafka,
            None,
            timeout,
            &errors,
        )?;
        let subscriptions = subscriptions(config);
        let refs: Vec<&str> = subscriptions.iter().map(String::as_str).collect();
        consumer
            .subscribe(&refs)
            .map_err(|e| anyhow::anyhow!("cannot subscribe to {refs:?}: {e}"))?;
        tracing::info!(brokers = %config.kafka.brokers, group = %config.kafka.group_id, topics = ?refs, "Subscribed.");
        Ok(Source {
            consumer,
            commit_interval: Duration::from_millis(config.pipeline.commit_interval_ms),
            rewinds,
        })
    }

    /// Polls until `shutdown`, or until a Kafka error that retrying cannot
    /// fix (a fatal consumer error, an authorization failure; then `Err`
    /// names it); then stops every worker (each finishes its batch in
    /// flight), commits, and leaves the group. Call on a thread of its own.
    pub fn run(self, shutdown: CancellationToken) -> Result<(), String> {
        let consumer = self.consumer;
        let ctx = consumer.context();
        let mut last_commit = Instant::now();
        let mut last_error: Option<(String, Instant)> = None;
        while !shutdown.is_cancelled() && ctx.fatal.lock().expect("fatal lock").is_none() {
            let timeout = if ctx.any_stash.load(Ordering::Relaxed) {
                Duration::from_millis(10)
            } else {
                Duration::from_millis(100)
            };
            match consumer.poll(timeout) {
                Some(Ok(m)) => {
                    let msg = owned(&m);
                    drop(m);
                    ctx.dispatch(&consumer, msg);
                }
                Some(Err(e)) if is_permanent(&e) => ctx.stop_with(format!("Kafka consumer: {e}")),
                Some(Err(e)) => {
                    // Transient broker trouble: librdkafka reconnects; say it once a while.
                    let text = e.to_string();
                    let repeat = last_error.as_ref().is_some_and(|(t, at)| {
                        *t == text && at.elapsed() < Duration::from_secs(10)
                    });
                    if !repeat {
                        tracing::warn!(error = %text, "Kafka consumer error.");
                        last_error = Some((text, Instant::now()));
                    }
                }
                None => {}
            }
            ctx.drain_stashes(&consumer);
            while let Ok(r) = self.rewinds.try_recv() {
                let result = ctx.rewind(&consumer, &r.route, &r.matcher, r.target);
                let _ = r.reply.send(result);
            }
            if last_commit.elapsed() >= self.commit_interval
                && ctx.acks.dirty.swap(false, Ordering::AcqRel)
            {
                ctx.commit(&consumer, None, CommitMode::Async);
                last_commit = Instant::now();
            }
        }
        tracing::info!("Stopping: finishing the batches in flight and committing.");
        ctx.stop_partitions(&consumer, None, Commit::Sync);
        ctx.board.revoked(None);
        consumer.unsubscribe();
        // Serve the revoke of the unsubscribe before closing.
        let until = Instant::now() + Duration::from_secs(2);
        while Instant::now() < until
            && consumer
                .assignment()
                .map(|a| a.count() > 0)
                .unwrap_or(false)
        {
            let _ = consumer.poll(Duration::from_millis(50));
        }
        let fatal = ctx.fatal.lock().expect("fatal lock").take();
        drop(consumer);
        tracing::info!("Consumer closed.");
        fatal.map_or(Ok(()), Err)
    }
}

/// Kafka errors that retrying cannot fix: fatal client errors and
/// authorization or authentication failures.
fn is_permanent(e: &KafkaError) -> bool {
    matches!(e, KafkaError::MessageConsumptionFatal(_))
        || matches!(
            e.rdkafka_error_code(),
            Some(
                RDKafkaErrorCode::Fatal
                    | RDKafkaErrorCode::TopicAuthorizationFailed
                    | RDKafkaErrorCode::GroupAuthorizationFailed
                    | RDKafkaErrorCode::ClusterAuthorizationFailed
                    | RDKafkaErrorCode::SaslAuthenticationFailed
            )
        )
}

/// The (topic, partition) pairs of a rebalance's list.
fn keys_of(tpl: &TopicPartitionList) -> Vec<PartitionKey> {
    tpl.elements()
        .iter()
        .map(|e| (e.topic().to_owned(), e.partition()))
        .collect()
}

/// What the consumer subscribes to: topic names, and patterns anchored at
/// both ends like the routes match them (`^(p)$`), so that no topic is
/// consumed that no route takes.
fn subscriptions(config: &Config) -> Vec<String> {
    let mut out = Vec::new();
    for r in &config.routes {
        out.extend(r.topics.iter().cloned());
        if let Some(p) = &r.topic_pattern {
            out.push(format!(
                "^({})$",
                p.trim_start_matches('^').trim_end_matches('$')
            ));
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The engine's message for a consumed record (the one copy out of librdkafka's buffer).
pub fn owned(m: &BorrowedMessage<'_>) -> Message {
    Message {
        topic: m.topic().to_owned(),
        partition: m.partition(),
        offset: m.offset(),
        timestamp_ms: m.timestamp().to_millis(),
        key: m.key().map(<[u8]>::to_vec),
        value: m.payload().map(<[u8]>::to_vec),
        headers: m
            .headers()
            .map(|hs| {
                hs.iter()
                    .map(|h| Header {
                        key: h.key.to_owned(),
                        value: h.value.map(<[u8]>::to_vec),
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(p: i32) -> PartitionKey {
        ("t".to_owned(), p)
    }

    #[test]
    fn a_stale_generation_cannot_acknowledge() {
        let acks = Acks::default();
        let old = acks.own(&key(0));
        assert_eq!(acks.own(&key(0)), old, "owning again keeps the generation");
        assert!(acks.ack("t", 0, old, 10));
        acks.disown(Some(&[key(0)]));
        assert!(!acks.ack("t", 0, old, 20), "not owned");
        let new = acks.own(&key(0));
        assert_ne!(new, old);
        assert!(
            !acks.ack("t", 0, old, 30),
            "the old worker's late acknowledgement"
        );
        assert_eq!(acks.acked("t", 0), None);
        assert!(acks.ack("t", 0, new, 12));
        assert_eq!(acks.acked("t", 0), Some(12));
    }

    #[test]
    fn patterns_are_subscribed_anchored_like_the_routes_match() {
        let dir = std::env::temp_dir().join(format!("smt-sub-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("smt.toml");
        std::fs::write(
            &path,
            r#"[kafka]
brokers = "127.0.0.1:1"
group-id = "g"
[mongodb]
uri = "mongodb://127.0.0.1:1"
database = "d"
[transforms.t]
module = "t.wasm"
[[routes]]
topic-pattern = '^cdc\.inv\..*'
transform = "t"
[[routes]]
topics = ["plain"]
transform = "t"
"#,
        )
        .unwrap();
        let config = Config::load_with_env(&path, Vec::new()).unwrap();
        let subs = subscriptions(&config);
        assert_eq!(
            subs,
            vec![r"^(cdc\.inv\..*)$".to_owned(), "plain".to_owned()]
        );
        // `^p` alone would take a topic no route matches.
        let re = regex::Regex::new(&subs[0]).unwrap();
        assert!(re.is_match("cdc.inv.customers"));
        assert!(!re.is_match("xcdc.inv.customers"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn acknowledgements_only_move_forward_and_disown_all_clears() {
        let acks = Acks::default();
        let g = acks.own(&key(1));
        acks.ack("t", 1, g, 10);
        acks.ack("t", 1, g, 5);
        assert_eq!(acks.acked("t", 1), Some(10));
        acks.disown(None);
        assert_eq!(acks.acked("t", 1), None);
    }
}
