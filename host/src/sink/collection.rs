//! Per-collection ordered writes for servers without the multi-namespace
//! `bulkWrite` command: contiguous operations on one collection of one kind
//! become one `insert`, `update` or `delete` command with `ordered: true`;
//! an `aggregate` operation is a command of its own.

use bson::raw::{cstr, RawArrayBuf};
use bson::rawdoc;

use super::classify::{classify, classify_reply, Failure};
use super::model::{command_entry, namespace};
use super::Sink;
use crate::writeop::WriteOp;

/// Most operations in one command (well under the server's maxWriteBatchSize).
const MAX_OPS_PER_COMMAND: usize = 1000;
/// Rough cap of the documents' size in one command (the message limit is 48 MB).
const MAX_BYTES_PER_COMMAND: usize = 8 << 20;

#[derive(PartialEq, Clone, Copy)]
enum Kind {
    Insert,
    Update,
    Delete,
}

/// The command an operation joins; `None` for an aggregate (a command alone).
fn kind(op: &WriteOp) -> Option<Kind> {
    match op {
        WriteOp::InsertOne { .. } => Some(Kind::Insert),
        WriteOp::ReplaceOne { .. } | WriteOp::UpdateOne(_) | WriteOp::UpdateMany(_) => {
            Some(Kind::Update)
        }
        WriteOp::DeleteOne { .. } | WriteOp::DeleteMany { .. } => Some(Kind::Delete),
        WriteOp::Aggregate { .. } => None,
    }
}

/// Writes `ops` in order, one command per run; the first failure ends the attempt.
pub(super) async fn write(sink: &Sink, ops: &[&WriteOp]) -> Result<(), Failure> {
    let mut start = 0;
    while start < ops.len() {
        let Some(k) = kind(ops[start]) else {
            if let WriteOp::Aggregate { ns, pipeline } = ops[start] {
                sink.aggregate(ns, pipeline)
                    .await
                    .map_err(|f| f.shifted(start))?;
            }
            start += 1;
            continue;
        };
        let ns = namespace(ops[start].namespace(), sink.default_db());
        let mut end = start;
        let mut bytes = 0;
        let mut entries = RawArrayBuf::new();
        while end < ops.len()
            && end - start < MAX_OPS_PER_COMMAND
            && kind(ops[end]) == Some(k)
            && namespace(ops[end].namespace(), sink.default_db()) == ns
            && (end == start || bytes < MAX_BYTES_PER_COMMAND)
        {
            let e = command_entry(ops[end]);
            bytes += e.as_bytes().len();
            entries.push(e);
            end += 1;
        }
        let (verb, field) = match k {
            Kind::Insert => (cstr!("insert"), cstr!("documents")),
            Kind::Update => (cstr!("update"), cstr!("updates")),
            Kind::Delete => (cstr!("delete"), cstr!("deletes")),
        };
        let mut cmd = rawdoc! {};
        cmd.append(verb, ns.coll.as_str());
        cmd.append(field, entries);
        cmd.append(cstr!("ordered"), true);
        cmd.append(cstr!("writeConcern"), sink.write_concern_doc());
        let reply = match sink.client().database(&ns.db).run_raw_command(cmd).await {
            Ok(reply) => reply,
            // `done` of a failed command is 0: nothing of it is known to be written.
            Err(e) => return Err(classify(&e).shifted(start)),
        };
        if let Some(failure) = classify_reply(&reply) {
            return Err(failure.shifted(start));
        }
        start = end;
    }
    Ok(())
}
