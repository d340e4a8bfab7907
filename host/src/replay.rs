//! `smt dlq replay`: runs dead-lettered records through their route's
//! current transform and writes them, after the transform (or the data
//! around it) was fixed.
//!
//! 1. The DLQ topic is read from `--from` to `--to` (offsets or times; the
//!    whole topic by default) without joining the consumer group.
//! 2. Each record's origin comes from its headers (`smt.source.topic`,
//!    `smt.source.partition`, `smt.source.offset`); a record without them is
//!    reported and left alone. The original record is rebuilt (key, value,
//!    its own headers, timestamp) and goes to the route of its topic.
//! 3. Records are replayed per source partition in source-offset order (the
//!    original order per key).
//! 4. **Never older over newer**: a record whose key has a newer record in
//!    its source partition that the pipeline already processed (before the
//!    group's committed offset) and that is not itself being replayed is
//!    skipped and reported — writing it would overwrite newer data.
//! 5. A record that fails again (transform or data error) is produced to the
//!    DLQ once more, with `smt.replay.attempt` counting the replays, and
//!    reported. `--dry-run` prints what each record would become (the
//!    `smt test` format) and writes nothing.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message as _;
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::app;
use crate::config::{Config, TopicMatcher};
use crate::contract::{Header, Message};
use crate::dlq::{self, Dlq};
use crate::kafka;
use crate::offsets::{self, Target};
use crate::sink::Sink;
use crate::telemetry::Metrics;
use crate::writeop::WriteOp;

/// The header counting how often a record was replayed and failed again.
pub const H_REPLAY_ATTEMPT: &str = "smt.replay.attempt";

/// What to replay.
pub struct Options<'a> {
    /// Only records of this route.
    pub route: Option<&'a str>,
    /// First DLQ record (default: the earliest).
    pub from: Option<Target>,
    /// End of the DLQ range, exclusive (default: the end).
    pub to: Option<Target>,
    pub dry_run: bool,
    /// Kafka and MongoDB request timeout.
    pub timeout: Duration,
}

/// Where a record is: `topic/partition@offset`.
fn at(topic: &str, partition: i32, offset: i64) -> String {
    format!("{topic}/{partition}@{offset}")
}

/// What the replay did.
#[derive(Debug, Default)]
pub struct Report {
    /// Written (or, with `--dry-run`, would be): source coordinates.
    pub replayed: Vec<String>,
    /// Skipped: (source coordinates, the newer record of the same key).
    pub skipped_newer: Vec<(String, String)>,
    /// Failed again (re-produced to the DLQ unless dry-run): (source coordinates, cause).
    pub failed_again: Vec<(String, String)>,
    /// DLQ records without origin headers (DLQ coordinates).
    pub no_origin: Vec<String>,
    /// DLQ records whose topic no route (or not `--route`) takes.
    pub other_route: usize,
}

/// One dead-lettered record, rebuilt.
struct Dead {
    original: Message,
    dlq_at: String,
    attempt: u32,
}

/// Reads every record of `tpl`'s partitions from their offset up to `ends` (exclusive).
fn read_range<C: rdkafka::consumer::ConsumerContext>(
    consumer: &BaseConsumer<C>,
    tpl: &TopicPartitionList,
    ends: &HashMap<(String, i32), i64>,
    timeout: Duration,
    mut each: impl FnMut(&rdkafka::message::BorrowedMessage<'_>),
) -> anyhow::Result<()> {
    let mut open: HashSet<(String, i32)> = tpl
        .elements()
        .iter()
        .filter(|e| match e.offset() {
            Offset::Offset(o) => ends
                .get(&(e.topic().to_owned(), e.partition()))
                .is_some_and(|end| o < *end),
            _ => false,
        })
        .map(|e| (e.topic().to_owned(), e.partition()))
        .collect();
    if open.is_empty() {
        return Ok(());
    }
    consumer
        .assign(tpl)
        .context("assigning the partitions to read")?;
    let mut last_progress = Instant::now();
    while !open.is_empty() {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                last_progress = Instant::now();
                let key = (m.topic().to_owned(), m.partition());
                let Some(end) = ends.get(&key) else { continue };
                if m.offset() < *end {
                    each(&m);
                }
                if m.offset() + 1 >= *end {
                    open.remove(&key);
                }
            }
            Some(Err(e)) => bail!("reading {:?}: {e}", open),
            None if last_progress.elapsed() > timeout => {
                bail!("no record from {:?} within {timeout:?}", open)
            }
            None => {}
        }
    }
    consumer.unassign().context("unassigning")?;
    Ok(())
}

fn header_text(m: &Message, key: &str) -> Option<String> {
    m.headers
        .iter()
        .rev()
        .find(|h| h.key == key)
        .and_then(|h| h.value.as_deref())
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

/// The original record of a DLQ record, from its origin headers.
fn rebuild(dlq_record: Message) -> Result<Dead, Box<Message>> {
    let topic = header_text(&dlq_record, dlq::H_SOURCE_TOPIC);
    let partition = header_text(&dlq_record, dlq::H_SOURCE_PARTITION).and_then(|p| p.parse().ok());
    let offset = header_text(&dlq_record, dlq::H_SOURCE_OFFSET).and_then(|o| o.parse().ok());
    let (Some(topic), Some(partition), Some(offset)) = (topic, partition, offset) else {
        return Err(Box::new(dlq_record));
    };
    let attempt = header_text(&dlq_record, H_REPLAY_ATTEMPT)
        .and_then(|a| a.parse().ok())
        .unwrap_or(0);
    let dlq_at = at(&dlq_record.topic, dlq_record.partition, dlq_record.offset);
    Ok(Dead {
        original: Message {
            topic,
            partition,
            offset,
            timestamp_ms: dlq_record.timestamp_ms,
            key: dlq_record.key,
            value: dlq_record.value,
            // The record's own headers: without what smt added.
            headers: dlq_record
                .headers
                .into_iter()
                .filter(|h| !h.key.starts_with("smt."))
                .collect(),
        },
        dlq_at,
        attempt,
    })
}

/// Replays the DLQ; prints one JSON line per record to `out` (what was done
/// or, with `dry_run`, what would be) and returns the report.
pub async fn replay(
    config: &Config,
    opts: &Options<'_>,
    out: &mut (impl Write + Send),
) -> anyhow::Result<Report> {
    let dlq_config = config
        .dlq
        .as_ref()
        .ok_or_else(|| anyhow!("the configuration has no [dlq] topic to replay"))?;
    let names = config.route_names();
    let mut routes = Vec::new();
    for (r, name) in config.routes.iter().zip(&names) {
        routes.push((name.clone(), TopicMatcher::new(r)?, r.transform.clone()));
    }
    if let Some(r) = opts.route {
        if !names.iter().any(|n| n == r) {
            bail!("no route named `{r}` (routes: {})", names.join(", "));
        }
    }
    let consumer: BaseConsumer = kafka::client_config(config, kafka::Role::Consumer)
        .create()
        .map_err(|e| {
            anyhow!(
                "cannot create a Kafka client: {}",
                kafka::creation_error(&e)
            )
        })?;

    // 1. The DLQ range.
    let dlq_topic = &dlq_config.topic;
    let md = consumer
        .fetch_metadata(Some(dlq_topic), opts.timeout)
        .with_context(|| format!("reading the metadata of the DLQ topic `{dlq_topic}`"))?;
    let keys: Vec<(String, i32)> = md
        .topics()
        .iter()
        .filter(|t| t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| (t.name().to_owned(), p.id())))
        .collect();
    if keys.is_empty() {
        bail!("the DLQ topic `{dlq_topic}` does not exist");
    }
    let from = offsets::plan(
        &consumer,
        &keys,
        opts.from.unwrap_or(Target::Earliest),
        opts.timeout,
    )?;
    let to = offsets::plan(
        &consumer,
        &keys,
        opts.to.unwrap_or(Target::Latest),
        opts.timeout,
    )?;
    let ends: HashMap<(String, i32), i64> = to
        .iter()
        .map(|m| ((m.topic.clone(), m.partition), m.to))
        .collect();
    let mut dead = Vec::new();
    let mut report = Report::default();
    read_range(
        &consumer,
        &offsets::to_commit(&from),
        &ends,
        opts.timeout,
        |m| {
            dead.push(crate::source::owned(m));
        },
    )?;

    // 2. Origins and routes; 3. per source partition, in offset order.
    let mut groups: BTreeMap<(String, i32), BTreeMap<i64, (Dead, usize)>> = BTreeMap::new();
    for d in dead {
        match rebuild(d) {
            Err(m) => {
                let where_ = at(&m.topic, m.partition, m.offset);
                writeln!(
                    out,
                    "{}",
                    json!({"dlq": where_, "action": "ignore", "reason": "no origin headers (smt.source.topic/partition/offset)"})
                )?;
                report.no_origin.push(where_);
            }
            Ok(d) => {
                let route = routes.iter().position(|(name, m, _)| {
                    m.matches(&d.original.topic) && opts.route.is_none_or(|r| r == name.as_str())
                });
                let Some(route) = route else {
                    report.other_route += 1;
                    continue;
                };
                // A record dead-lettered again by an earlier replay: the latest copy counts.
                let key = (d.original.topic.clone(), d.original.partition);
                groups
                    .entry(key)
                    .or_default()
                    .insert(d.original.offset, (d, route));
            }
        }
    }

    // 4. Newer records of the same keys, already processed.
    let mut newer: HashMap<(String, i32, Vec<u8>), i64> = HashMap::new();
    if !groups.is_empty() {
        let mut tpl = TopicPartitionList::new();
        for (t, p) in groups.keys() {
            tpl.add_partition(t, *p);
        }
        let committed = consumer
            .committed_offsets(tpl, opts.timeout)
            .context("reading the group's committed offsets")?;
        let mut scan = TopicPartitionList::new();
        let mut scan_ends = HashMap::new();
        for ((t, p), records) in &groups {
            let first = records.keys().next().copied().unwrap_or(0);
            let end = match committed.find_partition(t, *p).map(|e| e.offset()) {
                Some(Offset::Offset(o)) => o,
                _ => continue,
            };
            scan.add_partition_offset(t, *p, Offset::Offset(first + 1))?;
            scan_ends.insert((t.clone(), *p), end);
        }
        read_range(&consumer, &scan, &scan_ends, opts.timeout, |m| {
            let (t, p, o) = (m.topic().to_owned(), m.partition(), m.offset());
            let replayed = groups
                .get(&(t.clone(), p))
                .is_some_and(|g| g.contains_key(&o));
            if let (Some(k), false) = (m.key(), replayed) {
                let e = newer.entry((t, p, k.to_vec())).or_insert(o);
                *e = (*e).max(o);
            }
        })?;
    }

    // 5. Transform, write, report.
    let prepared = app::prepare(config.clone()).context("loading the transforms")?;
    let registry = prepared.registry().clone();
    let metrics = Arc::new(Metrics::new());
    let (sink, dlq) = if opts.dry_run {
        (None, None)
    } else {
        let sink = Sink::connect(config, metrics.clone(), opts.timeout).await?;
        let dlq = Dlq::new(config, metrics.clone())?.context("a [dlq] producer")?;
        (Some(sink), Some(dlq))
    };
    let stop = CancellationToken::new();
    let mut instances = HashMap::new();
    for ((topic, partition), records) in groups {
        let mut ops: Vec<(usize, WriteOp)> = Vec::new();
        let mut batch: Vec<(Dead, String, String)> = Vec::new(); // (record, transform, version)
        for (offset, (d, route)) in records {
            let source_at = at(&topic, partition, offset);
            let (route_name, _, transform) = &routes[route];
            if let Some(n) = d
                .original
                .key
                .as_ref()
                .and_then(|k| newer.get(&(topic.clone(), partition, k.clone())))
                .filter(|n| **n > offset)
            {
                let newer_at = at(&topic, partition, *n);
                writeln!(
                    out,
                    "{}",
                    json!({"topic": topic, "partition": partition, "offset": offset, "dlq": d.dlq_at, "route": route_name, "action": "skip", "reason": format!("a newer record of the same key ({newer_at}) was already written: replaying this one would overwrite newer data")})
                )?;
                report.skipped_newer.push((source_at, newer_at));
                continue;
            }
            let active = registry
                .active(transform)
                .ok_or_else(|| anyhow!("transform `{transform}` is not loaded"))?;
            let version = active.module.version().to_owned();
            let instance = match instances.entry((transform.clone(), active.generation)) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => e.insert(
                    active
                        .module
                        .instantiate(&active.config)
                        .with_context(|| format!("instantiating transform `{transform}`"))?,
                ),
            };
            let mut line = json!({"topic": topic, "partition": partition, "offset": offset, "dlq": d.dlq_at, "route": route_name});
            match instance.transform(&d.original) {
                Ok(record_ops) => {
                    line["action"] = json!(if opts.dry_run { "would-write" } else { "write" });
                    line["ops"] =
                        Value::Array(record_ops.iter().map(WriteOp::to_extjson).collect());
                    let index = batch.len();
                    ops.extend(record_ops.into_iter().map(|op| (index, op)));
                    batch.push((d, transform.clone(), version));
                }
                Err(e) => {
                    line["action"] = json!("fail");
                    line["error"] = json!({"kind": e.kind.as_str(), "message": e.message});
                    report
                        .failed_again
                        .push((source_at, format!("{}: {}", e.kind.as_str(), e.message)));
                    if let Some(dlq) = &dlq {
                        send_back(
                            dlq,
                            d,
                            transform,
                            &version,
                            e.kind.as_str(),
                            &e.message,
                            &stop,
                        )
                        .await?;
                    }
                }
            }
            writeln!(out, "{line}")?;
        }
        let failures = match &sink {
            Some(sink) => sink.write(&ops, &stop).await.map_err(|g| {
                anyhow!("writing the replayed records of {topic}/{partition}: {g:?}")
            })?,
            None => Vec::new(),
        };
        let failed: HashMap<usize, String> = failures
            .into_iter()
            .map(|f| (f.record, f.message))
            .collect();
        for (i, (d, transform, version)) in batch.into_iter().enumerate() {
            let source_at = at(&d.original.topic, d.original.partition, d.original.offset);
            match failed.get(&i) {
                None => report.replayed.push(source_at),
                Some(message) => {
                    writeln!(
                        out,
                        "{}",
                        json!({"topic": topic, "partition": partition, "offset": d.original.offset, "action": "fail", "error": {"kind": "write-error", "message": message}})
                    )?;
                    report
                        .failed_again
                        .push((source_at, format!("write-error: {message}")));
                    if let Some(dlq) = &dlq {
                        send_back(dlq, d, &transform, &version, "write-error", message, &stop)
                            .await?;
                    }
                }
            }
        }
    }
    if let Some(dlq) = &dlq {
        dlq.flush(opts.timeout);
    }
    out.flush()?;
    Ok(report)
}

/// Produces a record that failed again back to the DLQ, one attempt more.
async fn send_back(
    dlq: &Dlq,
    mut d: Dead,
    transform: &str,
    version: &str,
    kind: &'static str,
    message: &str,
    stop: &CancellationToken,
) -> anyhow::Result<()> {
    d.original.headers.push(Header {
        key: H_REPLAY_ATTEMPT.to_owned(),
        value: Some((d.attempt + 1).to_string().into_bytes()),
    });
    let failure = dlq::Failure {
        transform: transform.to_owned(),
        version: version.to_owned(),
        kind,
        message: message.to_owned(),
    };
    dlq.send(&d.original, &failure, stop).await.map_err(|g| {
        anyhow!(
            "producing {} back to the DLQ failed: {g:?}",
            at(&d.original.topic, d.original.partition, d.original.offset)
        )
    })
}

impl Report {
    /// The summary printed after the record lines.
    pub fn summary(&self, dry_run: bool) -> String {
        let mut s = format!(
            "{} {} record(s); skipped {} (a newer record of the key was written); failed again {}; without origin headers {}; of other routes {}",
            if dry_run { "would replay" } else { "replayed" },
            self.replayed.len(),
            self.skipped_newer.len(),
            self.failed_again.len(),
            self.no_origin.len(),
            self.other_route
        );
        for (a, newer) in &self.skipped_newer {
            s.push_str(&format!("\n  skipped {a}: newer {newer}"));
        }
        for (a, why) in &self.failed_again {
            s.push_str(&format!(
                "\n  failed again {a}: {why}{}",
                if dry_run { "" } else { " (back in the DLQ)" }
            ));
        }
        for a in &self.no_origin {
            s.push_str(&format!("\n  no origin headers: {a} (left in the DLQ)"));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dlq_record(headers: &[(&str, &str)]) -> Message {
        Message {
            topic: "dlq".into(),
            partition: 0,
            offset: 9,
            timestamp_ms: Some(5),
            key: Some(b"k".to_vec()),
            value: Some(b"v".to_vec()),
            headers: headers
                .iter()
                .map(|(k, v)| Header {
                    key: (*k).into(),
                    value: Some(v.as_bytes().to_vec()),
                })
                .collect(),
        }
    }

    #[test]
    fn the_original_record_comes_back_from_the_origin_headers() {
        let d = rebuild(dlq_record(&[
            ("app", "1"),
            (dlq::H_SOURCE_TOPIC, "orders"),
            (dlq::H_SOURCE_PARTITION, "3"),
            (dlq::H_SOURCE_OFFSET, "42"),
            (dlq::H_ERROR_KIND, "trap"),
            (H_REPLAY_ATTEMPT, "2"),
        ]))
        .ok()
        .unwrap();
        assert_eq!(
            (
                d.original.topic.as_str(),
                d.original.partition,
                d.original.offset
            ),
            ("orders", 3, 42)
        );
        assert_eq!(d.attempt, 2);
        assert_eq!(d.dlq_at, "dlq/0@9");
        assert_eq!(d.original.headers.len(), 1, "only the record's own headers");
        assert!(rebuild(dlq_record(&[(dlq::H_SOURCE_TOPIC, "orders")])).is_err());
        assert!(rebuild(dlq_record(&[
            (dlq::H_SOURCE_TOPIC, "orders"),
            (dlq::H_SOURCE_PARTITION, "x"),
            (dlq::H_SOURCE_OFFSET, "1"),
        ]))
        .is_err());
    }
}
