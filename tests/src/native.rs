//! The Rust guest code called natively, in the host's terms: the bridge that
//! lets tests and benchmarks compare a Wasm guest with the same code run
//! without Wasm. The SDK's and the host's contract types are generated from
//! the same WIT, so the conversion is field by field.

use smt_host::contract as host;
use smt_host::engine::Message;

/// The SDK's view of a host message.
pub fn to_guest_message(msg: &Message) -> smt_guest::Message {
    smt_guest::Message {
        topic: msg.topic.clone(),
        partition: msg.partition,
        offset: msg.offset,
        timestamp_ms: msg.timestamp_ms,
        key: msg.key.clone(),
        value: msg.value.clone(),
        headers: msg
            .headers
            .iter()
            .map(|h| smt_guest::Header {
                key: h.key.clone(),
                value: h.value.clone(),
            })
            .collect(),
    }
}

/// A natively produced operation as the host would have received it from a guest.
pub fn to_host_op(op: smt_guest::WriteOp) -> host::WriteOp {
    use smt_guest::WriteOp as G;
    match op {
        G::InsertOne(o) => host::WriteOp::InsertOne(host::InsertOne {
            ns: ns(o.ns),
            document: doc(o.document),
        }),
        G::ReplaceOne(o) => host::WriteOp::ReplaceOne(host::ReplaceOne {
            ns: ns(o.ns),
            filter: doc(o.filter),
            replacement: doc(o.replacement),
            upsert: o.upsert,
        }),
        G::UpdateOne(u) => host::WriteOp::UpdateOne(update(u)),
        G::UpdateMany(u) => host::WriteOp::UpdateMany(update(u)),
        G::DeleteOne(d) => host::WriteOp::DeleteOne(host::Delete {
            ns: ns(d.ns),
            filter: doc(d.filter),
        }),
        G::DeleteMany(d) => host::WriteOp::DeleteMany(host::Delete {
            ns: ns(d.ns),
            filter: doc(d.filter),
        }),
        G::Aggregate(a) => host::WriteOp::Aggregate(host::Aggregate {
            ns: ns(a.ns),
            pipeline: a.pipeline.into_iter().map(doc).collect(),
        }),
    }
}

fn ns(n: smt_guest::Namespace) -> host::Namespace {
    host::Namespace {
        database: n.database,
        collection: n.collection,
    }
}

fn doc(d: smt_guest::Document) -> host::Document {
    match d {
        smt_guest::Document::Json(s) => host::Document::Json(s),
        smt_guest::Document::Bson(b) => host::Document::Bson(b),
    }
}

fn update(u: smt_guest::Update) -> host::Update {
    host::Update {
        ns: ns(u.ns),
        filter: doc(u.filter),
        update: match u.update {
            smt_guest::UpdateBody::Operators(d) => host::UpdateBody::Operators(doc(d)),
            smt_guest::UpdateBody::Pipeline(stages) => {
                host::UpdateBody::Pipeline(stages.into_iter().map(doc).collect())
            }
        },
        upsert: u.upsert,
        array_filters: u.array_filters.into_iter().map(doc).collect(),
    }
}

/// The records of a fixture file under `tests/fixtures/debezium/`.
pub fn fixture(name: &str) -> Vec<Message> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/debezium")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(n, l)| {
            smt_host::records::parse_line(l)
                .unwrap_or_else(|e| panic!("{}:{}: {e}", path.display(), n + 1))
        })
        .collect()
}
