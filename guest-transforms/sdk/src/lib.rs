//! Write smt transforms in Rust.
//!
//! A transform maps one Kafka record to the MongoDB write operations that
//! apply it. With this crate it is one trait implementation and one macro:
//!
//! ```
//! use smt_guest::{ops, Message, TransformError, WriteOp};
//!
//! struct Echo {
//!     collection: String,
//! }
//!
//! impl smt_guest::Transform for Echo {
//!     fn init(config: &str) -> Result<Self, String> {
//!         let cfg: serde_json::Value = serde_json::from_str(config).map_err(|e| e.to_string())?;
//!         let collection = cfg["collection"].as_str().unwrap_or("echo").to_owned();
//!         Ok(Echo { collection })
//!     }
//!
//!     fn transform(&self, msg: &Message) -> Result<Vec<WriteOp>, TransformError> {
//!         let doc = serde_json::json!({ "topic": msg.topic, "offset": msg.offset });
//!         Ok(vec![ops::insert_one(self.collection.as_str(), doc)])
//!     }
//! }
//!
//! smt_guest::export_transform!(Echo);
//! # fn main() {}
//! ```
//!
//! The same code compiles natively, so a transform is unit-tested with plain
//! `cargo test` (call `Transform::init` and `Transform::transform` directly),
//! and for `wasm32-wasip2` / `wasm32-unknown-unknown`, where
//! [`export_transform!`] exports it as a component of the
//! `smt:transform@0.2.0` world (the host also still runs components built
//! with earlier versions of this crate, against 0.1.0).
//!
//! - [`debezium`]: the Debezium envelope (JSON converter, with or without
//!   schemas) and schema-aware decoding of column values into MongoDB
//!   Extended JSON (Decimal128, dates, binary, ...).
//! - [`ops`]: builders for the write operations (the six CRUD operations and
//!   [`ops::aggregate`]).
//! - [`log`]: the host's structured log.

// Lets the generated bindings (and the macros) name this crate as
// `smt_guest` from inside it as well as from a user's crate.
extern crate self as smt_guest;

#[doc(hidden)]
pub use wit_bindgen as __wit_bindgen;

/// The bindings generated from `wit/transform.wit`.
#[doc(hidden)]
#[allow(clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "transform",
        path: "../../wit",
        pub_export_macro: true,
        export_macro_name: "__export_transform_world",
        default_bindings_module: "smt_guest::bindings",
        runtime_path: "smt_guest::__wit_bindgen::rt",
        additional_derives: [PartialEq],
    });
}

mod alloc;
pub mod bsonbytes;
mod bsonout;
pub mod debezium;
mod error;
mod jsontext;

/// See [`alloc`]: size classes instead of dlmalloc for small blocks.
#[cfg(all(
    target_arch = "wasm32",
    not(target_feature = "atomics"),
    feature = "allocator"
))]
#[global_allocator]
static ALLOCATOR: alloc::Global = alloc::Global::new();

/// The README's example compiles.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
pub mod log;
pub mod ops;

pub use bindings::smt::transform::types::{
    Aggregate, Delete, Document, ErrorKind, Header, InsertOne, Message, Namespace, ReplaceOne,
    TransformError, Update, UpdateBody, WriteOp,
};

impl Message {
    /// A record on partition 0 at offset 0, without timestamp or headers:
    /// for unit tests. `key`/`value` `None` are a null key / a tombstone.
    pub fn new(topic: impl Into<String>, key: Option<&[u8]>, value: Option<&[u8]>) -> Self {
        Message {
            topic: topic.into(),
            partition: 0,
            offset: 0,
            timestamp_ms: None,
            key: key.map(<[u8]>::to_vec),
            value: value.map(<[u8]>::to_vec),
            headers: Vec::new(),
        }
    }

    /// The same record with another offset.
    pub fn with_offset(mut self, offset: i64) -> Self {
        self.offset = offset;
        self
    }

    /// The same record with one more header.
    pub fn with_header(mut self, key: impl Into<String>, value: Option<&[u8]>) -> Self {
        self.headers.push(Header {
            key: key.into(),
            value: value.map(<[u8]>::to_vec),
        });
        self
    }

    /// The value of the first header with this key (`Some(None)`: a null header).
    pub fn header(&self, key: &str) -> Option<Option<&[u8]>> {
        self.headers
            .iter()
            .find(|h| h.key == key)
            .map(|h| h.value.as_deref())
    }
}

/// A transform: created once per instance from its configuration, then
/// called once per record.
///
/// Implement it and hand the type to [`export_transform!`].
pub trait Transform: Sized + 'static {
    /// Builds the transform from its configuration (JSON text; `{}` when none
    /// is configured). An error rejects the configuration: say what is wrong.
    fn init(config: &str) -> Result<Self, String>;

    /// Maps one record to the write operations that apply it, in order. An
    /// empty list filters the record out.
    fn transform(&self, msg: &Message) -> Result<Vec<WriteOp>, TransformError>;
}

/// Exports a [`Transform`] as the component's `init` and `transform`.
///
/// `init` creates the one instance the component keeps for its life (the
/// host calls it once per instance); `transform` before a successful `init`
/// returns an `internal` error. Natively the macro expands to nothing, so the
/// crate stays unit-testable.
#[macro_export]
macro_rules! export_transform {
    ($t:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            static __SMT_INSTANCE: $crate::__rt::Slot<$t> = $crate::__rt::Slot::new();

            struct __SmtGuestExport;

            impl $crate::bindings::Guest for __SmtGuestExport {
                fn init(config: ::std::string::String) -> ::std::result::Result<(), ::std::string::String> {
                    $crate::__rt::init::<$t>(&__SMT_INSTANCE, &config)
                }

                fn transform(
                    msg: $crate::Message,
                ) -> ::std::result::Result<::std::vec::Vec<$crate::WriteOp>, $crate::TransformError> {
                    $crate::__rt::transform::<$t>(&__SMT_INSTANCE, &msg)
                }
            }

            $crate::bindings::__export_transform_world!(__SmtGuestExport with_types_in $crate::bindings);
        };
    };
}

/// Support for [`export_transform!`]; not a public API.
#[doc(hidden)]
pub mod __rt {
    use super::{Message, Transform, TransformError, WriteOp};
    use std::cell::UnsafeCell;

    /// The instance created by `init`, kept for the component's life.
    pub struct Slot<T>(UnsafeCell<Option<T>>);

    // SAFETY: a component instance is single-threaded: the host never calls
    // into it concurrently, and `init`/`transform` do not re-enter.
    unsafe impl<T> Sync for Slot<T> {}

    impl<T> Slot<T> {
        #[allow(clippy::new_without_default)]
        pub const fn new() -> Self {
            Slot(UnsafeCell::new(None))
        }
    }

    pub fn init<T: Transform>(slot: &Slot<T>, config: &str) -> Result<(), String> {
        // A panic traps the instance; its message would otherwise be lost
        // (stderr goes nowhere): send it to the host's log first.
        #[cfg(target_arch = "wasm32")]
        std::panic::set_hook(Box::new(|info| {
            crate::log::error(&format!("transform panicked: {info}"))
        }));
        let instance = T::init(config)?;
        // SAFETY: see `Sync` above; no reference into the slot is alive.
        unsafe { *slot.0.get() = Some(instance) };
        Ok(())
    }

    pub fn transform<T: Transform>(
        slot: &Slot<T>,
        msg: &Message,
    ) -> Result<Vec<WriteOp>, TransformError> {
        // SAFETY: see `Sync` above; `init` cannot run during this call.
        match unsafe { &*slot.0.get() } {
            Some(t) => t.transform(msg),
            None => Err(TransformError::internal(
                "transform called before a successful init",
            )),
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        struct Counter(u32);
        impl Transform for Counter {
            fn init(config: &str) -> Result<Self, String> {
                config
                    .parse()
                    .map(Counter)
                    .map_err(|e| format!("bad config: {e}"))
            }
            fn transform(&self, _: &Message) -> Result<Vec<WriteOp>, TransformError> {
                Ok((0..self.0)
                    .map(|_| crate::ops::delete_many("c", serde_json::json!({})))
                    .collect())
            }
        }

        fn msg() -> Message {
            Message::new("t", None, None)
        }

        #[test]
        fn message_helpers() {
            let m = Message::new("t", Some(b"k"), Some(b"v"))
                .with_offset(5)
                .with_header("h", Some(b"x"))
                .with_header("n", None);
            assert_eq!(
                (m.offset, m.key.as_deref(), m.value.as_deref()),
                (5, Some(&b"k"[..]), Some(&b"v"[..]))
            );
            assert_eq!(m.header("h"), Some(Some(&b"x"[..])));
            assert_eq!(m.header("n"), Some(None));
            assert_eq!(m.header("z"), None);
        }

        #[test]
        fn transform_before_init_is_internal() {
            let slot = Slot::<Counter>::new();
            let err = transform(&slot, &msg()).unwrap_err();
            assert_eq!(err.kind, crate::ErrorKind::Internal);
            assert!(init(&slot, "x").unwrap_err().starts_with("bad config"));
            assert!(transform(&slot, &msg()).is_err());
            init(&slot, "2").unwrap();
            assert_eq!(transform(&slot, &msg()).unwrap().len(), 2);
        }
    }
}
