//! Which MongoDB errors are worth retrying, and which belong to one operation.

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
    /// The request was refused as a whole and not for a transient reason;
    /// `done` leading operations are acknowledged.
    Batch { done: usize, message: String },
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
            if is_transient_code(w.code) {
                transient(0)
            } else {
                Failure::Op {
                    index: 0,
                    code: w.code,
                    message: w.message.clone(),
                }
            }
        }
        ErrorKind::BulkWrite(b) => match b.write_errors.iter().min_by_key(|(i, _)| **i) {
            Some((&index, w)) if is_transient_code(w.code) => transient(index),
            Some((&index, w)) => Failure::Op {
                index,
                code: w.code,
                message: format!("{} (code {})", w.message, w.code),
            },
            // Only write concern errors: the writes were applied but not
            // acknowledged as asked; replaying them is safe.
            None => transient(0),
        },
        _ => Failure::Batch { done: 0, message },
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

    #[test]
    fn codes() {
        assert!(is_transient_code(10107)); // NotWritablePrimary
        assert!(is_transient_code(64)); // WriteConcernFailed (wtimeout)
        assert!(!is_transient_code(11000)); // duplicate key
        assert!(!is_transient_code(121)); // document validation
    }
}
