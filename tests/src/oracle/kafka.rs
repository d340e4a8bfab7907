//! Kafka: what a consumer group has committed.

use std::time::Duration;

use anyhow::{anyhow, Result};

/// (topic, partition, committed offset of the group, high watermark).
pub type PartitionProgress = (String, i32, Option<i64>, i64);

/// Per partition of `topics`: what the consumer's group committed, and the end.
pub fn group_progress(
    consumer: &rdkafka::consumer::BaseConsumer,
    topics: &[String],
) -> Result<Vec<PartitionProgress>> {
    use rdkafka::consumer::Consumer;
    let mut tpl = rdkafka::TopicPartitionList::new();
    let mut highs = Vec::new();
    for t in topics {
        let md = consumer.fetch_metadata(Some(t), Duration::from_secs(10))?;
        let topic = md
            .topics()
            .first()
            .ok_or_else(|| anyhow!("no metadata for {t}"))?;
        for p in topic.partitions() {
            tpl.add_partition(t, p.id());
            let (_, high) = consumer.fetch_watermarks(t, p.id(), Duration::from_secs(10))?;
            highs.push(high);
        }
    }
    let committed = consumer.committed_offsets(tpl, Duration::from_secs(10))?;
    Ok(committed
        .elements()
        .iter()
        .zip(highs)
        .map(|(e, high)| {
            let off = match e.offset() {
                rdkafka::Offset::Offset(o) => Some(o),
                _ => None,
            };
            (e.topic().to_owned(), e.partition(), off, high)
        })
        .collect())
}
