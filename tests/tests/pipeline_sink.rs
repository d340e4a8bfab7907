//! The MongoDB sink against the real server: one ordered bulk write per
//! batch, a permanent error of one operation fails only its record (the
//! rest of the batch is written, in order), in both bulk APIs.

use std::time::Duration;

use mongodb::bson::{doc, Document};
use smt_host::admin::Metrics;
use smt_host::config::Config;
use smt_host::pipeline::CancellationToken;
use smt_host::sink::{Mode, Sink};
use smt_host::writeop::{Namespace, WriteOp};
use smt_tests::pipeline::Scratch;
use smt_tests::services::{unique_name, Services};

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
        filter: doc! {"_id": id},
        replacement: doc! {"_id": id, "v": v},
        upsert: true,
    }
}

fn insert(c: &str, id: i32) -> WriteOp {
    WriteOp::InsertOne {
        ns: ns(c),
        document: doc! {"_id": id, "v": "inserted"},
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
                filter: doc! {"_id": 2},
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
    let a: Vec<Document> = {
        let mut c = client
            .database(&db)
            .collection::<Document>("a")
            .find(doc! {})
            .await
            .unwrap();
        let mut out = Vec::new();
        while c.advance().await.unwrap() {
            out.push(c.deserialize_current().unwrap());
        }
        out
    };
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
