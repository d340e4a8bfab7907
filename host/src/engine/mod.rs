//! The Wasm engine: loads transform components, checks them against the
//! contract, caches their compiled code, and runs them under limits.
//!
//! One [`Engine`] per process. A [`TransformModule`] is one compiled version
//! of a transform, linked once (`InstancePre`). A [`TransformInstance`] owns a
//! `Store` and is used by one worker at a time; after a trap, a timeout or a
//! memory-limit hit its store is discarded and the next call gets a fresh,
//! re-initialised instance.
//!
//! Components of every contract version in [`CONTRACT_VERSIONS`] load: the
//! version is detected at load (newest first) and a [`TransformInstance`]
//! converts older guests' values to the current types, so nothing past the
//! engine sees the difference.

mod cache;
mod error;
mod instance;
mod limits;
mod namespaces;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// The engine's settings and the contract's record types, where the
/// engine's users (tests, benchmarks, tools) look for them.
pub use crate::config::{EngineConfig, Limits};
pub use crate::contract::{Header, Level, Message};
pub use cache::{content_hash, untrusted, wasmtime_version, Origin};
pub use error::{CallError, FailureKind, LoadError};
pub use instance::TransformInstance;
pub use limits::MemoryLimitExceeded;
pub use namespaces::NamespacePolicy;

use crate::contract::{self, v0_1_0, Transform, TransformPre};
use cache::CompileCache;
use limits::MemoryCap;

/// The `smt:transform` versions the host runs, newest first (the order in
/// which a component is checked against them at load).
pub const CONTRACT_VERSIONS: &[&str] = &["0.2.0", "0.1.0"];

/// A linked module of one contract version.
pub(crate) enum Pre {
    /// The current contract, 0.2.0.
    Current(TransformPre<State>),
    V0_1_0(v0_1_0::TransformPre<State>),
}

impl Pre {
    fn contract_version(&self) -> &'static str {
        match self {
            Pre::Current(_) => CONTRACT_VERSIONS[0],
            Pre::V0_1_0(_) => "0.1.0",
        }
    }
}

/// How often the epoch advances: the resolution of call deadlines.
const EPOCH_TICK: Duration = Duration::from_millis(10);

impl EngineConfig {
    fn resolved_cache_dir(&self) -> Option<PathBuf> {
        if self.no_cache {
            return None;
        }
        self.cache_dir.clone().or_else(|| {
            std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
                .map(|base| base.join("smt").join("compiled"))
        })
    }
}

/// Per-store state: WASI with no capabilities, the memory cap, the context
/// that guest log lines are tagged with and their rate limit.
pub(crate) struct State {
    wasi: WasiCtx,
    table: ResourceTable,
    cap: MemoryCap,
    log: LogContext,
    log_budget: LogBudget,
    dropped_lines: Counter,
}

/// The metrics the engine updates itself; `smt run` hands in the families
/// its `/metrics` exports (`telemetry::Metrics`), tests may keep their own.
#[derive(Clone, Default)]
pub struct EngineMetrics {
    /// Guest log lines dropped by the rate limit, by transform.
    pub log_lines_dropped: Family<[(&'static str, String); 1], Counter>,
}

/// A token bucket of guest log lines: `rate` a second, a burst of `rate`.
/// Per instance, so one guest logging in a loop cannot fill the disk nor
/// drown the lines of the others.
struct LogBudget {
    rate: f64,
    tokens: f64,
    refilled: Instant,
    /// Lines dropped since the last line let through (said in a warning then).
    dropped: u64,
}

impl LogBudget {
    fn new(lines_per_second: u32) -> Self {
        let rate = f64::from(lines_per_second);
        LogBudget {
            rate,
            tokens: rate,
            refilled: Instant::now(),
            dropped: 0,
        }
    }

    /// Whether one more line may be logged now.
    fn take(&mut self) -> bool {
        let now = Instant::now();
        let elapsed = now.duration_since(self.refilled).as_secs_f64();
        self.refilled = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            self.dropped += 1;
            false
        }
    }
}

#[derive(Default)]
pub(crate) struct LogContext {
    transform: Arc<str>,
    version: Arc<str>,
    /// The record being transformed; `None` during `init`. The topic string
    /// is kept between calls: a worker serves one partition, so it rarely changes.
    record: Option<(i32, i64)>,
    topic: String,
}

impl LogContext {
    pub(crate) fn enter(&mut self, msg: &Message) {
        if self.topic != msg.topic {
            self.topic.clone_from(&msg.topic);
        }
        self.record = Some((msg.partition, msg.offset));
    }

    pub(crate) fn leave(&mut self) {
        self.record = None;
    }
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl contract::smt::transform::types::Host for State {}
impl v0_1_0::smt::transform::types::Host for State {}

impl v0_1_0::smt::transform::log::Host for State {
    fn log(&mut self, level: v0_1_0::smt::transform::log::Level, message: String) {
        contract::smt::transform::log::Host::log(self, level.into(), message)
    }
}

/// Longest guest log line kept; guests must not be able to flood the host log.
const MAX_LOG_LINE: usize = 4096;

impl contract::smt::transform::log::Host for State {
    fn log(&mut self, level: Level, message: String) {
        let ctx = &self.log;
        if !self.log_budget.take() {
            self.dropped_lines.inc();
            return;
        }
        let (topic, partition, offset) = match ctx.record {
            Some((p, o)) => (ctx.topic.as_str(), p, o),
            None => ("", -1, -1),
        };
        let dropped = std::mem::take(&mut self.log_budget.dropped);
        if dropped > 0 {
            tracing::warn!(target: "smt::guest", transform = %ctx.transform, version = %ctx.version, topic, partition, offset, dropped,
                "Dropped guest log lines: the transform logs more than engine.limits.log-lines-per-second.");
        }
        let mut message = message;
        truncate_with_ellipsis(&mut message, MAX_LOG_LINE);
        macro_rules! emit {
            ($lvl:ident) => {
                tracing::$lvl!(target: "smt::guest", transform = %ctx.transform, version = %ctx.version, topic, partition, offset, "{message}")
            };
        }
        match level {
            Level::Trace => emit!(trace),
            Level::Debug => emit!(debug),
            Level::Info => emit!(info),
            Level::Warn => emit!(warn),
            Level::Error => emit!(error),
        }
    }
}

/// The process-wide Wasm engine. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<EngineInner>,
}

struct EngineInner {
    wasm: wasmtime::Engine,
    linker: Linker<State>,
    cache: CompileCache,
    limits: Limits,
    metrics: EngineMetrics,
    /// `None`: operations may name any namespace (`smt test`, `smt check`).
    namespaces: Option<NamespacePolicy>,
}

impl Engine {
    /// An engine whose metrics nobody exports (tools, tests).
    pub fn new(config: &EngineConfig) -> anyhow::Result<Self> {
        Self::with_metrics(config, EngineMetrics::default())
    }

    /// An engine that counts into `metrics`.
    pub fn with_metrics(config: &EngineConfig, metrics: EngineMetrics) -> anyhow::Result<Self> {
        let mut wasm_config = wasmtime::Config::new();
        wasm_config.epoch_interruption(true);
        let wasm = wasmtime::Engine::new(&wasm_config).map_err(wasm_err)?;

        let mut linker = Linker::<State>::new(&wasm);
        // Guests built by some toolchains (Python, JavaScript, Go, Rust std)
        // import WASI; the context grants nothing (no files, sockets, env).
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(wasm_err)?;
        // Every contract version's imports (`log@0.2.0`, `log@0.1.0`, ...).
        Transform::add_to_linker::<State, wasmtime::component::HasSelf<State>>(&mut linker, |s| s)
            .map_err(wasm_err)?;
        v0_1_0::Transform::add_to_linker::<State, wasmtime::component::HasSelf<State>>(
            &mut linker,
            |s| s,
        )
        .map_err(wasm_err)?;

        spawn_epoch_ticker(&wasm);
        let cache = CompileCache::new(&wasm, config.resolved_cache_dir());
        Ok(Engine {
            inner: Arc::new(EngineInner {
                wasm,
                linker,
                cache,
                limits: config.limits.clone(),
                metrics,
                namespaces: None,
            }),
        })
    }

    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// Checks every operation of every instance against `policy` (`smt
    /// run`). Set it before the engine is cloned.
    pub fn with_namespace_policy(mut self, policy: NamespacePolicy) -> Self {
        Arc::get_mut(&mut self.inner)
            .expect("the namespace policy is set before the engine is shared")
            .namespaces = Some(policy);
        self
    }

    pub(crate) fn namespace_policy(&self) -> Option<&NamespacePolicy> {
        self.inner.namespaces.as_ref()
    }

    /// Loads the component at `path` as transform `name`.
    pub fn load_file(&self, name: &str, path: &Path) -> Result<Arc<TransformModule>, LoadError> {
        let wasm = std::fs::read(path).map_err(|source| LoadError::Read {
            path: path.to_owned(),
            source,
        })?;
        self.load(name, &wasm, &path.display().to_string())
    }

    /// Compiles (or loads from the cache) and type-checks `wasm` against the
    /// contract. `source` says where it came from, for listings and logs.
    pub fn load(
        &self,
        name: &str,
        wasm: &[u8],
        source: &str,
    ) -> Result<Arc<TransformModule>, LoadError> {
        let started = Instant::now();
        let hash = content_hash(wasm);
        let (component, origin) = self
            .inner
            .cache
            .load(&self.inner.wasm, wasm, &hash)
            .map_err(|e| LoadError::Compile {
                name: name.to_owned(),
                reason: describe_compile_error(wasm, &e),
            })?;
        let pre = self.link(name, &component)?;
        let module = TransformModule {
            name: name.into(),
            version: hash[..12].into(),
            hash,
            source: source.to_owned(),
            loaded_at: SystemTime::now(),
            origin,
            load_time: started.elapsed(),
            pre,
            engine: self.clone(),
        };
        tracing::info!(
            transform = name,
            version = %module.version,
            contract = module.contract_version(),
            origin = ?origin,
            load_ms = module.load_time.as_secs_f64() * 1e3,
            "Loaded transform."
        );
        Ok(Arc::new(module))
    }

    /// Links `component` against the newest contract version it implements.
    fn link(&self, name: &str, component: &Component) -> Result<Pre, LoadError> {
        let contract = |reason: String| LoadError::Contract {
            name: name.to_owned(),
            reason,
        };
        let ty = component.component_type();
        let exports: Vec<&str> = ty.exports(&self.inner.wasm).map(|(n, _)| n).collect();
        for required in ["init", "transform"] {
            if !exports.contains(&required) {
                return Err(contract(format!(
                    "missing export `{required}` (the component exports: {})",
                    if exports.is_empty() {
                        "nothing".to_owned()
                    } else {
                        exports.join(", ")
                    }
                )));
            }
        }
        let instance_pre = self
            .inner
            .linker
            .instantiate_pre(component)
            .map_err(|e| contract(format!("{e:#}")))?;
        let newest = match TransformPre::new(instance_pre.clone()) {
            Ok(pre) => return Ok(Pre::Current(pre)),
            Err(e) => e,
        };
        match v0_1_0::TransformPre::new(instance_pre) {
            Ok(pre) => Ok(Pre::V0_1_0(pre)),
            // Say what the newest contract wants: older ones are subsets of it.
            Err(_) => Err(contract(format!("{newest:#}"))),
        }
    }

    fn new_store(&self, module: &TransformModule) -> wasmtime::Store<State> {
        let state = State {
            wasi: WasiCtx::builder().build(),
            table: ResourceTable::new(),
            cap: MemoryCap::new(&self.inner.limits),
            log: LogContext {
                transform: module.name.clone(),
                version: module.version.clone(),
                ..LogContext::default()
            },
            log_budget: LogBudget::new(self.inner.limits.log_lines_per_second),
            dropped_lines: self
                .inner
                .metrics
                .log_lines_dropped
                .get_or_create_owned(&[("transform", module.name.to_string())]),
        };
        let mut store = wasmtime::Store::new(&self.inner.wasm, state);
        store.limiter(|s| &mut s.cap);
        store.epoch_deadline_trap();
        store
    }
}

/// One loaded version of a transform.
pub struct TransformModule {
    name: Arc<str>,
    version: Arc<str>,
    hash: String,
    source: String,
    loaded_at: SystemTime,
    origin: Origin,
    load_time: Duration,
    pre: Pre,
    engine: Engine,
}

impl TransformModule {
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Short content hash: the version named in logs, metrics and DLQ headers.
    pub fn version(&self) -> &str {
        &self.version
    }
    /// Full SHA-256 of the module bytes.
    pub fn hash(&self) -> &str {
        &self.hash
    }
    pub fn source(&self) -> &str {
        &self.source
    }
    pub fn loaded_at(&self) -> SystemTime {
        self.loaded_at
    }
    pub fn origin(&self) -> Origin {
        self.origin
    }
    pub fn load_time(&self) -> Duration {
        self.load_time
    }
    /// The `smt:transform` version the component implements (one of
    /// [`CONTRACT_VERSIONS`], e.g. `"0.2.0"`).
    pub fn contract_version(&self) -> &'static str {
        self.pre.contract_version()
    }

    /// A new instance initialised with `config` (JSON text).
    pub fn instantiate(self: &Arc<Self>, config: &str) -> Result<TransformInstance, LoadError> {
        TransformInstance::new(self.clone(), config.into())
    }
}

impl std::fmt::Debug for TransformModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransformModule")
            .field("name", &self.name)
            .field("version", &self.version)
            .field("contract", &self.contract_version())
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// Advances the epoch every tick while the engine lives; a weak reference
/// lets the thread end with the engine.
fn spawn_epoch_ticker(engine: &wasmtime::Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("smt-epoch".into())
        .spawn(move || loop {
            std::thread::sleep(EPOCH_TICK);
            match weak.upgrade() {
                Some(engine) => engine.increment_epoch(),
                None => return,
            }
        })
        .expect("spawning the epoch thread");
}

/// Epoch ticks for a deadline, rounded up, plus one so a call never gets less
/// than it was promised.
fn deadline_ticks(timeout: Duration) -> u64 {
    let tick = EPOCH_TICK.as_millis().max(1) as u64;
    (timeout.as_millis() as u64).div_ceil(tick) + 1
}

fn describe_compile_error(wasm: &[u8], err: &wasmtime::Error) -> String {
    // A core module (version 1) instead of a component (layer 1) is the
    // usual mistake: say how to fix it rather than quoting the parser.
    if wasm.len() >= 8 && &wasm[0..4] == b"\0asm" && wasm[4..8] == [1, 0, 0, 0] {
        return "this is a core WebAssembly module, not a component; build for wasm32-wasip2 or wrap it with `wasm-tools component new`".to_owned();
    }
    format!("{err:#}")
}

/// Cuts `text` to at most `max` bytes (on a character boundary), marking the cut.
pub(crate) fn truncate_with_ellipsis(text: &mut String, max: usize) {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
}

pub(crate) fn wasm_err(e: wasmtime::Error) -> anyhow::Error {
    anyhow::anyhow!("{e:#}")
}
