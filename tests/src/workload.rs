//! The Debezium workload of the failure tests: real change events of one
//! PostgreSQL table, captured once per test binary and replayed into a topic
//! of each test's own.

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use serde_json::Value;

use crate::kafka::{read_all, topic_len};
use crate::mongo::int;
use crate::record::{Record, RecordExt as _};
use crate::services::{unique_name, DebeziumConnector, Services};

/// Real Debezium change events of a table, captured once per test binary,
/// with the final state of the table.
pub struct Workload {
    /// The events in topic order per partition (4 partitions).
    pub records: Vec<Record>,
    /// The final rows: id -> row as JSON (`{"id":…, "name":…, "qty":…}`).
    pub rows: BTreeMap<i64, Value>,
    /// The table's topic name suffix (the collection the default transform writes).
    pub table: String,
}

static WORKLOAD: OnceLock<Workload> = OnceLock::new();

/// Rows inserted, updated and deleted by the workload.
pub const WORKLOAD_ROWS: i64 = 600;

/// The shared workload: `WORKLOAD_ROWS` rows inserted, two thirds updated
/// (some twice), one in five deleted, through real Debezium into a 4-partition topic.
pub fn workload() -> &'static Workload {
    WORKLOAD.get_or_init(|| capture_workload().expect("capturing the Debezium workload"))
}

fn capture_workload() -> Result<Workload> {
    let s = Services::shared();
    let schema = unique_name("wl");
    let table = "items";
    let n = WORKLOAD_ROWS;
    s.sql(&format!(
        "CREATE SCHEMA {schema}; CREATE TABLE {schema}.{table} (id int PRIMARY KEY, name text NOT NULL, qty int NOT NULL);"
    ))?;
    let mut c = DebeziumConnector::new(
        &unique_name("wl"),
        &unique_name("wl"),
        &[&format!("{schema}.{table}")],
    );
    c.partitions = 4;
    s.debezium_connector(&c)?;
    let topic = c.topic(&format!("{schema}.{table}"));
    s.sql(&format!(
        "INSERT INTO {schema}.{table} SELECT g, 'name ' || g, g FROM generate_series(1, {n}) g;
         UPDATE {schema}.{table} SET qty = qty * 10, name = name || ' updated' WHERE id % 3 <> 0;
         UPDATE {schema}.{table} SET qty = qty + 1 WHERE id % 7 = 0;
         DELETE FROM {schema}.{table} WHERE id % 5 = 0;
         INSERT INTO {schema}.{table} VALUES ({m}, 'last', 0);",
        m = n + 1
    ))?;
    // Every change is in the topic once the last insert is.
    s.wait_for_record(&topic, Duration::from_secs(180), |r| {
        r.op().as_deref() == Some("c")
            && r.debezium_payload()
                .is_some_and(|p| p["after"]["id"] == Value::from(n + 1))
    })?;
    let total = topic_len(&s.brokers(), &topic)? as usize;
    let mut records = read_all(s, &topic, total, Duration::from_secs(120))?;
    records.sort_by_key(|r| (r.partition, r.offset));
    let rows_text = s.sql(&format!(
        "SELECT row_to_json(t) FROM (SELECT id, name, qty FROM {schema}.{table} ORDER BY id) t;"
    ))?;
    let mut rows = BTreeMap::new();
    for line in rows_text.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line)?;
        rows.insert(v["id"].as_i64().unwrap(), v);
    }
    Ok(Workload {
        records,
        rows,
        table: table.into(),
    })
}

// ------------------------------------------------------------------ in MongoDB

/// The documents the default transform wrote for the workload's table, as
/// its rows: `{id -> {"id","name","qty"}}` (from `_id: {id}` and the fields).
pub async fn mongo_rows(uri: &str, db: &str, collection: &str) -> Result<BTreeMap<i64, Value>> {
    let client = mongodb::Client::with_uri_str(uri).await?;
    let mut out = BTreeMap::new();
    for d in crate::mongo::documents(&client, db, collection).await? {
        let id = d
            .get_document("_id")
            .ok()
            .and_then(|i| int(i, "id"))
            .ok_or_else(|| anyhow!("unexpected _id in {d}"))?;
        let name = d.get_str("name").map_err(|e| anyhow!("{e} in {d}"))?;
        let qty = int(&d, "qty").ok_or_else(|| anyhow!("no qty in {d}"))?;
        out.insert(id, serde_json::json!({"id": id, "name": name, "qty": qty}));
    }
    Ok(out)
}

/// Waits until `collection` holds exactly `expected`; on timeout the error shows the difference.
pub async fn wait_for_rows(
    uri: &str,
    db: &str,
    collection: &str,
    expected: &BTreeMap<i64, Value>,
    timeout: Duration,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let got = mongo_rows(uri, db, collection).await.unwrap_or_default();
        if &got == expected {
            return Ok(());
        }
        if Instant::now() > deadline {
            let missing: Vec<_> = expected
                .iter()
                .filter(|(k, v)| got.get(k) != Some(v))
                .take(5)
                .collect();
            let extra: Vec<_> = got
                .iter()
                .filter(|(k, _)| !expected.contains_key(k))
                .take(5)
                .collect();
            bail!(
                "MongoDB {db}.{collection} != PostgreSQL after {timeout:?}: {} documents vs {} rows; missing/different e.g. {missing:?}; extra e.g. {extra:?}",
                got.len(),
                expected.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
