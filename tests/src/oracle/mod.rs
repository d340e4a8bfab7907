//! Randomized end-to-end oracles: a seeded workload runs in PostgreSQL,
//! real Debezium streams it through Kafka to `smt run`, and MongoDB is
//! compared document by document with what SQL computes from the final
//! tables — never with what the transform under test computes.
//!
//! Shared: the random numbers ([`rng`]), the comparison ([`compare`]), Kafka
//! progress ([`kafka`]) and the run of seeds with its services ([`harness`]).
//! Per transform: [`mapper`] (the relational mapper,
//! tests/tests/relational_oracle.rs) and [`debezium_mongo`] (the default
//! transform, tests/tests/default_oracle.rs).

pub mod compare;
pub mod debezium_mongo;
pub mod harness;
pub mod kafka;
pub mod mapper;
pub mod rng;
pub mod workload;

pub use crate::services::psql;
pub use compare::{compare, diff, doc_key, mongo_documents, normalize, shorten, Comparison};
pub use kafka::{group_progress, PartitionProgress};
pub use rng::{fresh_seed, Rng};

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{anyhow, Context, Result};
use serde_json::Value;

/// `url` (`postgresql://…/db`) with another database.
pub fn database_url(url: &str, db: &str) -> String {
    let (base, _) = url
        .rsplit_once('/')
        .expect("a postgresql:// URL with a database");
    format!("{base}/{db}")
}

/// Runs the SQL file `sql` in the database of `url`; it prints one line per
/// expected document, `<collection>|<canonical Extended JSON>`. Returns
/// collection -> documents.
pub fn documents_from_sql(url: &str, sql: &Path) -> Result<BTreeMap<String, Vec<Value>>> {
    let text =
        std::fs::read_to_string(sql).with_context(|| format!("reading {}", sql.display()))?;
    let out = psql(url, &text).with_context(|| format!("running {}", sql.display()))?;
    let mut docs: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for line in out.lines().filter(|l| !l.trim().is_empty()) {
        let (coll, doc) = line
            .split_once('|')
            .ok_or_else(|| anyhow!("{} printed {line:?}", sql.display()))?;
        let v: Value = serde_json::from_str(doc)
            .with_context(|| format!("{} printed bad JSON: {doc}", sql.display()))?;
        docs.entry(coll.to_owned()).or_default().push(v);
    }
    Ok(docs)
}
