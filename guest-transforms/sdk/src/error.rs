//! Constructors and trait impls for the contract's [`TransformError`].

use crate::{ErrorKind, TransformError};
use std::fmt;

impl TransformError {
    /// The record cannot be mapped (malformed, missing fields, unknown op):
    /// the host dead-letters it.
    pub fn bad_input(message: impl Into<String>) -> Self {
        TransformError {
            kind: ErrorKind::BadInput,
            message: message.into(),
        }
    }

    /// The record is well formed but the transform does not handle it.
    pub fn unsupported(message: impl Into<String>) -> Self {
        TransformError {
            kind: ErrorKind::Unsupported,
            message: message.into(),
        }
    }

    /// A bug or an unexpected state inside the transform.
    pub fn internal(message: impl Into<String>) -> Self {
        TransformError {
            kind: ErrorKind::Internal,
            message: message.into(),
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::BadInput => "bad-input",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Internal => "internal",
        })
    }
}
