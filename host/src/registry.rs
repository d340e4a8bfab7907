//! The active version of every transform: the seam of hot swap.
//!
//! Workers look a transform up at the start of each batch and re-instantiate
//! when its generation changed, so a whole batch is processed by one version
//! and a swap takes effect at a batch boundary.
//!
//! Per name the registry keeps the active version, the one before it (the
//! target of a rollback), the last rejected candidate (so the admin API can
//! say why a file change did not take), and a ring of the last records the
//! active version handled (validation samples for the next candidate).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::contract::Message;
use crate::engine::{TransformInstance, TransformModule};

/// One active version of a transform, as a worker needs it.
#[derive(Clone, Debug)]
pub struct Active {
    pub module: Arc<TransformModule>,
    /// The config handed to `init`, as JSON text.
    pub config: Arc<str>,
    /// Increases with every activation of any transform; equal generations
    /// mean the same (module, config).
    pub generation: u64,
    /// The instance validation ran, `init`ed and warmed up: the first worker
    /// to switch takes it instead of instantiating (a shorter pause).
    pub warm: Warm,
}

/// An initialised instance handed from the swapper to the first worker that switches.
#[derive(Clone, Default)]
pub struct Warm(Arc<Mutex<Option<TransformInstance>>>);

impl Warm {
    pub fn new(instance: TransformInstance) -> Self {
        Warm(Arc::new(Mutex::new(Some(instance))))
    }

    /// The instance, once.
    pub fn take(&self) -> Option<TransformInstance> {
        self.0.lock().expect("warm lock").take()
    }
}

impl std::fmt::Debug for Warm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Warm")
    }
}

/// What made a version active.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Trigger {
    /// Loaded from the config file when `smt run` started.
    Startup,
    /// The module file changed on disk.
    File,
    /// Uploaded through `PUT /transforms/{name}`.
    Api,
    /// A new config through `PUT /transforms/{name}/config`.
    Config,
    /// `POST /transforms/{name}/rollback`.
    Rollback,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Startup => "startup",
            Trigger::File => "file",
            Trigger::Api => "api",
            Trigger::Config => "config",
            Trigger::Rollback => "rollback",
        }
    }
}

/// A version that is or was active.
#[derive(Clone, Debug)]
pub struct Version {
    pub active: Active,
    pub trigger: Trigger,
    pub activated_at: SystemTime,
    /// Loaded from the hot-swap state directory at startup (`trigger` and
    /// `activated_at` are those of the original activation).
    pub restored: bool,
}

/// A version read back from the state directory at startup.
pub struct Restored {
    pub module: Arc<TransformModule>,
    pub config: Arc<str>,
    pub trigger: Trigger,
    pub activated_at: SystemTime,
    /// Whether it was read from the state directory (`false`: from the config file).
    pub restored: bool,
}

/// A candidate that was refused, and why.
#[derive(Clone, Debug, Serialize)]
pub struct Rejection {
    pub transform: String,
    /// Short content hash of the candidate, when its bytes were read.
    pub version: Option<String>,
    pub trigger: Trigger,
    /// The validation step that failed: `read`, `compile`, `contract`, `init` or `sample`.
    pub stage: &'static str,
    pub reason: String,
    pub at_ms: u64,
}

struct Entry {
    active: Version,
    previous: Option<Version>,
    rejection: Option<Rejection>,
}

/// The registry of transform versions. Shared by the workers, the swapper
/// and the admin API.
pub struct Registry {
    inner: RwLock<Inner>,
    recent: Mutex<HashMap<String, VecDeque<Message>>>,
    recent_capacity: usize,
}

#[derive(Default)]
struct Inner {
    next_generation: u64,
    entries: HashMap<String, Entry>,
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

/// Records kept per transform for validation, unless configured otherwise.
pub use crate::config::DEFAULT_RECENT_SAMPLES;

impl Registry {
    pub fn new() -> Self {
        Self::with_recent_capacity(DEFAULT_RECENT_SAMPLES)
    }

    /// A registry that keeps the last `capacity` records of each transform (0: none).
    pub fn with_recent_capacity(capacity: usize) -> Self {
        Registry {
            inner: RwLock::default(),
            recent: Mutex::default(),
            recent_capacity: capacity,
        }
    }

    /// The active version of `name`, if the transform exists.
    pub fn active(&self, name: &str) -> Option<Active> {
        self.inner
            .read()
            .expect("registry lock")
            .entries
            .get(name)
            .map(|e| e.active.active.clone())
    }

    /// Makes (`module`, `config`) the active version of `name` at startup; returns its generation.
    pub fn activate(
        &self,
        name: &str,
        module: Arc<TransformModule>,
        config: impl Into<Arc<str>>,
    ) -> u64 {
        self.activate_as(name, module, config, Trigger::Startup)
    }

    /// Makes (`module`, `config`) the active version of `name`; the version
    /// it replaces becomes the previous one. Returns the new generation.
    pub fn activate_as(
        &self,
        name: &str,
        module: Arc<TransformModule>,
        config: impl Into<Arc<str>>,
        trigger: Trigger,
    ) -> u64 {
        self.activate_version(name, module, config.into(), Warm::default(), trigger)
    }

    /// Like [`activate_as`](Self::activate_as), with an instance of the new
    /// version (initialised with its config) for the first worker that switches.
    pub fn activate_warm(&self, name: &str, instance: TransformInstance, trigger: Trigger) -> u64 {
        let module = instance.module().clone();
        let config: Arc<str> = instance.config().into();
        self.activate_version(name, module, config, Warm::new(instance), trigger)
    }

    fn activate_version(
        &self,
        name: &str,
        module: Arc<TransformModule>,
        config: Arc<str>,
        warm: Warm,
        trigger: Trigger,
    ) -> u64 {
        let mut inner = self.inner.write().expect("registry lock");
        inner.next_generation += 1;
        let generation = inner.next_generation;
        let version = Version {
            active: Active {
                module,
                config,
                generation,
                warm,
            },
            trigger,
            activated_at: SystemTime::now(),
            restored: false,
        };
        let module = &version.active.module;
        match inner.entries.get_mut(name) {
            Some(entry) => {
                tracing::info!(
                    transform = name,
                    version = module.version(),
                    previous = entry.active.active.module.version(),
                    generation,
                    trigger = trigger.as_str(),
                    "Activated a new transform version; it takes over at the next batch."
                );
                let old = std::mem::replace(&mut entry.active, version);
                // An instance no worker took is not needed any more.
                drop(old.active.warm.take());
                entry.previous = Some(old);
            }
            None => {
                tracing::info!(
                    transform = name,
                    version = module.version(),
                    generation,
                    "Activated transform version."
                );
                inner.entries.insert(
                    name.to_owned(),
                    Entry {
                        active: version,
                        previous: None,
                        rejection: None,
                    },
                );
            }
        }
        generation
    }

    /// Sets the active and previous version of `name` at startup, as they
    /// were before the restart. Returns the active version's generation.
    pub fn restore(&self, name: &str, active: Restored, previous: Option<Restored>) -> u64 {
        let mut inner = self.inner.write().expect("registry lock");
        let mut version = |r: Restored| {
            inner.next_generation += 1;
            Version {
                active: Active {
                    module: r.module,
                    config: r.config,
                    generation: inner.next_generation,
                    warm: Warm::default(),
                },
                trigger: r.trigger,
                activated_at: r.activated_at,
                restored: r.restored,
            }
        };
        let previous = previous.map(&mut version);
        let active = version(active);
        let generation = active.active.generation;
        tracing::info!(
            transform = name,
            version = active.active.module.version(),
            restored = active.restored,
            previous = previous.as_ref().map(|p| p.active.module.version()),
            generation,
            "Activated transform version."
        );
        inner.entries.insert(
            name.to_owned(),
            Entry {
                active,
                previous,
                rejection: None,
            },
        );
        generation
    }

    /// Makes the previous version of `name` active again (under a new
    /// generation); the version it replaces becomes the previous one, so a
    /// second rollback undoes the first. `None` when there is no previous version.
    pub fn rollback(&self, name: &str) -> Option<(Version, Version)> {
        let mut inner = self.inner.write().expect("registry lock");
        inner.next_generation += 1;
        let generation = inner.next_generation;
        let entry = inner.entries.get_mut(name)?;
        let mut back = entry.previous.take()?;
        back.active.generation = generation;
        back.active.warm = Warm::default();
        back.trigger = Trigger::Rollback;
        back.activated_at = SystemTime::now();
        back.restored = false;
        let old = std::mem::replace(&mut entry.active, back.clone());
        entry.previous = Some(old.clone());
        tracing::info!(
            transform = name,
            version = back.active.module.version(),
            from = old.active.module.version(),
            generation,
            "Rolled back to the previous transform version; it takes over at the next batch."
        );
        Some((back, old))
    }

    /// Remembers why a candidate of `name` was refused.
    pub fn reject(&self, rejection: Rejection) {
        let mut inner = self.inner.write().expect("registry lock");
        if let Some(e) = inner.entries.get_mut(&rejection.transform) {
            e.rejection = Some(rejection);
        }
    }

    /// Names of the registered transforms.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .inner
            .read()
            .expect("registry lock")
            .entries
            .keys()
            .cloned()
            .collect();
        names.sort();
        names
    }

    /// (active, previous, last rejection) of `name`.
    pub fn status(&self, name: &str) -> Option<(Version, Option<Version>, Option<Rejection>)> {
        let inner = self.inner.read().expect("registry lock");
        let e = inner.entries.get(name)?;
        Some((e.active.clone(), e.previous.clone(), e.rejection.clone()))
    }

    /// Keeps the last records of `name` that its active version handled:
    /// the samples a candidate version must handle too.
    pub fn remember<'a>(&self, name: &str, handled: impl Iterator<Item = &'a Message>) {
        let cap = self.recent_capacity;
        if cap == 0 {
            return;
        }
        let handled: Vec<&Message> = handled.collect();
        let skip = handled.len().saturating_sub(cap);
        let mut recent = self.recent.lock().expect("recent lock");
        let ring = recent.entry(name.to_owned()).or_default();
        for m in &handled[skip..] {
            if ring.len() == cap {
                ring.pop_front();
            }
            ring.push_back((*m).clone());
        }
    }

    /// The records [`remember`](Self::remember)ed for `name`, oldest first.
    pub fn recent(&self, name: &str) -> Vec<Message> {
        self.recent
            .lock()
            .expect("recent lock")
            .get(name)
            .map(|r| r.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// Milliseconds since the Unix epoch.
pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(offset: i64) -> Message {
        Message {
            topic: "t".into(),
            partition: 0,
            offset,
            timestamp_ms: None,
            key: None,
            value: None,
            headers: vec![],
        }
    }

    #[test]
    fn keeps_the_last_records_per_transform() {
        let r = Registry::with_recent_capacity(3);
        let batch: Vec<Message> = (0..5).map(msg).collect();
        r.remember("a", batch.iter());
        r.remember("a", [msg(5)].iter());
        let offsets: Vec<i64> = r.recent("a").iter().map(|m| m.offset).collect();
        assert_eq!(offsets, [3, 4, 5]);
        assert!(r.recent("b").is_empty());
        let none = Registry::with_recent_capacity(0);
        none.remember("a", batch.iter());
        assert!(none.recent("a").is_empty());
    }

    #[test]
    fn unknown_names_have_no_version_and_no_rollback() {
        let r = Registry::new();
        assert!(r.active("x").is_none());
        assert!(r.rollback("x").is_none());
        assert!(r.status("x").is_none());
    }
}
