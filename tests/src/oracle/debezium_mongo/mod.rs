//! The default transform's oracle (tests/tests/default_oracle.rs): a seeded
//! random workload on the `fid` schema of
//! `tests/fixtures/default-oracle/schema.sql` (every column type, TOASTed
//! columns, single and composite keys and their changes, a table without
//! key, truncates), the expected documents computed by
//! `tests/fixtures/default-oracle/expected.sql` (expected-plain.sql for
//! records without schemas) from the final tables, and
//! the differences of the reference sink counted by cause.

pub mod causes;
pub mod workload;

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Result;
use serde_json::Value;

use crate::services::repo_root;

pub use causes::{cause_table, causes};
pub use workload::{generate, Workload, TABLES};

pub fn fixture(name: &str) -> PathBuf {
    repo_root()
        .join("tests")
        .join("fixtures")
        .join("default-oracle")
        .join(name)
}

/// The expected documents of `docs`, `lines` and `events` from expected.sql
/// (records with schemas) or expected-plain.sql (without) run in the
/// database of `url`: collection -> documents.
pub fn expected_documents(url: &str, schemas: bool) -> Result<BTreeMap<String, Vec<Value>>> {
    let file = if schemas {
        "expected.sql"
    } else {
        "expected-plain.sql"
    };
    crate::oracle::documents_from_sql(url, &fixture(file))
}
