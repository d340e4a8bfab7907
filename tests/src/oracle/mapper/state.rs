//! The mapper's state collections against the tables' keys.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use anyhow::Result;

/// A row's primary key (`[id]`, `[order_id, line_no]`).
pub type Key = Vec<i64>;

/// What a state collection holds, against the table's rows.
#[derive(Debug)]
pub struct StateCheck {
    pub table: String,
    pub rows: usize,
    pub documents: usize,
    /// Keys in the table without a state document, and state documents of no row
    /// (None when a state document has no `key` readable as one).
    pub key_diff: Option<(Vec<Key>, Vec<Key>)>,
    /// State documents still holding a non-empty `prev`.
    pub with_prev: usize,
}

impl StateCheck {
    pub fn ok(&self) -> bool {
        self.rows == self.documents
            && self
                .key_diff
                .as_ref()
                .is_some_and(|(a, b)| a.is_empty() && b.is_empty())
            && self.with_prev == 0
    }

    pub fn report(&self) -> String {
        let mut s = format!(
            "state of shop.{}: {} rows, {} state documents",
            self.table, self.rows, self.documents
        );
        match &self.key_diff {
            Some((missing, extra)) => {
                let _ = write!(
                    s,
                    "; keys without state: {:?}; state without row: {:?}",
                    &missing[..missing.len().min(10)],
                    &extra[..extra.len().min(10)]
                );
            }
            None => s.push_str("; a state document has no `key` readable as the table's key"),
        }
        if self.with_prev > 0 {
            let _ = write!(s, "; {} documents still hold `prev`", self.with_prev);
        }
        s
    }
}

/// A state document's `_id` as key values: `7`, `{"id": 7}`, `{"order_id": 1, "line_no": 2}`.
fn state_key(id: &mongodb::bson::Bson, columns: &[&str]) -> Option<Vec<i64>> {
    use mongodb::bson::Bson;
    let int = |b: &Bson| match b {
        Bson::Int32(i) => Some(i64::from(*i)),
        Bson::Int64(i) => Some(*i),
        _ => None,
    };
    match id {
        Bson::Document(d) => columns.iter().map(|c| d.get(*c).and_then(int)).collect(),
        other if columns.len() == 1 => int(other).map(|i| vec![i]),
        _ => None,
    }
}

/// Compares the state collection `<prefix>shop.<table>` (the key in `key`) with the table's keys.
pub async fn check_state(
    client: &mongodb::Client,
    db: &str,
    prefix: &str,
    table: &str,
    keys: &BTreeSet<Vec<i64>>,
) -> Result<StateCheck> {
    use mongodb::bson::{Bson, Document};
    let columns: &[&str] = if table == "order_items" {
        &["order_id", "line_no"]
    } else {
        &["id"]
    };
    let mut cursor = client
        .database(db)
        .collection::<Document>(&format!("{prefix}shop.{table}"))
        .find(Document::new())
        .await?;
    let mut documents = 0;
    let mut with_prev = 0;
    let mut state_keys = Some(BTreeSet::new());
    while cursor.advance().await? {
        let d: Document = cursor.deserialize_current()?;
        documents += 1;
        match d.get("prev") {
            None | Some(Bson::Null) => {}
            Some(Bson::Array(a)) if a.is_empty() => {}
            Some(Bson::Document(p)) if p.is_empty() => {}
            Some(_) => with_prev += 1,
        }
        let k = d.get("key").and_then(|id| state_key(id, columns));
        match (k, state_keys.as_mut()) {
            (Some(k), Some(set)) => {
                set.insert(k);
            }
            _ => state_keys = None,
        }
    }
    let key_diff = state_keys.map(|set| {
        (
            keys.difference(&set).cloned().collect(),
            set.difference(keys).cloned().collect(),
        )
    });
    Ok(StateCheck {
        table: table.to_owned(),
        rows: keys.len(),
        documents,
        key_diff,
        with_prev,
    })
}
