//! The mapper's expected documents: `tests/fixtures/relational/expected.sql`
//! run on the final tables, and the tables' keys.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use anyhow::Result;
use serde_json::Value;

use crate::oracle::psql;
use crate::services::repo_root;

pub fn fixture(name: &str) -> PathBuf {
    repo_root()
        .join("tests")
        .join("fixtures")
        .join("relational")
        .join(name)
}

/// The expected documents of `customers` and `orders`, from expected.sql run
/// in the database of `url`: collection -> documents.
pub fn expected_documents(url: &str) -> Result<BTreeMap<String, Vec<Value>>> {
    crate::oracle::documents_from_sql(url, &fixture("expected.sql"))
}

/// The primary keys of a table's current rows, as the state check compares them.
pub fn table_keys(url: &str, table: &str) -> Result<BTreeSet<Vec<i64>>> {
    let cols = if table == "order_items" {
        "order_id || ',' || line_no"
    } else {
        "id::text"
    };
    let out = psql(url, &format!("SELECT {cols} FROM shop.{table};"))?;
    out.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            l.split(',')
                .map(|x| x.trim().parse::<i64>().map_err(Into::into))
                .collect()
        })
        .collect()
}
