//! Reprocessing a route after fixing its transform (docs/operations.md,
//! "Reprocessing"): the live rewind through the admin API and `smt reset`
//! while `smt` is stopped — against the real binary, real Kafka and a real
//! MongoDB-protocol server. Bad input (an unknown route, offsets out of
//! range, no token, a running group) is refused and changes nothing.
//!
//! Run: `scripts/test -p smt-tests --test operations`

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};
use smt_tests::config::ConfigBuilder;
use smt_tests::guests::{short_hash, tag_module, versioned_module};
use smt_tests::kafka::{committed, produce};
use smt_tests::mongo::{documents, int};
use smt_tests::record::{record, Record, RecordExt as _};
use smt_tests::services::{unique_name, Services};
use smt_tests::smt_process::{http, smt_command, tail, wait_for, Scratch, Smt};

const TOKEN: &str = "operations-token";
const START: Duration = Duration::from_secs(60);
const CONVERGE: Duration = Duration::from_secs(120);
const RECORDS: usize = 1000;

fn keyed(topic: &str, n: usize) -> Vec<Record> {
    (0..n)
        .map(|i| {
            let key = format!("k{i:04}");
            record(
                topic,
                Some(key.as_bytes()),
                Some(format!(r#"{{"n":{i}}}"#).as_bytes()),
            )
        })
        .collect()
}

/// Every document: `_id` → (v, tag).
async fn stamps(uri: &str, db: &str) -> BTreeMap<String, (i64, String)> {
    let client = mongodb::Client::with_uri_str(uri).await.unwrap();
    documents(&client, db, "docs")
        .await
        .unwrap()
        .into_iter()
        .map(|d| {
            (
                d.get_str("_id").unwrap().to_owned(),
                (
                    int(&d, "v").unwrap(),
                    d.get_str("tag").unwrap_or_default().to_owned(),
                ),
            )
        })
        .collect()
}

/// Waits until every one of the `RECORDS` documents has version `v` and `tag`.
fn wait_all(
    rt: &tokio::runtime::Runtime,
    uri: &str,
    db: &str,
    v: i64,
    tag: &str,
    smt: Option<&Smt>,
) {
    wait_for(
        &format!("{RECORDS} documents with v={v} tag={tag}"),
        CONVERGE,
        || {
            let docs = rt.block_on(stamps(uri, db));
            Ok(
                (docs.len() == RECORDS && docs.values().all(|(dv, dt)| *dv == v && dt == tag))
                    .then_some(()),
            )
        },
    )
    .unwrap_or_else(|e| {
        panic!(
            "{e:#}\n{}",
            smt.map(|s| tail(&s.log_text(), 3000).to_owned())
                .unwrap_or_default()
        )
    });
}

fn rewind(smt: &Smt, route: &str, query: &str, token: Option<&str>) -> (u16, Value) {
    let (code, body) = http(
        smt.admin_port,
        "POST",
        &format!("/routes/{route}/rewind?{query}"),
        token,
        b"",
        Duration::from_secs(90),
    )
    .unwrap();
    (
        code,
        serde_json::from_str(&body).unwrap_or(Value::String(body)),
    )
}

/// `smt reset --config <config> <args>`: (exit code, stdout + stderr).
fn reset(config: &std::path::Path, args: &[&str]) -> (i32, String) {
    let config = config.display().to_string();
    let (code, out, err) = smt_command(["reset", "--config", config.as_str()].iter().chain(args));
    (code, format!("{out}{err}"))
}

#[test]
fn a_fixed_transform_reprocesses_a_rewound_route_live_and_offline() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let s = Services::shared();
    let dir = Scratch::new("operations");
    let topic = unique_name("ops");
    s.create_topic(&topic, 1).unwrap();
    let db = unique_name("db");
    let buggy = tag_module(&versioned_module(), "buggy001");
    let fixed = tag_module(&versioned_module(), "fixed001");
    let module_path = dir.0.join("vt.wasm");
    std::fs::write(&module_path, &buggy).unwrap();
    let builder = ConfigBuilder::new(&s.brokers(), &s.mongodb_uri(), &db)
        .route(&topic, "vt", "fail")
        .set(&["hot-swap", "watch"], json!(false));
    let config = |v: i64| {
        builder
            .clone()
            .transform("vt", &module_path, json!({"v": v, "collection": "docs"}))
            .build()
    };
    let env = [("SMT_ADMIN__TOKEN", TOKEN), ("NO_COLOR", "1")];
    let mut smt = Smt::start_with_env(&dir.0, "smt", &config(1), &env).unwrap();
    smt.wait_assigned(START).unwrap();
    produce(&s.brokers(), &topic, &keyed(&topic, RECORDS)).unwrap();
    wait_all(&rt, &s.mongodb_uri(), &db, 1, "buggy001", Some(&smt));
    let group = builder.group.clone();
    wait_for("every offset committed", CONVERGE, || {
        Ok((committed(&s.brokers(), &group, &topic, 1) == [Some(RECORDS as i64)]).then_some(()))
    })
    .unwrap();

    // The fixed transform, deployed through the API.
    let (code, body) = http(
        smt.admin_port,
        "PUT",
        &format!(
            "/transforms/vt?config={}",
            "%7B%22v%22%3A2%2C%22collection%22%3A%22docs%22%7D"
        ),
        Some(TOKEN),
        &fixed,
        Duration::from_secs(60),
    )
    .unwrap();
    assert_eq!(code, 200, "{body}");
    assert!(body.contains(&short_hash(&fixed)), "{body}");

    // Bad input changes nothing.
    let before = committed(&s.brokers(), &group, &topic, 1);
    for (route, query, token, status, says) in [
        (
            "nope",
            "to=earliest",
            Some(TOKEN),
            404,
            "no route named `nope`",
        ),
        ("vt", "to=5000", Some(TOKEN), 422, "out of range"),
        ("vt", "to=-3", Some(TOKEN), 400, "not an offset"),
        ("vt", "to=1&time=2", Some(TOKEN), 400, "exactly one"),
        ("vt", "time=yesterday", Some(TOKEN), 400, "not a time"),
        ("vt", "to=earliest", None, 401, "Bearer"),
        ("vt", "to=earliest", Some("wrong"), 401, "Bearer"),
    ] {
        let (code, body) = rewind(&smt, route, query, token);
        assert_eq!(code, status, "{route}?{query}: {body}");
        assert!(body.to_string().contains(says), "{route}?{query}: {body}");
    }
    assert_eq!(
        committed(&s.brokers(), &group, &topic, 1),
        before,
        "nothing moved"
    );
    let docs = rt.block_on(stamps(&s.mongodb_uri(), &db));
    assert!(docs.values().all(|(v, _)| *v == 1), "nothing reprocessed");
    // The offline reset refuses while the group has a member.
    let (code, out) = reset(&smt.config, &["--route", "vt", "--to-offset", "earliest"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("active member"), "{out}");
    assert_eq!(
        committed(&s.brokers(), &group, &topic, 1),
        before,
        "nothing moved"
    );

    // Rewind 1,000 records live: the documents converge to the fixed mapping.
    let started = std::time::Instant::now();
    let (code, body) = rewind(&smt, "vt", &format!("to={}", 0), Some(TOKEN));
    let answered = started.elapsed();
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        body["moves"],
        json!([{"topic": topic, "partition": 0, "from": RECORDS, "to": 0, "low": 0, "high": RECORDS}])
    );
    wait_all(&rt, &s.mongodb_uri(), &db, 2, "fixed001", Some(&smt));
    eprintln!(
        "live rewind of {RECORDS} records: answered in {answered:?}, every document rewritten {:?} after the request",
        started.elapsed()
    );
    wait_for("the offsets committed again", CONVERGE, || {
        Ok((committed(&s.brokers(), &group, &topic, 1) == [Some(RECORDS as i64)]).then_some(()))
    })
    .unwrap();
    assert!(smt.log_text().lines().any(|l| l.contains("smt::audit")
        && l.contains("action=\"rewind\"")
        && l.contains("outcome=\"rewound\"")));
    smt.terminate(Duration::from_secs(30)).unwrap();

    // Offline: the config file now gives v=3 of the fixed module; reset, start, converge.
    std::fs::write(&module_path, &fixed).unwrap();
    let config_path = dir.0.join("offline.toml");
    std::fs::write(
        &config_path,
        config(3).replace(smt_tests::config::ADMIN, "127.0.0.1:0"),
    )
    .unwrap();
    for (args, says) in [
        (
            &["--route", "nope", "--to-offset", "earliest"][..],
            "no route named `nope`",
        ),
        (
            &["--route", "vt", "--to-offset", "1001"][..],
            "out of range",
        ),
        (
            &["--route", "vt", "--to-offset", "soon"][..],
            "not an offset",
        ),
        (&["--route", "vt"][..], "--to-offset"),
    ] {
        let (code, out) = reset(&config_path, args);
        assert_ne!(code, 0, "{args:?}: {out}");
        assert!(out.contains(says), "{args:?}: {out}");
    }
    assert_eq!(
        committed(&s.brokers(), &group, &topic, 1),
        [Some(RECORDS as i64)]
    );
    let (code, out) = reset(
        &config_path,
        &["--route", "vt", "--to-offset", "500", "--dry-run"],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("{topic}/0: 1000 -> 500")), "{out}");
    assert_eq!(
        committed(&s.brokers(), &group, &topic, 1),
        [Some(RECORDS as i64)],
        "a dry run moves nothing"
    );
    // A time before every record: the beginning.
    let (code, out) = reset(
        &config_path,
        &["--route", "vt", "--to-time", "2000-01-01T00:00:00Z"],
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(committed(&s.brokers(), &group, &topic, 1), [Some(0)]);
    let mut smt = Smt::start_with_env(&dir.0, "smt2", &config(3), &env).unwrap();
    smt.wait_assigned(START).unwrap();
    wait_all(&rt, &s.mongodb_uri(), &db, 3, "fixed001", Some(&smt));
    smt.terminate(Duration::from_secs(30)).unwrap();
}

/// Every document: `_id` → (v, offset it was written from).
async fn origins(uri: &str, db: &str) -> BTreeMap<String, i64> {
    let client = mongodb::Client::with_uri_str(uri).await.unwrap();
    documents(&client, db, "docs")
        .await
        .unwrap()
        .into_iter()
        .map(|d| (d.get_str("_id").unwrap().to_owned(), int(&d, "o").unwrap()))
        .collect()
}

/// `smt dlq replay --config <config> <args>`: (exit code, stdout, stderr).
fn dlq_replay(config: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let config = config.display().to_string();
    smt_command(
        ["dlq", "replay", "--config", config.as_str()]
            .iter()
            .chain(args),
    )
}

#[test]
fn dlq_replay_writes_the_fixed_records_in_order_and_never_older_over_newer() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let s = Services::shared();
    let dir = Scratch::new("replay");
    let topic = unique_name("replay");
    let dlq = unique_name("replay-dlq");
    s.create_topic(&topic, 1).unwrap();
    s.create_topic(&dlq, 1).unwrap();
    let db = unique_name("db");
    let module_path = dir.0.join("vt.wasm");
    std::fs::write(&module_path, tag_module(&versioned_module(), "replay01")).unwrap();
    let builder = ConfigBuilder::new(&s.brokers(), &s.mongodb_uri(), &db)
        .route(&topic, "vt", "dlq")
        .dlq(&dlq)
        .set(&["pipeline", "breaker-percent"], json!(0))
        .set(&["hot-swap", "watch"], json!(false));
    let config = |trap: bool| {
        builder
            .clone()
            .transform(
                "vt",
                &module_path,
                json!({"v": 1, "collection": "docs", "trap": trap}),
            )
            .build()
    };
    // A broken transform: every record goes to the DLQ (k0000..k0009 at
    // offsets 0..9, and one without a key at 10).
    let env = [("SMT_ADMIN__TOKEN", TOKEN), ("NO_COLOR", "1")];
    let mut smt = Smt::start_with_env(&dir.0, "smt", &config(true), &env).unwrap();
    smt.wait_assigned(START).unwrap();
    let mut records = keyed(&topic, 10);
    records.push(record(&topic, None, Some(b"{}")));
    produce(&s.brokers(), &topic, &records).unwrap();
    let group = builder.group.clone();
    wait_for("11 records dead-lettered and committed", CONVERGE, || {
        Ok((smt_tests::kafka::topic_len(&s.brokers(), &dlq)? == 11
            && committed(&s.brokers(), &group, &topic, 1) == [Some(11)])
        .then_some(()))
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{}", tail(&smt.log_text(), 3000)));
    // Fixed; then newer records of k0000..k0002 (offsets 11..13) are written.
    let (code, body) = http(
        smt.admin_port,
        "PUT",
        "/transforms/vt/config",
        Some(TOKEN),
        br#"{"v": 1, "collection": "docs", "trap": false}"#,
        Duration::from_secs(60),
    )
    .unwrap();
    assert_eq!(code, 200, "{body}");
    produce(&s.brokers(), &topic, &keyed(&topic, 3)).unwrap();
    wait_for("the 3 newer records written", CONVERGE, || {
        Ok((rt.block_on(origins(&s.mongodb_uri(), &db)).len() == 3).then_some(()))
    })
    .unwrap();
    smt.terminate(Duration::from_secs(30)).unwrap();
    // A stray record in the DLQ, without origin headers (DLQ offset 11).
    produce(
        &s.brokers(),
        &dlq,
        &[record(&dlq, Some(b"stray"), Some(b"x"))],
    )
    .unwrap();

    // The fixed config file.
    let config_path = dir.0.join("fixed.toml");
    std::fs::write(
        &config_path,
        config(false).replace(smt_tests::config::ADMIN, "127.0.0.1:0"),
    )
    .unwrap();
    let before = rt.block_on(origins(&s.mongodb_uri(), &db));
    let newer: BTreeMap<String, i64> = (0..3).map(|i| (format!("k{i:04}"), 11 + i)).collect();
    assert_eq!(before, newer);

    // Bad input: nothing written.
    for (args, says) in [
        (&["--route", "nope"][..], "no route named `nope`"),
        (&["--from-offset", "999"][..], "out of range"),
        (&["--to-time", "soon"][..], "not a time"),
    ] {
        let (code, out, err) = dlq_replay(&config_path, args);
        assert_eq!(code, 2, "{args:?}: {out}{err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    // A dry run says what would happen and writes nothing.
    let (code, out, err) = dlq_replay(&config_path, &["--dry-run"]);
    assert_eq!(
        code, 1,
        "a record fails again, one has no origin: {out}{err}"
    );
    let lines: Vec<Value> = out
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let actions = |what: &str| -> Vec<i64> {
        lines
            .iter()
            .filter(|l| l["action"] == what && l["offset"].is_i64())
            .map(|l| l["offset"].as_i64().unwrap())
            .collect()
    };
    assert_eq!(actions("would-write"), (3..10).collect::<Vec<_>>(), "{out}");
    assert_eq!(actions("skip"), [0, 1, 2], "{out}");
    assert_eq!(actions("fail"), [10], "{out}");
    assert!(
        lines
            .iter()
            .any(|l| l["action"] == "ignore" && l["dlq"] == json!(format!("{dlq}/0@11"))),
        "{out}"
    );
    let written = lines.iter().find(|l| l["offset"] == json!(5)).unwrap();
    assert_eq!(written["ops"][0]["op"], "replace-one", "{written}");
    assert_eq!(
        written["ops"][0]["replacement"]["_id"], "k0005",
        "{written}"
    );
    assert!(out.contains("would replay 7 record(s); skipped 3"), "{out}");
    assert_eq!(
        rt.block_on(origins(&s.mongodb_uri(), &db)),
        before,
        "a dry run writes nothing"
    );
    assert_eq!(smt_tests::kafka::topic_len(&s.brokers(), &dlq).unwrap(), 12);

    // The replay: k0003..k0009 written from their original offsets; the
    // newer documents of k0000..k0002 kept; the keyless record back in the
    // DLQ with an attempt count.
    let (code, out, err) = dlq_replay(&config_path, &[]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("replayed 7 record(s); skipped 3 (a newer record of the key was written); failed again 1; without origin headers 1"), "{out}");
    assert!(
        out.contains(&format!("skipped {topic}/0@0: newer {topic}/0@11")),
        "{out}"
    );
    let after = rt.block_on(origins(&s.mongodb_uri(), &db));
    let mut expected = newer.clone();
    expected.extend((3..10).map(|i| (format!("k{i:04}"), i)));
    assert_eq!(after, expected);
    let dead = smt_tests::kafka::read_all(s, &dlq, 13, Duration::from_secs(30)).unwrap();
    let back = &dead[12];
    assert_eq!(
        back.header("smt.replay.attempt").as_deref(),
        Some("1"),
        "{back:?}"
    );
    assert_eq!(back.header("smt.source.offset").as_deref(), Some("10"));
    assert_eq!(back.header("smt.error.kind").as_deref(), Some("bad-input"));
}
