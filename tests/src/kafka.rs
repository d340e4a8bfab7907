//! Kafka for the tests: producing records, counting and reading a topic.

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;

use crate::record::Record;
use crate::services::Services;

/// A producer that waits up to a minute for delivery.
pub fn producer(brokers: &str) -> Result<BaseProducer> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("message.timeout.ms", "60000")
        .set("linger.ms", "5")
        .create()?)
}

/// Produces `records` to `topic` (their key and value, not their headers),
/// each to its original partition (so one key stays in one partition, in
/// order), and waits for delivery.
pub fn produce(brokers: &str, topic: &str, records: &[Record]) -> Result<()> {
    let p = producer(brokers)?;
    for r in records {
        let mut rec: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic).partition(r.partition);
        if let Some(k) = &r.key {
            rec = rec.key(k.as_slice());
        }
        if let Some(v) = &r.value {
            rec = rec.payload(v.as_slice());
        }
        let mut rec = rec;
        loop {
            match p.send(rec) {
                Ok(()) => break,
                Err((e, back)) => {
                    if !matches!(
                        e,
                        rdkafka::error::KafkaError::MessageProduction(
                            rdkafka::types::RDKafkaErrorCode::QueueFull
                        )
                    ) {
                        bail!("producing to {topic}: {e}");
                    }
                    p.poll(Duration::from_millis(50));
                    rec = back;
                }
            }
        }
        p.poll(Duration::ZERO);
    }
    p.flush(Duration::from_secs(60))
        .context("flushing the producer")?;
    Ok(())
}

/// The number of records in `topic` (sum of high watermarks; topics here are never truncated).
pub fn topic_len(brokers: &str, topic: &str) -> Result<i64> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()?;
    let md = c.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let t = md
        .topics()
        .first()
        .ok_or_else(|| anyhow!("no topic {topic}"))?;
    let mut n = 0;
    for p in t.partitions() {
        let (lo, hi) = c.fetch_watermarks(topic, p.id(), Duration::from_secs(10))?;
        n += hi - lo;
    }
    Ok(n)
}

/// Every record of `topic` (which holds `expected` records).
pub fn read_all(
    s: &Services,
    topic: &str,
    expected: usize,
    timeout: Duration,
) -> Result<Vec<Record>> {
    let mut out = Vec::new();
    if expected == 0 {
        return Ok(out);
    }
    s.read_topic(topic, timeout, |r| {
        out.push(r.clone());
        out.len() >= expected
    })?;
    Ok(out)
}

/// The committed offsets of `group` on partitions `0..partitions` of `topic` (`None`: nothing committed).
pub fn committed(brokers: &str, group: &str, topic: &str, partitions: i32) -> Vec<Option<i64>> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let c: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .create()
        .expect("a Kafka client");
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    // The group's coordinator may not be known yet (a group nobody joined,
    // a broker just started): the broker answers "not coordinator" until it is.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let got = loop {
        match c.committed_offsets(tpl.clone(), Duration::from_secs(10)) {
            Ok(got) => break got,
            Err(e) if std::time::Instant::now() < deadline => {
                eprintln!("committed offsets of {group}: {e}; asking again");
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => panic!("the committed offsets of {group}: {e}"),
        }
    };
    got.elements()
        .iter()
        .map(|e| match e.offset() {
            rdkafka::Offset::Offset(o) => Some(o),
            _ => None,
        })
        .collect()
}
