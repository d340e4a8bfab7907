//! Hot swap of transforms while `smt run` streams records (docs/hot-swap.md),
//! with the real `smt` binary, real Kafka and real MongoDB. Records are
//! produced straight to Kafka; the transform is the versioned test guest,
//! whose documents say which version (module tag + config `v` + shape)
//! wrote them.
//!
//! Run: `cargo build -p smt-host --bin smt && cargo test -p smt-tests --test hotswap`

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use serde_json::{json, Value};
use smt_tests::config::ConfigBuilder;
use smt_tests::guests::{short_hash, tag_module, versioned_module};
use smt_tests::kafka::{produce, producer};
use smt_tests::mongo::int;
use smt_tests::record::{record, Record, RecordExt as _};
use smt_tests::services::{unique_name, Services};
use smt_tests::smt_process::{free_port, run_to_exit, tail, wait_for, Scratch, Smt};

const START: Duration = Duration::from_secs(60);
const CONVERGE: Duration = Duration::from_secs(120);
const PARTITIONS: i32 = 3;
const TOKEN: &str = "hotswap-test-token";
const COLLECTION: &str = "docs";

/// The versioned guest in Go (guest-transforms/test-guests/versioned-go),
/// built by `scripts/build-guests` (Go toolchain installed on first use).
fn go_versioned_module() -> Vec<u8> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap();
    let out = std::process::Command::new(root.join("scripts/build-guests"))
        .args(["build", "go-versioned"])
        .output()
        .expect("running scripts/build-guests");
    assert!(
        out.status.success(),
        "scripts/build-guests build go-versioned failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let path = stdout
        .trim()
        .strip_prefix("go-versioned ")
        .expect("`go-versioned <path>`");
    std::fs::read(path).expect("the Go versioned guest")
}

fn hostile_module() -> Vec<u8> {
    std::fs::read(env!("SMT_GUEST_HOSTILE")).expect("the hostile guest")
}

/// What a version writes: (tag, v, shape).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Stamp {
    tag: String,
    v: i64,
    nested: bool,
}

// ------------------------------------------------------------------ HTTP

/// One request to the admin endpoint: (status, body as JSON or a string).
fn http(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &[u8],
) -> Result<(u16, Value)> {
    // Uploads compile the module before answering: a long timeout.
    let timeout = Duration::from_secs(60);
    let (status, body) = smt_tests::smt_process::http(port, method, path, token, body, timeout)?;
    let body = serde_json::from_str(&body).unwrap_or(Value::String(body));
    Ok((status, body))
}

fn encode_query(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn upload(smt: &Smt, wasm: &[u8], config: Option<&Value>) -> Result<(u16, Value)> {
    let path = match config {
        Some(c) => format!("/transforms/vt?config={}", encode_query(&c.to_string())),
        None => "/transforms/vt".to_owned(),
    };
    http(smt.admin_port, "PUT", &path, Some(TOKEN), wasm)
}

fn status(smt: &Smt) -> Result<Value> {
    let (code, body) = http(smt.admin_port, "GET", "/transforms/vt", Some(TOKEN), b"")?;
    if code != 200 {
        bail!("GET /transforms/vt: {code} {body}");
    }
    Ok(body)
}

fn active_version(smt: &Smt) -> Result<String> {
    Ok(status(smt)?["active"]["version"]
        .as_str()
        .unwrap_or_default()
        .to_owned())
}

// ------------------------------------------------------------------ load

/// Produces `{"n": n}` with key `k<n>` round-robin over the partitions, about
/// `rate` records a second, until stopped. Counts what was delivered.
struct Load {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<Result<()>>>,
}

impl Load {
    fn start(brokers: &str, topic: &str, rate: u64) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let (brokers, topic) = (brokers.to_owned(), topic.to_owned());
        let (st, se) = (stop.clone(), sent.clone());
        let thread = std::thread::spawn(move || -> Result<()> {
            let p: BaseProducer = producer(&brokers)?;
            let tick = Duration::from_millis(20);
            let per_tick = (rate * 20 / 1000).max(1);
            let mut n = 0u64;
            while !st.load(Ordering::Relaxed) {
                for _ in 0..per_tick {
                    let key = format!("k{n}");
                    let value = format!(r#"{{"n":{n}}}"#);
                    let rec: BaseRecord<'_, str, str> = BaseRecord::to(&topic)
                        .partition((n % PARTITIONS as u64) as i32)
                        .key(key.as_str())
                        .payload(value.as_str());
                    p.send(rec).map_err(|(e, _)| anyhow!("producing: {e}"))?;
                    n += 1;
                }
                p.poll(Duration::ZERO);
                std::thread::sleep(tick);
            }
            p.flush(Duration::from_secs(30))?;
            se.store(n, Ordering::SeqCst);
            Ok(())
        });
        Load {
            stop,
            sent,
            thread: Some(thread),
        }
    }

    /// Stops producing; the number of records delivered.
    fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap().unwrap();
        self.sent.load(Ordering::SeqCst)
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

// ------------------------------------------------------------------ MongoDB

/// Every document of the collection: key -> (stamp, partition, offset).
async fn documents(uri: &str, db: &str) -> Result<BTreeMap<String, (Stamp, i32, i64)>> {
    let client = mongodb::Client::with_uri_str(uri).await?;
    let mut out = BTreeMap::new();
    for d in smt_tests::mongo::documents(&client, db, COLLECTION).await? {
        let id = d
            .get_str("_id")
            .map_err(|_| anyhow!("bad _id in {d}"))?
            .to_owned();
        let (stamp, src, nested) = if d.contains_key("stamp") {
            let sub = |k: &str| d.get_document(k).map_err(|e| anyhow!("{k}: {e} in {d}"));
            (sub("stamp")?, sub("src")?, true)
        } else {
            (&d, &d, false)
        };
        let stamp_v = Stamp {
            tag: stamp.get_str("tag").unwrap_or_default().to_owned(),
            v: int(stamp, "v").ok_or_else(|| anyhow!("no v in {d}"))?,
            nested,
        };
        let p = int(src, "p").ok_or_else(|| anyhow!("no p in {d}"))? as i32;
        let o = int(src, "o").ok_or_else(|| anyhow!("no o in {d}"))?;
        out.insert(id, (stamp_v, p, o));
    }
    Ok(out)
}

async fn wait_for_count(
    uri: &str,
    db: &str,
    n: usize,
    smt: &Smt,
) -> BTreeMap<String, (Stamp, i32, i64)> {
    let deadline = Instant::now() + CONVERGE;
    loop {
        let docs = documents(uri, db).await.unwrap_or_default();
        if docs.len() >= n || Instant::now() > deadline {
            assert_eq!(
                docs.len(),
                n,
                "documents vs records produced\n{}",
                tail(&smt.log_text(), 4000)
            );
            return docs;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

// ------------------------------------------------------------------ logs

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The batches in the log: (partition, first offset, last offset, version), in log order.
fn logged_batches(log: &str) -> Vec<(i32, i64, i64, String)> {
    let mut out = Vec::new();
    for line in log.lines().filter(|l| l.contains("Batch transformed.")) {
        let line = strip_ansi(line);
        let fields: HashMap<&str, String> = line
            .split_whitespace()
            .filter_map(|t| t.split_once('='))
            .map(|(k, v)| (k, v.trim_matches('"').to_owned()))
            .collect();
        let get = |k: &str| fields.get(k).cloned().unwrap_or_default();
        if let (Ok(p), Ok(first), Ok(last)) = (
            get("partition").parse(),
            get("first_offset").parse(),
            get("last_offset").parse(),
        ) {
            out.push((p, first, last, get("version")));
        }
    }
    out
}

/// None missing, none extra: a document for exactly the produced keys; and
/// each one is the output of the version that the log names for its
/// record's batch. Documents per version.
fn each_document_by_its_batch_version(
    docs: &BTreeMap<String, (Stamp, i32, i64)>,
    produced: u64,
    batches: &[(i32, i64, i64, String)],
    stamps: &HashMap<String, Stamp>,
) -> BTreeMap<String, usize> {
    for n in 0..produced {
        assert!(docs.contains_key(&format!("k{n}")), "k{n} missing");
    }
    let mut version_of: HashMap<(i32, i64), String> = HashMap::new();
    for (p, first, last, version) in batches {
        for o in *first..=*last {
            version_of.insert((*p, o), version.clone());
        }
    }
    let mut per_version: BTreeMap<String, usize> = BTreeMap::new();
    for (key, (stamp, p, o)) in docs {
        let version = version_of
            .get(&(*p, *o))
            .unwrap_or_else(|| panic!("no logged batch holds {p}@{o} ({key})"));
        let expected = stamps
            .get(version)
            .unwrap_or_else(|| panic!("unknown version {version} in the log"));
        assert_eq!(
            stamp, expected,
            "{key} ({p}@{o}) was written by another version than its batch's {version}"
        );
        *per_version.entry(version.clone()).or_default() += 1;
    }
    per_version
}

// ------------------------------------------------------------------ setup

struct Setup {
    brokers: String,
    mongodb: String,
    topic: String,
    db: String,
    dir: Scratch,
    module_path: PathBuf,
}

impl Setup {
    fn new(name: &str, first_module: &[u8]) -> Setup {
        let s = Services::shared();
        let dir = Scratch::new(name);
        let module_path = dir.0.join("vt.wasm");
        std::fs::write(&module_path, first_module).unwrap();
        let setup = Setup {
            brokers: s.brokers(),
            mongodb: s.mongodb_uri(),
            topic: unique_name(name),
            db: unique_name("db"),
            dir,
            module_path,
        };
        s.create_topic(&setup.topic, PARTITIONS as u32).unwrap();
        setup
    }

    fn start(&self, name: &str, config: &Value) -> Smt {
        self.start_with(name, config, &[])
    }

    /// Like `start`, with more `[hot-swap]` keys.
    fn start_with(&self, name: &str, config: &Value, hot_swap: &[(&str, Value)]) -> Smt {
        let mut b = ConfigBuilder::new(&self.brokers, &self.mongodb, &self.db)
            .transform("vt", &self.module_path, config.clone())
            .route(&self.topic, "vt", "fail")
            .set(&["hot-swap", "poll-interval-ms"], json!(200));
        for (key, value) in hot_swap {
            b = b.set(&["hot-swap", key], value.clone());
        }
        let env = [
            ("SMT_LOG", "info,smt_host::pipeline=debug"),
            ("SMT_ADMIN__TOKEN", TOKEN),
            ("NO_COLOR", "1"),
        ];
        let mut smt = Smt::start_with_env(&self.dir.0, name, &b.build(), &env).unwrap();
        smt.wait_assigned(START).unwrap();
        smt
    }
}

fn config(v: i64, nested: bool) -> Value {
    json!({"v": v, "collection": COLLECTION, "shape": if nested { "nested" } else { "flat" }})
}

fn wait_active(smt: &Smt, version: &str, what: &str) {
    wait_for(what, Duration::from_secs(30), || {
        Ok((active_version(smt)? == version).then_some(()))
    })
    .unwrap_or_else(|e| {
        panic!(
            "{e:#}\n{:#}\n{}",
            status(smt).unwrap_or_default(),
            tail(&smt.log_text(), 3000)
        )
    });
}

fn wait_served(smt: &Smt, version: &str, records: f64) {
    wait_for(
        &format!("version {version} to transform {records} records"),
        CONVERGE,
        || {
            Ok(
                (smt.metric("smt_transform_records_total", &[("version", version)])? >= records)
                    .then_some(()),
            )
        },
    )
    .unwrap_or_else(|e| panic!("{e:#}\n{}", tail(&smt.log_text(), 3000)));
}

// ------------------------------------------------------------------ tests

/// Ten swaps under continuous load, alternately by replacing the module file
/// and by uploading through the API, including output-shape changes; then
/// every document must be the output of the version that the log names for
/// its record's batch, with none missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_swaps_under_load_every_record_is_written_by_its_batch_version() {
    let base = versioned_module();
    let first = tag_module(&base, "swap0000");
    let setup = Setup::new("swap10", &first);
    let mut stamps: HashMap<String, Stamp> = HashMap::new();
    stamps.insert(
        short_hash(&first),
        Stamp {
            tag: "swap0000".into(),
            v: 0,
            nested: false,
        },
    );
    let mut current = config(0, false);
    let smt = setup.start("smt", &current);
    let load = Load::start(&setup.brokers, &setup.topic, 400);
    wait_served(&smt, &short_hash(&first), 50.0);

    for i in 1..=10i64 {
        let tag = format!("swap{i:04}");
        let wasm = tag_module(&base, &tag);
        let version = short_hash(&wasm);
        if i % 2 == 1 {
            // File replacement, written in place (not renamed): the watcher
            // must wait for it to settle. The config stays.
            std::fs::write(&setup.module_path, &wasm).unwrap();
            wait_active(&smt, &version, &format!("swap {i} (file) to become active"));
        } else {
            // API upload with a new config; every other one changes the output shape.
            current = config(i, i % 4 == 2);
            let (code, body) = upload(&smt, &wasm, Some(&current)).unwrap();
            assert_eq!(code, 200, "swap {i} (API): {body}");
            assert_eq!(body["outcome"], "activated", "{body}");
            assert_eq!(body["version"], version.as_str(), "{body}");
            assert!(
                body["samples"].as_u64().unwrap() > 0,
                "validated on recent records: {body}"
            );
        }
        let st = status(&smt).unwrap();
        assert_eq!(
            st["active"]["trigger"],
            if i % 2 == 1 { "file" } else { "api" },
            "{st}"
        );
        assert_eq!(st["active"]["config"], current, "{st}");
        stamps.insert(
            version.clone(),
            Stamp {
                tag,
                v: current["v"].as_i64().unwrap(),
                nested: current["shape"] == "nested",
            },
        );
        wait_served(&smt, &version, 30.0);
    }
    let produced = load.finish();
    let docs = wait_for_count(&setup.mongodb, &setup.db, produced as usize, &smt).await;

    let batches = logged_batches(&smt.log_text());
    let per_version = each_document_by_its_batch_version(&docs, produced, &batches, &stamps);
    assert_eq!(
        per_version.len(),
        11,
        "every version wrote records: {per_version:?}"
    );
    assert_eq!(
        smt.metric("smt_transform_swaps_total", &[("outcome", "activated")])
            .unwrap(),
        10.0
    );
    eprintln!(
        "{produced} records, {} batches, per version: {per_version:?}",
        batches.len()
    );
}

/// Hot swap of a Go transform under load (issue 23): from the Rust versioned
/// guest to its Go twin by upload (new config, nested shape), to another
/// build of the Go one by replacing the file, and back to Rust by upload.
/// Every record is written once, by the version its batch ran on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_go_transform_swaps_in_and_out_under_load() {
    let rust = versioned_module();
    let go = go_versioned_module();
    let versions = [
        (tag_module(&rust, "rust0001"), config(1, false)),
        (tag_module(&go, "goswap02"), config(2, true)),
        (tag_module(&go, "goswap03"), config(2, true)),
        (tag_module(&rust, "rust0004"), config(4, false)),
    ];
    let stamp = |i: usize| Stamp {
        tag: ["rust0001", "goswap02", "goswap03", "rust0004"][i].to_owned(),
        v: versions[i].1["v"].as_i64().unwrap(),
        nested: versions[i].1["shape"] == "nested",
    };
    let stamps: HashMap<String, Stamp> = (0..versions.len())
        .map(|i| (short_hash(&versions[i].0), stamp(i)))
        .collect();
    let setup = Setup::new("swapgo", &versions[0].0);
    let smt = setup.start("smt", &versions[0].1);
    let load = Load::start(&setup.brokers, &setup.topic, 300);
    wait_served(&smt, &short_hash(&versions[0].0), 50.0);
    for (i, (wasm, config)) in versions.iter().enumerate().skip(1) {
        let version = short_hash(wasm);
        if i == 2 {
            // Go to Go by replacing the file; the config stays.
            std::fs::write(&setup.module_path, wasm).unwrap();
            wait_active(
                &smt,
                &version,
                "the second Go build (file) to become active",
            );
        } else {
            let (code, body) = upload(&smt, wasm, Some(config)).unwrap();
            assert_eq!(code, 200, "swap {i} (API): {body}");
            assert_eq!(body["outcome"], "activated", "{body}");
            assert_eq!(body["version"], version.as_str(), "{body}");
            assert!(
                body["samples"].as_u64().unwrap() > 0,
                "validated on recent records: {body}"
            );
        }
        let st = status(&smt).unwrap();
        assert_eq!(st["active"]["config"], *config, "{st}");
        assert_eq!(st["active"]["contract"], "0.2.0", "{st}");
        wait_served(&smt, &version, 100.0);
    }
    let produced = load.finish();
    let docs = wait_for_count(&setup.mongodb, &setup.db, produced as usize, &smt).await;
    let batches = logged_batches(&smt.log_text());
    let per_version = each_document_by_its_batch_version(&docs, produced, &batches, &stamps);
    assert_eq!(
        per_version.len(),
        4,
        "every version wrote records: {per_version:?}"
    );
    assert_eq!(
        smt.metric("smt_transform_swaps_total", &[("outcome", "activated")])
            .unwrap(),
        3.0
    );
    eprintln!("{produced} records, per version: {per_version:?}");
}

/// A module that traps on the sample records, one with the wrong interface,
/// a truncated file and a module whose `init` fails: each is rejected with
/// the reason, and the active version keeps writing every record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_versions_are_rejected_while_the_old_version_keeps_processing() {
    let base = versioned_module();
    let good = tag_module(&base, "good0001");
    let good_version = short_hash(&good);
    let setup = Setup::new("reject", &good);
    let smt = setup.start("smt", &config(1, false));
    let load = Load::start(&setup.brokers, &setup.topic, 200);
    wait_served(&smt, &good_version, 50.0);

    // Without the token: refused.
    let (code, _) = http(smt.admin_port, "GET", "/transforms", None, b"").unwrap();
    assert_eq!(code, 401);
    let (code, _) = http(
        smt.admin_port,
        "PUT",
        "/transforms/vt",
        Some("wrong"),
        &good,
    )
    .unwrap();
    assert_eq!(code, 401);

    // 1. Traps on the sample records (the recent records the active version handled).
    let trapping = tag_module(&base, "trap0002");
    let (code, body) = upload(
        &smt,
        &trapping,
        Some(&json!({"v": 2, "collection": COLLECTION, "trap": true})),
    )
    .unwrap();
    assert_eq!(code, 422, "{body}");
    assert_eq!(body["stage"], "sample", "{body}");
    assert!(body["reason"].as_str().unwrap().contains("trap"), "{body}");

    // 2. The wrong interface: a component that exports nothing.
    let (code, body) = upload(&smt, b"(component)", None).unwrap();
    assert_eq!(code, 422, "{body}");
    assert_eq!(body["stage"], "contract", "{body}");
    assert!(
        body["reason"]
            .as_str()
            .unwrap()
            .contains("missing export `init`"),
        "{body}"
    );
    // …and a core module instead of a component.
    let (code, body) = upload(&smt, b"\0asm\x01\0\0\0", None).unwrap();
    assert_eq!(code, 422, "{body}");
    assert_eq!(body["stage"], "compile", "{body}");

    // 3. `init` fails.
    let (code, body) = upload(
        &smt,
        &hostile_module(),
        Some(&json!({"mode": "init-fails"})),
    )
    .unwrap();
    assert_eq!(code, 422, "{body}");
    assert_eq!(body["stage"], "init", "{body}");
    assert!(
        body["reason"].as_str().unwrap().contains("init refused"),
        "{body}"
    );

    // 4. A truncated module file: rejected by the watcher; the API says why.
    let truncated_from = tag_module(&base, "trunc003");
    std::fs::write(
        &setup.module_path,
        &truncated_from[..truncated_from.len() / 2],
    )
    .unwrap();
    let rejection = wait_for(
        "the truncated file to be rejected",
        Duration::from_secs(30),
        || {
            let st = status(&smt)?;
            Ok((st["last_rejection"]["trigger"] == "file").then(|| st["last_rejection"].clone()))
        },
    )
    .unwrap_or_else(|e| panic!("{e:#}\n{}", tail(&smt.log_text(), 3000)));
    assert_eq!(rejection["stage"], "compile", "{rejection}");
    assert_eq!(
        rejection["version"],
        short_hash(&truncated_from[..truncated_from.len() / 2]).as_str()
    );

    // The good version never stopped: still active, still serving, no
    // document from a rejected version, none missing.
    assert_eq!(active_version(&smt).unwrap(), good_version);
    let served = smt
        .metric("smt_transform_records_total", &[("version", &good_version)])
        .unwrap();
    wait_served(&smt, &good_version, served + 50.0);
    assert_eq!(
        smt.metric("smt_transform_swaps_total", &[("outcome", "rejected")])
            .unwrap(),
        5.0
    );
    assert_eq!(
        smt.metric("smt_transform_swaps_total", &[("outcome", "activated")])
            .unwrap(),
        0.0
    );
    let produced = load.finish();
    let docs = wait_for_count(&setup.mongodb, &setup.db, produced as usize, &smt).await;
    let stamp = Stamp {
        tag: "good0001".into(),
        v: 1,
        nested: false,
    };
    assert!(
        docs.values().all(|(s, _, _)| *s == stamp),
        "only the good version wrote"
    );
    let log = smt.log_text();
    assert!(log.contains("Rejected a new transform version"), "logged");
    assert!(!log.contains(TOKEN), "the token is never logged");
}

/// A rollback restores the previous version within one batch: every record
/// produced after the rollback answered is written by the previous version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_restores_the_previous_version_within_one_batch() {
    let base = versioned_module();
    let a = tag_module(&base, "rollA001");
    let b = tag_module(&base, "rollB002");
    let setup = Setup::new("rollback", &a);
    let smt = setup.start("smt", &config(1, false));
    let load = Load::start(&setup.brokers, &setup.topic, 200);
    wait_served(&smt, &short_hash(&a), 30.0);

    let (code, body) = upload(&smt, &b, Some(&config(2, true))).unwrap();
    assert_eq!(code, 200, "{body}");
    wait_served(&smt, &short_hash(&b), 30.0);

    let (code, body) = http(
        smt.admin_port,
        "POST",
        "/transforms/vt/rollback",
        Some(TOKEN),
        b"",
    )
    .unwrap();
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["outcome"], "rolled-back", "{body}");
    assert_eq!(body["version"], short_hash(&a).as_str(), "{body}");
    let st = status(&smt).unwrap();
    assert_eq!(st["active"]["config"], config(1, false), "{st}");
    assert_eq!(st["previous"]["version"], short_hash(&b).as_str(), "{st}");
    assert_eq!(st["active"]["contract"], "0.2.0", "{st}");
    let rolled_back_at = Instant::now();
    // Records produced from now on.
    let marker_from: Vec<String> = (0..60).map(|n| format!("after{n}")).collect();
    let markers: Vec<Record> = (0..)
        .zip(&marker_from)
        .map(|(n, key)| {
            record(&setup.topic, Some(key.as_bytes()), Some(b"{}".as_slice())).at(n % PARTITIONS, 0)
        })
        .collect();
    produce(&setup.brokers, &setup.topic, &markers).unwrap();
    let produced = load.finish() as usize + marker_from.len();
    let docs = wait_for_count(&setup.mongodb, &setup.db, produced, &smt).await;
    let stamp_a = Stamp {
        tag: "rollA001".into(),
        v: 1,
        nested: false,
    };
    for key in &marker_from {
        assert_eq!(
            docs[key].0, stamp_a,
            "{key}: written after the rollback by the previous version"
        );
    }
    // In the log, per partition: A's batches, then B's, then A's again —
    // each batch on one version, B never again once A is back.
    let batches = logged_batches(&smt.log_text());
    let (va, vb) = (short_hash(&a), short_hash(&b));
    for p in 0..PARTITIONS {
        let mut runs: Vec<&str> = Vec::new();
        for (_, _, _, v) in batches.iter().filter(|x| x.0 == p) {
            if runs.last() != Some(&v.as_str()) {
                runs.push(v);
            }
        }
        assert_eq!(
            runs,
            [va.as_str(), vb.as_str(), va.as_str()],
            "partition {p}: versions of its batches in order"
        );
    }
    eprintln!(
        "rollback took effect; {} s",
        rolled_back_at.elapsed().as_secs_f64()
    );
}

/// Listening beyond loopback without a token is a startup error.
#[test]
fn a_non_loopback_admin_without_a_token_refuses_to_start() {
    let dir = Scratch::new("exposed");
    let module = dir.0.join("vt.wasm");
    std::fs::write(&module, versioned_module()).unwrap();
    let config = ConfigBuilder::new("127.0.0.1:1", "mongodb://127.0.0.1:1", "x")
        .transform("vt", &module, json!({}))
        .route("t", "vt", "fail")
        .set(
            &["admin", "listen"],
            json!(format!("0.0.0.0:{}", free_port())),
        )
        .build();
    let (status, out) = run_to_exit(&dir.0, &config, Duration::from_secs(30)).unwrap();
    assert_eq!(status.code(), Some(2), "{out}");
    assert!(
        out.contains("admin.token") && out.contains("0.0.0.0"),
        "{out}"
    );
}

/// `[hot-swap] state-dir`: a version deployed through the API is active
/// again after a restart (restored, with its config and trigger), the
/// version before it is still the rollback target; and when the config
/// file's module changed while `smt` was down, the file wins and the version
/// that ran before the restart becomes the previous one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployed_versions_survive_a_restart() {
    let base = versioned_module();
    let v1 = tag_module(&base, "rest0001");
    let v2 = tag_module(&base, "rest0002");
    let v3 = tag_module(&base, "rest0003");
    let (h1, h2, h3) = (short_hash(&v1), short_hash(&v2), short_hash(&v3));
    let setup = Setup::new("restart", &v1);
    let state = [("state-dir", json!("state"))];
    let load = Load::start(&setup.brokers, &setup.topic, 100);

    let mut smt = setup.start_with("first", &config(1, false), &state);
    wait_served(&smt, &h1, 20.0);
    let (code, body) = upload(&smt, &v2, Some(&config(2, true))).unwrap();
    assert_eq!(code, 200, "{body}");
    wait_served(&smt, &h2, 20.0);
    smt.terminate(Duration::from_secs(60)).unwrap();

    // Same config file: v2 comes back with its config.
    let mut smt = setup.start_with("second", &config(1, false), &state);
    let st = status(&smt).unwrap();
    assert_eq!(st["active"]["version"], h2.as_str(), "{st}");
    assert_eq!(st["active"]["restored"], true, "{st}");
    assert_eq!(st["active"]["trigger"], "api", "{st}");
    assert_eq!(st["active"]["config"], config(2, true), "{st}");
    assert_eq!(st["previous"]["version"], h1.as_str(), "{st}");
    wait_served(&smt, &h2, 20.0);
    assert_eq!(
        smt.metric("smt_transform_records_total", &[("version", &h1)])
            .unwrap(),
        0.0,
        "v1 served nothing after the restart"
    );
    // And the rollback goes to v1, with v1's config.
    let (code, body) = http(
        smt.admin_port,
        "POST",
        "/transforms/vt/rollback",
        Some(TOKEN),
        b"",
    )
    .unwrap();
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["version"], h1.as_str(), "{body}");
    let st = status(&smt).unwrap();
    assert_eq!(st["active"]["config"], config(1, false), "{st}");
    wait_served(&smt, &h1, 20.0);
    // Back on v2 (a second rollback undoes the first), then stop.
    let (code, body) = http(
        smt.admin_port,
        "POST",
        "/transforms/vt/rollback",
        Some(TOKEN),
        b"",
    )
    .unwrap();
    assert_eq!(
        (code, body["version"].as_str()),
        (200, Some(h2.as_str())),
        "{body}"
    );
    smt.terminate(Duration::from_secs(60)).unwrap();

    // The module file changed while smt was down: the file wins; what ran
    // before the restart is the rollback target.
    std::fs::write(&setup.module_path, &v3).unwrap();
    let smt = setup.start_with("third", &config(1, false), &state);
    let st = status(&smt).unwrap();
    assert_eq!(st["active"]["version"], h3.as_str(), "{st}");
    assert_eq!(st["active"]["restored"], false, "{st}");
    assert_eq!(st["active"]["trigger"], "startup", "{st}");
    assert_eq!(st["previous"]["version"], h2.as_str(), "{st}");
    assert_eq!(st["previous"]["restored"], true, "{st}");
    wait_served(&smt, &h3, 20.0);
    drop(load);
}
