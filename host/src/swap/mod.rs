//! Hot swap: a candidate version of a transform is validated, then activated
//! in the [`Registry`]; workers pick it up at their next batch.
//!
//! Validation, in order (the first failure rejects the candidate and names
//! its stage): `compile` (through the compile cache), `contract` (the
//! smt:transform exports and imports, of 0.2.0 or 0.1.0), `init` (with the
//! candidate's config), `sample` (the configured fixture records and the
//! last records the active version handled: the candidate must not trap on
//! any of them, nor fail on one the active version transforms). A rejected candidate never
//! serves a record: it is not in the registry.
//!
//! Triggers: [`watch`] (the module files on disk) and the admin API
//! (`admin::transforms`), both through [`Swapper`].

pub mod persist;
pub mod watch;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use serde::Serialize;

use crate::config::Config;
use crate::contract::Message;
use crate::engine::{Engine, FailureKind, LoadError, TransformModule};
use crate::registry::{unix_ms, Registry, Rejection, Trigger, Version};
use crate::telemetry::Metrics;

/// Why a swap request did not activate anything.
#[derive(Debug, thiserror::Error)]
pub enum SwapError {
    #[error("no transform named `{0}`")]
    Unknown(String),
    /// The request itself is unusable (a config that is not JSON, an empty module).
    #[error("{0}")]
    BadRequest(String),
    #[error("transform `{0}` has no previous version to roll back to")]
    NoPrevious(String),
    /// The candidate failed validation.
    #[error("{} rejected at {}: {}", .0.transform, .0.stage, .0.reason)]
    Rejected(Rejection),
}

/// What a successful swap request did.
#[derive(Debug, Clone, Serialize)]
pub struct Swapped {
    /// `activated`, `unchanged` (same module and config as the active version) or `rolled-back`.
    pub outcome: &'static str,
    pub transform: String,
    pub version: String,
    pub previous: Option<String>,
    pub generation: u64,
    /// Sample records the candidate was run on (fixture + recent).
    pub samples: usize,
    /// Time spent validating, in ms.
    pub validation_ms: f64,
}

/// Validates and activates new versions; one swap at a time.
pub struct Swapper {
    engine: Engine,
    registry: Arc<Registry>,
    metrics: Arc<Metrics>,
    /// Fixture records per transform (`sample-file`).
    fixtures: HashMap<String, Vec<Message>>,
    /// `[hot-swap] state-dir`: where every activation is recorded.
    state: Option<persist::StateDir>,
    busy: Mutex<()>,
}

impl Swapper {
    /// Reads the `sample-file` of every transform (an unreadable or invalid
    /// file is a startup error naming the key).
    pub fn new(
        config: &Config,
        engine: Engine,
        registry: Arc<Registry>,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Self> {
        let mut fixtures = HashMap::new();
        for (name, t) in &config.transforms {
            if let Some(path) = &t.sample_file {
                fixtures.insert(
                    name.clone(),
                    read_fixture(path)
                        .map_err(|e| anyhow::anyhow!("transforms.{name}.sample-file: {e}"))?,
                );
            }
        }
        let mut swapper = Self::with_fixtures(engine, registry, metrics, fixtures);
        if let Some(dir) = &config.hot_swap.state_dir {
            swapper.state = Some(
                persist::StateDir::open(dir)
                    .map_err(|e| anyhow::anyhow!("hot-swap.state-dir: {e}"))?,
            );
        }
        Ok(swapper)
    }

    /// A swapper with the given fixture records per transform (benchmarks, tests).
    pub fn with_fixtures(
        engine: Engine,
        registry: Arc<Registry>,
        metrics: Arc<Metrics>,
        fixtures: HashMap<String, Vec<Message>>,
    ) -> Self {
        Swapper {
            engine,
            registry,
            metrics,
            fixtures,
            state: None,
            busy: Mutex::new(()),
        }
    }

    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// Validates `wasm` (with `config`, or the active version's config) and
    /// activates it. Blocking: compiles and runs the guest.
    pub fn deploy(
        &self,
        name: &str,
        wasm: &[u8],
        config: Option<String>,
        trigger: Trigger,
        source: &str,
    ) -> Result<Swapped, SwapError> {
        let _one = self.busy.lock().expect("swap lock");
        let current = self.current(name)?;
        let config = match config {
            Some(c) => {
                check_json(&c)?;
                c
            }
            None => current.active.config.to_string(),
        };
        if wasm.is_empty() {
            return self.refuse(name, None, trigger, "read", "the module is empty".into());
        }
        let started = Instant::now();
        let module = match self.engine.load(name, wasm, source) {
            Ok(m) => m,
            Err(e) => {
                let hash = crate::engine::content_hash(wasm);
                let (stage, reason) = load_stage(&e);
                return self.refuse(name, Some(hash[..12].to_owned()), trigger, stage, reason);
            }
        };
        self.validate_and_activate(name, module, Some(wasm), config, &current, trigger, started)
    }

    /// Keeps the active module, changes its config (validated the same way).
    pub fn set_config(&self, name: &str, config: String) -> Result<Swapped, SwapError> {
        let _one = self.busy.lock().expect("swap lock");
        let current = self.current(name)?;
        check_json(&config)?;
        let module = current.active.module.clone();
        self.validate_and_activate(
            name,
            module,
            None,
            config,
            &current,
            Trigger::Config,
            Instant::now(),
        )
    }

    /// Makes the previous version active again. No validation: it served before.
    pub fn rollback(&self, name: &str) -> Result<Swapped, SwapError> {
        let _one = self.busy.lock().expect("swap lock");
        self.current(name)?;
        let (back, from) = self
            .registry
            .rollback(name)
            .ok_or_else(|| SwapError::NoPrevious(name.to_owned()))?;
        self.count(name, "rolled-back");
        persist::after_swap(
            self.state.as_ref(),
            &self.registry,
            name,
            None,
            Trigger::Rollback,
        );
        Ok(Swapped {
            outcome: "rolled-back",
            transform: name.to_owned(),
            version: back.active.module.version().to_owned(),
            previous: Some(from.active.module.version().to_owned()),
            generation: back.active.generation,
            samples: 0,
            validation_ms: 0.0,
        })
    }

    fn current(&self, name: &str) -> Result<Version, SwapError> {
        self.registry
            .status(name)
            .map(|(active, _, _)| active)
            .ok_or_else(|| SwapError::Unknown(name.to_owned()))
    }

    #[allow(clippy::too_many_arguments)]
    fn validate_and_activate(
        &self,
        name: &str,
        module: Arc<TransformModule>,
        wasm: Option<&[u8]>,
        config: String,
        current: &Version,
        trigger: Trigger,
        started: Instant,
    ) -> Result<Swapped, SwapError> {
        let version = module.version().to_owned();
        let old = &current.active;
        if module.hash() == old.module.hash() && *config == *old.config {
            self.count(name, "unchanged");
            return Ok(Swapped {
                outcome: "unchanged",
                transform: name.to_owned(),
                version,
                previous: None,
                generation: old.generation,
                samples: 0,
                validation_ms: started.elapsed().as_secs_f64() * 1e3,
            });
        }
        let mut candidate = match module.instantiate(&config) {
            Ok(i) => i,
            Err(e) => {
                let (stage, reason) = load_stage(&e);
                return self.refuse(name, Some(version), trigger, stage, reason);
            }
        };
        let mut samples: Vec<Message> = self.fixtures.get(name).cloned().unwrap_or_default();
        samples.extend(self.registry.recent(name));
        // The active version, on the same records: a failure it shares is
        // not the candidate's fault (bad input stays bad input).
        let mut reference = old.module.instantiate(&old.config).ok();
        for msg in &samples {
            let Err(e) = candidate.transform(msg) else {
                continue;
            };
            let fatal = matches!(
                e.kind,
                FailureKind::Trap | FailureKind::Timeout | FailureKind::MemoryLimit
            );
            let active_ok = reference.as_mut().is_some_and(|r| r.transform(msg).is_ok());
            if fatal || active_ok {
                let reason = format!(
                    "on sample record {}/{}@{}{}: {}: {}",
                    msg.topic,
                    msg.partition,
                    msg.offset,
                    if active_ok {
                        " (which the active version handles)"
                    } else {
                        ""
                    },
                    e.kind,
                    e.message
                );
                return self.refuse(name, Some(version), trigger, "sample", reason);
            }
        }
        let validation_ms = started.elapsed().as_secs_f64() * 1e3;
        drop(reference);
        let generation = self.registry.activate_warm(name, candidate, trigger);
        self.count(name, "activated");
        persist::after_swap(self.state.as_ref(), &self.registry, name, wasm, trigger);
        tracing::info!(
            transform = name,
            version,
            previous = old.module.version(),
            trigger = trigger.as_str(),
            samples = samples.len(),
            validation_ms,
            "Transform version validated and activated."
        );
        Ok(Swapped {
            outcome: "activated",
            transform: name.to_owned(),
            version,
            previous: Some(old.module.version().to_owned()),
            generation,
            samples: samples.len(),
            validation_ms,
        })
    }

    fn refuse(
        &self,
        name: &str,
        version: Option<String>,
        trigger: Trigger,
        stage: &'static str,
        reason: String,
    ) -> Result<Swapped, SwapError> {
        tracing::warn!(
            transform = name,
            version = version.as_deref().unwrap_or("-"),
            trigger = trigger.as_str(),
            stage,
            reason = %reason,
            "Rejected a new transform version; the active version keeps running."
        );
        self.count(name, "rejected");
        let rejection = Rejection {
            transform: name.to_owned(),
            version,
            trigger,
            stage,
            reason,
            at_ms: unix_ms(SystemTime::now()),
        };
        self.registry.reject(rejection.clone());
        Err(SwapError::Rejected(rejection))
    }

    fn count(&self, name: &str, outcome: &str) {
        self.metrics
            .transform_swaps
            .get_or_create(&[
                ("transform", name.to_owned()),
                ("outcome", outcome.to_owned()),
            ])
            .inc();
    }
}

fn check_json(config: &str) -> Result<(), SwapError> {
    serde_json::from_str::<serde_json::Value>(config)
        .map(drop)
        .map_err(|e| SwapError::BadRequest(format!("the config is not JSON: {e}")))
}

fn load_stage(e: &LoadError) -> (&'static str, String) {
    match e {
        LoadError::Read { .. } => ("read", e.to_string()),
        LoadError::Compile { reason, .. } => ("compile", reason.clone()),
        LoadError::Contract { reason, .. } => ("contract", reason.clone()),
        LoadError::Init { reason, .. } => ("init", reason.clone()),
    }
}

fn read_fixture(path: &PathBuf) -> Result<Vec<Message>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            crate::records::parse_line(l)
                .map_err(|e| format!("{} line {}: {e}", path.display(), i + 1))
        })
        .collect()
}

/// Starts hot swap for `smt run`: the swapper, and the file watcher unless
/// `[hot-swap] watch = false`. The watcher stops with `shutdown`.
pub fn start(
    config: &Config,
    engine: Engine,
    registry: Arc<Registry>,
    metrics: Arc<Metrics>,
    shutdown: tokio_util::sync::CancellationToken,
) -> anyhow::Result<Arc<Swapper>> {
    let swapper = Arc::new(Swapper::new(config, engine, registry, metrics)?);
    if config.hot_swap.watch {
        let files = config
            .transforms
            .iter()
            .map(|(n, t)| (n.clone(), t.module.clone()))
            .collect();
        watch::spawn(
            swapper.clone(),
            files,
            std::time::Duration::from_millis(config.hot_swap.poll_interval_ms),
            shutdown,
        )?;
    }
    Ok(swapper)
}
