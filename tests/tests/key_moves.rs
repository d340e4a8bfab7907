//! Primary-key changes of the default transform against the real
//! MongoDB-protocol server, in every order the partitions allow.
//!
//! A seeded model table (`id` key, `title`, `body` stored out of line: an
//! update that leaves it alone carries Debezium's unavailable-value
//! placeholder) goes through inserts, updates, deletes and key changes —
//! chains of them, keys that come back, keys freed and taken again. Each
//! change becomes the records Debezium writes (a key change: the delete of
//! the old key with `__debezium.newkey`, its tombstone, the create of the new
//! key with `__debezium.oldkey`), each record goes to its key's partition,
//! and the partitions are interleaved at random — with retries of a
//! partition's uncommitted records, and crashes that take every partition
//! back to its last commit — through the Wasm component into the server,
//! one record at a time (what `serial-writes` does). A key change may also
//! change the body (the create half then carries it) or the title.
//! The collection must then hold exactly the model's final rows: the
//! expectation is the model's, never the transform's.
//!
//! The end-to-end oracle (`default_oracle.rs`) covers the same through real
//! PostgreSQL and Debezium; this test reaches orders a run rarely produces.
//! Seeds in the test command: the ones that once failed, 1 to 40 and 10 new
//! ones (printed); `SMT_KEY_MOVES_SEEDS=1,2,3` or
//! `SMT_KEY_MOVES_SEEDS=fresh` (new ones only);
//! longer searches: `SMT_KEY_MOVES_WORKLOADS`, `SMT_KEY_MOVES_CHANGES`,
//! `SMT_KEY_MOVES_CRASHES`; `SMT_KEY_MOVES_TRACE=1` prints every record
//! written and the collection after it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use mongodb::bson::{Bson, Document};
use serde_json::{json, Value};
use smt_host::config::Config;
use smt_host::pipeline::CancellationToken;
use smt_host::sink::Sink;
use smt_host::telemetry::Metrics;
use smt_tests::guests::debezium_mongo_component;
use smt_tests::mongo::documents;
use smt_tests::oracle::rng::{fresh_seed, Rng};
use smt_tests::record::{Header, Record};
use smt_tests::services::{unique_name, Services};
use smt_tests::smt_process::Scratch;

const PLACEHOLDER: &str = "__debezium_unavailable_value";
/// Keys are drawn from `1..=KEYS`: few, so that keys are freed and taken again.
const KEYS: i64 = 6;
const PARTITIONS: i64 = 3;
/// Changes per workload, and orders tried per workload.
const CHANGES: usize = 24;
const ORDERS: usize = 6;
const WORKLOADS: usize = 40;
/// How long one record's operations may take: a few operations on a few
/// documents, so far longer means the server stopped answering.
const WRITE_DEADLINE: Duration = Duration::from_secs(60);
/// New seeds per run of the test command, beside the fixed ones.
const FRESH: u64 = 10;
/// Seeds whose orders once ended wrong (docs/debezium-mongo.md,
/// "Primary-key changes" says what each found).
const REGRESSIONS: [u64; 2] = [401_972_865, 888_735_713];

/// `SMT_KEY_MOVES_<name>` or the default: larger searches than the test command's.
fn tunable(name: &str, default: usize) -> usize {
    std::env::var(format!("SMT_KEY_MOVES_{name}"))
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One Debezium record in the order the database wrote it.
struct Event {
    key: i64,
    record: Record,
}

/// One record written: all its operations, or (`cut`) only the first
/// `cut % n` of its `n`, as when the process dies in the middle of them.
struct Write {
    event: usize,
    cut: Option<u64>,
}

/// The model: the table's rows, and the records its changes produced.
struct Workload {
    rows: BTreeMap<i64, (String, String)>,
    events: Vec<Event>,
    log: Vec<String>,
}

fn header(k: &str, id: i64) -> Header {
    Header {
        key: k.into(),
        value: Some(json!({ "id": id }).to_string().into_bytes()),
    }
}

impl Workload {
    fn generate(rng: &mut Rng, table: &str) -> Workload {
        let mut w = Workload {
            rows: BTreeMap::new(),
            events: Vec::new(),
            log: Vec::new(),
        };
        let mut lsn = 1000;
        let mut n = 0;
        for _ in 0..tunable("CHANGES", CHANGES) {
            lsn += 10;
            n += 1;
            let live: Vec<i64> = w.rows.keys().copied().collect();
            let free: Vec<i64> = (1..=KEYS).filter(|k| !w.rows.contains_key(k)).collect();
            let pick = |rng: &mut Rng, v: &[i64]| v[rng.below(v.len() as u64) as usize];
            let roll = rng.below(100);
            if live.is_empty() || (roll < 25 && !free.is_empty()) {
                let k = pick(rng, &free);
                let row = (format!("t{n}"), format!("body {k} #{n}"));
                w.log.push(format!("insert {k}"));
                w.push(table, k, "c", lsn, Some((k, &row.0, &row.1)), None);
                w.rows.insert(k, row);
            } else if roll < 45 {
                let k = pick(rng, &live);
                let title = format!("t{n}");
                w.log.push(format!("update {k} title"));
                w.rows.get_mut(&k).expect("live").0 = title.clone();
                w.push(table, k, "u", lsn, Some((k, &title, PLACEHOLDER)), None);
            } else if roll < 55 {
                let k = pick(rng, &live);
                let row = w.rows.get_mut(&k).expect("live");
                row.1 = format!("body {k} #{n}");
                let row = row.clone();
                w.log.push(format!("update {k} body"));
                w.push(table, k, "u", lsn, Some((k, &row.0, &row.1)), None);
            } else if roll < 65 {
                let k = pick(rng, &live);
                w.log.push(format!("delete {k}"));
                w.rows.remove(&k);
                w.push(table, k, "d", lsn, None, None);
            } else if !free.is_empty() {
                // `UPDATE … SET id = new[, body = …| , title = …]`: the
                // create half carries the body only when it changed.
                let (old, new) = (pick(rng, &live), pick(rng, &free));
                let (mut title, mut body) = w.rows.remove(&old).expect("live");
                let sent_body = match rng.below(4) {
                    0 => {
                        body = format!("body {new} #{n}");
                        w.log.push(format!("key {old} -> {new} + body"));
                        body.clone()
                    }
                    1 => {
                        title = format!("t{n}");
                        w.log.push(format!("key {old} -> {new} + title"));
                        PLACEHOLDER.to_owned()
                    }
                    _ => {
                        w.log.push(format!("key {old} -> {new}"));
                        PLACEHOLDER.to_owned()
                    }
                };
                w.push(table, old, "d", lsn, None, Some(("__debezium.newkey", new)));
                w.push(
                    table,
                    new,
                    "c",
                    lsn,
                    Some((new, &title, &sent_body)),
                    Some(("__debezium.oldkey", old)),
                );
                w.rows.insert(new, (title, body));
            }
        }
        w
    }

    /// Appends the record(s) of one change of row `key` (a delete and its tombstone).
    fn push(
        &mut self,
        table: &str,
        key: i64,
        op: &str,
        lsn: i64,
        after: Option<(i64, &str, &str)>,
        key_header: Option<(&str, i64)>,
    ) {
        let value = json!({
            "before": if op == "d" { json!({"id": key}) } else { Value::Null },
            "after": after.map(|(id, title, body)| json!({"id": id, "title": title, "body": body})),
            "source": {"version": "3.6.3.Final", "connector": "postgresql", "name": "km",
                       "ts_ms": lsn, "db": "d", "schema": "s", "table": table, "lsn": lsn},
            "op": op,
            "ts_ms": lsn
        });
        let headers: Vec<Header> = key_header.map(|(h, k)| header(h, k)).into_iter().collect();
        let record = |value: Option<Vec<u8>>| Record {
            topic: format!("km.s.{table}"),
            partition: (key % PARTITIONS) as i32,
            offset: 0,
            timestamp_ms: None,
            key: Some(json!({ "id": key }).to_string().into_bytes()),
            value,
            headers: headers.clone(),
        };
        self.events.push(Event {
            key,
            record: record(Some(value.to_string().into_bytes())),
        });
        if op == "d" {
            self.events.push(Event {
                key,
                record: record(None),
            });
        }
    }

    /// The records in an order the partitions allow: each partition's in
    /// log order, partitions interleaved at random; now and then a
    /// partition goes back a few records and writes them again (a replay
    /// of a failed batch), and now and then every partition goes back to
    /// its last commit (a crash), which can lie far behind.
    fn order(&self, rng: &mut Rng) -> Vec<Write> {
        let mut queues: Vec<Vec<usize>> = vec![Vec::new(); PARTITIONS as usize];
        for (i, e) in self.events.iter().enumerate() {
            queues[(e.key % PARTITIONS) as usize].push(i);
        }
        let mut next = vec![0; queues.len()];
        let mut committed = vec![0; queues.len()];
        let mut crashes = 0;
        let mut out = Vec::new();
        while next.iter().zip(&queues).any(|(n, q)| *n < q.len()) {
            if crashes < tunable("CRASHES", 2) && rng.chance(2) {
                crashes += 1;
                // The crash may cut a record's operations short.
                let p = rng.below(queues.len() as u64) as usize;
                if next[p] < queues[p].len() && rng.chance(50) {
                    out.push(Write {
                        event: queues[p][next[p]],
                        cut: Some(rng.next_u64()),
                    });
                }
                next.clone_from(&committed);
            }
            let p = rng.below(queues.len() as u64) as usize;
            if next[p] >= queues[p].len() {
                continue;
            }
            if rng.chance(20) {
                committed[p] = next[p];
            }
            // A retried batch starts after the last commit, never before.
            let uncommitted = next[p] - committed[p];
            if uncommitted > 0 && rng.chance(8) {
                next[p] -= 1 + rng.below(uncommitted.min(4) as u64) as usize;
            }
            out.push(Write {
                event: queues[p][next[p]],
                cut: None,
            });
            next[p] += 1;
        }
        out
    }
}

fn sink_config(dir: &Scratch, uri: &str, db: &str) -> Config {
    let path = dir.0.join("smt.toml");
    std::fs::write(
        &path,
        format!(
            "[kafka]\nbrokers = \"127.0.0.1:1\"\ngroup-id = \"g\"\n[mongodb]\nuri = \"{uri}\"\n\
             database = \"{db}\"\n[transforms.t]\nmodule = \"t.wasm\"\n[[routes]]\ntopics = [\"t\"]\n\
             transform = \"t\"\n"
        ),
    )
    .unwrap();
    Config::load_with_env(&path, Vec::new()).unwrap()
}

fn text(d: &Document, k: &str) -> Option<String> {
    match d.get(k) {
        Some(Bson::String(s)) => Some(s.clone()),
        Some(other) => Some(format!("{other}")),
        None => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_changes_converge_in_every_order_the_partitions_allow() {
    let s = Services::shared();
    let dir = Scratch::new("key-moves");
    let db = unique_name("km");
    let sink = Sink::connect(
        &sink_config(&dir, &s.mongodb_uri(), &db),
        Arc::new(Metrics::new()),
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    let client = sink.client().clone();
    let module = debezium_mongo_component();
    let seeds: Vec<u64> = match std::env::var("SMT_KEY_MOVES_SEEDS") {
        // `fresh`: new seeds only, for searching.
        Ok(v) if v.trim() == "fresh" => (0..tunable("WORKLOADS", WORKLOADS) as u64)
            .map(fresh_seed)
            .collect(),
        Ok(v) if !v.trim().is_empty() => v
            .split(',')
            .map(|s| s.trim().parse().expect("SMT_KEY_MOVES_SEEDS: numbers"))
            .collect(),
        // The test command: the seeds that once failed, fixed ones, and a
        // few new ones each run (printed above a failure).
        _ => REGRESSIONS
            .iter()
            .copied()
            .chain(1..=tunable("WORKLOADS", WORKLOADS) as u64)
            .chain((0..FRESH).map(fresh_seed))
            .collect(),
    };
    eprintln!("key_moves seeds: {seeds:?}");
    let mut failures = Vec::new();
    let mut runs = 0;
    let trace = std::env::var("SMT_KEY_MOVES_TRACE").is_ok();
    for seed in seeds {
        let mut rng = Rng::new(seed);
        for attempt in 0..ORDERS {
            runs += 1;
            let table = format!("docs_{seed}_{attempt}");
            let w = Workload::generate(&mut rng, &table);
            let order = w.order(&mut rng);
            let mut inst = module.instantiate("{}").unwrap();
            for write in &order {
                let i = write.event;
                let mut ops = inst.transform(&w.events[i].record).unwrap();
                if let Some(cut) = write.cut {
                    ops.truncate((cut % ops.len().max(1) as u64) as usize);
                }
                let ops: Vec<_> = ops.into_iter().map(|op| (0, op)).collect();
                if ops.is_empty() {
                    continue;
                }
                // A server that stops answering (it panics when its disk is
                // full) must fail the test, not hang it.
                let failed = tokio::time::timeout(
                    WRITE_DEADLINE,
                    sink.write(&ops, &CancellationToken::new()),
                )
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "seed {seed}, order {attempt}: no answer from the MongoDB-protocol \
                         server within {WRITE_DEADLINE:?} (see its log in the run directory)"
                    )
                })
                .unwrap();
                assert!(failed.is_empty(), "seed {seed}: {failed:?}");
                if trace {
                    let r = &w.events[i].record;
                    let v: Value = r
                        .value
                        .as_deref()
                        .map(|b| serde_json::from_slice(b).unwrap())
                        .unwrap_or(Value::Null);
                    let state: Vec<String> = documents(&client, &db, &table)
                        .await
                        .unwrap()
                        .iter()
                        .map(|d| {
                            format!(
                                "{}:{:?}",
                                d.get_document("_id")
                                    .map(|i| i.to_string())
                                    .unwrap_or_default(),
                                text(d, "body")
                            )
                        })
                        .collect();
                    eprintln!(
                        "p{} key {} {} lsn {} hdr {:?} | {}",
                        r.partition,
                        w.events[i].key,
                        v["op"],
                        v["source"]["lsn"],
                        r.headers.first().map(|h| String::from_utf8_lossy(
                            h.value.as_deref().unwrap_or_default()
                        )
                        .into_owned()),
                        state.join(" ")
                    );
                }
            }
            let got: BTreeMap<i64, (Option<String>, Option<String>)> =
                documents(&client, &db, &table)
                    .await
                    .unwrap()
                    .iter()
                    .map(|d| {
                        let id = d
                            .get_document("_id")
                            .ok()
                            .and_then(|i| i.get("id"))
                            .and_then(|v| v.as_i64().or(v.as_i32().map(i64::from)))
                            .unwrap_or_else(|| panic!("unexpected document {d}"));
                        (id, (text(d, "title"), text(d, "body")))
                    })
                    .collect();
            let want: BTreeMap<i64, (Option<String>, Option<String>)> = w
                .rows
                .iter()
                .map(|(k, (t, b))| (*k, (Some(t.clone()), Some(b.clone()))))
                .collect();
            if got != want {
                let keys: Vec<String> = order
                    .iter()
                    .map(|o| match o.cut {
                        None => w.events[o.event].key.to_string(),
                        Some(_) => format!("{} (cut)", w.events[o.event].key),
                    })
                    .collect();
                failures.push(format!(
                    "seed {seed}, order {attempt} (collection {db}.{table}):\n  changes: {:?}\n  \
                     records by key, as written: {keys:?}\n  want {want:?}\n  got  {got:?}",
                    w.log
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {runs} orders differ from the model:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
