//! The default transform's oracle test: for each seed, a random workload on
//! the `fid` tables (tests/fixtures/default-oracle/schema.sql: every column
//! type, 3–6 KB TOASTed columns mostly left untouched by updates, a single
//! and a composite primary key and changes of both, a table without key
//! under REPLICA IDENTITY FULL, NULLs, truncates, transactions, some rolled
//! back) runs in a PostgreSQL database of its own; real Debezium (JSON with
//! schemas, or without them and with `decimal.handling.mode=string`:
//! `SMT_ORACLE_SCHEMAS=on|off|mixed`, mixed by default — every third seed
//! without, so the test command's three seeds run on, off, on) streams it
//! through Kafka — `SMT_ORACLE_PARTITIONS` partitions
//! per keyed table (1 in the test command, 4 in `scripts/oracle`: with
//! several, the two halves of a key change, and the later changes of its new
//! key, are written in either order) — to
//! `smt run` with the default transform and its default options, except
//! `truncate = "delete-all"` (the default ignores truncates); `smt` is
//! SIGKILLed halfway through and restarted. Once the consumer group has
//! committed every record, MongoDB must hold exactly the documents
//! tests/fixtures/default-oracle/expected.sql (expected-plain.sql without
//! schemas) computes from the final tables (types included: a column has
//! one BSON type).
//!
//! The reference sink (MongoDB Kafka connector, RDBMS handler) consumes the
//! same topics into a database of its own; its differences from the same
//! expectation are counted by cause and printed (they do not fail the test:
//! they are the measurement of docs/debezium-mongo.md). `SMT_ORACLE_REFERENCE=0`
//! leaves it out.
//!
//! The table without key and its truncates use a topic with one partition:
//! their records have no key, so nothing else would order them
//! (docs/debezium-mongo.md).
//!
//! Seeds: three fresh ones per run (printed first), or `SMT_ORACLE_SEEDS=1,2,3`;
//! operations per seed: `SMT_ORACLE_OPS` (default [`DEFAULT_OPS`]).
//! Full size: `scripts/oracle --transform default`. One seed again:
//! `SMT_ORACLE_SEEDS=<seed> scripts/test -p smt-tests --test default_oracle`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;
use smt_tests::config::ConfigBuilder;
use smt_tests::oracle::debezium_mongo::{self as dm, Workload, TABLES};
use smt_tests::oracle::harness::{self, log_tail, Oracle};
use smt_tests::oracle::{self, Comparison};
use smt_tests::services::{unique_name, DebeziumConnector, Services};
use smt_tests::smt_process::Smt;

/// Operations per seed in the test command (three seeds).
const DEFAULT_OPS: usize = 2000;
/// Partitions per keyed table: several, so that the halves of a key change
/// (their keys differ) can land in either order.
const DEFAULT_KEYED_PARTITIONS: u32 = 4;

/// Partitions per table, as [`TABLES`]: `SMT_ORACLE_PARTITIONS` (or
/// [`DEFAULT_KEYED_PARTITIONS`]) for the keyed tables, one for the table
/// without key.
fn partitions() -> [u32; 3] {
    let keyed = std::env::var("SMT_ORACLE_PARTITIONS")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .filter(|n| *n >= 1)
        .unwrap_or(DEFAULT_KEYED_PARTITIONS);
    [keyed, keyed, 1]
}
const PLACEHOLDER: &str = "__debezium_unavailable_value";

const ORACLE: Oracle = Oracle {
    test: "default_oracle",
    default_ops: DEFAULT_OPS,
};

/// The module under test: the test build's, or `SMT_ORACLE_MODULE` (another
/// build of the transform, e.g. with a fix reverted, to see the oracle fail).
fn default_transform() -> String {
    match std::env::var("SMT_ORACLE_MODULE") {
        Ok(m) if !m.trim().is_empty() => m,
        _ => env!("SMT_GUEST_DEBEZIUM_MONGO").to_owned(),
    }
}

fn with_reference() -> bool {
    std::env::var("SMT_ORACLE_REFERENCE").map_or(true, |v| v.trim() != "0")
}

#[test]
fn mongodb_holds_what_sql_computes_from_the_final_tables_with_the_default_transform() {
    let rt = harness::runtime();
    let schemas = schemas_modes();
    let mut i = 0;
    ORACLE.run_seeds(|seed, ops| {
        let with_schemas = schemas(i);
        i += 1;
        run_seed(seed, ops, with_schemas, &rt)
    });
}

/// Whether the `i`-th seed's records carry schemas: `SMT_ORACLE_SCHEMAS` =
/// `on`, `off` or `mixed` (the default: every third seed without, starting
/// with the second, so the test command's three seeds run on, off, on).
fn schemas_modes() -> fn(usize) -> bool {
    match std::env::var("SMT_ORACLE_SCHEMAS")
        .as_deref()
        .map(str::trim)
    {
        Ok("on") => |_| true,
        Ok("off") => |_| false,
        Ok("mixed") | Ok("") | Err(_) => |i| i % 3 != 1,
        Ok(other) => panic!("SMT_ORACLE_SCHEMAS: {other:?} is not on, off or mixed"),
    }
}

/// What one seed created, named in a failure so it can be inspected.
struct Names {
    /// PostgreSQL database, MongoDB database, connector, topic prefix.
    tag: String,
    /// The reference sink's connector and MongoDB database.
    reference: String,
    pg_url: String,
    topics: Vec<String>,
    dir: PathBuf,
}

fn run_seed(seed: u64, ops: usize, schemas: bool, rt: &tokio::runtime::Runtime) -> Result<String> {
    let s = Services::shared();
    let w = dm::generate(seed, ops);
    let tag = unique_name(&format!("fid_{seed}"));
    let names = Names {
        pg_url: oracle::database_url(&s.postgres_url(), &tag),
        topics: TABLES.iter().map(|t| format!("{tag}.fid.{t}")).collect(),
        dir: std::env::temp_dir().join(&tag),
        reference: format!("{tag}_ref"),
        tag,
    };
    std::fs::create_dir_all(&names.dir)?;
    match run_workload(s, &w, &names, schemas, rt) {
        Ok(summary) => {
            let _ = s.delete_connector("sink", &names.reference);
            harness::cleanup(s, &names.tag, rt);
            rt.block_on(async {
                if let Ok(c) = mongodb::Client::with_uri_str(&s.mongodb_uri()).await {
                    let _ = c.database(&names.reference).drop().await;
                }
            });
            let _ = std::fs::remove_dir_all(&names.dir);
            Ok(summary)
        }
        Err(e) => Err(e.context(format!(
            "seed {seed}, schemas {} (rerun with SMT_ORACLE_SCHEMAS={0}): {}\nkept for inspection: PostgreSQL database {tag} ({url}), MongoDB databases {tag} \
             and {reference}, connector and topic prefix {tag}, smt configs and logs in {dir}",
            if schemas { "on" } else { "off" },
            w.summary(),
            tag = names.tag,
            reference = names.reference,
            url = names.pg_url,
            dir = names.dir.display()
        ))),
    }
}

fn run_workload(
    s: &Services,
    w: &Workload,
    n: &Names,
    schemas: bool,
    rt: &tokio::runtime::Runtime,
) -> Result<String> {
    let brokers = s.brokers();
    // 1. The database, the rows the snapshot reads, the topics, the connector.
    s.sql(&format!("CREATE DATABASE {};", n.tag))?;
    let schema = std::fs::read_to_string(dm::fixture("schema.sql"))?;
    oracle::psql(&n.pg_url, &schema).context("creating the fid schema")?;
    oracle::psql(&n.pg_url, &w.before.join("\n")).context("the statements before the connector")?;
    for (t, p) in n.topics.iter().zip(partitions()) {
        s.create_topic(t, p)?;
    }
    let c = DebeziumConnector::new(
        &n.tag,
        &n.tag,
        &TABLES
            .map(|t| format!("fid.{t}"))
            .each_ref()
            .map(String::as_str),
    )
    .schemas(schemas)
    .set("database.dbname", &n.tag)
    .set("skipped.operations", "none");
    // Without schemas a decimal's bytes cannot be read: the mode users are
    // told to choose then (docs/debezium-mongo.md, "Without schemas").
    let c = if schemas {
        c
    } else {
        c.set("decimal.handling.mode", "string")
    };
    s.debezium_connector(&c)?;
    harness::wait_topics(
        &brokers,
        &n.topics,
        &w.snapshot_records,
        Duration::from_secs(120),
    )
    .context("waiting for Debezium's snapshot")?;

    // 2. The reference sink on the same topics, and smt with the default transform.
    if with_reference() {
        let topics: Vec<&str> = n.topics.iter().map(String::as_str).collect();
        s.mongo_sink_connector(
            &n.reference,
            &topics,
            &n.reference,
            None,
            &[
                (
                    "key.converter.schemas.enable",
                    if schemas { "true" } else { "false" },
                ),
                (
                    "value.converter.schemas.enable",
                    if schemas { "true" } else { "false" },
                ),
                // It fails on truncates (an unknown op): skip what it cannot write.
                ("errors.tolerance", "all"),
            ],
        )
        .context("starting the reference sink")?;
    }
    // A copy of the module, not watched: a rebuild of the shared build's
    // module during the run must not swap the transform under the test.
    let module = n.dir.join("debezium_mongo.wasm");
    std::fs::copy(default_transform(), &module).context("copying the module")?;
    let builder = ConfigBuilder::new(&brokers, &s.mongodb_uri(), &n.tag)
        .transform(
            "dbz",
            &module,
            serde_json::json!({"truncate": "delete-all"}),
        )
        .route_topics(&n.topics, "dbz", "fail")
        // The fill of a key change is a read-modify-write of the new key's
        // document (`$merge` with a pipeline); the local server does not
        // make it atomic against a write of another partition's batch, so
        // the route's batches are written one at a time
        // (docs/debezium-mongo.md, *Primary-key changes*).
        .serial_writes()
        .set(&["hot-swap", "watch"], serde_json::json!(false));
    let config = builder.build();
    let mut smt = Smt::start(&n.dir, "smt1", &config)?;
    smt.wait_assigned(Duration::from_secs(60))?;

    // 3. The workload while smt consumes; SIGKILL once it has processed half the records.
    let writer = {
        let (url, sql) = (n.pg_url.clone(), w.during.join("\n"));
        std::thread::spawn(move || oracle::psql(&url, &sql))
    };
    let half = (w.total_records() / 2) as f64;
    let at_kill = harness::wait_processed(&mut smt, half, Duration::from_secs(300))?;
    smt.kill();
    let mut smt = Smt::start(&n.dir, "smt2", &config)?;
    smt.wait_assigned(Duration::from_secs(60))?;
    writer
        .join()
        .map_err(|_| anyhow!("the workload thread panicked"))?
        .context("the workload")?;

    // 4. Everything captured (the model's counts), then everything committed.
    let rows = table_rows(&n.pg_url)?;
    if rows != w.rows {
        bail!(
            "the generator's model is wrong: PostgreSQL has {rows:?} rows per table ({TABLES:?}), the model {:?}",
            w.rows
        );
    }
    harness::wait_topics(&brokers, &n.topics, &w.records, Duration::from_secs(180))
        .context("waiting for Debezium to capture the workload")?;
    let budget = Duration::from_secs(120) + Duration::from_millis(100) * w.total_records() as u32;
    let drain = harness::wait_committed(&mut smt, &brokers, &builder.group, &n.topics, budget)?;

    // 5. The comparison.
    let expected = dm::expected_documents(&n.pg_url, schemas)?;
    let (comparisons, leftovers) = rt.block_on(async {
        let client = mongodb::Client::with_uri_str(&s.mongodb_uri()).await?;
        let comparisons = compare_all(&client, &n.tag, &expected, |t| t.to_owned()).await?;
        let mut leftovers = 0;
        for t in ["docs", "lines"] {
            leftovers += oracle::mongo_documents(&client, &n.tag, &format!("__smt_moves.{t}"))
                .await?
                .len();
        }
        anyhow::Ok((comparisons, leftovers))
    })?;
    if !comparisons.iter().all(Comparison::ok) {
        let mut report = String::new();
        for c in &comparisons {
            report.push_str(&c.report(3));
            let _ = writeln!(report, "  by cause: {:?}", dm::cause_table(c, PLACEHOLDER));
        }
        bail!(
            "MongoDB differs from the oracle (expected.sql on the final tables):\n{report}\
             smt log (after the restart), last lines:\n{}",
            log_tail(&smt, 3000)
        );
    }
    let status = smt.terminate(Duration::from_secs(60))?;
    if status.code() != Some(0) {
        bail!(
            "smt exited with {status} after SIGTERM:\n{}",
            log_tail(&smt, 3000)
        );
    }
    // The reference sink is measured, not judged: its failure is reported, not fatal.
    let reference = if with_reference() {
        reference_report(s, n, &expected, rt).unwrap_or_else(|e| format!("reference sink: {e:#}"))
    } else {
        "reference sink not run".into()
    };
    Ok(format!(
        "schemas {}: {} docs, {} lines, {} events documents equal; {} records ({} snapshot reads), \
         SIGKILL after {at_kill} processed, drained {:.0}s after the capture; {} transactions ({} rolled back); \
         {leftovers} key-change entries kept; {reference}",
        if schemas { "on" } else { "off" },
        comparisons[0].expected,
        comparisons[1].expected,
        comparisons[2].expected,
        w.total_records(),
        w.snapshot_records.iter().sum::<u64>(),
        drain.as_secs_f64(),
        w.transactions.0 + w.transactions.1,
        w.transactions.1,
    ))
}

/// The three collections of `db` against the expectation; `collection` names
/// a table's collection (the reference sink names them after the topic).
async fn compare_all(
    client: &mongodb::Client,
    db: &str,
    expected: &BTreeMap<String, Vec<Value>>,
    collection: impl Fn(&str) -> String,
) -> Result<Vec<Comparison>> {
    let mut out = Vec::new();
    for t in TABLES {
        let want: Vec<Value> = expected
            .get(t)
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|d| oracle::normalize(d, false))
            .collect();
        let got: Vec<Value> = oracle::mongo_documents(client, db, &collection(t))
            .await?
            .into_iter()
            .map(|d| oracle::normalize(d, false))
            .collect();
        out.push(if t == "events" {
            oracle::compare::compare_multiset(t, &want, &got)
        } else {
            oracle::compare(t, "_id", &want, &got)
        });
    }
    Ok(out)
}

/// Waits for the reference sink to commit every record, then counts its
/// documents that differ from the expectation, by cause.
fn reference_report(
    s: &Services,
    n: &Names,
    expected: &BTreeMap<String, Vec<Value>>,
    rt: &tokio::runtime::Runtime,
) -> Result<String> {
    let budget = Duration::from_secs(180);
    harness::wait_group_committed(
        &s.brokers(),
        &format!("connect-{}", n.reference),
        &n.topics,
        budget,
        || Ok(()),
    )
    .context("waiting for the reference sink")?;
    let comparisons = rt.block_on(async {
        let client = mongodb::Client::with_uri_str(&s.mongodb_uri()).await?;
        compare_all(&client, &n.reference, expected, |t| {
            format!("{}.fid.{t}", n.tag)
        })
        .await
    })?;
    let mut out = String::from("reference sink:");
    for c in &comparisons {
        let _ = write!(
            out,
            " {}: {} of {} documents differ {:?};",
            c.collection,
            c.different.len() + c.missing.len() + c.extra.len(),
            c.expected,
            dm::cause_table(c, PLACEHOLDER)
        );
    }
    Ok(out)
}

/// Rows per table, as [`TABLES`].
fn table_rows(url: &str) -> Result<[u64; 3]> {
    let mut rows = [0; 3];
    for (i, t) in TABLES.iter().enumerate() {
        rows[i] = oracle::psql(url, &format!("SELECT count(*) FROM fid.{t};"))?
            .trim()
            .parse()?;
    }
    Ok(rows)
}
