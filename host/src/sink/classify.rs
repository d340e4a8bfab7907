//! Which MongoDB errors are worth retrying, which belong to one operation,
//! and which say the server refuses every write (not the records' fault).
//!
//! Only an explicit allow-list of data errors ([`is_data_code`]) fails a
//! record: anything else the server says about a write — unauthorized,
//! quota exceeded, out of disk, an unknown code — is retried with backoff
//! and never sent through the record error policy, so a server-wide problem
//! cannot empty a topic into the dead-letter topic.

use bson::Document;
use mongodb::error::{Error, ErrorKind, WriteFailure};

/// How an attempt to write a slice of operations failed.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// Retry: the network, server selection, a primary change, a write concern
    /// timeout… `done` leading operations are known to be acknowledged.
    Transient { done: usize, message: String },
    /// Operation `index` of the slice failed permanently (validation 121,
    /// duplicate key 11000, a bad update…); the operations before it are acknowledged.
    Op {
        index: usize,
        code: i32,
        message: String,
    },
    /// The request was refused as a whole for a data reason (a data error
    /// code, or the driver could not encode it); `done` leading operations
    /// are acknowledged. Split to find the operation at fault.
    Batch { done: usize, message: String },
    /// Neither transient nor about the data: the server refuses writes as
    /// such (authorization, quota, disk full, an unknown code). Retried with
    /// backoff like a transient error; no record fails for it.
    Server { done: usize, message: String },
    /// A configuration the server can never satisfy (an unknown or
    /// unsatisfiable write concern, 79/100): retrying is pointless; stop.
    Fatal { message: String },
}

impl Failure {
    /// The failure of a sub-slice starting at `start`, in terms of the whole slice.
    pub fn shifted(self, start: usize) -> Failure {
        match self {
            Failure::Transient { done, message } => Failure::Transient {
                done: start + done,
                message,
            },
            Failure::Op {
                index,
                code,
                message,
            } => Failure::Op {
                index: start + index,
                code,
                message,
            },
            Failure::Batch { done, message } => Failure::Batch {
                done: start + done,
                message,
            },
            Failure::Server { done, message } => Failure::Server {
                done: start + done,
                message,
            },
            fatal @ Failure::Fatal { .. } => fatal,
        }
    }
}

/// Server error codes that say "try again later", not "this operation is wrong".
pub fn is_transient_code(code: i32) -> bool {
    matches!(
        code,
        6 | 7
            | 24
            | 46
            | 50
            | 64
            | 89
            | 91
            | 112
            | 133
            | 134
            | 189
            | 262
            | 9001
            | 10107
            | 11600
            | 11602
            | 13435
            | 13436
            | 10058
            | 251
            | 279
            | 11601
    )
}

/// Server error codes that say "this operation's data is wrong": the only
/// ones that fail a record (documented in `docs/operations.md`).
pub fn is_data_code(code: i32) -> bool {
    matches!(
        code,
        2           // BadValue
            | 4     // NoSuchKey
            | 9     // FailedToParse (an unknown update operator…)
            | 14    // TypeMismatch ($inc on a string…)
            | 15    // Overflow
            | 16    // InvalidLength
            | 28    // PathNotViable
            | 30    // InvalidPath
            | 40    // ConflictingUpdateOperators
            | 52    // DollarPrefixedFieldName
            | 53    // InvalidIdField
            | 54    // NotSingleValueField
            | 55    // InvalidDBRef
            | 56    // EmptyFieldName
            | 57    // DottedFieldName
            | 66    // ImmutableField (_id changed by an update)
            | 121   // DocumentValidationFailure
            | 168   // InvalidPipelineOperator
            | 241   // ConversionFailure
            | 10334 // BSONObjectTooLarge
            | 11000 // DuplicateKey
            | 11001 // DuplicateKey (legacy)
            | 17419 // the document after the update is too large
            | 40324 // unrecognized pipeline stage
    )
}

/// Write concern codes that no retry can satisfy: UnknownReplWriteConcern
/// (79), UnsatisfiableWriteConcern (100).
fn is_write_concern_config_code(code: i32) -> bool {
    matches!(code, 79 | 100)
}

/// A server error code of a write: retry, fail the operation, or stop the
/// whole pipeline's progress (retried, never the record's fault).
fn by_code(code: i32, done: usize, index: usize, message: String) -> Failure {
    if is_transient_code(code) {
        Failure::Transient { done, message }
    } else if is_data_code(code) {
        Failure::Op {
            index,
            code,
            message,
        }
    } else {
        Failure::Server { done, message }
    }
}

/// Classifies a driver error of an ordered write of a slice of operations.
pub fn classify(e: &Error) -> Failure {
    let message = e.kind.to_string();
    let transient = |done| Failure::Transient {
        done,
        message: message.clone(),
    };
    if e.contains_label("RetryableWriteError")
        || e.contains_label("TransientTransactionError")
        || e.contains_label("SystemOverloadedError")
    {
        return transient(0);
    }
    let config_wce = |code: i32, msg: &str| {
        is_write_concern_config_code(code).then(|| Failure::Fatal {
            message: format!(
                "write concern error: {msg} (code {code}); check mongodb.write-concern"
            ),
        })
    };
    match e.kind.as_ref() {
        ErrorKind::Command(c) if is_write_concern_config_code(c.code) => {
            return config_wce(c.code, &c.message).expect("a config code")
        }
        ErrorKind::Write(WriteFailure::WriteConcernError(w)) => {
            if let Some(f) = config_wce(w.code, &w.message) {
                return f;
            }
        }
        ErrorKind::BulkWrite(b) => {
            if let Some(f) = b
                .write_concern_errors
                .iter()
                .find_map(|w| config_wce(w.code, &w.message))
            {
                return f;
            }
        }
        _ => {}
    }
    match e.kind.as_ref() {
        ErrorKind::Io(_)
        | ErrorKind::ConnectionPoolCleared { .. }
        | ErrorKind::ServerSelection { .. }
        | ErrorKind::DnsResolve { .. }
        | ErrorKind::InvalidResponse { .. }
        | ErrorKind::Authentication { .. } => transient(0),
        ErrorKind::Command(c) if is_transient_code(c.code) => transient(0),
        ErrorKind::Write(WriteFailure::WriteConcernError(_)) => transient(0),
        ErrorKind::Write(WriteFailure::WriteError(w)) => {
            by_code(w.code, 0, 0, format!("{} (code {})", w.message, w.code))
        }
        ErrorKind::BulkWrite(b) => match b.write_errors.iter().min_by_key(|(i, _)| **i) {
            Some((&index, w)) => by_code(
                w.code,
                index,
                index,
                format!("{} (code {})", w.message, w.code),
            ),
            // Only write concern errors: the writes were applied but not
            // acknowledged as asked; replaying them is safe.
            None => transient(0),
        },
        // The whole command refused: for a data reason, split it to find
        // the operation; otherwise it is not the records' fault.
        ErrorKind::Command(c) if is_data_code(c.code) => Failure::Batch { done: 0, message },
        ErrorKind::Command(c) => Failure::Server {
            done: 0,
            message: format!("{} (code {})", c.message, c.code),
        },
        // The driver could not encode the request: something in the data.
        ErrorKind::InvalidArgument { .. }
        | ErrorKind::BsonSerialization(_)
        | ErrorKind::Bson(_) => Failure::Batch { done: 0, message },
        _ => Failure::Server { done: 0, message },
    }
}

/// The failure of the operation at `index` of an ordered command (the ones
/// before it were written).
fn write_error(code: i32, index: usize, errmsg: Option<&str>) -> Failure {
    let message = errmsg.unwrap_or("write error");
    by_code(code, index, index, format!("{message} (code {code})"))
}

/// The failure in a reply of an ordered `insert`/`update`/`delete` command
/// (`ok: 1` with `writeErrors` or a `writeConcernError`), relative to the command.
pub fn classify_reply(reply: &Document) -> Option<Failure> {
    if let Ok(errors) = reply.get_array("writeErrors") {
        let first = errors
            .iter()
            .filter_map(|e| e.as_document())
            .min_by_key(|e| e.get_i32("index").unwrap_or(0));
        if let Some(e) = first {
            let index = e.get_i32("index").unwrap_or(0) as usize;
            let code = e.get_i32("code").unwrap_or(0);
            return Some(write_error(code, index, e.get_str("errmsg").ok()));
        }
    }
    // Applied but not acknowledged as asked: replay the command, unless
    // the write concern itself can never be satisfied.
    reply.get_document("writeConcernError").ok().map(|wce| {
        let code = wce.get_i32("code").unwrap_or(0);
        if is_write_concern_config_code(code) {
            Failure::Fatal {
                message: format!("write concern error: {wce}; check mongodb.write-concern"),
            }
        } else {
            Failure::Transient {
                done: 0,
                message: format!("write concern error: {wce}"),
            }
        }
    })
}

/// The failure in a reply of an ordered `bulkWrite` command with
/// `errorsOnly: true` (`ok: 1`; the failed operation in the cursor's first
/// batch as `{ok: 0, idx, code, errmsg}`, or a `writeConcernError`),
/// relative to the command.
pub fn classify_bulk_reply(reply: &Document) -> Option<Failure> {
    let errors = reply
        .get_document("cursor")
        .and_then(|c| c.get_array("firstBatch"))
        .map(|b| b.iter().filter_map(|e| e.as_document()).collect::<Vec<_>>())
        .unwrap_or_default();
    let number = |d: &Document, key: &str| {
        d.get(key)
            .and_then(|v| v.as_i32().or_else(|| v.as_i64().map(|n| n as i32)))
    };
    let first = errors
        .into_iter()
        .filter(|e| number(e, "ok") != Some(1) && e.get_f64("ok").ok() != Some(1.0))
        .min_by_key(|e| number(e, "idx").unwrap_or(0));
    if let Some(e) = first {
        let index = number(e, "idx").unwrap_or(0).max(0) as usize;
        let code = number(e, "code").unwrap_or(0);
        return Some(write_error(code, index, e.get_str("errmsg").ok()));
    }
    if let Some(failure) = classify_reply(reply) {
        return Some(failure);
    }
    // Errors counted but none in the first batch: nothing tells which
    // operations were written; replaying them all is safe.
    match number(reply, "nErrors") {
        Some(n) if n > 0 => Some(Failure::Transient {
            done: 0,
            message: format!("bulkWrite reported {n} errors without naming them"),
        }),
        _ => None,
    }
}

/// Classifies the error of one command that is one operation (an `aggregate`
/// with `$merge`): as [`classify`], except that a permanent server error is
/// that operation's, with its code.
pub fn classify_command(e: &Error) -> Failure {
    match (classify(e), e.kind.as_ref()) {
        (Failure::Batch { .. }, ErrorKind::Command(c)) => Failure::Op {
            index: 0,
            code: c.code,
            message: format!("{} (code {})", c.message, c.code),
        },
        (failure, _) => failure,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;
    use mongodb::error::{BulkWriteError, CommandError, WriteConcernError, WriteError};

    fn command(d: Document) -> Error {
        let c: CommandError = bson::deserialize_from_document(d).unwrap();
        Error::from(ErrorKind::Command(c))
    }

    fn write_error(d: Document) -> Error {
        let w: WriteError = bson::deserialize_from_document(d).unwrap();
        Error::from(ErrorKind::Write(WriteFailure::WriteError(w)))
    }

    fn kind(f: &Failure) -> &'static str {
        match f {
            Failure::Transient { .. } => "transient",
            Failure::Op { .. } => "op",
            Failure::Batch { .. } => "batch",
            Failure::Server { .. } => "server",
            Failure::Fatal { .. } => "fatal",
        }
    }

    #[test]
    fn a_bulk_write_reply_names_the_failed_operation() {
        let reply = |batch: Vec<Document>, extra: Document| {
            let mut r = doc! {"ok": 1, "nErrors": batch.len() as i32,
            "cursor": {"id": 0_i64, "firstBatch": batch, "ns": "admin.$cmd.bulkWrite"}};
            r.extend(extra);
            r
        };
        assert_eq!(classify_bulk_reply(&reply(vec![], doc! {})), None);
        let dup = reply(
            vec![doc! {"ok": 0, "idx": 3, "code": 11000, "errmsg": "E11000 duplicate key"}],
            doc! {},
        );
        assert_eq!(
            classify_bulk_reply(&dup),
            Some(Failure::Op {
                index: 3,
                code: 11000,
                message: "E11000 duplicate key (code 11000)".into()
            })
        );
        let busy = reply(
            vec![doc! {"ok": 0.0, "idx": 2_i64, "code": 91, "errmsg": "shutting down"}],
            doc! {},
        );
        assert!(matches!(
            classify_bulk_reply(&busy),
            Some(Failure::Transient { done: 2, .. })
        ));
        let wce = reply(
            vec![],
            doc! {"writeConcernError": {"code": 64, "errmsg": "waiting for replication timed out"}},
        );
        assert!(matches!(
            classify_bulk_reply(&wce),
            Some(Failure::Transient { done: 0, .. })
        ));
        let unnamed = doc! {"ok": 1, "nErrors": 1, "cursor": {"id": 7_i64, "firstBatch": []}};
        assert!(matches!(
            classify_bulk_reply(&unnamed),
            Some(Failure::Transient { done: 0, .. })
        ));
    }

    #[test]
    fn server_wide_command_errors_fail_no_record() {
        // As the server sends them (`ok: 0` replies).
        for (code, name, msg) in [
            (
                13,
                "Unauthorized",
                "not authorized on db to execute command { insert: ... }",
            ),
            (
                8000,
                "AtlasError",
                "you are over your space quota, using 513 MB of 512 MB",
            ),
            (14031, "OutOfDiskSpace", "Cannot write: disk full"),
            (12345, "", "something new"),
        ] {
            let e = command(doc! {"code": code, "codeName": name, "errmsg": msg});
            let f = classify(&e);
            assert_eq!(kind(&f), "server", "{code}: {f:?}");
            assert_eq!(kind(&classify_command(&e)), "server", "{code}");
        }
    }

    #[test]
    fn data_command_errors_are_split_or_fail_their_operation() {
        let e = command(
            doc! {"code": 10334, "codeName": "BSONObjectTooLarge", "errmsg": "object to insert too large"},
        );
        assert_eq!(kind(&classify(&e)), "batch");
        assert!(matches!(
            classify_command(&e),
            Failure::Op { code: 10334, .. }
        ));
    }

    #[test]
    fn transient_errors_are_retried() {
        let e = command(
            doc! {"code": 10107, "codeName": "NotWritablePrimary", "errmsg": "not primary"},
        );
        assert_eq!(kind(&classify(&e)), "transient");
        let e = Error::from(ErrorKind::Io(std::sync::Arc::new(std::io::Error::from(
            std::io::ErrorKind::ConnectionReset,
        ))));
        assert_eq!(kind(&classify(&e)), "transient");
        let wce: WriteConcernError = bson::deserialize_from_document(
            doc! {"code": 64, "codeName": "WriteConcernFailed", "errmsg": "waiting for replication timed out"},
        )
        .unwrap();
        let e = Error::from(ErrorKind::Write(WriteFailure::WriteConcernError(wce)));
        assert_eq!(kind(&classify(&e)), "transient");
    }

    #[test]
    fn write_errors_by_code() {
        let dup = write_error(
            doc! {"code": 11000, "codeName": "DuplicateKey", "errmsg": "E11000 duplicate key error collection: db.c index: _id_ dup key: { _id: 1 }"},
        );
        assert!(matches!(
            classify(&dup),
            Failure::Op {
                index: 0,
                code: 11000,
                ..
            }
        ));
        let validation = write_error(
            doc! {"code": 121, "codeName": "DocumentValidationFailure", "errmsg": "Document failed validation"},
        );
        assert!(matches!(
            classify(&validation),
            Failure::Op { code: 121, .. }
        ));
        let unauthorized =
            write_error(doc! {"code": 13, "codeName": "Unauthorized", "errmsg": "not authorized"});
        assert_eq!(kind(&classify(&unauthorized)), "server");
        let shutdown = write_error(
            doc! {"code": 91, "codeName": "ShutdownInProgress", "errmsg": "shutting down"},
        );
        assert_eq!(kind(&classify(&shutdown)), "transient");
    }

    #[test]
    fn bulk_write_errors_name_the_first_failed_index() {
        let mut b = BulkWriteError::default();
        for (i, code) in [(5usize, 121), (2, 11000)] {
            let w: mongodb::error::WriteError =
                bson::deserialize_from_document(doc! {"code": code, "errmsg": "bad"}).unwrap();
            b.write_errors.insert(i, w);
        }
        let e = Error::from(ErrorKind::BulkWrite(b));
        assert!(matches!(
            classify(&e),
            Failure::Op {
                index: 2,
                code: 11000,
                ..
            }
        ));
        let mut b = BulkWriteError::default();
        let w: WriteError =
            bson::deserialize_from_document(doc! {"code": 13, "errmsg": "not authorized"}).unwrap();
        b.write_errors.insert(3, w);
        let e = Error::from(ErrorKind::BulkWrite(b));
        assert_eq!(
            classify(&e),
            Failure::Server {
                done: 3,
                message: "not authorized (code 13)".into()
            }
        );
        // Only a write concern error: applied, replay is safe.
        let e = Error::from(ErrorKind::BulkWrite(BulkWriteError::default()));
        assert_eq!(kind(&classify(&e)), "transient");
    }

    #[test]
    fn command_replies_of_the_per_collection_mode() {
        // Real replies of `insert` with `ordered: true`.
        let dup = doc! {"n": 2, "writeErrors": [
            {"index": 2, "code": 11000, "errmsg": "E11000 duplicate key error collection: d.c index: _id_ dup key: { _id: 7 }"}
        ], "ok": 1.0};
        assert!(matches!(
            classify_reply(&dup),
            Some(Failure::Op {
                index: 2,
                code: 11000,
                ..
            })
        ));
        let denied = doc! {"n": 0, "writeErrors": [{"index": 0, "code": 13, "errmsg": "not authorized"}], "ok": 1.0};
        assert!(matches!(
            classify_reply(&denied),
            Some(Failure::Server { done: 0, .. })
        ));
        let primary = doc! {"n": 1, "writeErrors": [{"index": 1, "code": 10107, "errmsg": "not primary"}], "ok": 1.0};
        assert!(matches!(
            classify_reply(&primary),
            Some(Failure::Transient { done: 1, .. })
        ));
        let wce = doc! {"n": 3, "writeConcernError": {"code": 64, "errmsg": "waiting for replication timed out"}, "ok": 1.0};
        assert!(matches!(
            classify_reply(&wce),
            Some(Failure::Transient { done: 0, .. })
        ));
        assert_eq!(classify_reply(&doc! {"n": 3, "ok": 1.0}), None);
        let unsatisfiable = doc! {"n": 3, "writeConcernError": {"code": 100, "codeName": "UnsatisfiableWriteConcern", "errmsg": "Not enough data-bearing nodes"}, "ok": 1.0};
        assert!(matches!(
            classify_reply(&unsatisfiable),
            Some(Failure::Fatal { .. })
        ));
    }

    #[test]
    fn an_unsatisfiable_write_concern_stops() {
        let wce: WriteConcernError = bson::deserialize_from_document(
            doc! {"code": 79, "codeName": "UnknownReplWriteConcern", "errmsg": "unrecognized write concern mode: dc2"},
        )
        .unwrap();
        let e = Error::from(ErrorKind::Write(WriteFailure::WriteConcernError(
            wce.clone(),
        )));
        assert_eq!(kind(&classify(&e)), "fatal");
        let mut b = BulkWriteError::default();
        b.write_concern_errors.push(wce);
        assert_eq!(
            kind(&classify(&Error::from(ErrorKind::BulkWrite(b)))),
            "fatal"
        );
        let e = command(
            doc! {"code": 100, "codeName": "UnsatisfiableWriteConcern", "errmsg": "Not enough data-bearing nodes"},
        );
        assert_eq!(kind(&classify(&e)), "fatal");
    }

    #[test]
    fn codes() {
        assert!(is_transient_code(10107)); // NotWritablePrimary
        assert!(is_transient_code(64)); // WriteConcernFailed (wtimeout)
        assert!(!is_transient_code(11000)); // duplicate key
        assert!(!is_transient_code(121)); // document validation
        assert!(is_data_code(11000) && is_data_code(121) && is_data_code(10334));
        assert!(!is_data_code(13) && !is_data_code(8000) && !is_data_code(10107));
    }
}
