//! On-disk cache of compiled components.
//!
//! Compiling a large guest (Python, JavaScript) takes seconds; loading its
//! compiled artifact takes milliseconds. An artifact is only valid for the
//! exact wasmtime build and engine settings that produced it, so the key is
//! the module's content hash plus wasmtime's own compatibility hash.
//!
//! An artifact is native code that runs outside the sandbox: loading one
//! that someone else wrote is arbitrary code execution (wasmtime's safety
//! note on `Component::deserialize_file`). So the cache only trusts what
//! only this user could have written:
//! - its directory is created `0700`, and a directory that is not owned by
//!   this user, or that others may write to, disables the cache (others could
//!   rename a file in after it was checked);
//! - an artifact is loaded only when it is a regular file (not a symlink)
//!   owned by this user and not group- or world-writable; any other is
//!   refused, logged, and replaced by a fresh compilation;
//! - artifacts are written `0600` to a temporary of a random name created
//!   with `O_EXCL` (a name planted in advance makes the write fail, never
//!   follow), then renamed into place.
//!
//! The content hash in the file name is what the cache looks up; wasmtime
//! checks the artifact's header against the engine.

use std::hash::{BuildHasher, DefaultHasher, Hash, Hasher};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::Engine;

/// How a component was obtained, for logs and benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Compiled now (no cache, a miss, or an unusable or untrusted cached artifact).
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

/// Mode bits that let someone other than the owner write.
const WRITABLE_BY_OTHERS: u32 = 0o022;

fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Why a file or directory may have been written by someone other than
/// this process's user (its owner, or a group/world write bit), or `None`
/// when only this user can have written it.
pub fn untrusted(meta: &std::fs::Metadata) -> Option<String> {
    untrusted_for(meta, effective_uid())
}

fn untrusted_for(meta: &std::fs::Metadata, uid: u32) -> Option<String> {
    if meta.uid() != uid {
        return Some(format!(
            "it is owned by uid {}, not by this process's uid {uid}",
            meta.uid()
        ));
    }
    if meta.mode() & WRITABLE_BY_OTHERS != 0 {
        return Some(format!(
            "its mode {:o} lets others write to it",
            meta.mode() & 0o7777
        ));
    }
    None
}

impl CompileCache {
    pub(crate) fn new(engine: &Engine, dir: Option<PathBuf>) -> Self {
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let engine_key = format!("wasmtime{}-{:016x}", wasmtime_version(), hasher.finish());
        let dir = dir.filter(|d| match prepare_dir(d) {
            Ok(()) => true,
            Err(reason) => {
                tracing::warn!(path = %d.display(), reason = %reason, "Not using the compile cache directory; every load compiles.");
                false
            }
        });
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
        if let Some(path) = path.as_deref() {
            match std::fs::symlink_metadata(path) {
                Err(_) => {} // a miss
                Ok(meta) => {
                    let refusal = if !meta.file_type().is_file() {
                        Some("it is not a regular file".to_owned())
                    } else {
                        untrusted(&meta)
                    };
                    match refusal {
                        Some(reason) => tracing::warn!(
                            path = %path.display(),
                            reason = %reason,
                            "Refusing a compiled artifact this user did not write; compiling again."
                        ),
                        None => {
                            // SAFETY: the file is a regular file owned by this user
                            // and writable by no one else, in a directory no one
                            // else can write to: only this cache (this user) wrote
                            // it, with `Component::serialize` for an engine with
                            // the same compatibility hash (in the file name), and
                            // it is only ever replaced by rename, never modified
                            // while mapped. wasmtime validates its header too.
                            match unsafe { Component::deserialize_file(engine, path) } {
                                Ok(component) => return Ok((component, Origin::Cached)),
                                Err(err) => tracing::warn!(
                                    path = %path.display(),
                                    error = %err,
                                    "Ignoring an unusable compiled artifact; compiling again."
                                ),
                            }
                        }
                    }
                }
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

/// Creates the cache directory `0700` and checks that only this user can write to it.
fn prepare_dir(dir: &Path) -> Result<(), String> {
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| format!("cannot create it: {e}"))?;
        // `recursive` applies the mode (less the umask) to the directories it
        // creates; make the leaf exactly 0700 whatever the umask.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| format!("cannot make it private: {e}"))?;
    }
    let meta = std::fs::metadata(dir).map_err(|e| format!("cannot read it: {e}"))?;
    if !meta.is_dir() {
        return Err("it is not a directory".into());
    }
    if let Some(reason) = untrusted(&meta) {
        return Err(format!(
            "{reason}: someone else could plant a compiled artifact (native code) in it"
        ));
    }
    Ok(())
}

/// A name nobody can guess in advance (the hasher keys come from the OS's
/// random source), so a temporary cannot be pre-planted as a symlink.
fn random_suffix() -> String {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    std::process::id().hash(&mut h);
    std::time::SystemTime::now().hash(&mut h);
    format!("{:016x}", h.finish())
}

/// Writes to a fresh temporary (`O_EXCL`, `0600`) then renames, so a
/// concurrent reader or a crash never sees half an artifact.
fn store_artifact(component: &Component, path: &Path) -> anyhow::Result<()> {
    let bytes = component
        .serialize()
        .map_err(|e| anyhow::anyhow!("{e:#}"))?;
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| anyhow::anyhow!("bad artifact path {}", path.display()))?;
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", random_suffix()));
    // `create_new` is O_CREAT|O_EXCL: it never opens an existing file nor
    // follows a symlink at the name.
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    let written = file.write_all(&bytes).and_then(|()| file.sync_all());
    drop(file);
    if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e.into());
    }
    Ok(())
}

/// The wasmtime version the host links, part of every cache key.
pub fn wasmtime_version() -> &'static str {
    // Pinned in the workspace manifest; kept in one place here.
    "48.0.8"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!(
            "smt-cache-unit-{tag}-{}-{}",
            std::process::id(),
            random_suffix()
        ));
        let _ = std::fs::remove_dir_all(&p);
        p
    }

    #[test]
    fn the_directory_is_created_private_and_a_shared_one_is_refused() {
        let base = scratch("dir");
        let dir = base.join("a/compiled");
        prepare_dir(&dir).unwrap();
        let mode = std::fs::metadata(&dir).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o700);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = prepare_dir(&dir).unwrap_err();
        assert!(err.contains("777"), "{err}");
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn trust_needs_the_owner_and_no_write_bit_for_others() {
        let base = scratch("trust");
        std::fs::create_dir_all(&base).unwrap();
        let f = base.join("f");
        std::fs::write(&f, b"x").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        let meta = std::fs::metadata(&f).unwrap();
        let me = effective_uid();
        assert_eq!(untrusted_for(&meta, me), None);
        assert!(untrusted_for(&meta, me + 1)
            .unwrap()
            .contains("owned by uid"));
        for mode in [0o620, 0o602, 0o666] {
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(mode)).unwrap();
            let meta = std::fs::metadata(&f).unwrap();
            assert!(untrusted_for(&meta, me).is_some(), "{mode:o}");
        }
        std::fs::remove_dir_all(&base).unwrap();
    }
}
