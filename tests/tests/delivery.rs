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
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mongodb::bson::{doc, Document};
use serde_json::json;
use smt_tests::kafka::{committed, produce, topic_len};
use smt_tests::mongo::documents;
use smt_tests::proxy::{mongodb_addr, through, Proxy};
use smt_tests::record::Record;
use smt_tests::services::{unique_name, Services};
use smt_tests::smt_process::*;

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

/// A test's own database, topic (`partitions` partitions, holding nothing
/// yet), group and the update records of [`updates`] for it.
struct UpdateRun {
    dir: Scratch,
    db: String,
    table: String,
    topic: String,
    records: Vec<Record>,
    group: String,
}

impl UpdateRun {
    /// The offsets the run's group has committed, summed over its partitions.
    fn committed_total(&self, s: &Services, partitions: i32) -> i64 {
        committed(&s.brokers(), &self.group, &self.topic, partitions)
            .iter()
            .map(|o| o.unwrap_or(0))
            .sum()
    }

    fn new(s: &Services, name: &str, partitions: i32, keys: i64, rounds: i64) -> UpdateRun {
        let table = unique_name(name);
        let topic = format!("dlv.s.{table}");
        s.create_topic(&topic, partitions as u32).unwrap();
        UpdateRun {
            dir: Scratch::new(&format!("dlv-{name}")),
            db: unique_name("db"),
            records: updates(keys, rounds, partitions),
            group: unique_name("group"),
            table,
            topic,
        }
    }

    /// One route on the topic under `fail`, scalar `_id`s (`config()` otherwise).
    fn config(&self, s: &Services, client_id: &str) -> String {
        config(
            &s.brokers(),
            &s.mongodb_uri(),
            &self.db,
            &self.group,
            &self.topic,
            "fail",
            client_id,
            "",
        )
        .replace("config = {}", "config = { id = \"scalar\" }")
    }

    /// The write log of the database, opened now; set the flag to end it.
    async fn write_log(
        &self,
        s: &Services,
    ) -> (Arc<AtomicBool>, tokio::task::JoinHandle<Vec<(i64, i64)>>) {
        let stop = Arc::new(AtomicBool::new(false));
        let client = mongodb::Client::with_uri_str(&s.mongodb_uri())
            .await
            .unwrap();
        (stop.clone(), write_log(client, self.db.clone(), stop))
    }
}

/// `{id -> seq}` of the documents of `db.coll` (written by the default transform: `_id: {id}`).
async fn seqs(uri: &str, db: &str, coll: &str) -> BTreeMap<i64, i64> {
    let client = mongodb::Client::with_uri_str(uri).await.unwrap();
    documents(&client, db, coll)
        .await
        .unwrap()
        .iter()
        .map(|d| {
            let int = |v: Option<&mongodb::bson::Bson>| {
                v.and_then(|v| v.as_i64().or(v.as_i32().map(i64::from)))
                    .unwrap_or_else(|| panic!("unexpected document {d}"))
            };
            (int(id_of(d)), int(d.get("seq")))
        })
        .collect()
}

/// The row id of a document: `_id: {id}` (the default) or `_id: id` (`id = "scalar"`).
fn id_of(d: &Document) -> Option<&mongodb::bson::Bson> {
    match d.get("_id") {
        Some(mongodb::bson::Bson::Document(i)) => i.get("id"),
        other => other,
    }
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

/// A config of the default transform on `topics` (one route), with extra
/// `[pipeline]` lines, a `client.id` (member ids sort by it: the range
/// assignor gives a topic's first partitions to the first member) and
/// extra route lines. Written here rather than through the shared
/// `ConfigBuilder` so that these tests say every setting they rely on.
#[allow(clippy::too_many_arguments)]
fn config_for(
    brokers: &str,
    uri: &str,
    db: &str,
    group: &str,
    topics: &[&str],
    on_error: &str,
    client_id: &str,
    pipeline: &str,
    route: &str,
) -> String {
    let topics: Vec<String> = topics.iter().map(|t| format!("\"{t}\"")).collect();
    format!(
        r#"[kafka]
brokers = "{brokers}"
group-id = "{group}"
[kafka.properties]
"client.id" = "{client_id}"
"session.timeout.ms" = "6000"
"heartbeat.interval.ms" = "500"
"topic.metadata.refresh.interval.ms" = "2000"
[mongodb]
uri = "{uri}"
database = "{db}"
[pipeline]
max-batch-size = 200
linger-ms = 10
queue-capacity = 400
commit-interval-ms = 200
retry-backoff-ms = 50
retry-backoff-max-ms = 1000
{pipeline}
[admin]
listen = "{{admin}}"
[transforms.dbz]
module = "{module}"
config = {{}}
[[routes]]
topics = [{topics}]
transform = "dbz"
on-error = "{on_error}"
{route}
"#,
        module = debezium_module(),
        topics = topics.join(", "),
    )
}

#[allow(clippy::too_many_arguments)]
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
    config_for(
        brokers,
        uri,
        db,
        group,
        &[topic],
        on_error,
        client_id,
        pipeline,
        "",
    )
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

/// Partitions revoked while their batches wait on MongoDB longer than
/// `shutdown-timeout-ms`. With `serial-writes`, one worker's write waits
/// for its answer (held by the proxy) and the other's batch waits for the
/// route's lock. The old workers must be aborted: a worker left running
/// would take the lock once the answer arrives and write older images over
/// the newer ones the next owner wrote meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_slower_than_the_revoke_timeout_writes_nothing_stale() {
    let s = Services::shared();
    let dir = Scratch::new("dlv-revoke");
    let db = unique_name("db");
    let tables = [unique_name("revoke_a"), unique_name("revoke_b")];
    let topics: Vec<String> = tables.iter().map(|t| format!("dlv.s.{t}")).collect();
    let (keys, rounds) = (30, 20);
    for t in &topics {
        s.create_topic(t, 1).unwrap();
        produce(&s.brokers(), t, &updates(keys, rounds, 1)).unwrap();
    }
    let total = (keys * rounds) as usize;
    let group = unique_name("group");
    let proxy = Proxy::start(mongodb_addr(s)).unwrap();
    proxy.set_delay(Duration::from_millis(500));
    let topic_refs: Vec<&str> = topics.iter().map(String::as_str).collect();
    let cfg = |client_id: &str, uri: &str, batch: usize| {
        config_for(
            &s.brokers(),
            uri,
            &db,
            &group,
            &topic_refs,
            "fail",
            client_id,
            "shutdown-timeout-ms = 300",
            "serial-writes = true",
        )
        .replace("max-batch-size = 200", &format!("max-batch-size = {batch}"))
    };
    let mut slow = Smt::start_with_env(
        &dir.0,
        "slow",
        &cfg("z-slow", &through(s, &proxy), 10),
        &[("SMT_LOG", "info,smt_host::pipeline=debug")],
    )
    .unwrap();
    slow.wait_assigned(START).unwrap();
    wait_for("the slow process to write", START, || {
        Ok((slow.metric("smt_records_processed_total", &[])? >= 20.0).then_some(()))
    })
    .unwrap();
    // From now on MongoDB's answers to it are held.
    proxy.set_delay(Duration::from_secs(3600));
    // The range assignor gives each topic's partition to the first member id: `a-…`.
    let mut fast = Smt::start(&dir.0, "fast", &cfg("a-fast", &s.mongodb_uri(), 200)).unwrap();
    fast.wait_assigned(START).unwrap();
    for t in &topics {
        wait_committed_all(&s.brokers(), &group, t, 1, total);
    }
    let expected: BTreeMap<i64, i64> = (0..keys).map(|k| (k, rounds)).collect();
    for t in &tables {
        assert_eq!(seqs(&s.mongodb_uri(), &db, t).await, expected);
    }
    // The held answer arrives: a worker left running now takes the lock
    // and writes its batch.
    proxy.set_delay(Duration::ZERO);
    // Both old workers end: aborted, or (without the abort) after writing.
    wait_for("the old workers to be gone", START, || {
        let log = slow.log_text();
        let ended = log.matches("it was aborted").count()
            + log.matches("Partition worker stopped.").count();
        Ok((ended >= 2).then_some(()))
    })
    .unwrap();
    assert_eq!(
        slow.terminate(Duration::from_secs(60)).unwrap().code(),
        Some(0),
        "{}",
        slow.log_text()
    );
    for t in &tables {
        assert_eq!(
            seqs(&s.mongodb_uri(), &db, t).await,
            expected,
            "no stale image after the newest in {t}: {}",
            tail(&slow.log_text(), 3000)
        );
    }
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
        config(
            &s.brokers(),
            uri,
            &db,
            &group,
            &topic,
            "fail",
            client_id,
            "",
        )
        .replace("max-batch-size = 200", "max-batch-size = 5")
        .replace("queue-capacity = 400", "queue-capacity = 5")
    };
    // `a-…` sorts first: with three members it keeps partitions 0–2 of its 0–3.
    let mut a = Smt::start(&dir.0, "a", &cfg("a-slow", &through(s, &proxy))).unwrap();
    let mut b = Smt::start(&dir.0, "b", &cfg("b-slow", &through(s, &proxy))).unwrap();
    a.wait_assigned(START).unwrap();
    b.wait_assigned(START).unwrap();
    // (Partitions still paused from the first rebalance, A and B joining,
    // would never get here: their records never arrive.)
    wait_for("three of A's partitions paused", START, || {
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
        assert_eq!(
            p.terminate(Duration::from_secs(60)).unwrap().code(),
            Some(0)
        );
    }
}

// ------------------------------------------------------------------ #16.3

/// A MongoDB-protocol server of its own with `--auth`: an admin user, and a
/// user `writer` whose roles the test changes. Killed when dropped.
struct SecuredMongo {
    child: std::process::Child,
    port: u16,
    _dir: Scratch,
}

impl SecuredMongo {
    async fn start() -> SecuredMongo {
        let bin = std::fs::read_dir(smt_tests::services::cache_dir())
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.path().join("bin").join("secantusd-rs"))
            .find(|p| p.exists())
            .expect("secantusd-rs under the cache (scripts/services install mongo)");
        let dir = Scratch::new("secured-mongo");
        let port = free_port();
        let child = std::process::Command::new(bin)
            .args(["--host", "127.0.0.1", "--port", &port.to_string(), "--auth"])
            .arg("--storage-path")
            .arg(dir.0.join("data"))
            .args(["--log-file-max", "16MB", "--cache-size", "256M"])
            .stdout(std::fs::File::create(dir.0.join("mongo.log")).unwrap())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let m = SecuredMongo {
            child,
            port,
            _dir: dir,
        };
        // The localhost exception: the first user.
        let deadline = std::time::Instant::now() + START;
        loop {
            let c = mongodb::Client::with_uri_str(format!(
                "mongodb://127.0.0.1:{port}/?directConnection=true"
            ))
            .await
            .unwrap();
            match c
                .database("admin")
                .run_command(doc! {"createUser": "admin", "pwd": "admin-pw", "roles": ["root"]})
                .await
            {
                Ok(_) => break,
                Err(e) if std::time::Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("creating the admin user: {e}"),
            }
        }
        m
    }

    fn uri(&self, user: &str, pwd: &str) -> String {
        format!(
            "mongodb://{user}:{pwd}@127.0.0.1:{}/?authSource=admin&directConnection=true",
            self.port
        )
    }

    async fn admin(&self) -> mongodb::Client {
        mongodb::Client::with_uri_str(self.uri("admin", "admin-pw"))
            .await
            .unwrap()
    }
}

impl Drop for SecuredMongo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// MongoDB refuses every write (the user may only read): under `dlq` and
/// `skip` nothing is dead-lettered, skipped or committed; `smt` retries,
/// and once the user may write, every record arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_wide_refusal_is_not_bad_data() {
    let s = Services::shared();
    let mongo = SecuredMongo::start().await;
    let admin = mongo.admin().await;
    let db = unique_name("db");
    admin
        .database("admin")
        .run_command(doc! {"createUser": "writer", "pwd": "writer-pw",
        "roles": [{"role": "read", "db": &db}]})
        .await
        .unwrap();
    let dir = Scratch::new("dlv-server");
    let mut runs = Vec::new();
    for policy in ["dlq", "skip"] {
        let table = unique_name(policy);
        let topic = format!("dlv.s.{table}");
        s.create_topic(&topic, 1).unwrap();
        produce(&s.brokers(), &topic, &updates(20, 1, 1)).unwrap();
        let dlq = unique_name("dlq");
        s.create_topic(&dlq, 1).unwrap();
        let group = unique_name("group");
        let cfg = config(
            &s.brokers(),
            &mongo.uri("writer", "writer-pw"),
            &db,
            &group,
            &topic,
            policy,
            "smt",
            "",
        ) + &format!("[dlq]\ntopic = \"{dlq}\"\n");
        let smt = Smt::start(&dir.0, policy, &cfg).unwrap();
        runs.push((smt, policy, table, topic, dlq, group));
    }
    for (smt, policy, _, _, _, _) in &mut runs {
        smt.wait_assigned(START).unwrap();
        wait_for("refused writes retried", START, || {
            Ok((smt.metric("smt_retries_total", &[("target", "mongodb")])? >= 3.0).then_some(()))
        })
        .unwrap_or_else(|e| panic!("{policy}: {e:#}\n{}", tail(&smt.log_text(), 3000)));
    }
    for (smt, policy, _, topic, dlq, group) in &mut runs {
        assert_eq!(
            topic_len(&s.brokers(), dlq).unwrap(),
            0,
            "{policy}: nothing dead-lettered"
        );
        assert_eq!(
            smt.metric("smt_skipped_records_total", &[]).unwrap(),
            0.0,
            "{policy}"
        );
        assert_eq!(
            smt.metric("smt_record_errors_total", &[]).unwrap(),
            0.0,
            "{policy}"
        );
        assert_eq!(
            committed(&s.brokers(), group, topic, 1),
            vec![None],
            "{policy}: nothing committed"
        );
        assert_eq!(
            smt.get("/health").unwrap().0,
            200,
            "{policy}: still running"
        );
        assert!(
            smt.log_text().contains("not the records'"),
            "{policy}: says why"
        );
    }
    // The cause goes away.
    admin
        .database("admin")
        .run_command(
            doc! {"grantRolesToUser": "writer", "roles": [{"role": "readWrite", "db": &db}]},
        )
        .await
        .unwrap();
    let expected: BTreeMap<i64, i64> = (0..20).map(|k| (k, 1)).collect();
    let admin_uri = mongo.uri("admin", "admin-pw");
    for (smt, policy, table, topic, dlq, group) in &mut runs {
        wait_committed_all(&s.brokers(), group, topic, 1, 20);
        assert_eq!(seqs(&admin_uri, &db, table).await, expected, "{policy}");
        assert_eq!(topic_len(&s.brokers(), dlq).unwrap(), 0, "{policy}");
        assert_eq!(
            smt.terminate(Duration::from_secs(60)).unwrap().code(),
            Some(0)
        );
    }
}

// ------------------------------------------------------------------ ordering

/// The write log of `db`: every `(id, seq)` written, in the server's order
/// (a change stream opened before the run), until `stop` is set; then what
/// is left in the stream is read too.
fn write_log(
    client: mongodb::Client,
    db: String,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Vec<(i64, i64)>> {
    tokio::spawn(async move {
        let mut stream = client.database(&db).watch().await.unwrap();
        let mut log = Vec::new();
        loop {
            let stopping = stop.load(Ordering::SeqCst);
            match stream.next_if_any().await {
                Ok(Some(e)) => push(&mut log, e),
                Ok(None) if stopping => return log,
                Ok(None) => {}
                Err(e) => panic!("change stream: {e}"),
            }
        }
    })
}

fn push(log: &mut Vec<(i64, i64)>, e: mongodb::change_stream::event::ChangeStreamEvent<Document>) {
    if let Some(d) = e.full_document {
        let int = |v: Option<&mongodb::bson::Bson>| {
            v.and_then(|v| v.as_i64().or(v.as_i32().map(i64::from)))
        };
        if let (Some(id), Some(seq)) = (int(id_of(&d)), int(d.get("seq"))) {
            log.push((id, seq));
        }
    }
}

/// Replays restart a key's history at an older sequence and then run on in
/// order (+1 each); anything else — a jump forward after going back — is an
/// older image written after a newer one. Returns the first violation.
fn history_violation(log: &[(i64, i64)]) -> Option<String> {
    let mut last: BTreeMap<i64, i64> = BTreeMap::new();
    for (i, &(id, seq)) in log.iter().enumerate() {
        if let Some(&prev) = last.get(&id) {
            if seq > prev + 1 {
                return Some(format!(
                    "write {i}: key {id} went from sequence {prev} to {seq}"
                ));
            }
        } else if seq != 1 {
            return Some(format!("write {i}: key {id} starts at sequence {seq}"));
        }
        last.insert(id, seq);
    }
    None
}

/// 50k updates of 500 keys on 8 partitions while members join and leave
/// (SIGTERM and SIGKILL), one of them behind a slow MongoDB with a revoke
/// timeout shorter than its batches: every key ends at its last sequence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_holds_while_members_join_and_leave() {
    let s = Services::shared();
    let (partitions, keys, rounds) = (8, 500, 100);
    let UpdateRun {
        dir,
        db,
        table,
        topic,
        records,
        group,
    } = UpdateRun::new(s, "order", partitions, keys, rounds);
    let total = records.len();
    let proxy = Proxy::start(mongodb_addr(s)).unwrap();
    proxy.set_delay(Duration::from_millis(700));
    let cfg = |name: &str, uri: &str| {
        config(
            &s.brokers(),
            uri,
            &db,
            &group,
            &topic,
            "fail",
            name,
            "shutdown-timeout-ms = 300",
        )
        // Scalar `_id`s: the server writes them several times faster than documents.
        .replace("config = {}", "config = { id = \"scalar\" }")
    };
    let direct = s.mongodb_uri();
    let stop_log = Arc::new(AtomicBool::new(false));
    let log_task = write_log(
        mongodb::Client::with_uri_str(&direct).await.unwrap(),
        db.clone(),
        stop_log.clone(),
    );
    let mut a = Smt::start(&dir.0, "a", &cfg("a", &direct)).unwrap();
    let mut b = Smt::start(&dir.0, "b", &cfg("b", &direct)).unwrap();
    a.wait_assigned(START).unwrap();
    b.wait_assigned(START).unwrap();
    // Half the records, then a slow member joins.
    produce(&s.brokers(), &topic, &records[..total / 2]).unwrap();
    let mut slow = Smt::start(&dir.0, "slow", &cfg("c-slow", &through(s, &proxy))).unwrap();
    slow.wait_assigned(START).unwrap();
    wait_for("the slow member to consume", START, || {
        Ok((slow.metric("smt_records_consumed_total", &[])? > 0.0).then_some(()))
    })
    .unwrap();
    // A member leaves cleanly while the slow one's batches are in flight,
    // then another is killed, and a new one joins.
    assert_eq!(
        a.terminate(Duration::from_secs(60)).unwrap().code(),
        Some(0)
    );
    produce(&s.brokers(), &topic, &records[total / 2..]).unwrap();
    b.kill();
    let mut d = Smt::start(&dir.0, "d", &cfg("d", &direct)).unwrap();
    d.wait_assigned(START).unwrap();
    proxy.set_delay(Duration::ZERO);
    wait_committed_all(&s.brokers(), &group, &topic, partitions, total);
    let expected: BTreeMap<i64, i64> = (0..keys).map(|k| (k, rounds)).collect();
    for p in [&mut slow, &mut d] {
        assert_eq!(
            p.terminate(Duration::from_secs(60)).unwrap().code(),
            Some(0)
        );
    }
    let got = seqs(&s.mongodb_uri(), &db, &table).await;
    let wrong: Vec<_> = got
        .iter()
        .filter(|(k, v)| expected.get(k) != Some(v))
        .take(10)
        .collect();
    assert!(
        wrong.is_empty() && got.len() == expected.len(),
        "keys not at their last sequence: {wrong:?} ({} documents)",
        got.len()
    );
    stop_log.store(true, Ordering::SeqCst);
    let log = log_task.await.unwrap();
    assert!(
        log.len() >= total,
        "the write log holds every write: {} of {total}",
        log.len()
    );
    assert_eq!(history_violation(&log), None, "{} writes", log.len());
}

#[test]
fn the_history_check_tells_replays_from_stale_writes() {
    // A replay from sequence 2 after a restart: fine.
    assert_eq!(
        history_violation(&[(1, 1), (1, 2), (1, 3), (1, 2), (1, 3), (1, 4)]),
        None
    );
    // An old image (2) written among the new owner's (3, 4): caught.
    assert!(history_violation(&[(1, 1), (1, 2), (1, 3), (1, 2), (1, 4)]).is_some());
}

// ------------------------------------------------------------------ #16.7

/// A record the dead-letter topic refuses (larger than its
/// `max.message.bytes`): never dropped, never retried forever; `smt` stops
/// naming the record and the cause, and commits nothing past it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_too_large_for_the_dlq_stops_the_pipeline() {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let s = Services::shared();
    let dir = Scratch::new("dlv-dlq");
    let db = unique_name("db");
    let topic = format!("dlv.s.{}", unique_name("big"));
    s.create_topic(&topic, 1).unwrap();
    let dlq = unique_name("dlq_small");
    let admin: AdminClient<_> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", s.brokers())
        .create()
        .unwrap();
    let created = admin
        .create_topics(
            &[NewTopic::new(&dlq, 1, TopicReplication::Fixed(1)).set("max.message.bytes", "2048")],
            &AdminOptions::new(),
        )
        .await
        .unwrap();
    assert!(created.iter().all(|r| r.is_ok()), "{created:?}");
    // Record 3 is not JSON (bad-input → DLQ) and larger than the DLQ accepts.
    produce(&s.brokers(), &topic, &poisoned_at_3(vec![b'x'; 10_000])).unwrap();
    let group = unique_name("group");
    let cfg = dlq_config(s, &db, &group, &topic, &dlq);
    let (status, out) = run_to_exit(&dir.0, &cfg, Duration::from_secs(120)).unwrap();
    assert_stopped_at_record_3(s, status, &out, &topic, &group, "dead-letter topic");
    assert_eq!(topic_len(&s.brokers(), &dlq).unwrap(), 0);
}

/// Six update records on partition 0; record 3's value is `value` (not JSON: bad input).
fn poisoned_at_3(value: Vec<u8>) -> Vec<Record> {
    let mut records: Vec<Record> = (0..6).map(|id| event(0, id, 1, json!({}))).collect();
    records[3].value = Some(value);
    records
}

/// [`config`] under `on-error = "dlq"` with the dead-letter topic `dlq`.
fn dlq_config(s: &Services, db: &str, group: &str, topic: &str, dlq: &str) -> String {
    config(
        &s.brokers(),
        &s.mongodb_uri(),
        db,
        group,
        topic,
        "dlq",
        "smt",
        "",
    ) + &format!("[dlq]\ntopic = \"{dlq}\"\n")
}

/// `smt` stopped (exit 1) at record 3 of partition 0, naming it and `cause`,
/// and the group committed nothing past it.
fn assert_stopped_at_record_3(
    s: &Services,
    status: std::process::ExitStatus,
    out: &str,
    topic: &str,
    group: &str,
    cause: &str,
) {
    assert_eq!(status.code(), Some(1), "{}", tail(out, 3000));
    assert!(
        out.contains(&format!("{topic}/0@3")) && out.contains(cause),
        "names the record and {cause}: {}",
        tail(out, 3000)
    );
    let committed = committed(&s.brokers(), group, topic, 1)[0];
    assert!(
        committed.is_none_or(|o| o <= 3),
        "committed past the record: {committed:?}"
    );
}

// ------------------------------------------------------------------ duplicates

/// A clean stop processes no record twice: SIGTERM finishes the batches in
/// flight and commits them, so the next process starts where it stopped.
/// Three stops while records flow; the write log (every write, in the
/// server's order) shows each key's sequence going up by one, never back,
/// and exactly one write per record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_and_restart_process_no_record_twice() {
    let s = Services::shared();
    let (partitions, keys, rounds) = (4, 200, 60);
    let run = UpdateRun::new(s, "term", partitions, keys, rounds);
    let total = run.records.len();
    let cfg = run.config(s, "term");
    let (stop_log, log_task) = run.write_log(s).await;
    produce(&s.brokers(), &run.topic, &run.records).unwrap();
    let mut stops = Vec::new();
    for i in 0..3 {
        // Each run does a quarter of what is left (a run may go on well past
        // its mark before the signal lands, on a loaded machine), then is
        // stopped mid-stream.
        let left = total.saturating_sub(run.committed_total(s, partitions) as usize);
        if left < 8 {
            break;
        }
        let mut smt = Smt::start(&run.dir.0, &format!("run{i}"), &cfg).unwrap();
        smt.wait_assigned(START).unwrap();
        let done = processed_at_least(&mut smt, left / 4);
        let status = smt.terminate(Duration::from_secs(60)).unwrap();
        assert_eq!(status.code(), Some(0), "{}", tail(&smt.log_text(), 3000));
        stops.push(done);
    }
    assert!(
        stops.len() >= 2,
        "the stops were not mid-stream: {stops:?} of {total} records"
    );
    let log = finish(s, &run, &cfg, partitions, keys, rounds, stop_log, log_task).await;
    let mut at: BTreeMap<i64, i64> = BTreeMap::new();
    for (i, &(id, seq)) in log.iter().enumerate() {
        let prev = at.insert(id, seq).unwrap_or(0);
        assert_eq!(
            seq,
            prev + 1,
            "write {i}: key {id} went from sequence {prev} to {seq}: a record processed twice \
             (stopped after {stops:?} processed records)"
        );
    }
    assert_eq!(log.len(), total, "one write per record");
}

/// After a SIGKILL only what was not committed yet is processed again: the
/// records processed since the last commit and the batches in flight
/// (at most a batch per partition beyond what the metric had counted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_reprocesses_at_most_what_was_not_committed() {
    let s = Services::shared();
    let (partitions, keys, rounds) = (4, 200, 60);
    let run = UpdateRun::new(s, "kill", partitions, keys, rounds);
    let total = run.records.len();
    let cfg = run.config(s, "kill");
    let (stop_log, log_task) = run.write_log(s).await;
    produce(&s.brokers(), &run.topic, &run.records).unwrap();
    let mut smt = Smt::start(&run.dir.0, "killed", &cfg).unwrap();
    smt.wait_assigned(START).unwrap();
    let processed = processed_at_least(&mut smt, total / 3) as i64;
    smt.kill();
    let committed = run.committed_total(s, partitions);
    assert!(committed > 0, "offsets were committed before the kill");
    let log = finish(s, &run, &cfg, partitions, keys, rounds, stop_log, log_task).await;
    let again = log.len() as i64 - total as i64;
    // `max-batch-size = 200` in config().
    let bound = processed - committed + i64::from(partitions) * 200;
    assert!(
        again <= bound,
        "{again} records written again after the SIGKILL, at most {bound} expected \
         ({processed} processed, {committed} committed when it died)"
    );
}

/// Waits until `smt` has processed `n` records; returns its count then.
fn processed_at_least(smt: &mut Smt, n: usize) -> f64 {
    wait_for("records to flow", CONVERGE, || {
        let done = smt.metric("smt_records_processed_total", &[])?;
        Ok((done >= n as f64).then_some(done))
    })
    .unwrap()
}

/// Runs a last `smt` until every record is committed, checks that every key
/// ends at its last sequence, and returns the write log.
#[allow(clippy::too_many_arguments)]
async fn finish(
    s: &Services,
    run: &UpdateRun,
    cfg: &str,
    partitions: i32,
    keys: i64,
    rounds: i64,
    stop_log: Arc<AtomicBool>,
    log_task: tokio::task::JoinHandle<Vec<(i64, i64)>>,
) -> Vec<(i64, i64)> {
    let total = run.records.len();
    let mut last = Smt::start(&run.dir.0, "last", cfg).unwrap();
    last.wait_assigned(START).unwrap();
    wait_committed_all(&s.brokers(), &run.group, &run.topic, partitions, total);
    assert_eq!(
        last.terminate(Duration::from_secs(60)).unwrap().code(),
        Some(0)
    );
    let got = seqs(&s.mongodb_uri(), &run.db, &run.table).await;
    assert!(
        got.len() == keys as usize && got.values().all(|&seq| seq == rounds),
        "every key at its last sequence: {} documents",
        got.len()
    );
    stop_log.store(true, Ordering::SeqCst);
    log_task.await.unwrap()
}

// ------------------------------------------------------------------ DLQ topic gone

/// A dead-letter topic deleted while `smt` runs: the record bound for it is
/// not dropped and not retried forever; `smt` stops naming the record and
/// the cause, and commits nothing past it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_dlq_topic_stops_the_pipeline() {
    use rdkafka::admin::{AdminClient, AdminOptions};
    let s = Services::shared();
    let dir = Scratch::new("dlv-dlq-gone");
    let db = unique_name("db");
    let topic = format!("dlv.s.{}", unique_name("gone"));
    s.create_topic(&topic, 1).unwrap();
    let dlq = unique_name("dlq_gone");
    s.create_topic(&dlq, 1).unwrap();
    let group = unique_name("group");
    let cfg = dlq_config(s, &db, &group, &topic, &dlq);
    let mut smt = Smt::start(&dir.0, "smt", &cfg).unwrap();
    smt.wait_assigned(START).unwrap();
    let admin: AdminClient<_> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", s.brokers())
        .create()
        .unwrap();
    let deleted = admin
        .delete_topics(&[&dlq], &AdminOptions::new())
        .await
        .unwrap();
    assert!(deleted.iter().all(|r| r.is_ok()), "{deleted:?}");
    // Record 3 is not JSON (bad-input → DLQ).
    produce(&s.brokers(), &topic, &poisoned_at_3(b"not json".to_vec())).unwrap();
    let status = wait_for("smt to stop", Duration::from_secs(180), || {
        Ok(smt.try_wait())
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{}", tail(&smt.log_text(), 3000)));
    assert_stopped_at_record_3(s, status, &smt.log_text(), &topic, &group, &dlq);
}
