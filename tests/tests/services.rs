//! The harness against the real services (`scripts/services`): the broker,
//! the MongoDB-protocol server, PostgreSQL through real Debezium, the
//! reference sink connector, and the failure paths (a port taken, a killed
//! owner, stale processes).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use mongodb::bson::{doc, Document};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use smt_tests::mongo::documents;
use smt_tests::record::RecordExt as _;
use smt_tests::services::{script, unique_name, DebeziumConnector, Services};

const WAIT: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_produce_and_consume_through_the_real_broker() {
    let s = Services::shared();
    let topic = unique_name("produce");
    s.create_topic(&topic, 3).expect("create topic");
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", s.brokers())
        .set("message.timeout.ms", "30000")
        .create()
        .expect("producer");
    let delivery = producer
        .send(
            FutureRecord::to(&topic).key("k1").payload("hello smt"),
            Duration::from_secs(30),
        )
        .await
        .expect("delivered");
    let (partition, offset) = (delivery.partition, delivery.offset);
    println!(
        "produced to {topic}/{partition}@{offset} on {}",
        s.brokers()
    );
    let r = s
        .wait_for_record(&topic, WAIT, |r| r.key.as_deref() == Some(b"k1"))
        .expect("the record comes back");
    assert_eq!(r.value.as_deref(), Some(&b"hello smt"[..]));
    assert_eq!((r.partition, r.offset), (partition, offset));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_topics_are_not_auto_created() {
    let s = Services::shared();
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", s.brokers())
        .set("message.timeout.ms", "3000")
        .create()
        .expect("producer");
    let topic = unique_name("missing");
    let res = producer
        .send(
            FutureRecord::to(&topic).key("k").payload("v"),
            Duration::from_secs(5),
        )
        .await;
    assert!(
        res.is_err(),
        "producing to a missing topic must fail (auto.create.topics.enable=false)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_write_and_read_a_document() {
    let s = Services::shared();
    let client = mongodb::Client::with_uri_str(s.mongodb_uri())
        .await
        .expect("client");
    let coll = client
        .database(&unique_name("db"))
        .collection::<Document>("docs");
    coll.insert_one(doc! { "_id": 42, "name": "smt", "tags": ["a", "b"] })
        .await
        .expect("insert");
    let got = coll
        .find_one(doc! { "_id": 42 })
        .await
        .expect("find")
        .expect("the document is there");
    assert_eq!(got.get_str("name").unwrap(), "smt");
    println!("read back {got} from {}", s.mongodb_uri());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_row_change_arrives_as_a_debezium_event() {
    let s = Services::shared();
    let schema = unique_name("dbz");
    s.sql(&format!(
        "CREATE SCHEMA {schema}; CREATE TABLE {schema}.items (id int PRIMARY KEY, name text, price numeric(10,2));
         INSERT INTO {schema}.items VALUES (1, 'before the connector', 1.50);"
    ))
    .expect("sql");
    let c = DebeziumConnector::new(
        &unique_name("pg"),
        &unique_name("p"),
        &[&format!("{schema}.items")],
    );
    let t0 = Instant::now();
    s.debezium_connector(&c)
        .expect("the Debezium connector runs");
    let topic = c.topic(&format!("{schema}.items"));
    let snap = s
        .wait_for_record(&topic, WAIT, |r| r.op().as_deref() == Some("r"))
        .expect("snapshot read");
    assert_eq!(
        snap.debezium_payload().unwrap()["after"]["name"],
        "before the connector"
    );
    println!("snapshot event after {:?}", t0.elapsed());

    s.sql(&format!("UPDATE {schema}.items SET name = 'changed' WHERE id = 1; INSERT INTO {schema}.items VALUES (2, 'new', 2.00);"))
        .expect("sql");
    let t1 = Instant::now();
    let upd = s
        .wait_for_record(&topic, WAIT, |r| r.op().as_deref() == Some("u"))
        .expect("an update event arrives for the row change");
    let p = upd.debezium_payload().unwrap();
    assert_eq!(p["after"]["name"], "changed");
    assert_eq!(p["source"]["table"], "items");
    assert_eq!(upd.key_json().unwrap()["id"], 1);
    s.wait_for_record(&topic, WAIT, |r| r.op().as_deref() == Some("c"))
        .expect("insert event");
    println!("row change -> Debezium event in {:?}", t1.elapsed());
    s.delete_connector("connect", &c.name).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference_sink_connector_writes_debezium_events_into_mongo() {
    let s = Services::shared();
    let schema = unique_name("ref");
    s.sql(&format!(
        "CREATE SCHEMA {schema};
         CREATE TABLE {schema}.customers (id int PRIMARY KEY, first_name text, email text);
         INSERT INTO {schema}.customers VALUES (1, 'Sally', 'sally@example.com'), (2, 'George', 'g@example.com'), (3, 'Ed', 'ed@example.com');"
    ))
    .expect("sql");
    let table = format!("{schema}.customers");
    let c = DebeziumConnector::new(&unique_name("pg"), &unique_name("r"), &[&table]);
    s.debezium_connector(&c)
        .expect("the Debezium connector runs");
    s.sql(&format!(
        "UPDATE {schema}.customers SET email = 'sally@acme.com' WHERE id = 1;
         DELETE FROM {schema}.customers WHERE id = 3;
         INSERT INTO {schema}.customers VALUES (4, 'Anne', 'anne@example.com');"
    ))
    .expect("sql");
    let topic = c.topic(&table);
    // the topic exists and holds the last change before the sink subscribes
    s.wait_for_record(&topic, WAIT, |r| {
        r.key_json().map(|k| k["id"] == 4).unwrap_or(false)
    })
    .expect("Debezium sent the insert");
    let db = unique_name("sinkdb");
    let sink = unique_name("mongo_sink");
    let t0 = Instant::now();
    s.mongo_sink_connector(&sink, &[&topic], &db, Some("customers"), &[])
        .expect("the sink connector runs");

    let client = mongodb::Client::with_uri_str(s.mongodb_uri())
        .await
        .expect("client");
    // without schemas the JSON converter gives the handler longs: ids are Int64
    let want = vec![
        doc! { "_id": { "id": 1i64 }, "first_name": "Sally", "email": "sally@acme.com" },
        doc! { "_id": { "id": 2i64 }, "first_name": "George", "email": "g@example.com" },
        doc! { "_id": { "id": 4i64 }, "first_name": "Anne", "email": "anne@example.com" },
    ];
    let deadline = Instant::now() + WAIT;
    let mut got = Vec::new();
    while Instant::now() < deadline {
        got = documents(&client, &db, "customers").await.expect("find");
        if got == want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(
        got,
        want,
        "documents written by mongo-kafka-connect (sink log: {})",
        s.log_path("sink").display()
    );
    println!(
        "reference sink wrote {} documents in {:?}",
        got.len(),
        t0.elapsed()
    );
    s.delete_connector("sink", &sink).ok();
    s.delete_connector("connect", &c.name).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_kafka_keeps_its_records_across_a_restart() {
    let s = Services::private(&["kafka"]).expect("private kafka");
    let topic = "restart";
    s.create_topic(topic, 1).unwrap();
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", s.brokers())
        .create()
        .expect("producer");
    producer
        .send(
            FutureRecord::to(topic).key("k").payload("v1"),
            Duration::from_secs(30),
        )
        .await
        .expect("sent");
    drop(producer);
    let before = s.brokers();
    s.restart("kafka").expect("restart");
    assert_eq!(s.brokers(), before, "a restart keeps the port");
    let r = s
        .wait_for_record(topic, WAIT, |_| true)
        .expect("the record survives the restart");
    assert_eq!(r.value.as_deref(), Some(&b"v1"[..]));
}

#[test]
fn a_taken_port_fails_naming_the_service_and_its_log() {
    let s = Services::private(&["mongo"]).expect("private mongo");
    let port: u16 = s.mongodb_uri().rsplit(':').next().unwrap().parse().unwrap();
    s.stop("mongo").unwrap();
    let _squatter = std::net::TcpListener::bind(("127.0.0.1", port)).expect("take the port");
    let err = format!("{:#}", s.start("mongo").expect_err("the port is taken"));
    println!("{err}");
    let log = s.log_path("mongo");
    assert!(err.contains("mongo"), "names the service: {err}");
    assert!(
        err.contains(&log.display().to_string()),
        "names the log {}: {err}",
        log.display()
    );
}

#[test]
fn a_service_not_ready_in_time_fails_naming_it_and_its_log() {
    let err = Services::private_with_env(&["postgres"], &[("SMT_SERVICES_TIMEOUT", "0.01")])
        .err()
        .expect("cannot be ready in 10 ms");
    let err = format!("{err:#}");
    println!("{err}");
    assert!(err.contains("postgres not ready after"), "{err}");
    assert!(err.contains("postgres.log"), "{err}");
}

fn pid_of(dir: &Path, svc: &str) -> i32 {
    std::fs::read_to_string(dir.join(format!("{svc}.pid")))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn alive(pid: i32) -> bool {
    // a zombie still has /proc/<pid>; check its state
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s
            .rsplit(')')
            .next()
            .map(|r| !r.trim_start().starts_with('Z'))
            .unwrap_or(false),
        Err(_) => false,
    }
}

fn wait_gone(pid: i32, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if !alive(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// Kill -9 of the process the services belong to (a test runner): its
/// watcher stops them.
#[test]
fn services_of_a_killed_owner_are_stopped() {
    let dir = smt_tests::services::cache_dir()
        .join("runs")
        .join(unique_name("owner"));
    let mut owner = Command::new("sleep").arg("600").spawn().unwrap();
    let st = Command::new(script())
        .args(["start", "mongo", "--dir"])
        .arg(&dir)
        .args(["--owner", &owner.id().to_string()])
        .env_remove("SMT_MONGODB_URI")
        .status()
        .unwrap();
    assert!(st.success());
    let pid = pid_of(&dir, "mongo");
    assert!(alive(pid));
    owner.kill().unwrap();
    owner.wait().unwrap();
    assert!(
        wait_gone(pid, Duration::from_secs(30)),
        "mongo {pid} outlived its owner"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// Without a watcher (killed too), the next run's `stop-stale` finds the
/// pid files of the dead owner and stops the orphans.
#[test]
fn stop_stale_stops_orphans_of_dead_runs() {
    let dir = smt_tests::services::cache_dir()
        .join("runs")
        .join(unique_name("stale"));
    let mut owner = Command::new("sleep").arg("600").spawn().unwrap();
    let st = Command::new(script())
        .args(["start", "mongo", "--dir"])
        .arg(&dir)
        .args(["--owner", &owner.id().to_string()])
        .env("SMT_SERVICES_NO_WATCH", "1")
        .env_remove("SMT_MONGODB_URI")
        .status()
        .unwrap();
    assert!(st.success());
    let pid = pid_of(&dir, "mongo");
    owner.kill().unwrap();
    owner.wait().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert!(alive(pid), "nothing else stops it");
    let st = Command::new(script())
        .arg("stop-stale")
        .env("SMT_KEEP_RUNS", "1000")
        .status()
        .unwrap();
    assert!(st.success());
    assert!(
        wait_gone(pid, Duration::from_secs(30)),
        "stop-stale stopped mongo {pid}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// The committed Debezium fixtures (scripts/gen-fixtures) keep the documented
/// line format and cover the cases tests/fixtures/README.md lists.
#[test]
fn debezium_fixtures_cover_the_documented_cases() {
    use serde_json::Value;
    let dir = smt_tests::services::repo_root().join("tests/fixtures/debezium");
    for (file, schemas) in [
        ("plain.jsonl", false),
        ("schemas.jsonl", true),
        ("update-1kb.jsonl", false),
    ] {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        let mut seen = std::collections::BTreeSet::new();
        let mut last: Option<(String, i64)> = None;
        for (i, line) in text.lines().enumerate() {
            let o: Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{file}:{}: {e}", i + 1));
            let topic = o["topic"].as_str().unwrap().to_string();
            let offset = o["offset"].as_i64().unwrap();
            assert_eq!(o["partition"], 0);
            assert!(o["timestamp_ms"].as_i64().unwrap() > 0);
            assert!(o["headers"].is_array());
            if let Some((t, off)) = &last {
                assert!(
                    topic > *t || (topic == *t && offset > *off),
                    "{file}:{}: topic/offset order",
                    i + 1
                );
            }
            last = Some((topic.clone(), offset));
            let value = o["value"].as_str();
            let headers: Vec<&str> = o["headers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| h["key"].as_str().unwrap())
                .collect();
            let Some(value) = value else {
                seen.insert("tombstone".to_string());
                continue;
            };
            let v: Value = serde_json::from_str(value).unwrap();
            let p = if schemas {
                assert!(
                    v.get("schema").is_some(),
                    "{file}:{}: schemas.enable=true value",
                    i + 1
                );
                v["payload"].clone()
            } else {
                assert!(v.get("schema").is_none());
                v
            };
            let op = p["op"].as_str().unwrap().to_string();
            seen.insert(format!("op {op}"));
            if headers.contains(&"__debezium.newkey") {
                seen.insert("newkey".into());
            }
            if headers.contains(&"__debezium.oldkey") {
                seen.insert("oldkey".into());
            }
            if value.contains("__debezium_unavailable_value") {
                seen.insert("toast".into());
            }
            if topic.ends_with(".audit_log") && o["key"].is_null() && op != "t" {
                seen.insert("no primary key".into());
            }
            if topic.ends_with(".orders") && o["key"].as_str().unwrap().contains("order_id") {
                seen.insert("composite key".into());
            }
            if topic.ends_with(".all_types") && op == "r" {
                let a = &p["after"];
                assert_eq!(a["c_numeric"], "AeI6", "numeric(10,2) 1234.50");
                assert_eq!(a["c_timestamptz"], "2024-03-04T12:00:00.123456Z");
                assert_eq!(a["c_int_array"], serde_json::json!([1, 2, 3]));
                seen.insert("all types".into());
            }
        }
        if file == "update-1kb.jsonl" {
            assert_eq!(text.lines().count(), 1);
            continue;
        }
        for want in [
            "op r",
            "op c",
            "op u",
            "op d",
            "op t",
            "tombstone",
            "newkey",
            "oldkey",
            "toast",
            "no primary key",
            "composite key",
            "all types",
        ] {
            assert!(seen.contains(want), "{file} lacks {want}: {seen:?}");
        }
    }
}
