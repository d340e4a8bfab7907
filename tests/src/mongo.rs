//! MongoDB for the tests: the one reader of a collection, and the integer
//! reading every test needs (the server keeps what the writer sent, Int32 or
//! Int64).

use anyhow::{Context, Result};
use mongodb::bson::{doc, Document};

/// Every document of `db.collection`, sorted by `_id` (a stable order to
/// compare and to print).
pub async fn documents(
    client: &mongodb::Client,
    db: &str,
    collection: &str,
) -> Result<Vec<Document>> {
    let read = async {
        let mut cursor = client
            .database(db)
            .collection::<Document>(collection)
            .find(doc! {})
            .sort(doc! {"_id": 1})
            .await?;
        let mut out = Vec::new();
        while cursor.advance().await? {
            out.push(cursor.deserialize_current()?);
        }
        Ok::<_, mongodb::error::Error>(out)
    };
    read.await
        .with_context(|| format!("reading {db}.{collection}"))
}

/// An integer field, whether stored as Int32 or Int64.
pub fn int(doc: &Document, key: &str) -> Option<i64> {
    let v = doc.get(key)?;
    v.as_i64().or_else(|| v.as_i32().map(i64::from))
}
