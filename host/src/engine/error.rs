//! Typed errors of the engine. Callers branch on them: a [`LoadError`] stops
//! a transform from being (re)loaded, a [`CallError`] is about one record and
//! goes through the record error policy.

use std::fmt;
use std::path::PathBuf;

/// Why a module could not become a usable transform.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read transform module {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("transform `{name}` is not a valid WebAssembly component: {reason}")]
    Compile { name: String, reason: String },
    /// It implements none of the contract versions the host runs; `reason`
    /// is what the newest one is missing.
    #[error("transform `{name}` does not implement the smt:transform contract (0.2.0 or 0.1.0): {reason}")]
    Contract { name: String, reason: String },
    #[error("transform `{name}` failed to initialise: {reason}")]
    Init { name: String, reason: String },
}

/// What went wrong in one call, as counted in metrics and written in DLQ headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// The guest returned `bad-input`.
    BadInput,
    /// The guest returned `unsupported`.
    Unsupported,
    /// The guest returned `internal`.
    Internal,
    /// The guest trapped (a panic, an unreachable, a bad memory access).
    Trap,
    /// The call ran past its deadline.
    Timeout,
    /// The guest tried to grow its memory past the cap.
    MemoryLimit,
    /// The guest returned more than the output caps allow.
    OutputTooLarge,
    /// The guest returned an operation the host cannot execute (invalid JSON/BSON, a bad update).
    InvalidOperation,
    /// A fresh instance could not be created or initialised for this record.
    Instantiate,
    /// An operation names a namespace `mongodb.allowed-namespaces` does not allow.
    ForbiddenNamespace,
}

impl FailureKind {
    /// A stable, low-cardinality name for metrics labels and DLQ headers.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::BadInput => "bad-input",
            FailureKind::Unsupported => "unsupported",
            FailureKind::Internal => "internal",
            FailureKind::Trap => "trap",
            FailureKind::Timeout => "timeout",
            FailureKind::MemoryLimit => "memory-limit",
            FailureKind::OutputTooLarge => "output-too-large",
            FailureKind::InvalidOperation => "invalid-operation",
            FailureKind::Instantiate => "instantiate",
            FailureKind::ForbiddenNamespace => "forbidden-namespace",
        }
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One record could not be transformed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("transform `{transform}` failed on {topic}/{partition}@{offset}: {kind}: {message}")]
pub struct CallError {
    pub transform: String,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub kind: FailureKind,
    pub message: String,
}
