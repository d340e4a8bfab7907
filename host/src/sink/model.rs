//! A [`WriteOp`] rendered for MongoDB, in the two shapes the sink sends: a
//! driver model of the multi-namespace `bulkWrite` ([`bulk_model`]) and an
//! entry of a per-collection `insert`/`update`/`delete` command
//! ([`command_entry`]). Both read an update through the same helpers, so the
//! two paths cannot disagree on what an update means.

use bson::{doc, Bson, Document};
use mongodb::options::{
    DeleteManyModel, DeleteOneModel, InsertOneModel, ReplaceOneModel, UpdateManyModel,
    UpdateModifications, UpdateOneModel, WriteModel,
};

use crate::writeop::{Namespace, Update, UpdateOp, WriteOp};

/// The driver's namespace of `ns`, `default_db` when it names no database.
pub fn namespace(ns: &Namespace, default_db: &str) -> mongodb::Namespace {
    mongodb::Namespace::new(ns.database.as_deref().unwrap_or(default_db), &ns.collection)
}

/// The driver's model for a multi-namespace `bulkWrite`; `None` for
/// [`WriteOp::Aggregate`], which runs as its own command.
pub fn bulk_model(op: &WriteOp, default_db: &str) -> Option<WriteModel> {
    let ns = namespace(op.namespace(), default_db);
    // The driver's update models are two types with the same builder.
    macro_rules! update_model {
        ($model:ident, $variant:ident, $u:expr) => {
            WriteModel::$variant(
                $model::builder()
                    .namespace(ns)
                    .filter($u.filter.clone())
                    .update(modifications($u))
                    .upsert($u.upsert)
                    .array_filters(array_filters($u))
                    .build(),
            )
        };
    }
    Some(match op {
        WriteOp::InsertOne { document, .. } => WriteModel::InsertOne(
            InsertOneModel::builder()
                .namespace(ns)
                .document(document.clone())
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
                .filter(filter.clone())
                .replacement(replacement.clone())
                .upsert(*upsert)
                .build(),
        ),
        WriteOp::UpdateOne(u) => update_model!(UpdateOneModel, UpdateOne, u),
        WriteOp::UpdateMany(u) => update_model!(UpdateManyModel, UpdateMany, u),
        WriteOp::DeleteOne { filter, .. } => WriteModel::DeleteOne(
            DeleteOneModel::builder()
                .namespace(ns)
                .filter(filter.clone())
                .build(),
        ),
        WriteOp::DeleteMany { filter, .. } => WriteModel::DeleteMany(
            DeleteManyModel::builder()
                .namespace(ns)
                .filter(filter.clone())
                .build(),
        ),
        WriteOp::Aggregate { .. } => return None,
    })
}

/// The operation's entry in its `insert`/`update`/`delete` command; an empty
/// document for an aggregate, which is never part of one.
pub fn command_entry(op: &WriteOp) -> Document {
    match op {
        WriteOp::InsertOne { document, .. } => document.clone(),
        WriteOp::ReplaceOne {
            filter,
            replacement,
            upsert,
            ..
        } => {
            doc! {"q": filter.clone(), "u": replacement.clone(), "upsert": *upsert, "multi": false}
        }
        WriteOp::UpdateOne(u) | WriteOp::UpdateMany(u) => {
            let u_field = match &u.update {
                Update::Operators(d) => Bson::Document(d.clone()),
                Update::Pipeline(p) => Bson::Array(p.iter().cloned().map(Bson::Document).collect()),
            };
            let mut d = doc! {
                "q": u.filter.clone(),
                "u": u_field,
                "upsert": u.upsert,
                "multi": matches!(op, WriteOp::UpdateMany(_)),
            };
            if let Some(filters) = array_filters(u) {
                d.insert("arrayFilters", filters);
            }
            d
        }
        WriteOp::DeleteOne { filter, .. } => doc! {"q": filter.clone(), "limit": 1},
        WriteOp::DeleteMany { filter, .. } => doc! {"q": filter.clone(), "limit": 0},
        WriteOp::Aggregate { .. } => Document::new(),
    }
}

fn modifications(u: &UpdateOp) -> UpdateModifications {
    match &u.update {
        Update::Operators(d) => UpdateModifications::Document(d.clone()),
        Update::Pipeline(stages) => UpdateModifications::Pipeline(stages.clone()),
    }
}

fn array_filters(u: &UpdateOp) -> Option<Vec<Bson>> {
    (!u.array_filters.is_empty()).then(|| {
        u.array_filters
            .iter()
            .cloned()
            .map(Bson::Document)
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update_many() -> WriteOp {
        WriteOp::UpdateMany(UpdateOp {
            ns: Namespace {
                database: Some("shop".into()),
                collection: "orders".into(),
            },
            filter: doc! {"_id": 1},
            update: Update::Pipeline(vec![doc! {"$set": {"n": {"$add": ["$n", 1]}}}]),
            upsert: true,
            array_filters: vec![doc! {"e.id": 3}],
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
            command_entry(&update_many()),
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
    fn an_aggregate_has_no_bulk_model() {
        let op = WriteOp::Aggregate {
            ns: Namespace {
                database: None,
                collection: "c".into(),
            },
            pipeline: vec![doc! {"$merge": {"into": "c"}}],
        };
        assert!(bulk_model(&op, "db").is_none());
        assert_eq!(
            namespace(op.namespace(), "db"),
            mongodb::Namespace::new("db", "c")
        );
    }
}
