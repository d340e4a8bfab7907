//! The contract between the host and a transform, `smt:transform`: the one
//! place that runs `bindgen!`, over the current contract in `wit/` and over the
//! frozen 0.1.0 contract in `wit/history/0.1.0` ([`v0_1_0`]), whose guests the
//! host still runs. The source builds [`Message`]s, the engine calls guests,
//! `writeop` parses their [`WriteOp`]s: all of them depend downward on this
//! module. 0.1.0 values are converted to the current types at the boundary
//! (the `From` impls below; 0.2.0 only added a case).

wasmtime::component::bindgen!({
    world: "transform",
    path: "../wit",
});

/// The `smt:transform@0.1.0` world: the six CRUD operations, no `aggregate`.
pub mod v0_1_0 {
    wasmtime::component::bindgen!({
        world: "transform",
        path: "../wit/history/0.1.0",
    });

    // `Message`, `WriteOp` and `TransformError` are in scope: the world uses them.
    pub use smt::transform::types::{Delete, Document, ErrorKind, Namespace, Update, UpdateBody};
}

pub use smt::transform::log::Level;
pub use smt::transform::types::{
    Aggregate, Delete, Document, ErrorKind, Header, InsertOne, Namespace, ReplaceOne, Update,
    UpdateBody,
};

impl From<&Message> for v0_1_0::Message {
    fn from(m: &Message) -> Self {
        v0_1_0::Message {
            topic: m.topic.clone(),
            partition: m.partition,
            offset: m.offset,
            timestamp_ms: m.timestamp_ms,
            key: m.key.clone(),
            value: m.value.clone(),
            headers: m
                .headers
                .iter()
                .map(|h| v0_1_0::smt::transform::types::Header {
                    key: h.key.clone(),
                    value: h.value.clone(),
                })
                .collect(),
        }
    }
}

impl From<v0_1_0::Document> for Document {
    fn from(d: v0_1_0::Document) -> Self {
        match d {
            v0_1_0::Document::Json(s) => Document::Json(s),
            v0_1_0::Document::Bson(b) => Document::Bson(b),
        }
    }
}

impl From<v0_1_0::Namespace> for Namespace {
    fn from(n: v0_1_0::Namespace) -> Self {
        Namespace {
            database: n.database,
            collection: n.collection,
        }
    }
}

impl From<v0_1_0::Update> for Update {
    fn from(u: v0_1_0::Update) -> Self {
        Update {
            ns: u.ns.into(),
            filter: u.filter.into(),
            update: match u.update {
                v0_1_0::UpdateBody::Operators(d) => UpdateBody::Operators(d.into()),
                v0_1_0::UpdateBody::Pipeline(stages) => {
                    UpdateBody::Pipeline(stages.into_iter().map(Into::into).collect())
                }
            },
            upsert: u.upsert,
            array_filters: u.array_filters.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<v0_1_0::Delete> for Delete {
    fn from(d: v0_1_0::Delete) -> Self {
        Delete {
            ns: d.ns.into(),
            filter: d.filter.into(),
        }
    }
}

impl From<v0_1_0::WriteOp> for WriteOp {
    fn from(op: v0_1_0::WriteOp) -> Self {
        match op {
            v0_1_0::WriteOp::InsertOne(o) => WriteOp::InsertOne(InsertOne {
                ns: o.ns.into(),
                document: o.document.into(),
            }),
            v0_1_0::WriteOp::ReplaceOne(o) => WriteOp::ReplaceOne(ReplaceOne {
                ns: o.ns.into(),
                filter: o.filter.into(),
                replacement: o.replacement.into(),
                upsert: o.upsert,
            }),
            v0_1_0::WriteOp::UpdateOne(u) => WriteOp::UpdateOne(u.into()),
            v0_1_0::WriteOp::UpdateMany(u) => WriteOp::UpdateMany(u.into()),
            v0_1_0::WriteOp::DeleteOne(d) => WriteOp::DeleteOne(d.into()),
            v0_1_0::WriteOp::DeleteMany(d) => WriteOp::DeleteMany(d.into()),
        }
    }
}

impl From<v0_1_0::TransformError> for TransformError {
    fn from(e: v0_1_0::TransformError) -> Self {
        TransformError {
            kind: match e.kind {
                v0_1_0::ErrorKind::BadInput => ErrorKind::BadInput,
                v0_1_0::ErrorKind::Unsupported => ErrorKind::Unsupported,
                v0_1_0::ErrorKind::Internal => ErrorKind::Internal,
            },
            message: e.message,
        }
    }
}

impl From<v0_1_0::smt::transform::log::Level> for Level {
    fn from(l: v0_1_0::smt::transform::log::Level) -> Self {
        use v0_1_0::smt::transform::log::Level as Old;
        match l {
            Old::Trace => Level::Trace,
            Old::Debug => Level::Debug,
            Old::Info => Level::Info,
            Old::Warn => Level::Warn,
            Old::Error => Level::Error,
        }
    }
}
