//! Every metric `smt run` exports, in one place. Labels stay low-cardinality:
//! topic, partition, transform, kind, outcome.

use std::sync::atomic::AtomicBool;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

type L1 = [(&'static str, String); 1];
type L2 = [(&'static str, String); 2];
type L3 = [(&'static str, String); 3];

/// What `/health` and `/ready` report.
#[derive(Default)]
pub struct Status {
    pub ready: AtomicBool,
    pub failed: AtomicBool,
    /// The stalled partitions (`[status] stall-timeout-ms`), described
    /// (`topic/partition: why`); `/ready` answers 503 while there are any.
    pub stalled: std::sync::Mutex<Vec<String>>,
}

pub struct Metrics {
    registry: Registry,
    /// Records received from Kafka, by topic.
    pub records_consumed: Family<L1, Counter>,
    /// Records fully handled (written, filtered, dead-lettered or skipped), by topic.
    pub records_processed: Family<L1, Counter>,
    /// Write operations acknowledged by MongoDB, by kind.
    pub ops_written: Family<L1, Counter>,
    /// Failed records, by transform, failure kind and policy applied.
    pub record_errors: Family<L3, Counter>,
    /// Records produced to the dead-letter topic, by source topic.
    pub dlq_records: Family<L1, Counter>,
    /// Records skipped by the `skip` policy, by source topic.
    pub skipped_records: Family<L1, Counter>,
    /// Retries of transient errors, by target (`mongodb`, `kafka`).
    pub retries: Family<L1, Counter>,
    /// Offset commits, by outcome.
    pub commits: Family<L1, Counter>,
    /// Time from the start of a batch's processing to its offsets being acknowledged.
    pub batch_duration: Histogram,
    /// Records per batch.
    pub batch_size: Histogram,
    /// Time of one `transform` call, by transform and version.
    pub transform_duration: Family<L2, Histogram>,
    /// Messages behind the end of each assigned partition (from librdkafka statistics).
    pub consumer_lag: Family<L2, Gauge>,
    /// Partitions currently assigned to this process.
    pub assigned_partitions: Gauge,
    /// Partitions currently paused for backpressure.
    pub paused_partitions: Gauge,
    /// Assigned partitions that are stalled: paused or lagging without
    /// progress for `[status] stall-timeout-ms`.
    pub stalled_partitions: Gauge,
    /// Times a partition was paused because its queue was full.
    pub partition_pauses: Counter,
    /// Records transformed, by transform and version (the module's short hash).
    pub transform_records: Family<L2, Counter>,
    /// Hot-swap requests, by transform and outcome (`activated`, `rejected`, `unchanged`, `rolled-back`).
    pub transform_swaps: Family<L2, Counter>,
    /// Guest log lines dropped by the per-instance rate limit, by transform.
    pub guest_log_lines_dropped: Family<L1, Counter>,
    /// Admin requests refused, by reason (`host`, `origin`, `token`, `read-only`).
    pub admin_refusals: Family<L1, Counter>,
    /// Schema-registry cache lookups by outcome: `hit`, `miss`, `fetch-error`
    /// (a fetch that failed and is retried), `unknown-id`.
    pub schema_cache: Family<L1, Counter>,
}

fn transform_histogram() -> Histogram {
    // 10 µs .. ~10 s
    Histogram::new(exponential_buckets(0.00001, 4.0, 11))
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("smt");
        let m = Metrics {
            records_consumed: Family::default(),
            records_processed: Family::default(),
            ops_written: Family::default(),
            record_errors: Family::default(),
            dlq_records: Family::default(),
            skipped_records: Family::default(),
            retries: Family::default(),
            commits: Family::default(),
            batch_duration: Histogram::new(exponential_buckets(0.0005, 2.0, 16)),
            batch_size: Histogram::new(exponential_buckets(1.0, 2.0, 15)),
            transform_duration: Family::new_with_constructor(transform_histogram),
            consumer_lag: Family::default(),
            assigned_partitions: Gauge::default(),
            paused_partitions: Gauge::default(),
            stalled_partitions: Gauge::default(),
            partition_pauses: Counter::default(),
            transform_records: Family::default(),
            transform_swaps: Family::default(),
            guest_log_lines_dropped: Family::default(),
            admin_refusals: Family::default(),
            schema_cache: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "records_consumed",
            "Records received from Kafka",
            m.records_consumed.clone(),
        );
        registry.register(
            "records_processed",
            "Records fully handled (written, filtered, dead-lettered or skipped)",
            m.records_processed.clone(),
        );
        registry.register(
            "ops_written",
            "Write operations acknowledged by MongoDB",
            m.ops_written.clone(),
        );
        registry.register(
            "record_errors",
            "Records that failed, by transform, failure kind and policy",
            m.record_errors.clone(),
        );
        registry.register(
            "dlq_records",
            "Records produced to the dead-letter topic",
            m.dlq_records.clone(),
        );
        registry.register(
            "skipped_records",
            "Failed records skipped by the skip policy",
            m.skipped_records.clone(),
        );
        registry.register("retries", "Retries of transient errors", m.retries.clone());
        registry.register("commits", "Offset commits by outcome", m.commits.clone());
        registry.register(
            "batch_duration_seconds",
            "Time to process and acknowledge one batch",
            m.batch_duration.clone(),
        );
        registry.register(
            "batch_size_records",
            "Records per batch",
            m.batch_size.clone(),
        );
        registry.register(
            "transform_duration_seconds",
            "Time of one transform call",
            m.transform_duration.clone(),
        );
        registry.register(
            "schema_cache",
            "Schema-registry cache lookups by outcome (hit, miss, fetch-error, unknown-id)",
            m.schema_cache.clone(),
        );
        registry.register(
            "consumer_lag",
            "Messages behind the end of the partition",
            m.consumer_lag.clone(),
        );
        registry.register(
            "assigned_partitions",
            "Partitions assigned to this process",
            m.assigned_partitions.clone(),
        );
        registry.register(
            "paused_partitions",
            "Partitions paused for backpressure",
            m.paused_partitions.clone(),
        );
        registry.register(
            "stalled_partitions",
            "Assigned partitions paused or lagging without progress for status.stall-timeout-ms",
            m.stalled_partitions.clone(),
        );
        registry.register(
            "partition_pauses",
            "Times a partition was paused because its queue was full",
            m.partition_pauses.clone(),
        );
        registry.register(
            "transform_records",
            "Records transformed, by transform and version",
            m.transform_records.clone(),
        );
        registry.register(
            "transform_swaps",
            "Hot-swap requests by transform and outcome",
            m.transform_swaps.clone(),
        );
        registry.register(
            "guest_log_lines_dropped",
            "Guest log lines dropped by the per-instance rate limit",
            m.guest_log_lines_dropped.clone(),
        );
        registry.register(
            "admin_refusals",
            "Admin requests refused (foreign Host, browser Origin, missing or wrong token, write without a token)",
            m.admin_refusals.clone(),
        );
        Metrics { registry, ..m }
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String");
        out
    }

    pub fn topic(topic: &str) -> L1 {
        [("topic", topic.to_owned())]
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_prometheus_text() {
        let m = Metrics::new();
        m.records_consumed.get_or_create(&Metrics::topic("t")).inc();
        m.batch_size.observe(3.0);
        m.consumer_lag
            .get_or_create(&[("topic", "t".into()), ("partition", "0".into())])
            .set(5);
        let text = m.encode();
        assert!(
            text.contains("smt_records_consumed_total{topic=\"t\"} 1"),
            "{text}"
        );
        assert!(text.contains("smt_batch_size_records_count 1"), "{text}");
        assert!(
            text.contains("smt_consumer_lag{topic=\"t\",partition=\"0\"} 5"),
            "{text}"
        );
    }
}
