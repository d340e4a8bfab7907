//! A [`WriteOp`] rendered for MongoDB as raw BSON, in the two shapes the
//! sink sends: the multi-namespace `bulkWrite` command ([`BulkCommand`]) and
//! an entry of a per-collection `insert`/`update`/`delete` command
//! ([`command_entry`]). The operation's documents are copied once, into the
//! command; both shapes read an update through the same helper, so the two
//! paths cannot disagree on what an update means. [`bulk_model`] is the
//! driver's model of an operation, for measuring the driver alone.

use bson::raw::{cstr, CStr, RawArrayBuf};
use bson::{rawdoc, Document, RawDocumentBuf};
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

/// A `bulkWrite` command under construction: `{bulkWrite: 1, ops, nsInfo,
/// ordered: true, errorsOnly: true, writeConcern}`, run on `admin`.
pub struct BulkCommand<'a> {
    default_db: &'a str,
    ops: RawArrayBuf,
    count: usize,
    bytes: usize,
    namespaces: Vec<(&'a str, &'a str)>,
}

impl<'a> BulkCommand<'a> {
    pub fn new(default_db: &'a str) -> Self {
        BulkCommand {
            default_db,
            ops: RawArrayBuf::new(),
            count: 0,
            bytes: 0,
            namespaces: Vec::new(),
        }
    }

    /// Whether the command has room for another operation (it always takes a first one).
    pub fn has_room(&self) -> bool {
        self.count == 0 || (self.count < MAX_BULK_OPS && self.bytes < MAX_BULK_BYTES)
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Adds `op`; an aggregate is never part of a `bulkWrite` and is skipped.
    pub fn push(&mut self, op: &'a WriteOp) {
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
        let mut entry = RawDocumentBuf::new();
        match op {
            WriteOp::InsertOne { document, .. } => {
                entry.append(cstr!("insert"), index);
                entry.append(cstr!("document"), document);
            }
            WriteOp::ReplaceOne {
                filter,
                replacement,
                upsert,
                ..
            } => {
                entry.append(cstr!("update"), index);
                entry.append(cstr!("filter"), filter);
                entry.append(cstr!("updateMods"), replacement);
                entry.append(cstr!("upsert"), *upsert);
                entry.append(cstr!("multi"), false);
            }
            WriteOp::UpdateOne(u) | WriteOp::UpdateMany(u) => {
                entry.append(cstr!("update"), index);
                entry.append(cstr!("filter"), &u.filter);
                update_fields(&mut entry, cstr!("updateMods"), u, op);
            }
            WriteOp::DeleteOne { filter, .. } | WriteOp::DeleteMany { filter, .. } => {
                entry.append(cstr!("delete"), index);
                entry.append(cstr!("filter"), filter);
                entry.append(cstr!("multi"), matches!(op, WriteOp::DeleteMany { .. }));
            }
            WriteOp::Aggregate { .. } => return,
        }
        self.bytes += entry.as_bytes().len();
        self.count += 1;
        self.ops.push(entry);
    }

    /// The command. Namespaces are valid names (no NUL), so each is a
    /// valid BSON string.
    pub fn finish(self, write_concern: &RawDocumentBuf) -> RawDocumentBuf {
        let ns_info: RawArrayBuf = self
            .namespaces
            .iter()
            .map(|(db, coll)| rawdoc! {"ns": format!("{db}.{coll}")})
            .collect();
        let mut cmd = rawdoc! {
            "bulkWrite": 1,
            "ops": self.ops,
            "nsInfo": ns_info,
            "ordered": true,
            "errorsOnly": true,
        };
        cmd.append(cstr!("writeConcern"), write_concern);
        cmd
    }
}

/// The operation's entry in its `insert`/`update`/`delete` command; an empty
/// document for an aggregate, which is never part of one.
pub fn command_entry(op: &WriteOp) -> RawDocumentBuf {
    let mut d = RawDocumentBuf::new();
    match op {
        WriteOp::InsertOne { document, .. } => return document.clone(),
        WriteOp::ReplaceOne {
            filter,
            replacement,
            upsert,
            ..
        } => {
            d.append(cstr!("q"), filter);
            d.append(cstr!("u"), replacement);
            d.append(cstr!("upsert"), *upsert);
            d.append(cstr!("multi"), false);
        }
        WriteOp::UpdateOne(u) | WriteOp::UpdateMany(u) => {
            d.append(cstr!("q"), &u.filter);
            update_fields(&mut d, cstr!("u"), u, op);
        }
        WriteOp::DeleteOne { filter, .. } | WriteOp::DeleteMany { filter, .. } => {
            d.append(cstr!("q"), filter);
            d.append(
                cstr!("limit"),
                i32::from(matches!(op, WriteOp::DeleteOne { .. })),
            );
        }
        WriteOp::Aggregate { .. } => {}
    }
    d
}

/// The fields of an update after its filter: the modifications (its
/// operator document or its pipeline) under `mods`, `upsert`, `multi`
/// (an update-many) and `arrayFilters` when it has some.
fn update_fields(d: &mut RawDocumentBuf, mods: &CStr, u: &UpdateOp, op: &WriteOp) {
    match &u.update {
        Update::Operators(o) => d.append(mods, o),
        Update::Pipeline(stages) => d.append(mods, stages.iter().collect::<RawArrayBuf>()),
    }
    d.append(cstr!("upsert"), u.upsert);
    d.append(cstr!("multi"), matches!(op, WriteOp::UpdateMany(_)));
    if !u.array_filters.is_empty() {
        d.append(
            cstr!("arrayFilters"),
            u.array_filters.iter().collect::<RawArrayBuf>(),
        );
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
