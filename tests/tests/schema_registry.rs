//! Schema-registry formats end to end (issue #18), with a real Apicurio
//! Registry (Confluent-compatible API), real Debezium writing Avro through
//! Apicurio's converter, Confluent's own Python serializers, real Kafka, the
//! real `smt` binary and the MongoDB-protocol server:
//!
//! * the fixture workload through Debezium as Avro and as JSON (schemas on)
//!   gives identical collections, also across a schema change (new id);
//! * Avro, JSON Schema and Protobuf framed by Confluent's serializers give
//!   the same documents as the JSON converter's form of the same events;
//! * bad input (wrong magic byte, unknown id, truncated data; Protobuf: a
//!   message index that names no message, truncated data) goes to the DLQ
//!   with the reason, the good records around it are written;
//! * a registry that is down or answers 401 holds the batch (nothing written,
//!   nothing dead-lettered or committed) until it answers; the password is
//!   never logged.
//!
//! Run: `scripts/test -p smt-tests --test schema_registry`

use std::collections::BTreeMap;
use std::time::Duration;

use bson::{Bson, Document};
use serde_json::Value;
use smt_tests::config::ConfigBuilder;
use smt_tests::kafka::{produce, read_all, topic_len};
use smt_tests::record::{Record, RecordExt};
use smt_tests::schema_registry::*;
use smt_tests::services::{repo_root, unique_name, DebeziumConnector, Services};
use smt_tests::smt_process::{smt_bin, tail, wait_for, Scratch, Smt};

const CONVERGE: Duration = Duration::from_secs(120);

fn module() -> &'static str {
    env!("SMT_GUEST_DEBEZIUM_MONGO")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Every collection of `db`: name → documents by `_id`.
fn database(uri: &str, db: &str) -> BTreeMap<String, Vec<Document>> {
    runtime().block_on(async {
        let client = mongodb::Client::with_uri_str(uri).await.unwrap();
        let mut names = client.database(db).list_collection_names().await.unwrap();
        names.sort();
        let mut out = BTreeMap::new();
        for n in names {
            let docs = smt_tests::mongo::documents(&client, db, &n).await.unwrap();
            out.insert(n, docs);
        }
        out
    })
}

/// Documents to compare across two runs: an `_id` the transform made up (an
/// ObjectId, for a table without a primary key) left out, in a stable order.
fn comparable(docs: &[Document]) -> Vec<Document> {
    let mut out: Vec<Document> = docs
        .iter()
        .map(|d| {
            let mut d = d.clone();
            if matches!(d.get("_id"), Some(Bson::ObjectId(_))) {
                d.remove("_id");
            }
            d
        })
        .collect();
    out.sort_by_key(|d| d.to_string());
    out
}

/// `[[routes]]` of `pattern` into `database` with the default transform.
fn route(name: &str, pattern: &str, format: &str, on_error: &str) -> String {
    let formats = if format == "json" {
        String::new()
    } else {
        format!("key-format = \"{format}\"\nvalue-format = \"{format}\"\n")
    };
    format!(
        "[[routes]]\ntopic-pattern = '{pattern}'\ntransform = \"{name}\"\non-error = \"{on_error}\"\n{formats}"
    )
}

/// The tests' configuration; every route writes into a database of its own.
fn base_config(brokers: &str, mongo: &str) -> ConfigBuilder {
    ConfigBuilder::new(brokers, mongo, "unused")
        .set(&["mongodb", "allowed-namespaces"], serde_json::json!(["*"]))
}

fn registry_section(url: &str) -> String {
    format!("[schema-registry]\nurl = \"{url}\"\nrequest-timeout-ms = 2000\n")
}

/// Waits until `smt` has handled `n` records of `topic`.
fn wait_processed(smt: &mut Smt, topic: &str, n: i64) {
    wait_for(
        &format!("smt to handle {n} records of {topic}"),
        CONVERGE,
        || {
            if let Some(status) = smt.try_wait() {
                anyhow::bail!("smt exited with {status}:\n{}", tail(&smt.log_text(), 4000));
            }
            let got = smt.metric("smt_records_processed_total", &[("topic", topic)])?;
            Ok((got as i64 >= n).then_some(()))
        },
    )
    .unwrap_or_else(|e| panic!("{e:#}\nsmt log:\n{}", tail(&smt.log_text(), 4000)));
}

fn workload_sql(schema: &str) -> Vec<(String, String)> {
    let text =
        std::fs::read_to_string(repo_root().join("tests/fixtures/debezium/workload.sql")).unwrap();
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("-- @@ ") {
            out.push((name.trim().to_owned(), String::new()));
        } else if let Some((_, sql)) = out.last_mut() {
            sql.push_str(&line.replace("inventory", schema));
            sql.push('\n');
        }
    }
    out
}

const TABLES: &[&str] = &[
    "customers",
    "orders",
    "audit_log",
    "documents",
    "products",
    "all_types",
];

fn value_schema_id(r: &Record) -> Option<u32> {
    let v = r.value.as_deref()?;
    (v.len() >= 5 && v[0] == 0).then(|| u32::from_be_bytes([v[1], v[2], v[3], v[4]]))
}

/// `smt test` on the Avro fixtures (`--schemas`, offline) prints the same
/// operations as on the JSON fixtures of the same workload.
#[test]
fn smt_test_gives_the_same_operations_for_the_avro_and_json_fixtures() {
    let dir = repo_root().join("tests/fixtures/debezium");
    let run = |input: &str, schemas: Option<&str>| -> Vec<Value> {
        let mut cmd = std::process::Command::new(smt_bin());
        cmd.args(["test", "--transform", module(), "--input"])
            .arg(dir.join(input));
        if let Some(s) = schemas {
            cmd.arg("--schemas").arg(dir.join(s));
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "smt test {input}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    // where the two captures differ by nature: the primary-key move's source position and time
    fn mask(v: &mut Value) {
        match v {
            Value::Object(o) => {
                for (k, x) in o.iter_mut() {
                    if ["lsn", "_id.lsn", "seen_at"].contains(&k.as_str()) {
                        *x = Value::Null;
                    } else {
                        mask(x);
                    }
                }
            }
            Value::Array(a) => a.iter_mut().for_each(mask),
            _ => {}
        }
    }
    let mut json = run("schemas.jsonl", None);
    let mut avro = run("avro.jsonl", Some("avro-schemas"));
    json.iter_mut().chain(avro.iter_mut()).for_each(mask);
    assert_eq!(json.len(), 35);
    assert_eq!(avro, json);
    // without the schemas the Avro bytes are bad input for the transform
    let out = std::process::Command::new(smt_bin())
        .args(["test", "--transform", module(), "--input"])
        .arg(dir.join("avro.jsonl"))
        .output()
        .unwrap();
    assert!(!out.status.success());
}

/// The fixture workload through Debezium twice, as JSON (schemas on) and as
/// Avro through Apicurio's converter, plus `ALTER TABLE … ADD COLUMN` mid-stream:
/// `smt run` with the same transform and config writes identical collections.
#[test]
fn debezium_avro_gives_the_same_documents_as_json() {
    let s = Services::shared();
    let registry = registry_url(s).unwrap();
    let (brokers, mongo) = (s.brokers(), s.mongodb_uri());
    let schema = unique_name("srw");
    let sections = workload_sql(&schema);
    s.sql(&sections[0].1).unwrap();
    let tables: Vec<String> = TABLES.iter().map(|t| format!("{schema}.{t}")).collect();
    let t: Vec<&str> = tables.iter().map(String::as_str).collect();
    let json = DebeziumConnector::new(&unique_name("srj"), &unique_name("pj"), &t).schemas(true);
    s.debezium_connector(&json).unwrap();
    let (avro_name, avro_prefix) = (unique_name("sra"), unique_name("pa"));
    s.run_script(&[
        "debezium",
        &avro_name,
        "--prefix",
        &avro_prefix,
        "--tables",
        &tables.join(","),
        "--format",
        "avro",
    ])
    .unwrap();
    for (_, sql) in &sections[1..] {
        s.sql(sql).unwrap();
    }
    // a schema change mid-stream: Apicurio registers a new value schema (new id)
    s.sql(&format!(
        "ALTER TABLE {schema}.customers ADD COLUMN nickname text;
         INSERT INTO {schema}.customers (first_name, last_name, email, balance, nickname)
             VALUES ('Zed', 'End', 'end@example.com', 5.50, 'zee');"
    ))
    .unwrap();
    let customers = |prefix: &str| format!("{prefix}.{schema}.customers");
    s.wait_for_record(&customers(&json.prefix), CONVERGE, |r| {
        r.debezium_payload()
            .is_some_and(|p| p["after"]["email"] == "end@example.com")
    })
    .unwrap();
    let avro_last = s
        .wait_for_record(&customers(&avro_prefix), CONVERGE, |r| {
            r.value
                .as_deref()
                .is_some_and(|v| v.windows(15).any(|w| w == b"end@example.com"))
        })
        .unwrap();
    // (the two connectors' snapshots may cut the stream at different points:
    // the final documents are compared, not the record counts)
    let mut lens = Vec::new();
    for t in TABLES {
        for prefix in [&json.prefix, &avro_prefix] {
            let topic = format!("{prefix}.{schema}.{t}");
            lens.push((topic.clone(), topic_len(&brokers, &topic).unwrap()));
        }
    }
    // both versions of the customers value schema are in the topic
    let first = s
        .wait_for_record(&customers(&avro_prefix), CONVERGE, |r| r.value.is_some())
        .unwrap();
    let (id1, id2) = (
        value_schema_id(&first).unwrap(),
        value_schema_id(&avro_last).unwrap(),
    );
    assert_ne!(id1, id2, "ALTER TABLE ADD COLUMN registers a new schema id");

    let (db_json, db_avro) = (unique_name("srj"), unique_name("sra"));
    let config = base_config(&brokers, &mongo).build()
        + &format!(
            "[transforms.j]\nmodule = \"{m}\"\nconfig = {{ database = \"{db_json}\" }}\n\
             [transforms.a]\nmodule = \"{m}\"\nconfig = {{ database = \"{db_avro}\" }}\n",
            m = module()
        )
        + &registry_section(&registry)
        + &route("j", &format!("{}\\..*", json.prefix), "json", "fail")
        + &route("a", &format!("{avro_prefix}\\..*"), "avro", "fail");
    let dir = Scratch::new("sr-workload");
    let mut smt = Smt::start(&dir.0, "smt", &config).unwrap();
    for (topic, n) in &lens {
        wait_processed(&mut smt, topic, *n);
    }
    // (the transform's own bookkeeping, `__smt_moves.*`, holds source positions: left out)
    let user = |mut d: BTreeMap<String, Vec<Document>>| {
        d.retain(|name, _| !name.starts_with("__smt_"));
        d
    };
    let (j, a) = (
        user(database(&mongo, &db_json)),
        user(database(&mongo, &db_avro)),
    );
    assert_eq!(
        j.keys().collect::<Vec<_>>(),
        a.keys().collect::<Vec<_>>(),
        "the same collections"
    );
    for (coll, docs) in &j {
        assert_eq!(
            comparable(docs),
            comparable(&a[coll]),
            "collection {coll}: JSON path vs Avro path"
        );
    }
    // and they hold what the fixtures promise (types included)
    let zed = a["customers"]
        .iter()
        .find(|d| d.get_str("email").ok() == Some("end@example.com"))
        .expect("the row inserted after the ALTER");
    assert_eq!(zed.get_str("nickname").ok(), Some("zee"));
    assert!(
        matches!(zed.get("balance"), Some(Bson::Decimal128(_))),
        "{zed}"
    );
    let large = a["documents"]
        .iter()
        .find(|d| d.get_str("title").ok() == Some("large, renamed"))
        .expect("the TOAST row");
    assert_eq!(
        large.get_str("body").ok().map(str::len),
        Some(9600),
        "TOAST body kept"
    );
    let all = &a["all_types"];
    assert!(
        all.iter()
            .any(|d| matches!(d.get("c_numeric"), Some(Bson::Decimal128(_)))),
        "{all:?}"
    );
    // every schema fetched once per batch that names it, never a failed fetch
    let cache = |o: &str| {
        smt.metric("smt_schema_cache_total", &[("outcome", o)])
            .unwrap()
    };
    assert!(
        cache("miss") >= 11.0,
        "a key and a value schema per table, one more after the ALTER"
    );
    assert_eq!(cache("fetch-error") + cache("unknown-id"), 0.0);
    smt.terminate(Duration::from_secs(30)).unwrap();
    let _ = s.delete_connector("connect", &json.name);
    let _ = s.delete_connector("connect", &avro_name);
}

/// The same change events as the JSON converter writes them, as Avro, JSON
/// Schema and Protobuf framed by Confluent's Python serializers: identical
/// documents. (Protobuf has no null list: its run is compared with the JSON
/// converter's form of the same events where a null list is empty.)
#[test]
fn serializer_framed_avro_json_schema_and_protobuf_give_the_same_documents() {
    let s = Services::shared();
    let registry = registry_url(s).unwrap();
    let (brokers, mongo) = (s.brokers(), s.mongodb_uri());
    // (what produce.py makes, the route's format, the run it must equal)
    let runs = [
        ("json", "json", 0),
        ("avro", "avro", 0),
        ("json-schema", "json-schema", 0),
        ("json-no-null-lists", "json", 3),
        ("protobuf", "protobuf", 3),
    ];
    let mut config = base_config(&brokers, &mongo).build() + &registry_section(&registry);
    let mut targets = Vec::new();
    for (i, (made, format, _)) in runs.iter().enumerate() {
        let prefix = unique_name(&format!("ser{i}"));
        let topic = format!("{prefix}.inv.customers");
        s.create_topic(&topic, 1).unwrap();
        produce_with_python(&brokers, &registry, made, &topic).unwrap();
        let db = unique_name(&format!("ser{i}"));
        config += &format!(
            "[transforms.t{i}]\nmodule = \"{}\"\nconfig = {{ database = \"{db}\" }}\n",
            module()
        );
        config += &route(&format!("t{i}"), &format!("{prefix}\\..*"), format, "fail");
        targets.push((topic, db));
    }
    let dir = Scratch::new("sr-serializers");
    let mut smt = Smt::start(&dir.0, "smt", &config).unwrap();
    for (topic, _) in &targets {
        wait_processed(&mut smt, topic, PRODUCED);
    }
    let dbs: Vec<_> = targets.iter().map(|(_, db)| database(&mongo, db)).collect();
    let docs = &dbs[0]["customers"];
    assert_eq!(docs.len(), 2, "{docs:?}");
    assert!(
        matches!(docs[0].get("balance"), Some(Bson::Decimal128(_))),
        "{docs:?}"
    );
    assert_eq!(
        docs[1].get_str("name").ok(),
        Some("George"),
        "the TOAST placeholder does not overwrite"
    );
    assert_ne!(
        dbs[3], dbs[0],
        "George's null list is empty in the Protobuf-shaped run"
    );
    for (i, ((made, _, reference), (topic, _))) in runs.iter().zip(&targets).enumerate().skip(1) {
        if i == *reference {
            continue;
        }
        assert_eq!(
            dbs[i], dbs[*reference],
            "{made} ({topic}) vs {} (the JSON converter's form)",
            runs[*reference].0
        );
    }
    smt.terminate(Duration::from_secs(30)).unwrap();
}

/// Protobuf records whose message indexes name no message, or whose bytes
/// end too soon, go to the DLQ as `bad-input` with the reason; the records
/// around them are written.
#[test]
fn protobuf_bad_input_goes_to_the_dlq_with_the_reason() {
    let s = Services::shared();
    let registry = registry_url(s).unwrap();
    let (brokers, mongo) = (s.brokers(), s.mongodb_uri());
    let scratch = format!("{}.inv.customers", unique_name("srpsrc"));
    s.create_topic(&scratch, 1).unwrap();
    produce_with_python(&brokers, &registry, "protobuf", &scratch).unwrap();
    let good = read_all(s, &scratch, PRODUCED as usize, CONVERGE).unwrap();
    let v = good[0].value.clone().unwrap();
    assert_eq!(v[5], 0, "the Envelope: message index [0], one 0 byte");
    let mut wrong_index = v[..5].to_vec();
    wrong_index.extend([2, 16]); // [8]: the file has 4 messages
    wrong_index.extend_from_slice(&v[6..]);
    let bad = [wrong_index, v[..v.len() - 1].to_vec()];
    let mut records = vec![good[0].clone()];
    for b in &bad {
        records.push(Record {
            value: Some(b.clone()),
            ..good[0].clone()
        });
    }
    records.push(good[1].clone());
    let prefix = unique_name("srpbad");
    let topic = format!("{prefix}.inv.customers");
    let dlq = unique_name("srpdlq");
    s.create_topic(&topic, 1).unwrap();
    s.create_topic(&dlq, 1).unwrap();
    produce(&brokers, &topic, &records).unwrap();
    let db = unique_name("srpbad");
    let config = base_config(&brokers, &mongo).dlq(&dlq).build()
        + &format!(
            "[transforms.t]\nmodule = \"{}\"\nconfig = {{ database = \"{db}\" }}\n",
            module()
        )
        + &registry_section(&registry)
        + &route("t", &format!("{prefix}\\..*"), "protobuf", "dlq");
    let dir = Scratch::new("sr-pbad");
    let mut smt = Smt::start(&dir.0, "smt", &config).unwrap();
    wait_processed(&mut smt, &topic, records.len() as i64);
    let dead = read_all(s, &dlq, 2, CONVERGE).unwrap();
    let reasons: Vec<(String, String, String)> = dead
        .iter()
        .map(|r| {
            (
                header(r, "smt.source.offset"),
                header(r, "smt.error.kind"),
                header(r, "smt.error.message"),
            )
        })
        .collect();
    assert_eq!(
        reasons
            .iter()
            .map(|r| (r.0.as_str(), r.1.as_str()))
            .collect::<Vec<_>>(),
        [("1", "bad-input"), ("2", "bad-input")],
        "{reasons:?}"
    );
    assert!(
        reasons[0].2.contains("value (protobuf format)")
            && reasons[0].2.contains("message indexes [8] name no message"),
        "{reasons:?}"
    );
    assert!(
        reasons[1].2.contains("do not match the Protobuf message"),
        "{reasons:?}"
    );
    assert_eq!(
        dead[1].value.as_deref(),
        Some(&bad[1][..]),
        "the original bytes"
    );
    let docs = database(&mongo, &db);
    assert_eq!(docs["customers"].len(), 2, "{docs:?}");
    assert_eq!(topic_len(&brokers, &dlq).unwrap(), 2);
    smt.terminate(Duration::from_secs(30)).unwrap();
}

/// Produces the `avro` records of `produce.py` to a scratch topic and returns them.
fn python_avro_records(s: &Services, registry: &str) -> Vec<Record> {
    let topic = format!("{}.inv.customers", unique_name("srsrc"));
    s.create_topic(&topic, 1).unwrap();
    produce_with_python(&s.brokers(), registry, "avro", &topic).unwrap();
    read_all(s, &topic, PRODUCED as usize, CONVERGE).unwrap()
}

fn header(r: &Record, k: &str) -> String {
    r.header(k).unwrap_or_default()
}

/// Wrong magic byte, unknown schema id, truncated data: each record goes to
/// the DLQ as `bad-input` with the reason; the records around them are written.
#[test]
fn bad_input_goes_to_the_dlq_with_the_reason() {
    let s = Services::shared();
    let registry = registry_url(s).unwrap();
    let (brokers, mongo) = (s.brokers(), s.mongodb_uri());
    let good = python_avro_records(s, &registry);
    let v = good[0].value.clone().unwrap();
    let mut unknown = v.clone();
    unknown[1..5].copy_from_slice(&0x7fff_fff0u32.to_be_bytes());
    let bad = [
        br#"{"schema":null,"payload":{"op":"c"}}"#.to_vec(), // plain JSON on an Avro route
        unknown,
        v[..v.len() - 4].to_vec(), // truncated
    ];
    let mut records = vec![good[0].clone()];
    for b in &bad {
        records.push(Record {
            value: Some(b.clone()),
            ..good[0].clone()
        });
    }
    records.push(good[1].clone());
    let prefix = unique_name("srbad");
    let topic = format!("{prefix}.inv.customers");
    let dlq = unique_name("srdlq");
    s.create_topic(&topic, 1).unwrap();
    s.create_topic(&dlq, 1).unwrap();
    produce(&brokers, &topic, &records).unwrap();
    let db = unique_name("srbad");
    let config = base_config(&brokers, &mongo).dlq(&dlq).build()
        + &format!(
            "[transforms.t]\nmodule = \"{}\"\nconfig = {{ database = \"{db}\" }}\n",
            module()
        )
        + &registry_section(&registry)
        + &route("t", &format!("{prefix}\\..*"), "avro", "dlq");
    let dir = Scratch::new("sr-bad");
    let mut smt = Smt::start(&dir.0, "smt", &config).unwrap();
    wait_processed(&mut smt, &topic, records.len() as i64);
    let dead = read_all(s, &dlq, 3, CONVERGE).unwrap();
    let reasons: Vec<(String, String, String)> = dead
        .iter()
        .map(|r| {
            (
                header(r, "smt.source.offset"),
                header(r, "smt.error.kind"),
                header(r, "smt.error.message"),
            )
        })
        .collect();
    assert_eq!(
        reasons
            .iter()
            .map(|r| (r.0.as_str(), r.1.as_str()))
            .collect::<Vec<_>>(),
        [("1", "bad-input"), ("2", "bad-input"), ("3", "bad-input")],
        "{reasons:?}"
    );
    assert!(
        reasons[0]
            .2
            .contains("value (avro format): wrong magic byte 0x7b"),
        "{reasons:?}"
    );
    assert!(
        reasons[1].2.contains("schema id 2147483632 is unknown"),
        "{reasons:?}"
    );
    assert!(
        reasons[2].2.contains("do not match the Avro schema"),
        "{reasons:?}"
    );
    // the original bytes are dead-lettered, not a decoded form
    assert_eq!(dead[2].value.as_deref(), Some(&bad[2][..]));
    let docs = database(&mongo, &db);
    assert_eq!(docs["customers"].len(), 2, "{docs:?}");
    let log = smt.log_text();
    assert!(
        log.contains("unknown to the schema registry"),
        "{}",
        tail(&log, 3000)
    );
    assert_eq!(topic_len(&brokers, &dlq).unwrap(), 3);
    smt.terminate(Duration::from_secs(30)).unwrap();
}

/// A registry that is down, then one that answers 401: the batch waits
/// (retries counted, nothing written, dead-lettered or processed), the
/// password never appears in the log; once the registry answers with the
/// right credentials the records are written.
#[test]
fn a_registry_down_or_refusing_holds_the_batch() {
    let s = Services::shared();
    let registry = registry_url(s).unwrap();
    let (brokers, mongo) = (s.brokers(), s.mongodb_uri());
    let good = python_avro_records(s, &registry);
    let password = "s3cret-Pa55word";
    let proxy = AuthProxy::start(&registry, &format!("smt:{password}")).unwrap();
    let prefix = unique_name("srdown");
    let topic = format!("{prefix}.inv.customers");
    let dlq = unique_name("srdlq");
    s.create_topic(&topic, 1).unwrap();
    s.create_topic(&dlq, 1).unwrap();
    produce(&brokers, &topic, &good[..2]).unwrap();
    let db = unique_name("srdown");
    let config = base_config(&brokers, &mongo).dlq(&dlq).build()
        + &format!(
            "[transforms.t]\nmodule = \"{}\"\nconfig = {{ database = \"{db}\" }}\n",
            module()
        )
        + &registry_section(&proxy.url)
        + &route("t", &format!("{prefix}\\..*"), "avro", "dlq");
    let dir = Scratch::new("sr-down");
    let secret_file = dir.0.join("user-info");
    std::fs::create_dir_all(&dir.0).unwrap();
    std::fs::write(&secret_file, format!("smt:{password}\n")).unwrap();
    let config = config.replace(
        "request-timeout-ms = 2000\n",
        &format!(
            "request-timeout-ms = 2000\nuser-info-file = \"{}\"\n",
            secret_file.display()
        ),
    );
    let mut smt = Smt::start(&dir.0, "smt", &config).unwrap();
    let fetch_errors = |smt: &Smt| {
        smt.metric("smt_schema_cache_total", &[("outcome", "fetch-error")])
            .unwrap_or(0.0)
    };
    // down
    wait_for("fetch errors while the registry is down", CONVERGE, || {
        Ok((fetch_errors(&smt) >= 3.0).then_some(()))
    })
    .unwrap();
    assert!(proxy.count(Mode::Down) >= 3);
    // refusing
    proxy.set(Mode::Unauthorized);
    let before = proxy.count(Mode::Unauthorized);
    wait_for("401 answers", CONVERGE, || {
        Ok((proxy.count(Mode::Unauthorized) >= before + 2).then_some(()))
    })
    .unwrap();
    wait_for(
        "the log to say the credentials are refused",
        CONVERGE,
        || {
            Ok(smt
                .log_text()
                .contains("refused the credentials")
                .then_some(()))
        },
    )
    .unwrap();
    assert_eq!(
        smt.metric("smt_records_processed_total", &[("topic", &topic)])
            .unwrap(),
        0.0
    );
    assert_eq!(
        topic_len(&brokers, &dlq).unwrap(),
        0,
        "nothing dead-lettered"
    );
    assert!(database(&mongo, &db).is_empty(), "nothing written");
    assert!(
        smt.try_wait().is_none(),
        "still running (max-retries = 0: retry forever)"
    );
    // answering, with the credentials checked
    proxy.set(Mode::Forward);
    wait_processed(&mut smt, &topic, 2);
    let docs = database(&mongo, &db);
    assert_eq!(docs["customers"].len(), 2, "{docs:?}");
    assert_eq!(topic_len(&brokers, &dlq).unwrap(), 0);
    let log = smt.log_text();
    assert!(!log.contains(password), "the password is in the log");
    smt.terminate(Duration::from_secs(30)).unwrap();
    assert!(!smt.log_text().contains(password));
}
