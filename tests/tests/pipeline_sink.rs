//! The MongoDB sink against the real server: one ordered bulk write per
//! batch, a permanent error of one operation fails only its record (the
//! rest of the batch is written, in order), in both bulk APIs; `aggregate`
//! operations run alone, after the writes before them.

use std::time::Duration;

use mongodb::bson::{doc, rawdoc, Document};
use smt_host::config::Config;
use smt_host::pipeline::CancellationToken;
use smt_host::sink::{Mode, Sink};
use smt_host::telemetry::Metrics;
use smt_host::writeop::{Namespace, WriteOp};
use smt_tests::mongo::documents;
use smt_tests::services::{unique_name, Services};
use smt_tests::smt_process::Scratch;

fn config(dir: &Scratch, uri: &str, db: &str, bulk_api: &str) -> Config {
    let path = dir.0.join("smt.toml");
    std::fs::write(
        &path,
        format!(
            r#"[kafka]
brokers = "127.0.0.1:1"
group-id = "g"
[mongodb]
uri = "{uri}"
database = "{db}"
bulk-api = "{bulk_api}"
[mongodb.write-concern]
w = 1
[transforms.t]
module = "t.wasm"
[[routes]]
topics = ["t"]
transform = "t"
"#
        ),
    )
    .unwrap();
    Config::load_with_env(&path, Vec::new()).unwrap()
}

fn ns(c: &str) -> Namespace {
    Namespace {
        database: None,
        collection: c.into(),
    }
}

fn replace(c: &str, id: i32, v: &str) -> WriteOp {
    WriteOp::ReplaceOne {
        ns: ns(c),
        filter: rawdoc! {"_id": id},
        replacement: rawdoc! {"_id": id, "v": v},
        upsert: true,
    }
}

fn insert(c: &str, id: i32) -> WriteOp {
    WriteOp::InsertOne {
        ns: ns(c),
        document: rawdoc! {"_id": id, "v": "inserted"},
    }
}

async fn check_mode(bulk_api: &str, expected_mode: Mode) {
    let s = Services::shared();
    let dir = Scratch::new("sink");
    let db = unique_name("sinkdb");
    let cfg = config(&dir, &s.mongodb_uri(), &db, bulk_api);
    let sink = Sink::connect(
        &cfg,
        std::sync::Arc::new(Metrics::new()),
        Duration::from_secs(15),
    )
    .await
    .unwrap();
    assert_eq!(sink.mode(), expected_mode);
    // Record 0: two collections; record 1: a duplicate insert then an op that
    // must be dropped with it; record 2: written after the failure; record 3: a delete.
    let ops = vec![
        (0, replace("a", 1, "one")),
        (0, insert("b", 1)),
        (1, insert("b", 1)),
        (1, replace("a", 99, "must not be written")),
        (2, replace("a", 2, "two")),
        (2, replace("a", 1, "one again")),
        (
            3,
            WriteOp::DeleteOne {
                ns: ns("a"),
                filter: rawdoc! {"_id": 2},
            },
        ),
    ];
    let failures = sink.write(&ops, &CancellationToken::new()).await.unwrap();
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(failures[0].record, 1);
    assert_eq!(failures[0].code, Some(11000));

    let client = mongodb::Client::with_uri_str(s.mongodb_uri())
        .await
        .unwrap();
    let a = documents(&client, &db, "a").await.unwrap();
    assert_eq!(
        a,
        vec![doc! {"_id": 1, "v": "one again"}],
        "in order, record 1 dropped, the delete applied"
    );
    let b = client
        .database(&db)
        .collection::<Document>("b")
        .count_documents(doc! {})
        .await
        .unwrap();
    assert_eq!(b, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_bulk_write_fails_only_the_bad_record() {
    check_mode("auto", Mode::Client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_collection_writes_fail_only_the_bad_record() {
    check_mode("collection", Mode::Collection).await;
}

fn insert_row(id: i32, g: &str, n: i32) -> WriteOp {
    WriteOp::InsertOne {
        ns: ns("rows"),
        document: rawdoc! {"_id": id, "g": g, "n": n},
    }
}

/// Sums `n` of `rows` per group `g` into field `field` of `totals` (merged
/// into what is there).
fn totals_into(field: &str) -> WriteOp {
    WriteOp::Aggregate {
        ns: ns("rows"),
        pipeline: vec![
            doc! {"$group": {"_id": "$g", "total": {"$sum": "$n"}}},
            doc! {"$project": {"_id": 1, field: "$total"}},
            doc! {"$merge": {"into": "totals", "on": "_id", "whenMatched": "merge", "whenNotMatched": "insert"}},
        ],
    }
}

/// Aggregate operations run alone and in order: each sees exactly the writes
/// before it; one the server refuses fails only its record.
async fn check_aggregate(bulk_api: &str, expected_mode: Mode) {
    let s = Services::shared();
    let dir = Scratch::new("sink-aggregate");
    let db = unique_name("aggdb");
    let cfg = config(&dir, &s.mongodb_uri(), &db, bulk_api);
    let metrics = std::sync::Arc::new(Metrics::new());
    let sink = Sink::connect(&cfg, metrics.clone(), Duration::from_secs(15))
        .await
        .unwrap();
    assert_eq!(sink.mode(), expected_mode);
    let ops = vec![
        // Record 0: three rows, then totals as `first`.
        (0, insert_row(1, "x", 1)),
        (0, insert_row(2, "x", 2)),
        (0, insert_row(3, "y", 5)),
        (0, totals_into("first")),
        // Record 1: one row deleted, then totals as `second`.
        (
            1,
            WriteOp::DeleteOne {
                ns: ns("rows"),
                filter: rawdoc! {"_id": 2},
            },
        ),
        (1, totals_into("second")),
        // Record 2: a pipeline that fails on the server (its `$merge` finds
        // the documents it must not match), then an op dropped with it.
        (
            2,
            WriteOp::Aggregate {
                ns: ns("rows"),
                pipeline: vec![
                    doc! {"$group": {"_id": "$g"}},
                    doc! {"$merge": {"into": "totals", "whenMatched": "fail"}},
                ],
            },
        ),
        (2, insert("after", 99)),
        // Record 3: written after the failure.
        (3, insert("after", 1)),
    ];
    let failures = sink.write(&ops, &CancellationToken::new()).await.unwrap();
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(failures[0].record, 2, "{failures:?}");
    assert_eq!(failures[0].code, Some(11000), "{failures:?}");

    let client = mongodb::Client::with_uri_str(s.mongodb_uri())
        .await
        .unwrap();
    assert_eq!(
        documents(&client, &db, "totals").await.unwrap(),
        vec![
            doc! {"_id": "x", "first": 3, "second": 1},
            doc! {"_id": "y", "first": 5, "second": 5},
        ],
        "the first aggregate saw the three rows and not the delete; the second saw the delete"
    );
    assert_eq!(
        documents(&client, &db, "after").await.unwrap(),
        vec![doc! {"_id": 1, "v": "inserted"}],
        "record 2's insert dropped with its failed aggregate, record 3 written"
    );
    let written = |kind: &str| {
        metrics
            .ops_written
            .get_or_create(&[("kind", kind.into())])
            .get()
    };
    assert_eq!(written("aggregate"), 2);
    assert_eq!(written("insert-one"), 4);
    assert_eq!(written("delete-one"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_mode_runs_aggregates_alone_and_in_order() {
    check_aggregate("auto", Mode::Client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collection_mode_runs_aggregates_alone_and_in_order() {
    check_aggregate("collection", Mode::Collection).await;
}
