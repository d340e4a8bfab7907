//! The relational mapper as a Wasm component, its operations executed by the
//! sink against the real MongoDB-protocol server, over the real Debezium
//! fixtures (`customers` and `orders` of `tests/fixtures/debezium/schemas.jsonl`).
//!
//! Whatever the interleaving of the two tables' events (each table's own
//! order kept, as Kafka keeps it per partition), and however often a suffix
//! is replayed, the documents end equal to the mapping of the final rows of
//! `workload.sql`, written out by hand below.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bson::{doc, Bson, DateTime, Decimal128, Document};
use smt_host::config::Config;
use smt_host::engine::{Engine, EngineConfig, TransformInstance};
use smt_host::pipeline::CancellationToken;
use smt_host::sink::Sink;
use smt_host::telemetry::Metrics;
use smt_tests::native::fixture;
use smt_tests::record::{Record, RecordExt};
use smt_tests::services::{unique_name, Services};
use smt_tests::smt_process::Scratch;

const MAPPER: &str = env!("SMT_GUEST_RELATIONAL_MAPPER");

const MAPPING: &str = r#"{
  "tables": {
    "inventory.customers": { "columns": ["id", "first_name", "last_name", "email", "balance", "vip", "created_at"] },
    "inventory.orders": { "columns": ["region", "order_id", "customer_id", "amount", "order_date", "status"] }
  },
  "rules": [
    { "name": "customers", "table": "inventory.customers", "collection": "customers",
      "include": ["id", "first_name", "email", "balance"],
      "fields": { "first_name": { "to": "name.first" } } },
    { "name": "orders", "table": "inventory.orders",
      "embed": { "parent": "customers", "on": { "customer_id": "id" }, "kind": "array", "as": "orders",
                 "sort": [{ "column": "amount", "order": "desc" }] },
      "include": ["region", "order_id", "amount", "status"] },
    { "name": "latest", "table": "inventory.orders",
      "embed": { "parent": "customers", "on": { "customer_id": "id" }, "kind": "document", "as": "latest",
                 "sort": [{ "column": "order_date", "order": "desc" }] },
      "include": ["order_id", "order_date"] },
    { "name": "order_docs", "table": "inventory.orders", "collection": "orders", "id": "key-document",
      "include": ["region", "order_id", "status"] },
    { "name": "buyer", "table": "inventory.customers",
      "embed": { "parent": "order_docs", "on": { "id": "customer_id" }, "kind": "merge", "prefix": "buyer_" },
      "include": ["email"] }
  ]
}"#;

fn dec(s: &str) -> Bson {
    Bson::Decimal128(s.parse::<Decimal128>().unwrap())
}

fn day(ms: i64) -> Bson {
    Bson::DateTime(DateTime::from_millis(ms))
}

/// The mapping of the final rows of `tests/fixtures/debezium/workload.sql`:
/// customers 1 (updated), 4, 102 (was 2), 5, 6 (3 deleted); orders eu/1
/// (customer 1, shipped) and eu/2 (customer 4) (us/1 of customer 2 deleted).
fn expected_customers() -> Vec<Document> {
    let plain = |id: i32, first: &str, email: &str, balance: &str| {
        doc! {"_id": id, "id": id, "name": {"first": first}, "email": email, "balance": dec(balance), "orders": []}
    };
    vec![
        doc! {"_id": 1, "id": 1, "name": {"first": "Sally"}, "email": "sally@acme.com", "balance": dec("1500.25"),
        "orders": [{"region": "eu", "order_id": 1, "amount": dec("13.75"), "status": "shipped"}],
        "latest": {"order_id": 1, "order_date": day(1_704_153_600_000)}},
        doc! {"_id": 4, "id": 4, "name": {"first": "Anne"}, "email": "annek@noanswer.org", "balance": dec("99.99"),
        "orders": [{"region": "eu", "order_id": 2, "amount": dec("250.00"), "status": "new"}],
        "latest": {"order_id": 2, "order_date": day(1_709_510_400_000)}},
        plain(5, "Tx", "tx1@example.com", "1.00"),
        plain(6, "Tx", "tx2@example.com", "2.00"),
        plain(102, "George", "gbailey@foobar.com", "0.00"),
    ]
}

fn expected_orders() -> Vec<Document> {
    vec![
        doc! {"_id": {"region": "eu", "order_id": 1}, "region": "eu", "order_id": 1, "status": "shipped",
        "buyer_email": "sally@acme.com"},
        doc! {"_id": {"region": "eu", "order_id": 2}, "region": "eu", "order_id": 2, "status": "new",
        "buyer_email": "annek@noanswer.org"},
    ]
}

fn stream(table: &str) -> Vec<Record> {
    fixture("schemas.jsonl")
        .into_iter()
        .filter(|m| m.topic == format!("dbz.inventory.{table}"))
        .collect()
}

/// The two streams merged in a seeded random order, each keeping its own.
fn interleave(a: &[Record], b: &[Record], seed: u64) -> Vec<Record> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while i < a.len() || j < b.len() {
        if j == b.len() || (i < a.len() && next() % 2 == 0) {
            out.push(a[i].clone());
            i += 1;
        } else {
            out.push(b[j].clone());
            j += 1;
        }
    }
    out
}

struct Harness {
    instance: TransformInstance,
    sink: Sink,
    client: mongodb::Client,
    db: String,
}

impl Harness {
    async fn new(dir: &Scratch) -> Harness {
        Harness::with_mapping(dir, MAPPING).await
    }

    async fn with_mapping(dir: &Scratch, mapping: &str) -> Harness {
        let s = Services::shared();
        let db = unique_name("mapper");
        let path = dir.0.join("smt.toml");
        std::fs::write(
            &path,
            format!(
                "[kafka]\nbrokers = \"127.0.0.1:1\"\ngroup-id = \"g\"\n[mongodb]\nuri = \"{}\"\ndatabase = \"{db}\"\n\
                 [transforms.t]\nmodule = \"t.wasm\"\n[[routes]]\ntopics = [\"t\"]\ntransform = \"t\"\n",
                s.mongodb_uri()
            ),
        )
        .unwrap();
        let config = Config::load_with_env(&path, Vec::new()).unwrap();
        let sink = Sink::connect(&config, Arc::new(Metrics::new()), Duration::from_secs(15))
            .await
            .unwrap();
        let engine = Engine::new(&EngineConfig::default()).unwrap();
        let module = engine
            .load_file("relational-mapper", Path::new(MAPPER))
            .unwrap();
        let instance = module.instantiate(mapping).unwrap();
        let client = mongodb::Client::with_uri_str(s.mongodb_uri())
            .await
            .unwrap();
        Harness {
            instance,
            sink,
            client,
            db,
        }
    }

    /// Transforms and writes the records in batches of `batch`, as the
    /// pipeline does: through `transform-batch`, which the mapper exports.
    async fn apply(&mut self, msgs: &[Record], batch: usize) {
        for chunk in msgs.chunks(batch) {
            let refs: Vec<&Record> = chunk.iter().collect();
            let results = self
                .instance
                .transform_batch(&refs)
                .expect("the mapper exports transform-batch");
            let mut ops = Vec::new();
            for (i, (m, out)) in chunk.iter().zip(results).enumerate() {
                let out = out.unwrap_or_else(|e| panic!("{}@{}: {e}", m.topic, m.offset));
                ops.extend(out.into_iter().map(|op| (i, op)));
            }
            let failures = self
                .sink
                .write(&ops, &CancellationToken::new())
                .await
                .unwrap();
            assert!(failures.is_empty(), "{failures:?}");
        }
    }

    async fn docs(&self, collection: &str) -> Vec<Document> {
        smt_tests::mongo::documents(&self.client, &self.db, collection)
            .await
            .unwrap()
    }

    async fn check(&self, what: &str) {
        assert_eq!(
            self.docs("customers").await,
            expected_customers(),
            "{what}: customers"
        );
        assert_eq!(
            self.docs("orders").await,
            expected_orders(),
            "{what}: orders"
        );
        // The state holds exactly the current rows.
        let count = |c: &str| {
            let coll = self.client.database(&self.db).collection::<Document>(c);
            async move { coll.count_documents(doc! {}).await.unwrap() }
        };
        assert_eq!(
            count("__smt_rm.v2.inventory.customers").await,
            5,
            "{what}: customer state"
        );
        assert_eq!(
            count("__smt_rm.v2.inventory.orders").await,
            2,
            "{what}: order state"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parents_first_then_children() {
    let dir = Scratch::new("mapper");
    let mut h = Harness::new(&dir).await;
    let (customers, orders) = (stream("customers"), stream("orders"));
    h.apply(&[customers, orders].concat(), 50).await;
    h.check("customers then orders").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_before_their_parents() {
    let dir = Scratch::new("mapper");
    let mut h = Harness::new(&dir).await;
    let (customers, orders) = (stream("customers"), stream("orders"));
    h.apply(&[orders, customers].concat(), 7).await;
    h.check("orders then customers").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_interleaving_and_any_replayed_suffix_end_the_same() {
    let (customers, orders) = (stream("customers"), stream("orders"));
    for seed in 1..=4u64 {
        let dir = Scratch::new("mapper");
        let mut h = Harness::new(&dir).await;
        let all = interleave(&customers, &orders, seed);
        h.apply(&all, 1 + seed as usize * 3).await;
        h.check(&format!("interleaving {seed}")).await;
        // At-least-once: a restart replays from the last commit.
        let from = (seed as usize * 5) % all.len();
        h.apply(&all[from..], 4).await;
        h.check(&format!("interleaving {seed}, replayed from record {from}"))
            .await;
    }
}

/// A change of `inventory.documents` without schemas, at `offset`.
fn document_change(offset: i64, op: &str, id: i32, after: Option<(&str, &str)>) -> Record {
    let after =
        after.map(|(title, body)| serde_json::json!({"id": id, "title": title, "body": body}));
    let value = serde_json::json!({"before": null, "after": after, "op": op, "ts_ms": 1,
        "source": {"schema": "inventory", "table": "documents"}});
    let key = serde_json::json!({"id": id}).to_string();
    smt_tests::record::record(
        "dbz.inventory.documents",
        Some(key.as_bytes()),
        Some(value.to_string().as_bytes()),
    )
    .at(0, offset)
}

/// Relational oracle seed 81669600: a replay after a crash re-applies
/// changes to state that is already past them. Here document 7 is deleted,
/// document 1 becomes 7 (its unchanged TOASTed body unavailable in the create
/// half), and 1 is inserted again with another body. Replayed from the start,
/// the delete of 7 must not remove the row 7 has now, nor the key change
/// carry the new 1 over to 7: 7 keeps the body it took from the old 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_leaves_the_rows_later_changes_wrote() {
    const DOCS: &str = r#"{
      "tables": {
        "inventory.customers": { "columns": ["id", "first_name", "last_name", "email", "balance", "vip", "created_at"] },
        "inventory.documents": { "columns": ["id", "title", "body"] }
      },
      "rules": [
        { "name": "documents", "table": "inventory.documents", "collection": "documents" },
        { "name": "owner", "table": "inventory.customers",
          "embed": { "parent": "documents", "on": { "id": "id" }, "kind": "merge", "prefix": "owner_" },
          "include": ["email"] }
      ]
    }"#;
    let mut move_1_to_7 = document_change(3, "d", 1, None);
    move_1_to_7.headers.push(smt_tests::record::Header {
        key: "__debezium.newkey".into(),
        value: Some(br#"{"id": 7}"#.to_vec()),
    });
    let changes = [
        document_change(0, "c", 7, Some(("seven", "the old 7"))),
        document_change(1, "c", 1, Some(("one", "the old 1"))),
        document_change(2, "d", 7, None),
        move_1_to_7,
        document_change(4, "c", 7, Some(("seven", "__debezium_unavailable_value"))),
        document_change(5, "c", 1, Some(("one again", "the new 1"))),
    ];
    let want = vec![
        doc! {"_id": 1, "id": 1, "title": "one again", "body": "the new 1"},
        doc! {"_id": 7, "id": 7, "title": "seven", "body": "the old 1"},
    ];
    for batch in [1, 6] {
        let dir = Scratch::new("mapper");
        let mut h = Harness::with_mapping(&dir, DOCS).await;
        h.apply(&changes, batch).await;
        assert_eq!(h.docs("documents").await, want, "batches of {batch}");
        for from in 0..changes.len() {
            h.apply(&changes[from..], batch).await;
            assert_eq!(
                h.docs("documents").await,
                want,
                "batches of {batch}, replayed from offset {from}"
            );
        }
    }
}

/// `examples/blog/run` end to end (its own services, real Debezium): it exits
/// 0 only once MongoDB holds the example's `expected.json`.
#[test]
fn the_blog_example_reaches_its_expected_documents() {
    let stdout = smt_tests::examples::run("blog", &[("SMT_MAPPER_WASM", MAPPER)]);
    assert!(stdout.contains("blog.posts:"), "{stdout}");
}
