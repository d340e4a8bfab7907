//! On-disk cache of compiled components.
//!
//! Compiling a large guest (Python, JavaScript) takes seconds; loading its
//! compiled artifact takes milliseconds. An artifact is only valid for the
//! exact wasmtime build and engine settings that produced it, so the key is
//! the module's content hash plus wasmtime's own compatibility hash.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::Engine;

/// How a component was obtained, for logs and benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Compiled now (no cache, a miss, or an unusable cached artifact).
    Compiled,
    /// Loaded from a cached artifact.
    Cached,
}

/// Hex SHA-256 of a module's bytes: its version identity.
pub fn content_hash(wasm: &[u8]) -> String {
    hex::encode(Sha256::digest(wasm))
}

pub(crate) struct CompileCache {
    dir: Option<PathBuf>,
    engine_key: String,
}

impl CompileCache {
    pub(crate) fn new(engine: &Engine, dir: Option<PathBuf>) -> Self {
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let engine_key = format!("wasmtime{}-{:016x}", wasmtime_version(), hasher.finish());
        CompileCache { dir, engine_key }
    }

    fn artifact_path(&self, hash: &str) -> Option<PathBuf> {
        let dir = self.dir.as_ref()?;
        Some(dir.join(format!("{hash}-{}.cwasm", self.engine_key)))
    }

    /// Returns the component for `wasm`, from the cache when possible.
    pub(crate) fn load(
        &self,
        engine: &Engine,
        wasm: &[u8],
        hash: &str,
    ) -> wasmtime::Result<(Component, Origin)> {
        let path = self.artifact_path(hash);
        if let Some(path) = path.as_deref().filter(|p| p.exists()) {
            // SAFETY: the file is an artifact this cache wrote with
            // `Component::serialize` for an engine with the same compatibility
            // hash (it is in the file name); wasmtime validates its header too.
            match unsafe { Component::deserialize_file(engine, path) } {
                Ok(component) => return Ok((component, Origin::Cached)),
                Err(err) => tracing::warn!(
                    path = %path.display(),
                    error = %err,
                    "Ignoring an unusable compiled artifact; compiling again."
                ),
            }
        }
        let component = Component::new(engine, wasm)?;
        if let Some(path) = path {
            if let Err(err) = store_artifact(&component, &path) {
                tracing::warn!(path = %path.display(), error = %err, "Could not write the compiled artifact to the cache.");
            }
        }
        Ok((component, Origin::Compiled))
    }
}

/// Writes to a temporary name then renames, so a concurrent reader or a crash
/// never sees half an artifact.
fn store_artifact(component: &Component, path: &Path) -> anyhow::Result<()> {
    let bytes = component
        .serialize()
        .map_err(|e| anyhow::anyhow!("{e:#}"))?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// The wasmtime version the host links, part of every cache key.
pub fn wasmtime_version() -> &'static str {
    // Pinned in the workspace manifest; kept in one place here.
    "48.0.8"
}
