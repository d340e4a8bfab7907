//! Delivery under faults (issue #16), with real Kafka, the real
//! MongoDB-protocol server and real `smt` processes: a batch in flight when
//! its partition is revoked, a paused partition across a rebalance, a write
//! error under `on-error = "fail"`, MongoDB refusing writes for a reason
//! that is not the records'. Network faults come from a TCP proxy
//! (`smt_tests::proxy`) between one `smt` and MongoDB.
//!
//! Records are synthetic Debezium change events (`{"id": k}` keys, `after`
//! holding a per-key sequence number `seq`) for the default transform, so
//! the final document of a key must hold its last sequence.
//!
//! Run: `scripts/test -p smt-tests --test delivery`

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use mongodb::bson::{doc, Document};
use serde_json::json;
use smt_tests::pipeline::*;
use smt_tests::proxy::Proxy;
use smt_tests::services::{unique_name, Record, Services};

const START: Duration = Duration::from_secs(60);
const CONVERGE: Duration = Duration::from_secs(120);

fn debezium_module() -> &'static str {
    env!("SMT_GUEST_DEBEZIUM_MONGO")
}

/// A Debezium update event of row `id` with sequence `seq` (and extra columns).
fn event(partition: i32, id: i64, seq: i64, extra: serde_json::Value) -> Record {
    let mut after = json!({"id": id, "seq": seq});
    if let serde_json::Value::Object(m) = extra {
        after.as_object_mut().unwrap().extend(m);
    }
    let value = json!({
        "before": null,
        "after": after,
        "source": {"version": "3.0.0", "connector": "postgresql", "name": "dlv", "ts_ms": 0,
                   "db": "d", "schema": "s", "table": "t"},
        "op": "u",
        "ts_ms": 0
    });
    Record {
        topic: String::new(),
        partition,
        offset: 0,
        timestamp_ms: None,
        key: Some(serde_json::to_vec(&json!({"id": id})).unwrap()),
        value: Some(serde_json::to_vec(&value).unwrap()),
        headers: vec![],
    }
}

/// `keys` rows each updated `rounds` times, in sequence order, key `k` in partition `k % partitions`.
fn updates(keys: i64, rounds: i64, partitions: i32) -> Vec<Record> {
    let mut out = Vec::new();
    for seq in 1..=rounds {
        for id in 0..keys {
            out.push(event((id % partitions as i64) as i32, id, seq, json!({})));
        }
    }
    out
}

/// `{id -> seq}` of the documents of `db.coll` (written by the default transform: `_id: {id}`).
async fn seqs(uri: &str, db: &str, coll: &str) -> BTreeMap<i64, i64> {
    let client = mongodb::Client::with_uri_str(uri).await.unwrap();
    all_documents(&client, db, coll)
        .await
        .iter()
        .map(|d| {
            let int = |v: Option<&mongodb::bson::Bson>| {
                v.and_then(|v| v.as_i64().or(v.as_i32().map(i64::from)))
                    .unwrap_or_else(|| panic!("unexpected document {d}"))
            };
            (
                int(d.get_document("_id").ok().and_then(|i| i.get("id"))),
                int(d.get("seq")),
            )
        })
        .collect()
}

/// Committed offsets of every partition of `topic` for `group` (absent: none yet).
fn committed(brokers: &str, group: &str, topic: &str, partitions: i32) -> Vec<Option<i64>> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let c: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .create()
        .unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let got = c.committed_offsets(tpl, Duration::from_secs(10)).unwrap();
    got.elements()
        .iter()
        .map(|e| match e.offset() {
            rdkafka::Offset::Offset(o) => Some(o),
            _ => None,
        })
        .collect()
}

/// Waits until `group` committed the end of every partition of `topic`.
fn wait_committed_all(brokers: &str, group: &str, topic: &str, partitions: i32, total: usize) {
    wait_for("every offset committed", CONVERGE, || {
        let c = committed(brokers, group, topic, partitions);
        Ok((c.iter().map(|o| o.unwrap_or(0)).sum::<i64>() == total as i64).then_some(()))
    })
    .unwrap_or_else(|e| {
        panic!(
            "{e:#}: committed {:?} of {total}",
            committed(brokers, group, topic, partitions)
        )
    });
}

fn mongodb_addr(s: &Services) -> SocketAddr {
    let uri = s.mongodb_uri();
    let hostport = uri
        .trim_start_matches("mongodb://")
        .split(['/', '?'])
        .next()
        .unwrap()
        .to_owned();
    hostport.parse().expect("mongodb://127.0.0.1:PORT")
}

/// The same MongoDB URI through `proxy` (a direct connection: the proxy's
/// address is not a replica set member's).
fn through(s: &Services, proxy: &Proxy) -> String {
    let uri = s.mongodb_uri();
    let direct = uri.replace(&mongodb_addr(s).to_string(), &proxy.addr());
    if direct.contains('?') {
        format!("{direct}&directConnection=true")
    } else {
        format!("{}/?directConnection=true", direct.trim_end_matches('/'))
    }
}

/// A config of the default transform on `topic`, with `pipeline` settings and a `client.id`.
fn config(
    brokers: &str,
    uri: &str,
    db: &str,
    group: &str,
    topic: &str,
    on_error: &str,
    client_id: &str,
    pipeline: &str,
) -> String {
    let mut b = ConfigBuilder::new(brokers, uri, db)
        .transform("dbz", debezium_module(), "{}")
        .route(topic, "dbz", on_error);
    b.group = group.to_owned();
    b.build()
        .replace(
            "[kafka.properties]\n",
            &format!("[kafka.properties]\n\"client.id\" = \"{client_id}\"\n"),
        )
        .replace("[pipeline]\n", &format!("[pipeline]\n{pipeline}\n"))
}

// ------------------------------------------------------------------ #16.4

/// Under `on-error = "fail"`, a write error stops the pipeline at its
/// record: nothing after it is written, its offset is where the group resumes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_writes_nothing_after_a_failed_write() {
    let s = Services::shared();
    let dir = Scratch::new("dlv-fail");
    let db = unique_name("db");
    let topic = format!("dlv.s.{}", unique_name("failw"));
    s.create_topic(&topic, 1).unwrap();
    // A unique index on `u`: row 20 repeats row 5's `u` (duplicate key 11000).
    let client = mongodb::Client::with_uri_str(s.mongodb_uri())
        .await
        .unwrap();
    let coll = topic.rsplit('.').next().unwrap().to_owned();
    client
        .database(&db)
        .collection::<Document>(&coll)
        .create_index(
            mongodb::IndexModel::builder()
                .keys(doc! {"u": 1})
                .options(
                    mongodb::options::IndexOptions::builder()
                        .unique(true)
                        .build(),
                )
                .build(),
        )
        .await
        .unwrap();
    let records: Vec<Record> = (1..=40)
        .map(|id| event(0, id, 1, json!({"u": if id == 20 { 5 } else { id }})))
        .collect();
    produce(&s.brokers(), &topic, &records).unwrap();
    let group = unique_name("group");
    // One batch for all 40 records.
    let cfg = config(
        &s.brokers(),
        &s.mongodb_uri(),
        &db,
        &group,
        &topic,
        "fail",
        "smt",
        "",
    )
    .replace("max-batch-size = 200", "max-batch-size = 100")
    .replace("linger-ms = 10", "linger-ms = 2000");
    let (status, out) = run_to_exit(&dir.0, &cfg, Duration::from_secs(120)).unwrap();
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(
        out.contains(&format!("{topic}/0@19")) && out.contains("write-error"),
        "names the record and the failure: {out}"
    );
    let got = seqs(&s.mongodb_uri(), &db, &coll).await;
    let ids: Vec<i64> = got.keys().copied().collect();
    assert_eq!(
        ids,
        (1..20).collect::<Vec<_>>(),
        "rows before the failed one written, nothing after it"
    );
    assert_eq!(committed(&s.brokers(), &group, &topic, 1), vec![Some(19)]);
}

// ------------------------------------------------------------------ #16.1

/// A partition revoked while its batch waits on a slow MongoDB longer than
/// `shutdown-timeout-ms`: the old worker is aborted, so none of the records
/// still in its queue are written after the new owner wrote newer images.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_slower_than_the_revoke_timeout_writes_nothing_stale() {
    let s = Services::shared();
    let dir = Scratch::new("dlv-revoke");
    let db = unique_name("db");
    let table = unique_name("revoke");
    let topic = format!("dlv.s.{table}");
    s.create_topic(&topic, 1).unwrap();
    let (keys, rounds) = (30, 20);
    produce(&s.brokers(), &topic, &updates(keys, rounds, 1)).unwrap();
    let total = (keys * rounds) as usize;
    let group = unique_name("group");
    let proxy = Proxy::start(mongodb_addr(s)).unwrap();
    proxy.set_delay(Duration::from_millis(1500));
    let pipeline = "shutdown-timeout-ms = 300";
    let slow_cfg = config(
        &s.brokers(),
        &through(s, &proxy),
        &db,
        &group,
        &topic,
        "fail",
        "z-slow",
        pipeline,
    )
    .replace("max-batch-size = 200", "max-batch-size = 10")
    .replace("queue-capacity = 400", "queue-capacity = 100");
    // The range assignor gives the partition to the first member id: `a-…`.
    let fast_cfg = config(
        &s.brokers(),
        &s.mongodb_uri(),
        &db,
        &group,
        &topic,
        "fail",
        "a-fast",
        pipeline,
    );
    let mut slow = Smt::start_with_env(
        &dir.0,
        "slow",
        &slow_cfg,
        &[("SMT_LOG", "info,smt_host::pipeline=debug")],
    )
    .unwrap();
    slow.wait_assigned(START).unwrap();
    // Its queue holds records while its first batch waits on MongoDB.
    wait_for("the slow process to queue records", START, || {
        Ok((slow.metric("smt_records_consumed_total", &[])? >= 50.0).then_some(()))
    })
    .unwrap();
    let mut fast = Smt::start(&dir.0, "fast", &fast_cfg).unwrap();
    fast.wait_assigned(START).unwrap();
    wait_committed_all(&s.brokers(), &group, &topic, 1, total);
    let expected: BTreeMap<i64, i64> = (0..keys).map(|k| (k, rounds)).collect();
    assert_eq!(seqs(&s.mongodb_uri(), &db, &table).await, expected);
    // MongoDB answers at once again: a worker left running would now write
    // its queue (older images) over the newer ones.
    proxy.set_delay(Duration::ZERO);
    wait_for("the old worker to be gone", START, || {
        let log = slow.log_text();
        Ok((log.contains("it was aborted") || log.contains("Partition worker stopped."))
            .then_some(()))
    })
    .unwrap();
    assert_eq!(
        slow.terminate(Duration::from_secs(60)).unwrap().code(),
        Some(0),
        "{}",
        slow.log_text()
    );
    assert_eq!(
        seqs(&s.mongodb_uri(), &db, &table).await,
        expected,
        "no stale image after the newest: {}",
        tail(&slow.log_text(), 3000)
    );
    assert!(slow.log_text().contains("it was aborted"));
    assert_eq!(
        fast.terminate(Duration::from_secs(60)).unwrap().code(),
        Some(0)
    );
}

// ------------------------------------------------------------------ #16.2

/// Partitions paused by backpressure when a third member joins: the ones
/// that come back to the same process must not stay paused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_partition_resumes_after_a_rebalance() {
    let s = Services::shared();
    let dir = Scratch::new("dlv-pause");
    let db = unique_name("db");
    let table = unique_name("pause");
    let topic = format!("dlv.s.{table}");
    let partitions = 8;
    s.create_topic(&topic, partitions as u32).unwrap();
    let (keys, rounds) = (200, 10);
    produce(&s.brokers(), &topic, &updates(keys, rounds, partitions)).unwrap();
    let total = (keys * rounds) as usize;
    let group = unique_name("group");
    let proxy = Proxy::start(mongodb_addr(s)).unwrap();
    proxy.set_delay(Duration::from_millis(300));
    let cfg = |client_id: &str, uri: &str| {
        config(&s.brokers(), uri, &db, &group, &topic, "fail", client_id, "")
            .replace("max-batch-size = 200", "max-batch-size = 5")
            .replace("queue-capacity = 400", "queue-capacity = 5")
    };
    // `a-…` sorts first: with three members it keeps partitions 0–2 of its 0–3.
    let mut a = Smt::start(&dir.0, "a", &cfg("a-slow", &through(s, &proxy))).unwrap();
    let mut b = Smt::start(&dir.0, "b", &cfg("b-slow", &through(s, &proxy))).unwrap();
    a.wait_assigned(START).unwrap();
    b.wait_assigned(START).unwrap();
    wait_for("a partition paused", START, || {
        Ok((a.metric("smt_paused_partitions", &[])? >= 3.0).then_some(()))
    })
    .unwrap();
    let mut c = Smt::start(&dir.0, "c", &cfg("c-fast", &s.mongodb_uri())).unwrap();
    c.wait_assigned(START).unwrap();
    proxy.set_delay(Duration::ZERO);
    wait_committed_all(&s.brokers(), &group, &topic, partitions, total);
    let expected: BTreeMap<i64, i64> = (0..keys).map(|k| (k, rounds)).collect();
    assert_eq!(seqs(&s.mongodb_uri(), &db, &table).await, expected);
    for p in [&mut a, &mut b, &mut c] {
        assert_eq!(p.terminate(Duration::from_secs(60)).unwrap().code(), Some(0));
    }
}
