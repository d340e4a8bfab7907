//! The dead-letter topic: a failed record is produced there as it was read
//! (key, value, headers) plus headers saying where it came from and why it failed.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header as KHeader, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use tokio_util::sync::CancellationToken;

use crate::config::{Config, KafkaConfig};
use crate::contract::Message;
use crate::kafka;
use crate::retry::{Backoff, GiveUp};
use crate::telemetry::Metrics;

pub const H_SOURCE_TOPIC: &str = "smt.source.topic";
pub const H_SOURCE_PARTITION: &str = "smt.source.partition";
pub const H_SOURCE_OFFSET: &str = "smt.source.offset";
pub const H_TRANSFORM_NAME: &str = "smt.transform.name";
pub const H_TRANSFORM_VERSION: &str = "smt.transform.version";
pub const H_ERROR_KIND: &str = "smt.error.kind";
pub const H_ERROR_MESSAGE: &str = "smt.error.message";

/// Longest error message written in a header.
const MAX_MESSAGE: usize = 4096;

/// Why a record is dead-lettered.
#[derive(Debug, Clone)]
pub struct Failure {
    pub transform: String,
    pub version: String,
    /// The record failure's stable kind name (`RecordFailure::kind` of the
    /// pipeline: `bad-input`, `trap`, …, `write-error`).
    pub kind: &'static str,
    pub message: String,
}

pub struct Dlq {
    producer: FutureProducer<kafka::RecordingContext>,
    errors: kafka::ClientErrors,
    /// `[kafka]`: the brokers and security protocol the startup check names.
    kafka: KafkaConfig,
    topic: String,
    backoff: Backoff,
    metrics: Arc<Metrics>,
}

impl Dlq {
    pub fn new(config: &Config, metrics: Arc<Metrics>) -> anyhow::Result<Option<Dlq>> {
        let Some(dlq) = &config.dlq else {
            return Ok(None);
        };
        let cc = kafka::client_config(config, kafka::Role::DlqProducer);
        tracing::debug!(config = %kafka::describe(&cc), "DLQ producer configuration.");
        let context = kafka::RecordingContext::default();
        let errors = context.errors.clone();
        let producer: FutureProducer<kafka::RecordingContext> =
            cc.create_with_context(context).map_err(|e| {
                anyhow::anyhow!(
                    "cannot create the DLQ producer ([dlq]/[kafka.properties]): {}",
                    kafka::creation_error(&e)
                )
            })?;
        Ok(Some(Dlq {
            producer,
            errors,
            kafka: config.kafka.clone(),
            topic: dlq.topic.clone(),
            backoff: Backoff::from_config(&config.pipeline),
            metrics,
        }))
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Checks that the brokers accept the producer (TLS, SASL) and the topic
    /// exists. (`brokers`: those of `[kafka]`, kept by the producer.)
    pub fn check(&self, _brokers: &str, timeout: Duration) -> anyhow::Result<()> {
        let md = kafka::wait_for_metadata(
            self.producer.client(),
            // The producer's own thread serves its callbacks.
            || {},
            &self.kafka,
            Some(&self.topic),
            timeout,
            &self.errors,
        )
        .map_err(|e| anyhow::anyhow!("the DLQ producer ([dlq]): {e:#}"))?;
        match md.topics().first() {
            Some(t) if t.error().is_none() && !t.partitions().is_empty() => Ok(()),
            _ => anyhow::bail!(
                "the DLQ topic `{}` (dlq.topic) does not exist; create it first",
                self.topic
            ),
        }
    }

    /// Produces `record` with the failure headers; retries transient errors.
    /// Returns once the broker acknowledged it.
    pub async fn send(
        &self,
        record: &Message,
        failure: &Failure,
        stop: &CancellationToken,
    ) -> Result<(), GiveUp> {
        let mut headers = OwnedHeaders::new_with_capacity(record.headers.len() + 7);
        for h in &record.headers {
            headers = headers.insert(KHeader {
                key: &h.key,
                value: h.value.as_deref(),
            });
        }
        let partition = record.partition.to_string();
        let offset = record.offset.to_string();
        let message = truncate(&failure.message);
        for (k, v) in [
            (H_SOURCE_TOPIC, record.topic.as_str()),
            (H_SOURCE_PARTITION, partition.as_str()),
            (H_SOURCE_OFFSET, offset.as_str()),
            (H_TRANSFORM_NAME, failure.transform.as_str()),
            (H_TRANSFORM_VERSION, failure.version.as_str()),
            (H_ERROR_KIND, failure.kind),
            (H_ERROR_MESSAGE, message),
        ] {
            headers = headers.insert(KHeader {
                key: k,
                value: Some(v.as_bytes()),
            });
        }
        let mut attempt = 0;
        loop {
            let mut fr: FutureRecord<'_, [u8], [u8]> =
                FutureRecord::to(&self.topic).headers(headers.clone());
            if let Some(k) = &record.key {
                fr = fr.key(k.as_slice());
            }
            if let Some(v) = &record.value {
                fr = fr.payload(v.as_slice());
            }
            if let Some(ts) = record.timestamp_ms {
                fr = fr.timestamp(ts);
            }
            match self.producer.send(fr, Duration::from_secs(5)).await {
                Ok(_) => {
                    self.metrics
                        .dlq_records
                        .get_or_create(&Metrics::topic(&record.topic))
                        .inc();
                    return Ok(());
                }
                Err((e, _)) if is_permanent(&e) => {
                    // Retrying cannot help; the record is not dropped: the
                    // pipeline stops before committing past it.
                    return Err(GiveUp::Permanent(format!(
                        "the dead-letter topic `{}` refuses the record ({} bytes): {e}; fix the topic (its max.message.bytes, ACLs) or the record's policy",
                        self.topic,
                        record.value.as_ref().map_or(0, Vec::len) + record.key.as_ref().map_or(0, Vec::len)
                    )));
                }
                Err((e, _)) => {
                    attempt += 1;
                    self.metrics
                        .retries
                        .get_or_create(&[("target", "kafka".into())])
                        .inc();
                    tracing::warn!(attempt, error = %e, topic = %self.topic, "Producing to the DLQ failed; retrying.");
                    self.backoff.wait(attempt, &e.to_string(), stop).await?;
                }
            }
        }
    }

    pub fn flush(&self, timeout: Duration) {
        let _ = self.producer.flush(timeout);
    }
}

/// Produce errors that retrying cannot fix: a record too large for the
/// topic, a missing topic, no permission to write it.
fn is_permanent(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::MessageSizeTooLarge
                | RDKafkaErrorCode::InvalidMessageSize
                | RDKafkaErrorCode::MessageBatchTooLarge
                | RDKafkaErrorCode::TopicAuthorizationFailed
                | RDKafkaErrorCode::ClusterAuthorizationFailed
                | RDKafkaErrorCode::UnknownTopicOrPartition
                | RDKafkaErrorCode::UnknownTopic
                | RDKafkaErrorCode::InvalidRecord
        )
    )
}

fn truncate(s: &str) -> &str {
    if s.len() <= MAX_MESSAGE {
        return s;
    }
    let mut end = MAX_MESSAGE;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
