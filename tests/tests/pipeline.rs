//! End-to-end tests of `smt run` with the real `smt` binary and the real
//! services: PostgreSQL changes through real Debezium into MongoDB, and the
//! failure tests (SIGKILL, MongoDB down, broker restart, poison records, a
//! second process taking over). Each failure test ends by asserting that
//! MongoDB equals PostgreSQL and that the DLQ holds exactly the poison records.
//!
//! Run: `cargo build -p smt-host --bin smt && cargo test -p smt-tests --test pipeline`

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{json, Value};
use smt_tests::config::ConfigBuilder;
use smt_tests::kafka::{produce, read_all, topic_len};
use smt_tests::mongo::{documents, int};
use smt_tests::record::{record, Record, RecordExt as _};
use smt_tests::services::{unique_name, DebeziumConnector, Services};
use smt_tests::smt_process::{free_port, run_to_exit, tail, wait_for, Scratch, Smt};
use smt_tests::workload::{wait_for_rows, workload};

const CONVERGE: Duration = Duration::from_secs(120);
const START: Duration = Duration::from_secs(60);

fn debezium_module() -> &'static str {
    env!("SMT_GUEST_DEBEZIUM_MONGO")
}

fn hostile_module() -> &'static str {
    env!("SMT_GUEST_HOSTILE")
}

/// The workload split in two halves per partition (first, second), keeping order.
fn halves(records: &[Record]) -> (Vec<Record>, Vec<Record>) {
    let mut first = Vec::new();
    let mut second = Vec::new();
    for p in 0..4 {
        let part: Vec<&Record> = records.iter().filter(|r| r.partition == p).collect();
        let mid = part.len() / 2;
        first.extend(part[..mid].iter().map(|r| (*r).clone()));
        second.extend(part[mid..].iter().map(|r| (*r).clone()));
    }
    (first, second)
}

fn create_topics(s: &Services, topics: &[(&str, u32)]) {
    for (t, p) in topics {
        s.create_topic(t, *p).expect("create topic");
    }
}

fn assert_dlq_empty(brokers: &str, dlq: &str) {
    assert_eq!(
        topic_len(brokers, dlq).unwrap(),
        0,
        "the DLQ {dlq} must be empty"
    );
}

// ------------------------------------------------------------- startup errors

fn minimal_config(brokers: &str, mongodb: &str, module: &str) -> ConfigBuilder {
    ConfigBuilder::new(brokers, mongodb, "startup")
        .transform("dbz", module, json!({}))
        .route("some.topic", "dbz", "skip")
}

#[test]
fn a_typo_in_the_config_is_one_clear_error() {
    let dir = Scratch::new("typo");
    let config = minimal_config("127.0.0.1:1", "mongodb://127.0.0.1:1", debezium_module());
    let config = config
        .clone()
        .remove(&["kafka", "group-id"])
        .set(&["kafka", "group_id"], json!(config.group))
        .build();
    let (status, out) = run_to_exit(&dir.0, &config, Duration::from_secs(30)).unwrap();
    assert_eq!(status.code(), Some(2), "{out}");
    let lines: Vec<&str> = out.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(lines.len(), 1, "one message: {out}");
    assert!(
        lines[0].contains(".toml") && lines[0].contains("group_id"),
        "names the file and key: {out}"
    );
    assert!(!out.contains("panicked"), "{out}");
}

#[test]
fn a_missing_module_is_one_clear_error() {
    let dir = Scratch::new("module");
    let config = minimal_config(
        "127.0.0.1:1",
        "mongodb://127.0.0.1:1",
        "/nonexistent/t.wasm",
    )
    .build();
    let (status, out) = run_to_exit(&dir.0, &config, Duration::from_secs(30)).unwrap();
    assert_eq!(status.code(), Some(2), "{out}");
    assert!(
        out.contains("transforms.dbz.module") && out.contains("/nonexistent/t.wasm"),
        "{out}"
    );
    assert!(!out.contains("panicked"), "{out}");
}

#[test]
fn an_unreachable_broker_is_one_clear_error() {
    let s = Services::shared();
    let dir = Scratch::new("broker");
    let port = free_port(); // nothing listens there
    let config = minimal_config(
        &format!("127.0.0.1:{port}"),
        &s.mongodb_uri(),
        debezium_module(),
    )
    .set(&["pipeline", "shutdown-timeout-ms"], json!(1000))
    .build();
    let (status, out) = run_to_exit(&dir.0, &config, Duration::from_secs(60)).unwrap();
    assert_eq!(status.code(), Some(2), "{out}");
    assert!(
        out.contains("cannot reach the Kafka brokers") && out.contains(&port.to_string()),
        "{out}"
    );
    assert!(!out.contains("panicked"), "{out}");
}

// ------------------------------------------------------------- real Debezium

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_rows_end_as_mongodb_documents() {
    let s = Services::shared();
    let dir = Scratch::new("rows");
    let schema = unique_name("rows");
    s.sql(&format!(
        "CREATE SCHEMA {schema}; CREATE TABLE {schema}.items (id int PRIMARY KEY, name text NOT NULL, qty int NOT NULL);
         INSERT INTO {schema}.items SELECT g, 'row ' || g, g FROM generate_series(1, 50) g;"
    ))
    .unwrap();
    let mut c = DebeziumConnector::new(
        &unique_name("rows"),
        &unique_name("rows"),
        &[&format!("{schema}.items")],
    );
    c.partitions = 2;
    s.debezium_connector(&c).unwrap();
    let topic = c.topic(&format!("{schema}.items"));
    let dlq = unique_name("dlq");
    create_topics(s, &[(&dlq, 1)]);
    // Wait for the snapshot so the topic exists before smt subscribes.
    s.wait_for_record(&topic, Duration::from_secs(120), |r| {
        r.op().as_deref() == Some("r")
    })
    .unwrap();

    let db = unique_name("db");
    let config = ConfigBuilder::new(&s.brokers(), &s.mongodb_uri(), &db)
        .transform("dbz", debezium_module(), json!({}))
        .route(&topic, "dbz", "dlq")
        .dlq(&dlq)
        .build();
    let mut smt = Smt::start(&dir.0, "smt", &config).unwrap();
    smt.wait_assigned(START).unwrap();

    // Changes while smt runs: updates, deletes, inserts, a key change.
    s.sql(&format!(
        "UPDATE {schema}.items SET name = name || ' v2', qty = qty + 100 WHERE id <= 20;
         DELETE FROM {schema}.items WHERE id BETWEEN 41 AND 45;
         INSERT INTO {schema}.items SELECT g, 'new ' || g, g FROM generate_series(51, 60) g;
         UPDATE {schema}.items SET id = 1000 WHERE id = 50;"
    ))
    .unwrap();
    let expected = pg_rows(s, &format!("{schema}.items"));
    wait_for_rows(&s.mongodb_uri(), &db, "items", &expected, CONVERGE)
        .await
        .unwrap_or_else(|e| panic!("{e:#}\nsmt log:\n{}", tail(&smt.log_text(), 4000)));

    // Metrics and health while running.
    assert_eq!(smt.get("/health").unwrap().0, 200);
    assert!(smt.metric("smt_records_consumed_total", &[]).unwrap() >= 80.0);
    assert!(
        smt.metric("smt_ops_written_total", &[("kind", "replace-one")])
            .unwrap()
            >= 60.0
    );
    assert!(
        smt.metric("smt_ops_written_total", &[("kind", "delete-one")])
            .unwrap()
            >= 6.0
    );

    // SIGTERM: finishes, commits, exits 0.
    let status = smt.terminate(Duration::from_secs(60)).unwrap();
    assert_eq!(status.code(), Some(0), "{}", tail(&smt.log_text(), 3000));
    assert_dlq_empty(&s.brokers(), &dlq);
    assert!(!smt.log_text().contains("mongodb://") || !smt.log_text().contains('@'));
}

fn pg_rows(s: &Services, table: &str) -> std::collections::BTreeMap<i64, Value> {
    let text = s
        .sql(&format!(
            "SELECT row_to_json(t) FROM (SELECT id, name, qty FROM {table} ORDER BY id) t;"
        ))
        .unwrap();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (v["id"].as_i64().unwrap(), v)
        })
        .collect()
}

// ------------------------------------------------------------- failure tests

/// The common shape: the workload's first half, `smt` started, `during` run
/// once it is writing, the second half, then MongoDB must equal PostgreSQL.
struct Run {
    brokers: String,
    mongodb: String,
    topic: String,
    dlq: String,
    db: String,
    dir: Scratch,
}

impl Run {
    fn new(name: &str, kafka: &Services, mongo: &Services) -> Run {
        let run = Run {
            brokers: kafka.brokers(),
            mongodb: mongo.mongodb_uri(),
            topic: unique_name(name),
            dlq: unique_name("dlq"),
            db: unique_name("db"),
            dir: Scratch::new(name),
        };
        create_topics(kafka, &[(&run.topic, 4), (&run.dlq, 1)]);
        run
    }

    fn config(&self) -> ConfigBuilder {
        // Test topics are not named <prefix>.<schema>.<table>: name the collection.
        ConfigBuilder::new(&self.brokers, &self.mongodb, &self.db)
            .transform(
                "dbz",
                debezium_module(),
                json!({ "collection": workload().table }),
            )
            .route(&self.topic, "dbz", "dlq")
            .dlq(&self.dlq)
    }

    fn wait_writing(&self, smt: &Smt) {
        wait_for("smt to write some documents", CONVERGE, || {
            Ok((smt.metric("smt_ops_written_total", &[]).unwrap_or(0.0) > 0.0).then_some(()))
        })
        .unwrap_or_else(|e| panic!("{e:#}\n{}", tail(&smt.log_text(), 3000)));
    }

    async fn converge(&self, smt: &Smt) {
        let w = workload();
        wait_for_rows(&self.mongodb, &self.db, &w.table, &w.rows, CONVERGE)
            .await
            .unwrap_or_else(|e| panic!("{e:#}\nsmt log:\n{}", tail(&smt.log_text(), 4000)));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_stream_then_restart_loses_nothing() {
    let s = Services::shared();
    let w = workload();
    let run = Run::new("kill", s, s);
    let (first, second) = halves(&w.records);
    produce(&run.brokers, &run.topic, &first).unwrap();
    let config = run.config().build();
    let mut smt = Smt::start(&run.dir.0, "smt1", &config).unwrap();
    smt.wait_assigned(START).unwrap();
    run.wait_writing(&smt);
    smt.kill();
    produce(&run.brokers, &run.topic, &second).unwrap();
    let mut smt = Smt::start(&run.dir.0, "smt2", &config).unwrap();
    smt.wait_assigned(START).unwrap();
    run.converge(&smt).await;
    assert_eq!(
        smt.terminate(Duration::from_secs(60)).unwrap().code(),
        Some(0)
    );
    assert_dlq_empty(&run.brokers, &run.dlq);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongodb_down_for_seconds_mid_stream_loses_nothing() {
    let s = Services::shared();
    let mongo = Services::private(&["mongo"]).expect("a private MongoDB server");
    let w = workload();
    let run = Run::new("mongodown", s, &mongo);
    let (first, second) = halves(&w.records);
    produce(&run.brokers, &run.topic, &first).unwrap();
    let mut smt = Smt::start(&run.dir.0, "smt", &run.config().build()).unwrap();
    smt.wait_assigned(START).unwrap();
    run.wait_writing(&smt);
    mongo.stop("mongo").unwrap();
    produce(&run.brokers, &run.topic, &second).unwrap();
    // Down until smt has seen it fail and retried.
    wait_for("smt to retry against the stopped server", CONVERGE, || {
        Ok((smt
            .metric("smt_retries_total", &[("target", "mongodb")])
            .unwrap_or(0.0)
            > 0.0)
            .then_some(()))
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{}", tail(&smt.log_text(), 3000)));
    mongo.start("mongo").unwrap();
    assert_eq!(
        mongo.mongodb_uri(),
        run.mongodb,
        "same address after the restart"
    );
    run.converge(&smt).await;
    assert_eq!(smt.try_wait(), None, "smt kept running");
    assert_eq!(
        smt.terminate(Duration::from_secs(60)).unwrap().code(),
        Some(0)
    );
    assert_dlq_empty(&run.brokers, &run.dlq);
}

/// The first half of the workload written through a private broker, then
/// `outage` done to that broker (it ends with the broker up on the same
/// address), then the second half: MongoDB must equal PostgreSQL, `smt`
/// must have kept running, and the DLQ must be empty.
async fn through_a_broker_outage(name: &str, outage: impl FnOnce(&Services, &Smt)) {
    let s = Services::shared();
    let kafka = Services::private(&["kafka"]).expect("a private Kafka broker");
    let w = workload();
    let run = Run::new(name, &kafka, s);
    let (first, second) = halves(&w.records);
    produce(&run.brokers, &run.topic, &first).unwrap();
    let mut smt = Smt::start(&run.dir.0, "smt", &run.config().build()).unwrap();
    smt.wait_assigned(START).unwrap();
    run.wait_writing(&smt);
    outage(&kafka, &smt);
    assert_eq!(
        kafka.brokers(),
        run.brokers,
        "same address after the outage"
    );
    produce(&run.brokers, &run.topic, &second).unwrap();
    run.converge(&smt).await;
    assert_eq!(smt.try_wait(), None, "smt kept running");
    assert_eq!(
        smt.terminate(Duration::from_secs(60)).unwrap().code(),
        Some(0)
    );
    assert_dlq_empty(&run.brokers, &run.dlq);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restart_mid_stream_loses_nothing() {
    through_a_broker_outage("brokerdown", |kafka, _| kafka.restart("kafka").unwrap()).await;
}

/// The broker away for longer than the group's session: the consumer's
/// session times out and its partitions are lost while no broker answers,
/// then the broker comes back and the group is joined again. (Seen under
/// load in CI: a restart that took longer than the session left `smt` never
/// joining again.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_down_past_the_session_timeout_loses_nothing() {
    through_a_broker_outage("sessiondown", |kafka, smt| {
        kafka.stop("kafka").unwrap();
        // given up without a commit that no coordinator could take
        wait_for(
            "the session to time out and the partitions to be lost",
            START,
            || {
                let log = smt.log_text();
                Ok(
                    (log.contains("Partitions lost") && log.contains("Partitions given up"))
                        .then_some(()),
                )
            },
        )
        .unwrap_or_else(|e| panic!("{e:#}\n{}", tail(&smt.log_text(), 3000)));
        kafka.start("kafka").unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_partitions_and_one_takes_over() {
    let s = Services::shared();
    let w = workload();
    let run = Run::new("group", s, s);
    let (first, second) = halves(&w.records);
    let config = run.config().build();
    let mut a = Smt::start(&run.dir.0, "a", &config).unwrap();
    a.wait_assigned(START).unwrap();
    let mut b = Smt::start(&run.dir.0, "b", &config).unwrap();
    b.wait_assigned(START).unwrap();
    // Both own partitions once the group settled.
    wait_for("the two processes to split the 4 partitions", START, || {
        let (pa, pb) = (
            a.metric("smt_assigned_partitions", &[])?,
            b.metric("smt_assigned_partitions", &[])?,
        );
        Ok((pa > 0.0 && pb > 0.0 && pa + pb == 4.0).then_some(()))
    })
    .unwrap();
    produce(&run.brokers, &run.topic, &first).unwrap();
    run.wait_writing(&a);
    a.kill();
    produce(&run.brokers, &run.topic, &second).unwrap();
    wait_for("the survivor to own all 4 partitions", START, || {
        Ok((b.metric("smt_assigned_partitions", &[])? == 4.0).then_some(()))
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{}", tail(&b.log_text(), 3000)));
    run.converge(&b).await;
    assert_eq!(
        b.terminate(Duration::from_secs(60)).unwrap().code(),
        Some(0)
    );
    assert_dlq_empty(&run.brokers, &run.dlq);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_records_go_to_the_dlq_and_the_rest_is_written() {
    let s = Services::shared();
    let w = workload();
    let run = Run::new("poison", s, s);
    let trap_topic = unique_name("trap");
    create_topics(s, &[(&trap_topic, 1)]);

    // Poison in the middle of partition 0 of the Debezium topic.
    let mut records = w.records.clone();
    let at = records.iter().position(|r| r.partition == 0).unwrap() + 40;
    let poison = |value: &str| {
        record(
            "",
            Some(br#"{"id":999999}"#.as_slice()),
            Some(value.as_bytes()),
        )
    };
    records.insert(at, poison("{not json"));
    records.insert(
        at + 20,
        poison(r#"{"before":null,"after":null,"op":"x","source":{"table":"items"}}"#),
    );
    produce(&run.brokers, &run.topic, &records).unwrap();
    // The trap guest's topic: 30 records, the one with key k17 traps.
    let trap_records = keyed_records(30);
    produce(&run.brokers, &trap_topic, &trap_records).unwrap();

    let config = run
        .config()
        .transform(
            "hostile",
            hostile_module(),
            json!({ "mode": "trap", "trap_key": "k17" }),
        )
        .route(&trap_topic, "hostile", "dlq")
        .build();
    let mut smt = Smt::start(&run.dir.0, "smt", &config).unwrap();
    smt.wait_assigned(START).unwrap();
    run.converge(&smt).await;

    // The trap topic: every record but the trapping one written (offset 17).
    let client = mongodb::Client::with_uri_str(&run.mongodb).await.unwrap();
    wait_for("the trap topic's documents", CONVERGE, || {
        let offsets = futures_block(hostile_offsets(&client, &run.db));
        Ok((offsets.len() == 29).then_some(offsets))
    })
    .map(|offsets| assert!(!offsets.contains(&17), "{offsets:?}"))
    .unwrap();

    // The DLQ: exactly the three poison records, as they were, with the headers.
    let dlq = read_all(s, &run.dlq, 3, Duration::from_secs(60)).unwrap();
    assert_eq!(topic_len(&run.brokers, &run.dlq).unwrap(), 3);
    let mut seen: Vec<(String, String, String)> = dlq
        .iter()
        .map(|r| {
            assert!(r.header("smt.error.message").is_some_and(|m| !m.is_empty()));
            assert!(r
                .header("smt.transform.version")
                .is_some_and(|m| m.len() >= 8));
            assert!(r.header("smt.source.partition").is_some());
            assert!(r.header("smt.source.offset").is_some());
            (
                r.header("smt.source.topic").unwrap(),
                r.header("smt.transform.name").unwrap(),
                String::from_utf8(r.value.clone().unwrap()).unwrap(),
            )
        })
        .collect();
    seen.sort();
    let mut want = vec![
        (run.topic.clone(), "dbz".to_owned(), "{not json".to_owned()),
        (
            run.topic.clone(),
            "dbz".to_owned(),
            r#"{"before":null,"after":null,"op":"x","source":{"table":"items"}}"#.to_owned(),
        ),
        (trap_topic.clone(), "hostile".to_owned(), "{}".to_owned()),
    ];
    want.sort();
    assert_eq!(seen, want);
    let trap = dlq
        .iter()
        .find(|r| r.header("smt.transform.name").as_deref() == Some("hostile"))
        .unwrap();
    assert_eq!(trap.header("smt.error.kind").as_deref(), Some("trap"));
    assert_eq!(trap.key.as_deref(), Some(&b"k17"[..]));
    assert_eq!(trap.header("smt.source.offset").as_deref(), Some("17"));
    assert!(smt.metric("smt_dlq_records_total", &[]).unwrap() == 3.0);
    assert_eq!(
        smt.terminate(Duration::from_secs(60)).unwrap().code(),
        Some(0)
    );
}

/// Runs a future to completion from blocking code inside the test runtime.
fn futures_block<F: std::future::Future>(f: F) -> F::Output {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(f))
}

// ------------------------------------------------------------- fail and skip

fn trap_topic_with_records(s: &Services, n: usize) -> String {
    let topic = unique_name("policy");
    create_topics(s, &[(&topic, 1)]);
    produce(&s.brokers(), &topic, &keyed_records(n)).unwrap();
    topic
}

/// Records with keys `k0`, `k1`, … and `{}` as value, for the hostile guest.
fn keyed_records(n: usize) -> Vec<Record> {
    (0..n)
        .map(|i| record("", Some(format!("k{i}").as_bytes()), Some(b"{}".as_slice())))
        .collect()
}

/// The offsets the hostile guest wrote (its documents are `{"offset": n}`).
async fn hostile_offsets(client: &mongodb::Client, db: &str) -> BTreeSet<i64> {
    documents(client, db, "hostile")
        .await
        .unwrap()
        .iter()
        .map(|d| int(d, "offset").unwrap_or_else(|| panic!("no offset in {d}")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_error_fail_stops_without_committing_past_the_record() {
    let s = Services::shared();
    let dir = Scratch::new("fail");
    let topic = trap_topic_with_records(s, 12);
    let db = unique_name("db");
    let builder = ConfigBuilder::new(&s.brokers(), &s.mongodb_uri(), &db)
        .transform(
            "hostile",
            hostile_module(),
            json!({ "mode": "trap", "trap_key": "k5" }),
        )
        .route(&topic, "hostile", "fail");
    let group = builder.group.clone();
    let (status, out) = run_to_exit(&dir.0, &builder.build(), Duration::from_secs(120)).unwrap();
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(
        out.contains(&format!("{topic}/0@5")) && out.contains("trap"),
        "names the record and the failure: {out}"
    );
    // Everything before it is written and committed; nothing after it.
    let expected: BTreeSet<i64> = (0..5).collect();
    let client = mongodb::Client::with_uri_str(s.mongodb_uri())
        .await
        .unwrap();
    assert_eq!(hostile_offsets(&client, &db).await, expected);
    assert_eq!(committed(&s.brokers(), &group, &topic), Some(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_error_skip_logs_counts_and_continues() {
    let s = Services::shared();
    let dir = Scratch::new("skip");
    let topic = trap_topic_with_records(s, 12);
    let db = unique_name("db");
    let config = ConfigBuilder::new(&s.brokers(), &s.mongodb_uri(), &db)
        .transform(
            "hostile",
            hostile_module(),
            json!({ "mode": "trap", "trap_key": "k5" }),
        )
        .route(&topic, "hostile", "skip")
        .build();
    let mut smt = Smt::start(&dir.0, "smt", &config).unwrap();
    smt.wait_assigned(START).unwrap();
    let client = mongodb::Client::with_uri_str(s.mongodb_uri())
        .await
        .unwrap();
    wait_for("11 documents", CONVERGE, || {
        Ok((futures_block(hostile_offsets(&client, &db)).len() == 11).then_some(()))
    })
    .unwrap();
    assert!(!hostile_offsets(&client, &db).await.contains(&5));
    assert_eq!(smt.metric("smt_skipped_records_total", &[]).unwrap(), 1.0);
    assert_eq!(
        smt.metric(
            "smt_record_errors_total",
            &[("kind", "trap"), ("policy", "skip")]
        )
        .unwrap(),
        1.0
    );
    assert_eq!(
        smt.terminate(Duration::from_secs(60)).unwrap().code(),
        Some(0)
    );
    assert!(smt.log_text().contains("skipped"));
}

/// The committed offset of partition 0 of `topic` for `group`.
fn committed(brokers: &str, group: &str, topic: &str) -> Option<i64> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let c: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .create()
        .unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition(topic, 0);
    let got = c.committed_offsets(tpl, Duration::from_secs(10)).unwrap();
    match got.elements()[0].offset() {
        rdkafka::Offset::Offset(o) => Some(o),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backpressure_pauses_partitions_and_keeps_order() {
    let s = Services::shared();
    let w = workload();
    let run = Run::new("pause", s, s);
    produce(&run.brokers, &run.topic, &w.records).unwrap();
    // Queues far smaller than the backlog: partitions must be paused and resumed.
    let config = run
        .config()
        .set(&["pipeline", "max-batch-size"], json!(7))
        .set(&["pipeline", "queue-capacity"], json!(5))
        .build();
    let mut smt = Smt::start(&run.dir.0, "smt", &config).unwrap();
    smt.wait_assigned(START).unwrap();
    run.converge(&smt).await;
    assert!(
        smt.metric("smt_partition_pauses_total", &[]).unwrap() > 0.0,
        "never paused"
    );
    // The last records may be tombstones (no write): wait for them too, then each record once.
    let processed = wait_for("every record processed", CONVERGE, || {
        let n = smt.metric("smt_records_processed_total", &[])?;
        Ok((n >= w.records.len() as f64).then_some(n))
    })
    .unwrap();
    assert_eq!(processed, w.records.len() as f64, "each record once");
    assert_eq!(
        smt.terminate(Duration::from_secs(60)).unwrap().code(),
        Some(0)
    );
    assert_dlq_empty(&run.brokers, &run.dlq);
}
