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

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Headers, Message as _};
use rdkafka::statistics::Statistics;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::contract::{Header, Message};
use crate::telemetry::Metrics;

/// (topic, partition)
pub type PartitionKey = (String, i32);

/// Starts the worker of a newly seen partition: it reads the queue until the
/// token is cancelled (finishing the batch in flight) or the queue closes.
pub type Spawner = Arc<
    dyn Fn(PartitionKey, mpsc::Receiver<Message>, CancellationToken) -> JoinHandle<()>
        + Send
        + Sync,
>;

/// Acknowledged positions: the next offset to consume of each owned
/// partition, once everything before it is written.
#[derive(Default)]
pub struct Acks {
    inner: Mutex<HashMap<PartitionKey, AckEntry>>,
    dirty: AtomicBool,
}

#[derive(Default, Clone, Copy)]
struct AckEntry {
    acked: Option<i64>,
    committed: Option<i64>,
}

impl Acks {
    /// Records that everything before `next_offset` is done. Ignored for a
    /// partition this process no longer owns.
    pub fn ack(&self, topic: &str, partition: i32, next_offset: i64) {
        let mut map = self.inner.lock().expect("acks lock");
        if let Some(e) = map.get_mut(&(topic.to_owned(), partition)) {
            if e.acked.is_none_or(|a| next_offset > a) {
                e.acked = Some(next_offset);
                self.dirty.store(true, Ordering::Release);
            }
        }
    }

    fn own(&self, key: &PartitionKey) {
        self.inner
            .lock()
            .expect("acks lock")
            .entry(key.clone())
            .or_default();
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

    fn disown(&self, keys: &[PartitionKey]) {
        let mut map = self.inner.lock().expect("acks lock");
        for k in keys {
            map.remove(k);
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
    task: JoinHandle<()>,
}

/// The consumer's context: rebalance callbacks, commit results, statistics.
pub struct SourceContext {
    rt: tokio::runtime::Handle,
    spawner: Spawner,
    slots: Mutex<HashMap<PartitionKey, Slot>>,
    acks: Arc<Acks>,
    metrics: Arc<Metrics>,
    queue_capacity: usize,
    stop_timeout: Duration,
    any_stash: AtomicBool,
}

impl ClientContext for SourceContext {
    fn stats(&self, statistics: Statistics) {
        for (topic, t) in &statistics.topics {
            for (partition, p) in &t.partitions {
                if *partition < 0 || !p.desired || p.consumer_lag < 0 {
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

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(error = %error, reason, "Kafka client error (librdkafka retries by itself).");
    }
}

impl ConsumerContext for SourceContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(tpl) => {
                let keys: Vec<PartitionKey> = tpl
                    .elements()
                    .iter()
                    .map(|e| (e.topic().to_owned(), e.partition()))
                    .collect();
                tracing::info!(partitions = ?keys, "Partitions revoked: finishing their batches in flight and committing.");
                self.stop_partitions(consumer, Some(&keys));
                self.metrics.assigned_partitions.set(0);
            }
            Rebalance::Assign(tpl) => {
                let keys: Vec<PartitionKey> = tpl
                    .elements()
                    .iter()
                    .map(|e| (e.topic().to_owned(), e.partition()))
                    .collect();
                tracing::info!(partitions = ?keys, "Partitions assigned.");
                for k in &keys {
                    self.acks.own(k);
                }
                self.metrics.assigned_partitions.set(keys.len() as i64);
            }
            Rebalance::Error(e) => tracing::warn!(error = %e, "Rebalance error."),
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
            }
        }
    }
}

impl SourceContext {
    fn slot_for<'a>(
        &self,
        slots: &'a mut HashMap<PartitionKey, Slot>,
        key: &PartitionKey,
    ) -> &'a mut Slot {
        slots.entry(key.clone()).or_insert_with(|| {
            self.acks.own(key);
            let (tx, rx) = mpsc::channel(self.queue_capacity);
            let stop = CancellationToken::new();
            let _guard = self.rt.enter();
            let task = (self.spawner)(key.clone(), rx, stop.clone());
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
                task,
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
    /// in flight, commits what they acknowledged, and forgets the partitions.
    fn stop_partitions(&self, consumer: &BaseConsumer<Self>, keys: Option<&[PartitionKey]>) {
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
        let mut stopped = Vec::new();
        for (key, slot) in removed {
            if slot.paused {
                self.metrics.paused_partitions.dec();
            }
            drop(slot.tx);
            let left = deadline.saturating_duration_since(Instant::now());
            if self
                .rt
                .block_on(async move { tokio::time::timeout(left, slot.task).await })
                .is_err()
            {
                tracing::warn!(topic = %key.0, partition = key.1, "A partition's batch in flight did not finish in time; it will be processed again.");
            }
            stopped.push(key);
        }
        let all: Vec<PartitionKey> = match keys {
            Some(k) => k.to_vec(),
            None => stopped,
        };
        self.commit(consumer, Some(&all), CommitMode::Sync);
        match keys {
            Some(k) => self.acks.disown(k),
            None => {
                let everything: Vec<PartitionKey> = self
                    .acks
                    .inner
                    .lock()
                    .expect("acks lock")
                    .keys()
                    .cloned()
                    .collect();
                self.acks.disown(&everything);
            }
        }
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
                self.metrics
                    .commits
                    .get_or_create(&[("outcome", "error".into())])
                    .inc();
                tracing::warn!(error = %e, "Committing offsets failed.");
            }
        }
    }
}

/// The consumer, created and connected, not yet polling.
pub struct Source {
    consumer: BaseConsumer<SourceContext>,
    commit_interval: Duration,
}

impl Source {
    /// Creates the consumer, checks that the brokers answer within `timeout`, subscribes.
    pub fn connect(
        config: &Config,
        spawner: Spawner,
        acks: Arc<Acks>,
        metrics: Arc<Metrics>,
        timeout: Duration,
    ) -> anyhow::Result<Source> {
        let mut cc = ClientConfig::new();
        for (k, v) in &config.kafka.properties {
            cc.set(k, v);
        }
        cc.set("bootstrap.servers", &config.kafka.brokers)
            .set("group.id", &config.kafka.group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", &config.kafka.auto_offset_reset);
        if cc.get("statistics.interval.ms").is_none() {
            cc.set("statistics.interval.ms", "5000");
        }
        if cc.get("client.id").is_none() {
            cc.set("client.id", "smt");
        }
        let context = SourceContext {
            rt: tokio::runtime::Handle::current(),
            spawner,
            slots: Mutex::new(HashMap::new()),
            acks,
            metrics,
            queue_capacity: config.pipeline.queue_capacity,
            stop_timeout: Duration::from_millis(config.pipeline.shutdown_timeout_ms),
            any_stash: AtomicBool::new(false),
        };
        let consumer: BaseConsumer<SourceContext> = cc
            .create_with_context(context)
            .map_err(|e| anyhow::anyhow!("cannot create the Kafka consumer ([kafka]): {e}"))?;
        consumer
            .client()
            .fetch_metadata(None, timeout)
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot reach the Kafka brokers {} (kafka.brokers) within {timeout:?}: {e}",
                    config.kafka.brokers
                )
            })?;
        let subscriptions = subscriptions(config);
        let refs: Vec<&str> = subscriptions.iter().map(String::as_str).collect();
        consumer
            .subscribe(&refs)
            .map_err(|e| anyhow::anyhow!("cannot subscribe to {refs:?}: {e}"))?;
        tracing::info!(brokers = %config.kafka.brokers, group = %config.kafka.group_id, topics = ?refs, "Subscribed.");
        Ok(Source {
            consumer,
            commit_interval: Duration::from_millis(config.pipeline.commit_interval_ms),
        })
    }

    /// Polls until `shutdown`; then stops every worker (each finishes its
    /// batch in flight), commits, and leaves the group. Call on a thread of its own.
    pub fn run(self, shutdown: CancellationToken) {
        let consumer = self.consumer;
        let ctx = consumer.context();
        let mut last_commit = Instant::now();
        let mut last_error: Option<(String, Instant)> = None;
        while !shutdown.is_cancelled() {
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
            if last_commit.elapsed() >= self.commit_interval
                && ctx.acks.dirty.swap(false, Ordering::AcqRel)
            {
                ctx.commit(&consumer, None, CommitMode::Async);
                last_commit = Instant::now();
            }
        }
        tracing::info!("Stopping: finishing the batches in flight and committing.");
        ctx.stop_partitions(&consumer, None);
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
        drop(consumer);
        tracing::info!("Consumer closed.");
    }
}

/// What the consumer subscribes to: topic names and `^`-anchored patterns.
fn subscriptions(config: &Config) -> Vec<String> {
    let mut out = Vec::new();
    for r in &config.routes {
        out.extend(r.topics.iter().cloned());
        if let Some(p) = &r.topic_pattern {
            out.push(if p.starts_with('^') {
                p.clone()
            } else {
                format!("^{p}")
            });
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
