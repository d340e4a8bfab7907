//! A transform for the hot-swap tests: every document says which version
//! wrote it.
//!
//! The module carries a tag, [`TAG`]: 8 ASCII characters at the end of a
//! marker string in its data segment. Tests make distinct module versions of
//! the same build by overwriting those 8 bytes in the `.wasm` file (see
//! `tag_module` in `tests/tests/hotswap.rs`); the bytes differ, so the content
//! hash (the version) differs, and the output names the tag.
//!
//! Config (JSON): `{"v": <int>, "collection": "<name>", "shape": "flat"|"nested",
//! "trap": <bool>, "fail_init": <bool>}`.
//!
//! | shape | document upserted by `_id` = the record key (UTF-8) |
//! |---|---|
//! | `flat` (default) | `{"_id": key, "v": v, "tag": tag, "p": partition, "o": offset}` |
//! | `nested` | `{"_id": key, "stamp": {"v": v, "tag": tag}, "src": {"p": partition, "o": offset}}` |
//!
//! `trap`: every `transform` call panics. `fail_init`: `init` returns an error.

use serde_json::{json, Value};
use smt_guest::{ops, Message, Transform, TransformError, WriteOp};

/// The marker the tests look for; the last 8 bytes are the tag.
pub static TAG: [u8; 24] = *b"SMT-VERSION-TAG:00000000";

/// The tag as the module's bytes hold it now (a volatile read: the compiler
/// must not fold the constant, the file may have been patched).
pub fn tag() -> String {
    // SAFETY: reading a static through a valid reference.
    let bytes: [u8; 24] = unsafe { core::ptr::read_volatile(&TAG) };
    String::from_utf8_lossy(&bytes[16..]).into_owned()
}

#[derive(Debug)]
pub struct Versioned {
    v: i64,
    collection: String,
    nested: bool,
    trap: bool,
    tag: String,
}

impl Transform for Versioned {
    fn init(config: &str) -> Result<Self, String> {
        let cfg: Value = serde_json::from_str(config)
            .map_err(|e| format!("versioned: config is not JSON: {e}"))?;
        if cfg
            .get("fail_init")
            .and_then(Value::as_bool)
            .unwrap_or(false)
        {
            return Err("init refused: fail_init is set".into());
        }
        let nested = match cfg.get("shape").and_then(Value::as_str).unwrap_or("flat") {
            "flat" => false,
            "nested" => true,
            other => return Err(format!("versioned: unknown shape {other:?}")),
        };
        Ok(Versioned {
            v: cfg.get("v").and_then(Value::as_i64).unwrap_or(0),
            collection: cfg
                .get("collection")
                .and_then(Value::as_str)
                .unwrap_or("versioned")
                .to_owned(),
            nested,
            trap: cfg.get("trap").and_then(Value::as_bool).unwrap_or(false),
            tag: tag(),
        })
    }

    fn transform(&self, msg: &Message) -> Result<Vec<WriteOp>, TransformError> {
        if self.trap {
            panic!("versioned guest: trap is set");
        }
        let key = msg
            .key
            .as_deref()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .ok_or_else(|| TransformError::bad_input("a record without a key"))?;
        let doc = if self.nested {
            json!({"_id": key, "stamp": {"v": self.v, "tag": self.tag}, "src": {"p": msg.partition, "o": msg.offset}})
        } else {
            json!({"_id": key, "v": self.v, "tag": self.tag, "p": msg.partition, "o": msg.offset})
        };
        Ok(vec![ops::replace_one(
            self.collection.as_str(),
            json!({"_id": key}),
            doc,
        )
        .upsert()
        .build()])
    }
}

smt_guest::export_transform!(Versioned);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_version_and_shape() {
        let msg = Message::new("t", Some(b"k1"), Some(b"{}")).with_offset(4);
        let flat = Versioned::init(r#"{"v": 3}"#).unwrap();
        let d = ops::describe(&flat.transform(&msg).unwrap()[0]);
        assert_eq!(d["replacement"]["v"], 3, "{d}");
        assert_eq!(d["replacement"]["tag"], "00000000", "{d}");
        let nested = Versioned::init(r#"{"v": 4, "shape": "nested"}"#).unwrap();
        let d = ops::describe(&nested.transform(&msg).unwrap()[0]);
        assert_eq!(d["replacement"]["stamp"]["v"], 4, "{d}");
        assert!(Versioned::init(r#"{"fail_init": true}"#).is_err());
    }
}
