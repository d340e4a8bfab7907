//! The relational mapper's oracle test: for each seed, a random workload on
//! the `shop` tables (tests/fixtures/relational/schema.sql: inserts, updates,
//! deletes, primary-key changes of every table, children before parents,
//! NULLs, transactions, some rolled back) runs in a PostgreSQL database of its
//! own; real Debezium streams it through Kafka to `smt run` with the
//! relational mapper and tests/fixtures/relational/mapping.json; `smt` is
//! SIGKILLed halfway through and restarted. Once the consumer group has
//! committed every record, MongoDB must hold exactly the documents
//! tests/fixtures/relational/expected.sql computes from the final tables, and
//! the state collections exactly the tables' keys.
//!
//! Seeds: three fresh ones per run (printed first), or `SMT_ORACLE_SEEDS=1,2,3`;
//! operations per seed: `SMT_ORACLE_OPS` (default [`DEFAULT_OPS`]).
//! Full size: `scripts/oracle`. One seed again:
//! `SMT_ORACLE_SEEDS=<seed> scripts/test -p smt-tests --test relational_oracle`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use smt_tests::config::ConfigBuilder;
use smt_tests::oracle;
use smt_tests::oracle::harness::{self, log_tail, Oracle};
use smt_tests::oracle::mapper::{self, Workload, TABLES};
use smt_tests::services::{unique_name, DebeziumConnector, Services};
use smt_tests::smt_process::Smt;

/// Operations per seed in the test command (three seeds: about 2 minutes warm on 2 cores).
const DEFAULT_OPS: usize = 3000;
/// Partitions of each table's topic. One, as docs/relational-mapper.md
/// requires: the delete and the create of a primary-key change have different
/// keys, and only one partition keeps them in order (the create carries
/// `__debezium_unavailable_value` for unchanged TOASTed columns, which the
/// mapper takes from the row the delete leaves). The four tables' topics are
/// still consumed concurrently, in any interleaving.
const PARTITIONS: u32 = 1;
/// Where the mapper keeps the current rows (the mapping's default `state_prefix`).
const STATE_PREFIX: &str = "__smt_rm.v2.";

const ORACLE: Oracle = Oracle {
    test: "relational_oracle",
    default_ops: DEFAULT_OPS,
};

fn relational_mapper() -> &'static str {
    env!("SMT_GUEST_RELATIONAL_MAPPER")
}

#[test]
fn mongodb_holds_what_sql_computes_from_the_final_tables_after_a_random_workload_and_a_sigkill() {
    let rt = harness::runtime();
    ORACLE.run_seeds(|seed, ops| run_seed(seed, ops, &rt));
}

/// What one seed created, named in a failure so it can be inspected.
struct Names {
    /// PostgreSQL database, MongoDB database, connector, topic prefix.
    tag: String,
    pg_url: String,
    topics: Vec<String>,
    dir: PathBuf,
}

fn run_seed(seed: u64, ops: usize, rt: &tokio::runtime::Runtime) -> Result<String> {
    let s = Services::shared();
    let w = mapper::generate(seed, ops);
    let tag = unique_name(&format!("oracle_{seed}"));
    let names = Names {
        pg_url: oracle::database_url(&s.postgres_url(), &tag),
        topics: TABLES.iter().map(|t| format!("{tag}.shop.{t}")).collect(),
        dir: std::env::temp_dir().join(&tag),
        tag,
    };
    std::fs::create_dir_all(&names.dir)?;
    let result = run_workload(s, &w, &names, rt);
    match result {
        Ok(summary) => {
            harness::cleanup(s, &names.tag, rt);
            let _ = std::fs::remove_dir_all(&names.dir);
            Ok(summary)
        }
        Err(e) => Err(e.context(format!(
            "seed {seed}: {}\nkept for inspection: PostgreSQL database {tag} ({url}), MongoDB database {tag}, \
             connector and topic prefix {tag}, smt configs and logs in {dir}",
            w.summary(),
            tag = names.tag,
            url = names.pg_url,
            dir = names.dir.display()
        ))),
    }
}

fn run_workload(
    s: &Services,
    w: &Workload,
    n: &Names,
    rt: &tokio::runtime::Runtime,
) -> Result<String> {
    let brokers = s.brokers();
    // 1. The database, the rows the snapshot reads, the topics, the connector.
    s.sql(&format!("CREATE DATABASE {};", n.tag))?;
    let schema = std::fs::read_to_string(mapper::fixture("schema.sql"))?;
    oracle::psql(&n.pg_url, &schema).context("creating the shop schema")?;
    oracle::psql(&n.pg_url, &w.before.join("\n")).context("the statements before the connector")?;
    for t in &n.topics {
        s.create_topic(t, PARTITIONS)?;
    }
    let mut c = DebeziumConnector::new(
        &n.tag,
        &n.tag,
        &TABLES
            .map(|t| format!("shop.{t}"))
            .each_ref()
            .map(String::as_str),
    )
    .schemas(true)
    .set("database.dbname", &n.tag);
    c.partitions = PARTITIONS;
    s.debezium_connector(&c)?;
    // The snapshot is in the topics: every later change is streamed.
    harness::wait_topics(
        &brokers,
        &n.topics,
        &w.snapshot_records,
        Duration::from_secs(120),
    )
    .context("waiting for Debezium's snapshot")?;

    // 2. smt consuming the four topics with the mapper.
    // A copy of the module, not watched: a rebuild of the shared build's
    // module during the run must not swap the transform under the test.
    let module = n.dir.join("relational_mapper.wasm");
    std::fs::copy(relational_mapper(), &module).context("copying the module")?;
    let builder = ConfigBuilder::new(&brokers, &s.mongodb_uri(), &n.tag)
        .transform_with_config_file("shop", &module, mapper::fixture("mapping.json"))
        .route_topics(&n.topics, "shop", "fail")
        // The mapper's rebuilds read what other partitions write (docs/relational-mapper.md).
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
    let expected = mapper::expected_documents(&n.pg_url)?;
    let mut keys = Vec::new();
    for t in TABLES {
        keys.push(mapper::table_keys(&n.pg_url, t)?);
    }
    let (comparisons, states) = rt.block_on(async {
        let client = mongodb::Client::with_uri_str(&s.mongodb_uri()).await?;
        let mut comparisons = Vec::new();
        for (coll, key, object_id) in [("customers", "_id", false), ("orders", "id", true)] {
            let want: Vec<_> = expected
                .get(coll)
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(|d| oracle::normalize(d, false))
                .collect();
            let got: Vec<_> = oracle::mongo_documents(&client, &n.tag, coll)
                .await?
                .into_iter()
                .map(|d| oracle::normalize(d, object_id))
                .collect();
            comparisons.push(oracle::compare(coll, key, &want, &got));
        }
        let mut states = Vec::new();
        for (t, k) in TABLES.iter().zip(&keys) {
            states.push(mapper::check_state(&client, &n.tag, STATE_PREFIX, t, k).await?);
        }
        anyhow::Ok((comparisons, states))
    })?;
    let ok = comparisons.iter().all(|c| c.ok()) && states.iter().all(|s| s.ok());
    if !ok {
        let mut report = String::new();
        for c in &comparisons {
            report.push_str(&c.report(3));
        }
        for st in &states {
            report.push_str(&st.report());
            report.push('\n');
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
    Ok(format!(
        "{} customers and {} orders documents equal; {} records ({} snapshot reads), \
         SIGKILL after {at_kill} processed, drained {:.0}s after the capture; {} transactions ({} rolled back)",
        comparisons[0].expected,
        comparisons[1].expected,
        w.total_records(),
        w.snapshot_records.iter().sum::<u64>(),
        drain.as_secs_f64(),
        w.transactions.0 + w.transactions.1,
        w.transactions.1,
    ))
}

/// Rows per table, as [`TABLES`].
fn table_rows(url: &str) -> Result<[u64; 4]> {
    let mut rows = [0; 4];
    for (i, t) in TABLES.iter().enumerate() {
        rows[i] = oracle::psql(url, &format!("SELECT count(*) FROM shop.{t};"))?
            .trim()
            .parse()?;
    }
    Ok(rows)
}
