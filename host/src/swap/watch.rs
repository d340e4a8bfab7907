//! The module-file trigger: polls each transform's `.wasm` and deploys it
//! when its content changed and then stayed the same for one more poll.
//!
//! A file being written (copied, compiled into place) changes between polls
//! and is not loaded until it settles; a file that settles truncated or
//! otherwise broken fails validation and is rejected — never run. Each
//! content is tried once: a rejected file is tried again only when it
//! changes again. Polling (not inotify) works the same on every filesystem,
//! including bind mounts and network volumes, and costs one `stat` per file
//! per poll while nothing changes.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

use super::Swapper;
use crate::engine::content_hash;
use crate::registry::Trigger;

struct Watched {
    name: String,
    path: PathBuf,
    /// (modified, len) at the last poll.
    seen: Option<(SystemTime, u64)>,
    /// Hash of a changed content waiting for one more poll to confirm it is stable.
    pending: Option<String>,
    /// Hash of the content last deployed or rejected (initially the active one).
    handled: String,
}

/// Starts the watcher thread for `files` (transform name, module path).
pub fn spawn(
    swapper: Arc<Swapper>,
    files: Vec<(String, PathBuf)>,
    interval: Duration,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut watched: Vec<Watched> = files
        .into_iter()
        .map(|(name, path)| {
            let handled = swapper
                .registry()
                .active(&name)
                .map(|a| a.module.hash().to_owned())
                .unwrap_or_default();
            Watched {
                seen: stat(&path),
                name,
                path,
                pending: None,
                handled,
            }
        })
        .collect();
    std::thread::Builder::new()
        .name("smt-watch".into())
        .spawn(move || {
            tracing::debug!(
                files = watched.len(),
                interval_ms = interval.as_millis() as u64,
                "Watching the transform modules."
            );
            while !shutdown.is_cancelled() {
                std::thread::sleep(interval);
                for w in &mut watched {
                    poll(&swapper, w);
                }
            }
        })?;
    Ok(())
}

fn stat(path: &PathBuf) -> Option<(SystemTime, u64)> {
    let md = std::fs::metadata(path).ok()?;
    Some((md.modified().ok()?, md.len()))
}

fn poll(swapper: &Swapper, w: &mut Watched) {
    let now = stat(&w.path);
    let changed = now != w.seen;
    w.seen = now;
    if now.is_none() || (!changed && w.pending.is_none()) {
        // Missing (mid-rename) or untouched since the last poll.
        return;
    }
    let Ok(bytes) = std::fs::read(&w.path) else {
        return;
    };
    let hash = content_hash(&bytes);
    if hash == w.handled {
        w.pending = None;
        return;
    }
    if changed || w.pending.as_deref() != Some(hash.as_str()) {
        // Changed since the last poll: wait until it holds still.
        w.pending = Some(hash);
        return;
    }
    w.pending = None;
    w.handled = hash;
    tracing::info!(transform = %w.name, path = %w.path.display(), "The module file changed; validating the new version.");
    // Outcomes are logged and counted by the swapper; the audit line says
    // who (the file) asked for what, like those of the admin API.
    let result = swapper.deploy(
        &w.name,
        &bytes,
        None,
        Trigger::File,
        &w.path.display().to_string(),
    );
    tracing::info!(
        target: "smt::audit",
        action = "deploy",
        transform = w.name.as_str(),
        caller = %format!("file {}", w.path.display()),
        module_sha256 = w.handled.as_str(),
        outcome = match &result {
            Ok(s) => s.outcome,
            Err(_) => "rejected",
        },
        "Admin change."
    );
}
