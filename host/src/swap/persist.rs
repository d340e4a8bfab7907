//! The hot-swap state directory (`[hot-swap] state-dir`): the active and
//! previous version of every transform, so that a version deployed through
//! the admin API or the file watch survives a restart.
//!
//! Layout: `modules/<sha256>.wasm` (module bytes, by content hash) and
//! `transforms/<name>.json` (active and previous: hash, config, trigger,
//! source, activation time; and the *baseline*, the module hash and config
//! the config file gave at the last start). Everything is written `0600` in
//! `0700` directories by rename; a file another user owns or may write is
//! refused (a module planted there would run as a transform), as is a module
//! whose bytes do not match its hash.
//!
//! The rule at startup (docs/hot-swap.md, "Restarts"): when the config file
//! still gives the baseline, the persisted active and previous versions are
//! restored (each validated like a deploy: compile, contract, `init`). When
//! the config file's module or config changed while `smt` was down, the
//! config file wins — it is the newer intent, since any change made while
//! running moved the baseline — and the persisted active version becomes the
//! previous one, so a rollback returns to what ran before the restart.

use std::collections::HashSet;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::engine::{content_hash, untrusted, Engine, TransformModule};
use crate::registry::{unix_ms, Registry, Restored, Trigger, Version};

/// One persisted version.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Saved {
    /// Full SHA-256 of the module: `modules/<hash>.wasm`.
    hash: String,
    /// The config handed to `init`, JSON text.
    config: String,
    trigger: Trigger,
    /// Where the module came from (a path, `admin API`).
    source: String,
    activated_at_ms: u64,
}

/// What the config file gave at the last start (the module's hash and the config).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct Baseline {
    hash: String,
    config: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct TransformState {
    baseline: Baseline,
    active: Saved,
    previous: Option<Saved>,
}

/// The state directory.
pub struct StateDir {
    dir: PathBuf,
}

impl StateDir {
    /// Opens (creating it `0700`) the state directory; refuses one others may write to.
    pub fn open(dir: &Path) -> anyhow::Result<Self> {
        for sub in ["", "modules", "transforms"] {
            let d = dir.join(sub);
            if !d.exists() {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(&d)
                    .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", d.display()))?;
            }
            let meta = std::fs::metadata(&d)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", d.display()))?;
            if let Some(reason) = untrusted(&meta) {
                anyhow::bail!(
                    "{}: {reason}: someone else could plant a transform in it",
                    d.display()
                );
            }
        }
        Ok(StateDir {
            dir: dir.to_owned(),
        })
    }

    fn module_path(&self, hash: &str) -> PathBuf {
        self.dir.join("modules").join(format!("{hash}.wasm"))
    }

    fn state_path(&self, name: &str) -> PathBuf {
        // Transform names are config keys: keep them readable when they are
        // plain, hex-encode anything that could be a path.
        let plain = !name.is_empty()
            && !name.starts_with('.')
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
        let file = if plain {
            format!("{name}.json")
        } else {
            format!("x-{}.json", hex::encode(name))
        };
        self.dir.join("transforms").join(file)
    }

    /// Stores module bytes under their hash (once).
    pub fn save_module(&self, wasm: &[u8]) -> anyhow::Result<()> {
        let path = self.module_path(&content_hash(wasm));
        if trusted_file(&path).is_ok() {
            return Ok(());
        }
        write_private(&path, wasm)
    }

    /// Module bytes by hash, checked.
    fn read_module(&self, hash: &str) -> anyhow::Result<Vec<u8>> {
        let path = self.module_path(hash);
        trusted_file(&path)?;
        let bytes = std::fs::read(&path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        if content_hash(&bytes) != hash {
            anyhow::bail!("{} does not hold the module its name says", path.display());
        }
        Ok(bytes)
    }

    fn read_state(&self, name: &str) -> anyhow::Result<Option<TransformState>> {
        let path = self.state_path(name);
        if !path.exists() {
            return Ok(None);
        }
        trusted_file(&path)?;
        let text = std::fs::read_to_string(&path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| anyhow::anyhow!("{} is not a state file: {e}", path.display()))
    }

    fn write_state(&self, name: &str, state: &TransformState) -> anyhow::Result<()> {
        write_private(
            &self.state_path(name),
            serde_json::to_string_pretty(state)?.as_bytes(),
        )
    }

    /// Records the registry's active and previous version of `name`
    /// (whose modules were saved before), and `baseline` if given.
    /// Then removes the modules no transform refers to any more.
    fn record(
        &self,
        name: &str,
        active: &Version,
        previous: Option<&Version>,
        baseline: Option<Baseline>,
    ) -> anyhow::Result<()> {
        let baseline = match baseline {
            Some(b) => b,
            None => self
                .read_state(name)?
                .map(|s| s.baseline)
                .ok_or_else(|| anyhow::anyhow!("no baseline recorded for `{name}`"))?,
        };
        let state = TransformState {
            baseline,
            active: saved(active),
            previous: previous.map(saved),
        };
        self.write_state(name, &state)?;
        self.collect_garbage();
        Ok(())
    }

    fn collect_garbage(&self) {
        let mut keep = HashSet::new();
        let Ok(entries) = std::fs::read_dir(self.dir.join("transforms")) else {
            return;
        };
        for e in entries.flatten() {
            let Ok(text) = std::fs::read_to_string(e.path()) else {
                // Unreadable: keep everything rather than guess.
                return;
            };
            let Ok(state) = serde_json::from_str::<TransformState>(&text) else {
                return;
            };
            keep.insert(state.active.hash);
            keep.extend(state.previous.map(|p| p.hash));
        }
        let Ok(modules) = std::fs::read_dir(self.dir.join("modules")) else {
            return;
        };
        for m in modules.flatten() {
            let path = m.path();
            let hash = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default();
            if path.extension().is_some_and(|x| x == "wasm") && !keep.contains(hash) {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
}

fn saved(v: &Version) -> Saved {
    let m = &v.active.module;
    Saved {
        hash: m.hash().to_owned(),
        config: v.active.config.to_string(),
        trigger: v.trigger,
        source: m.source().to_owned(),
        activated_at_ms: unix_ms(v.activated_at),
    }
}

fn trusted_file(path: &Path) -> anyhow::Result<()> {
    let meta = std::fs::symlink_metadata(path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    if !meta.file_type().is_file() {
        anyhow::bail!("{} is not a regular file", path.display());
    }
    if let Some(reason) = untrusted(&meta) {
        anyhow::bail!("refusing {}: {reason}", path.display());
    }
    Ok(())
}

/// Writes `bytes` to `path` by rename from a fresh `0600` temporary.
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension(format!(
        "tmp{}-{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos()
    ));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", tmp.display()))?;
    let done = f
        .write_all(bytes)
        .and_then(|()| f.sync_all())
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = done {
        let _ = std::fs::remove_file(&tmp);
        anyhow::bail!("cannot write {}: {e}", path.display());
    }
    Ok(())
}

/// Loads every transform of `config` into `registry` at startup: from the
/// state directory when it holds versions the config file still agrees with,
/// from the config file otherwise (the rule is in the module doc).
pub fn load_transforms(
    config: &Config,
    engine: &Engine,
    registry: &Registry,
) -> anyhow::Result<()> {
    let state = match &config.hot_swap.state_dir {
        Some(dir) => {
            Some(StateDir::open(dir).map_err(|e| anyhow::anyhow!("hot-swap.state-dir: {e}"))?)
        }
        None => None,
    };
    for (name, t) in &config.transforms {
        let wasm = std::fs::read(&t.module).map_err(|e| {
            anyhow::anyhow!(
                "transforms.{name}.module: cannot read transform module {}: {e}",
                t.module.display()
            )
        })?;
        let file_config = config.transform_config_json(name)?;
        let from_file = |engine: &Engine| -> anyhow::Result<Restored> {
            let module = engine
                .load(name, &wasm, &t.module.display().to_string())
                .map_err(|e| anyhow::anyhow!("transforms.{name}.module: {e}"))?;
            module
                .instantiate(&file_config)
                .map_err(|e| anyhow::anyhow!("transforms.{name}: {e}"))?;
            Ok(Restored {
                module,
                config: file_config.as_str().into(),
                trigger: Trigger::Startup,
                activated_at: SystemTime::now(),
                restored: false,
            })
        };
        let Some(state) = &state else {
            let v = from_file(engine)?;
            registry.activate(name, v.module, v.config);
            continue;
        };
        let baseline = Baseline {
            hash: content_hash(&wasm),
            config: file_config.clone(),
        };
        let saved = state.read_state(name).unwrap_or_else(|e| {
            tracing::warn!(transform = %name, error = %e, "Ignoring the saved versions; starting from the config file.");
            None
        });
        let (active, previous) = match saved {
            Some(s) if s.baseline == baseline => match restore(state, engine, name, &s.active) {
                Ok(active) => {
                    let previous = s.previous.as_ref().and_then(|p| {
                        restore(state, engine, name, p)
                            .inspect_err(|e| tracing::warn!(transform = %name, error = %e, "Cannot restore the saved previous version; there is none."))
                            .ok()
                    });
                    (active, previous)
                }
                Err(e) => {
                    tracing::warn!(transform = %name, error = %e, "Cannot restore the saved active version; starting from the config file.");
                    (from_file(engine)?, None)
                }
            },
            Some(s) => {
                tracing::info!(
                    transform = %name,
                    saved = &s.active.hash[..12],
                    "The config file's module or config changed while smt was down: it wins; the version that ran before becomes the previous one."
                );
                let previous = restore(state, engine, name, &s.active)
                    .inspect_err(|e| tracing::warn!(transform = %name, error = %e, "Cannot restore the saved version as the previous one."))
                    .ok();
                (from_file(engine)?, previous)
            }
            None => (from_file(engine)?, None),
        };
        state
            .save_module(&wasm)
            .map_err(|e| anyhow::anyhow!("hot-swap.state-dir: {e}"))?;
        registry.restore(name, active, previous);
        let (a, p, _) = registry.status(name).expect("just registered");
        state
            .record(name, &a, p.as_ref(), Some(baseline))
            .map_err(|e| anyhow::anyhow!("hot-swap.state-dir: {e}"))?;
    }
    Ok(())
}

/// One saved version, loaded and `init`ed like a deploy.
fn restore(
    state: &StateDir,
    engine: &Engine,
    name: &str,
    saved: &Saved,
) -> anyhow::Result<Restored> {
    let wasm = state.read_module(&saved.hash)?;
    let module: Arc<TransformModule> = engine.load(name, &wasm, &saved.source)?;
    module.instantiate(&saved.config)?;
    Ok(Restored {
        module,
        config: saved.config.as_str().into(),
        trigger: saved.trigger,
        activated_at: UNIX_EPOCH + Duration::from_millis(saved.activated_at_ms),
        restored: true,
    })
}

/// Records the current versions of `name` after a swap; `wasm` is the new
/// module's bytes when it is new. A failure is logged: the swap stands, it
/// just will not survive a restart.
pub(super) fn after_swap(
    state: Option<&StateDir>,
    registry: &Registry,
    name: &str,
    wasm: Option<&[u8]>,
    trigger: Trigger,
) {
    let Some(state) = state else { return };
    let Some((active, previous, _)) = registry.status(name) else {
        return;
    };
    if let Err(e) = save(state, name, &active, previous.as_ref(), wasm, trigger) {
        tracing::warn!(transform = name, error = %e, "Could not save the new version in hot-swap.state-dir; it will not survive a restart.");
    }
}

fn save(
    state: &StateDir,
    name: &str,
    active: &Version,
    previous: Option<&Version>,
    wasm: Option<&[u8]>,
    trigger: Trigger,
) -> anyhow::Result<()> {
    if let Some(wasm) = wasm {
        state.save_module(wasm)?;
    }
    // A file change moves the baseline: the file now gives this module.
    let baseline = match trigger {
        Trigger::File => state.read_state(name)?.map(|s| Baseline {
            hash: active.active.module.hash().to_owned(),
            config: s.baseline.config,
        }),
        _ => None,
    };
    state.record(name, active, previous, baseline)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn scratch() -> PathBuf {
        let p = std::env::temp_dir().join(format!(
            "smt-state-unit-{}-{}",
            std::process::id(),
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let _ = std::fs::remove_dir_all(&p);
        p
    }

    #[test]
    fn modules_are_private_checked_by_hash_and_refused_when_others_could_write_them() {
        let dir = scratch();
        let state = StateDir::open(&dir).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        state.save_module(b"module one").unwrap();
        let hash = content_hash(b"module one");
        let path = state.module_path(&hash);
        assert_eq!(mode(&path), 0o600);
        assert_eq!(state.read_module(&hash).unwrap(), b"module one");

        // Another module's bytes under this hash: refused.
        std::fs::write(&path, b"module two").unwrap();
        let err = state.read_module(&hash).unwrap_err().to_string();
        assert!(err.contains("does not hold the module"), "{err}");
        // Writable by others: refused, whatever it holds.
        std::fs::write(&path, b"module one").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        let err = state.read_module(&hash).unwrap_err().to_string();
        assert!(err.contains("lets others write"), "{err}");
        // A directory others may write to is not used.
        std::fs::set_permissions(
            dir.join("transforms"),
            std::fs::Permissions::from_mode(0o777),
        )
        .unwrap();
        assert!(StateDir::open(&dir).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn transform_names_that_could_be_paths_are_encoded() {
        let state = StateDir {
            dir: PathBuf::from("/s"),
        };
        assert_eq!(state.state_path("dbz"), Path::new("/s/transforms/dbz.json"));
        assert_eq!(
            state.state_path("../x"),
            Path::new("/s/transforms/x-2e2e2f78.json")
        );
        assert_eq!(
            state.state_path(".x"),
            Path::new("/s/transforms/x-2e78.json")
        );
    }
}
