//! The test guests built by `tests/build.rs`, and module versions made of
//! them: the versioned guest with another 8-byte tag is the same code in
//! other bytes, so another version (hash) of the transform.

use std::path::Path;
use std::sync::Arc;

use smt_host::engine::{content_hash, Engine, EngineConfig, TransformModule};

/// The versioned test guest (`guest-transforms/test-guests/versioned`).
pub fn versioned_module() -> Vec<u8> {
    std::fs::read(env!("SMT_GUEST_VERSIONED")).expect("the versioned guest")
}

/// The versioned guest with its 8-byte tag set to `tag`: another version.
pub fn tag_module(wasm: &[u8], tag: &str) -> Vec<u8> {
    assert_eq!(tag.len(), 8, "a tag is 8 bytes");
    let marker = b"SMT-VERSION-TAG:";
    let at = wasm
        .windows(marker.len())
        .position(|w| w == marker)
        .expect("the tag marker in the versioned guest")
        + marker.len();
    let mut out = wasm.to_vec();
    out[at..at + 8].copy_from_slice(tag.as_bytes());
    out
}

/// The version `smt` shows for a module: the first 12 hex digits of its SHA-256.
pub fn short_hash(wasm: &[u8]) -> String {
    content_hash(wasm)[..12].to_owned()
}

/// The default transform (`guest-transforms/debezium-mongo`) compiled on an
/// engine of its own, without the compile cache.
pub fn debezium_mongo_component() -> Arc<TransformModule> {
    let engine = Engine::new(&EngineConfig {
        no_cache: true,
        ..EngineConfig::default()
    })
    .expect("an engine");
    engine
        .load_file(
            "debezium-mongo",
            Path::new(env!("SMT_GUEST_DEBEZIUM_MONGO")),
        )
        .expect("the default transform's component")
}
