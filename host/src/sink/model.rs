//! A [`WriteOp`] rendered for MongoDB as raw BSON, in the two shapes the
//! sink sends: the multi-namespace `bulkWrite` command ([`BulkCommand`]) and
//! an entry of a per-collection `insert`/`update`/`delete` command
//! ([`command_entry`]). Both are written in place ([`raw`]): each of the
//! operation's documents is copied once, into the command, with no
//! allocation per operation; both write an update's fields through the same
//! function, so the two paths cannot disagree on what an update means.
//! [`bulk_model`] is the driver's model of an operation, for measuring the
//! driver alone.

use std::io::Write as _;

use bson::raw::RawDocument;
use bson::{Document, RawDocumentBuf};
use mongodb::options::{
    DeleteManyModel, DeleteOneModel, InsertOneModel, ReplaceOneModel, UpdateManyModel,
    UpdateModifications, UpdateOneModel, WriteModel,
};

use crate::writeop::{Namespace, Update, UpdateOp, WriteOp};

/// The driver's namespace of `ns`, `default_db` when it names no database.
pub fn namespace(ns: &Namespace, default_db: &str) -> mongodb::Namespace {
    mongodb::Namespace::new(ns.database.as_deref().unwrap_or(default_db), &ns.collection)
}

/// Most operations in one `bulkWrite` command (the server's `maxWriteBatchSize`).
const MAX_BULK_OPS: usize = 100_000;
/// Rough cap of one `bulkWrite` command's size: the whole command is one
/// BSON document (at most 16 MiB), the operations are not sent as a
/// separate document sequence.
const MAX_BULK_BYTES: usize = 8 << 20;

/// A `bulkWrite` command being written: `{bulkWrite: 1, ops: [...], nsInfo,
/// ordered: true, errorsOnly: true, writeConcern}`, run on `admin`.
pub struct BulkCommand<'a> {
    default_db: &'a str,
    buf: Vec<u8>,
    /// Where the command and its `ops` array start (their lengths go there).
    command: usize,
    ops: usize,
    count: usize,
    namespaces: Vec<(&'a str, &'a str)>,
}

impl<'a> BulkCommand<'a> {
    pub fn new(default_db: &'a str) -> Self {
        let mut buf = Vec::with_capacity(64 << 10);
        let command = raw::begin(&mut buf);
        raw::int32(&mut buf, "bulkWrite", 1);
        raw::key(&mut buf, raw::ARRAY, "ops");
        let ops = raw::begin(&mut buf);
        BulkCommand {
            default_db,
            buf,
            command,
            ops,
            count: 0,
            namespaces: Vec::new(),
        }
    }

    /// Whether the command has room for another operation (it always takes a first one).
    pub fn has_room(&self) -> bool {
        self.count == 0 || (self.count < MAX_BULK_OPS && self.buf.len() < MAX_BULK_BYTES)
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Adds `op`; an aggregate is never part of a `bulkWrite` and is skipped.
    pub fn push(&mut self, op: &'a WriteOp) {
        if matches!(op, WriteOp::Aggregate { .. }) {
            return;
        }
        let ns = op.namespace();
        let key = (
            ns.database.as_deref().unwrap_or(self.default_db),
            ns.collection.as_str(),
        );
        let index = match self.namespaces.iter().position(|n| *n == key) {
            Some(i) => i,
            None => {
                self.namespaces.push(key);
                self.namespaces.len() - 1
            }
        } as i32;
        let buf = &mut self.buf;
        raw::index_key(buf, raw::DOCUMENT, self.count);
        let entry = raw::begin(buf);
        match op {
            WriteOp::InsertOne { document, .. } => {
                raw::int32(buf, "insert", index);
                raw::document(buf, "document", document);
            }
            WriteOp::ReplaceOne {
                filter,
                replacement,
                upsert,
                ..
            } => {
                raw::int32(buf, "update", index);
                raw::document(buf, "filter", filter);
                raw::document(buf, "updateMods", replacement);
                raw::boolean(buf, "upsert", *upsert);
                raw::boolean(buf, "multi", false);
            }
            WriteOp::UpdateOne(u) | WriteOp::UpdateMany(u) => {
                raw::int32(buf, "update", index);
                raw::document(buf, "filter", &u.filter);
                update_fields(buf, "updateMods", u, op);
            }
            WriteOp::DeleteOne { filter, .. } | WriteOp::DeleteMany { filter, .. } => {
                raw::int32(buf, "delete", index);
                raw::document(buf, "filter", filter);
                raw::boolean(buf, "multi", matches!(op, WriteOp::DeleteMany { .. }));
            }
            WriteOp::Aggregate { .. } => {}
        }
        raw::end(buf, entry);
        self.count += 1;
    }

    /// The command. Namespaces are valid names (no NUL): each is a valid
    /// BSON string.
    pub fn finish(self, write_concern: &RawDocument) -> RawDocumentBuf {
        let mut buf = self.buf;
        raw::end(&mut buf, self.ops);
        raw::key(&mut buf, raw::ARRAY, "nsInfo");
        let ns_info = raw::begin(&mut buf);
        for (i, (db, coll)) in self.namespaces.iter().enumerate() {
            raw::index_key(&mut buf, raw::DOCUMENT, i);
            let entry = raw::begin(&mut buf);
            raw::key(&mut buf, raw::STRING, "ns");
            raw::int32_le(&mut buf, (db.len() + 1 + coll.len() + 1) as i32);
            let _ = write!(buf, "{db}.{coll}\0");
            raw::end(&mut buf, entry);
        }
        raw::end(&mut buf, ns_info);
        raw::boolean(&mut buf, "ordered", true);
        raw::boolean(&mut buf, "errorsOnly", true);
        raw::document(&mut buf, "writeConcern", write_concern);
        raw::end(&mut buf, self.command);
        raw::into_document(buf)
    }
}

/// The operation's entry in its `insert`/`update`/`delete` command; an empty
/// document for an aggregate, which is never part of one.
pub fn command_entry(op: &WriteOp) -> RawDocumentBuf {
    let mut buf = Vec::new();
    let entry = raw::begin(&mut buf);
    match op {
        WriteOp::InsertOne { document, .. } => return document.clone(),
        WriteOp::ReplaceOne {
            filter,
            replacement,
            upsert,
            ..
        } => {
            raw::document(&mut buf, "q", filter);
            raw::document(&mut buf, "u", replacement);
            raw::boolean(&mut buf, "upsert", *upsert);
            raw::boolean(&mut buf, "multi", false);
        }
        WriteOp::UpdateOne(u) | WriteOp::UpdateMany(u) => {
            raw::document(&mut buf, "q", &u.filter);
            update_fields(&mut buf, "u", u, op);
        }
        WriteOp::DeleteOne { filter, .. } | WriteOp::DeleteMany { filter, .. } => {
            raw::document(&mut buf, "q", filter);
            let one = matches!(op, WriteOp::DeleteOne { .. });
            raw::int32(&mut buf, "limit", i32::from(one));
        }
        WriteOp::Aggregate { .. } => {}
    }
    raw::end(&mut buf, entry);
    raw::into_document(buf)
}

/// The fields of an update after its filter: the modifications (its
/// operator document or its pipeline) under `mods`, `upsert`, `multi`
/// (an update-many) and `arrayFilters` when it has some.
fn update_fields(buf: &mut Vec<u8>, mods: &str, u: &UpdateOp, op: &WriteOp) {
    match &u.update {
        Update::Operators(o) => raw::document(buf, mods, o),
        Update::Pipeline(stages) => raw::array(buf, mods, stages),
    }
    raw::boolean(buf, "upsert", u.upsert);
    raw::boolean(buf, "multi", matches!(op, WriteOp::UpdateMany(_)));
    if !u.array_filters.is_empty() {
        raw::array(buf, "arrayFilters", &u.array_filters);
    }
}

/// BSON written in place into one buffer: [`begin`] leaves room for a
/// document's length, [`end`] closes it and writes the length. Keys are the
/// fixed names above or decimal indexes (never a NUL byte).
mod raw {
    use std::io::Write as _;

    use bson::raw::RawDocument;
    use bson::RawDocumentBuf;

    pub const STRING: u8 = 0x02;
    pub const DOCUMENT: u8 = 0x03;
    pub const ARRAY: u8 = 0x04;
    const BOOLEAN: u8 = 0x08;
    const INT32: u8 = 0x10;

    pub fn begin(buf: &mut Vec<u8>) -> usize {
        let at = buf.len();
        buf.extend_from_slice(&[0; 4]);
        at
    }

    pub fn end(buf: &mut Vec<u8>, at: usize) {
        buf.push(0);
        let len = (buf.len() - at) as i32;
        buf[at..at + 4].copy_from_slice(&len.to_le_bytes());
    }

    pub fn key(buf: &mut Vec<u8>, kind: u8, key: &str) {
        buf.push(kind);
        buf.extend_from_slice(key.as_bytes());
        buf.push(0);
    }

    /// The key of an array element: its index in decimal.
    pub fn index_key(buf: &mut Vec<u8>, kind: u8, index: usize) {
        buf.push(kind);
        let _ = write!(buf, "{index}\0");
    }

    pub fn int32_le(buf: &mut Vec<u8>, v: i32) {
        buf.extend_from_slice(&v.to_le_bytes());
    }

    pub fn int32(buf: &mut Vec<u8>, k: &str, v: i32) {
        key(buf, INT32, k);
        int32_le(buf, v);
    }

    pub fn boolean(buf: &mut Vec<u8>, k: &str, v: bool) {
        key(buf, BOOLEAN, k);
        buf.push(u8::from(v));
    }

    pub fn document(buf: &mut Vec<u8>, k: &str, d: &RawDocument) {
        key(buf, DOCUMENT, k);
        buf.extend_from_slice(d.as_bytes());
    }

    pub fn array(buf: &mut Vec<u8>, k: &str, items: &[RawDocumentBuf]) {
        key(buf, ARRAY, k);
        let at = begin(buf);
        for (i, d) in items.iter().enumerate() {
            index_key(buf, DOCUMENT, i);
            buf.extend_from_slice(d.as_bytes());
        }
        end(buf, at);
    }

    /// The finished bytes as a document (their length and last byte are
    /// right by construction; an impossible failure gives an empty document,
    /// which the server refuses).
    pub fn into_document(buf: Vec<u8>) -> RawDocumentBuf {
        RawDocumentBuf::from_bytes(buf).unwrap_or_default()
    }
}

/// The driver's model for a multi-namespace `bulkWrite` (`smt-bench-raw`:
/// the driver alone); `None` for [`WriteOp::Aggregate`], which runs as its
/// own command.
pub fn bulk_model(op: &WriteOp, default_db: &str) -> Option<WriteModel> {
    let ns = namespace(op.namespace(), default_db);
    let doc = |d: &RawDocumentBuf| Document::try_from(d.as_ref()).ok();
    let docs = |ds: &[RawDocumentBuf]| ds.iter().map(doc).collect::<Option<Vec<_>>>();
    // The driver's update models are two types with the same builder.
    macro_rules! update_model {
        ($model:ident, $variant:ident, $u:expr) => {
            WriteModel::$variant(
                $model::builder()
                    .namespace(ns)
                    .filter(doc(&$u.filter)?)
                    .update(match &$u.update {
                        Update::Operators(d) => UpdateModifications::Document(doc(d)?),
                        Update::Pipeline(p) => UpdateModifications::Pipeline(docs(p)?),
                    })
                    .upsert($u.upsert)
                    .array_filters(match $u.array_filters.is_empty() {
                        true => None,
                        false => Some(
                            docs(&$u.array_filters)?
                                .into_iter()
                                .map(Into::into)
                                .collect(),
                        ),
                    })
                    .build(),
            )
        };
    }
    Some(match op {
        WriteOp::InsertOne { document, .. } => WriteModel::InsertOne(
            InsertOneModel::builder()
                .namespace(ns)
                .document(doc(document)?)
                .build(),
        ),
        WriteOp::ReplaceOne {
            filter,
            replacement,
            upsert,
            ..
        } => WriteModel::ReplaceOne(
            ReplaceOneModel::builder()
                .namespace(ns)
                .filter(doc(filter)?)
                .replacement(doc(replacement)?)
                .upsert(*upsert)
                .build(),
        ),
        WriteOp::UpdateOne(u) => update_model!(UpdateOneModel, UpdateOne, u),
        WriteOp::UpdateMany(u) => update_model!(UpdateManyModel, UpdateMany, u),
        WriteOp::DeleteOne { filter, .. } => WriteModel::DeleteOne(
            DeleteOneModel::builder()
                .namespace(ns)
                .filter(doc(filter)?)
                .build(),
        ),
        WriteOp::DeleteMany { filter, .. } => WriteModel::DeleteMany(
            DeleteManyModel::builder()
                .namespace(ns)
                .filter(doc(filter)?)
                .build(),
        ),
        WriteOp::Aggregate { .. } => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    fn raw(d: Document) -> RawDocumentBuf {
        RawDocumentBuf::try_from(&d).unwrap()
    }

    fn ns(db: Option<&str>, coll: &str) -> Namespace {
        Namespace {
            database: db.map(str::to_owned),
            collection: coll.into(),
        }
    }

    fn update_many() -> WriteOp {
        WriteOp::UpdateMany(UpdateOp {
            ns: ns(Some("shop"), "orders"),
            filter: raw(doc! {"_id": 1}),
            update: Update::Pipeline(vec![raw(doc! {"$set": {"n": {"$add": ["$n", 1]}}})]),
            upsert: true,
            array_filters: vec![raw(doc! {"e.id": 3})],
        })
    }

    #[test]
    fn pipeline_updates_and_array_filters_reach_the_model() {
        let Some(WriteModel::UpdateMany(m)) = bulk_model(&update_many(), "default") else {
            panic!()
        };
        assert_eq!(m.namespace, mongodb::Namespace::new("shop", "orders"));
        assert!(matches!(m.update, UpdateModifications::Pipeline(ref p) if p.len() == 1));
        assert_eq!(m.array_filters.unwrap().len(), 1);
        assert_eq!(m.upsert, Some(true));
    }

    #[test]
    fn the_command_entry_says_the_same_as_the_model() {
        assert_eq!(
            Document::try_from(command_entry(&update_many())).unwrap(),
            doc! {
                "q": {"_id": 1},
                "u": [{"$set": {"n": {"$add": ["$n", 1]}}}],
                "upsert": true,
                "multi": true,
                "arrayFilters": [{"e.id": 3}],
            }
        );
    }

    #[test]
    fn a_bulk_write_command_names_each_namespace_once() {
        let ops = [
            WriteOp::InsertOne {
                ns: ns(None, "a"),
                document: raw(doc! {"_id": 1}),
            },
            WriteOp::ReplaceOne {
                ns: ns(Some("db"), "a"),
                filter: raw(doc! {"_id": 2}),
                replacement: raw(doc! {"_id": 2, "x": "y"}),
                upsert: true,
            },
            update_many(),
            WriteOp::DeleteOne {
                ns: ns(None, "b"),
                filter: raw(doc! {"_id": 3}),
            },
        ];
        let mut command = BulkCommand::new("db");
        for op in &ops {
            command.push(op);
        }
        assert_eq!(command.len(), 4);
        let cmd = Document::try_from(command.finish(&raw(doc! {"w": "majority"}))).unwrap();
        assert_eq!(
            cmd,
            doc! {
                "bulkWrite": 1,
                "ops": [
                    {"insert": 0, "document": {"_id": 1}},
                    {"update": 0, "filter": {"_id": 2}, "updateMods": {"_id": 2, "x": "y"}, "upsert": true, "multi": false},
                    {"update": 1, "filter": {"_id": 1}, "updateMods": [{"$set": {"n": {"$add": ["$n", 1]}}}],
                     "upsert": true, "multi": true, "arrayFilters": [{"e.id": 3}]},
                    {"delete": 2, "filter": {"_id": 3}, "multi": false},
                ],
                "nsInfo": [{"ns": "db.a"}, {"ns": "shop.orders"}, {"ns": "db.b"}],
                "ordered": true,
                "errorsOnly": true,
                "writeConcern": {"w": "majority"},
            }
        );
    }

    #[test]
    fn an_aggregate_has_no_bulk_model() {
        let op = WriteOp::Aggregate {
            ns: ns(None, "c"),
            pipeline: vec![doc! {"$merge": {"into": "c"}}],
        };
        assert!(bulk_model(&op, "db").is_none());
        let mut command = BulkCommand::new("db");
        command.push(&op);
        assert!(command.is_empty());
        assert_eq!(
            namespace(op.namespace(), "db"),
            mongodb::Namespace::new("db", "c")
        );
    }
}
