//! Hot-swap benchmark: the pause a swap causes in a partition worker — the
//! time between the last record transformed by the old version and the first
//! record transformed by the new one — with the candidate's compile already
//! in the cache (the usual case: `smt check` or a previous deploy compiled it).
//!
//! A worker thread runs batches exactly as the pipeline's workers do (look
//! the active version up at the batch start, re-instantiate when the
//! generation changed, remember the handled records as samples), while the
//! main thread deploys new versions through the same `Swapper` the admin API
//! and the file watcher use (validation included, on the other core).
//! Guests: the default Rust transform, and the Python example
//! (`examples/customers/python`) when `scripts/build-guests build python`
//! has built it. Run with `cargo bench -p smt-tests --bench hotswap`;
//! results go into BENCHMARKS.md
//! between the `hot-swap` markers.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use smt_host::engine::{Engine, EngineConfig, Message};
use smt_host::registry::{Registry, Trigger};
use smt_host::swap::Swapper;
use smt_host::telemetry::Metrics;
use smt_tests::bench_report::{machine, today, write_section};
use smt_tests::native::fixture;

/// Swaps per guest (a Python candidate takes seconds to compile ahead).
const SWAPS_RUST: usize = 20;
const SWAPS_PYTHON: usize = 8;

/// `wasm` plus a custom section naming `n`: the same code, another version.
fn retag(wasm: &[u8], n: usize) -> Vec<u8> {
    fn leb(mut v: usize, out: &mut Vec<u8>) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }
    let name = b"smt-bench-version";
    let payload = n.to_string();
    let mut body = Vec::new();
    leb(name.len(), &mut body);
    body.extend_from_slice(name);
    body.extend_from_slice(payload.as_bytes());
    let mut out = wasm.to_vec();
    out.push(0); // custom section
    leb(body.len(), &mut out);
    out.extend_from_slice(&body);
    out
}

struct Result {
    guest: String,
    warm: bool,
    module_mib: f64,
    batch: usize,
    record_gap_ms: f64,
    pauses_ms: Vec<f64>,
    instantiate_ms: Vec<f64>,
    validation_ms: Vec<f64>,
}

fn quantile(xs: &[f64], q: f64) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * q).round() as usize]
}

fn run(
    guest: &str,
    wasm: &[u8],
    config: &str,
    records: Vec<Message>,
    cache: &Path,
    swaps: usize,
) -> Vec<Result> {
    let engine = Engine::new(&EngineConfig {
        cache_dir: Some(cache.to_owned()),
        ..EngineConfig::default()
    })
    .unwrap();
    let batch = records.len();
    let registry = Arc::new(Registry::new());
    let first = engine.load(guest, wasm, "bench").unwrap();
    registry.activate(guest, first, config);
    let swapper = Swapper::with_fixtures(
        engine.clone(),
        registry.clone(),
        Arc::new(Metrics::new()),
        Default::default(),
    );

    // The worker: (generation, first record done, last record done), records, instantiate times.
    let stop = Arc::new(AtomicBool::new(false));
    let worker = {
        let (registry, stop, guest) = (registry.clone(), stop.clone(), guest.to_owned());
        std::thread::spawn(move || {
            let mut spans: BTreeMap<u64, (Instant, Instant, usize)> = BTreeMap::new();
            let mut instantiate = Vec::new();
            let mut current: Option<(u64, smt_host::engine::TransformInstance)> = None;
            while !stop.load(Ordering::Relaxed) {
                let active = registry.active(&guest).unwrap();
                if current.as_ref().map(|c| c.0) != Some(active.generation) {
                    let t = Instant::now();
                    // Even generations take the warm instance, odd ones instantiate.
                    let warm = active.warm.take().filter(|_| active.generation % 2 == 0);
                    let inst = match warm {
                        Some(i) => i,
                        None => active.module.instantiate(&active.config).unwrap(),
                    };
                    instantiate.push((active.generation, t.elapsed().as_secs_f64() * 1e3));
                    current = Some((active.generation, inst));
                }
                let (generation, inst) = current.as_mut().unwrap();
                for msg in &records {
                    let _ = inst.transform(msg);
                    let now = Instant::now();
                    let e = spans.entry(*generation).or_insert((now, now, 0));
                    e.1 = now;
                    e.2 += 1;
                }
                registry.remember(&guest, records.iter());
            }
            (spans, instantiate)
        })
    };

    std::thread::sleep(Duration::from_millis(500));
    let mut validation = Vec::new();
    for i in 1..=swaps {
        let candidate = retag(wasm, i);
        // Compile ahead (into the cache), as `smt check` or an earlier deploy would.
        engine.load(guest, &candidate, "bench").unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let swapped = swapper
            .deploy(guest, &candidate, None, Trigger::Api, "bench")
            .unwrap();
        assert_eq!(swapped.outcome, "activated");
        validation.push(swapped.validation_ms);
        std::thread::sleep(Duration::from_millis(300));
    }
    stop.store(true, Ordering::Relaxed);
    let (spans, instantiate) = worker.join().unwrap();
    let spans: Vec<(u64, (Instant, Instant, usize))> = spans.into_iter().collect();
    assert_eq!(spans.len(), swaps + 1, "every version ran");
    // Steady state: the mean time between records of the first version.
    let (a, b, n) = spans[0].1;
    let record_gap_ms = (b - a).as_secs_f64() * 1e3 / (n.max(2) - 1) as f64;
    [true, false]
        .into_iter()
        .map(|warm| {
            let pauses_ms = spans
                .windows(2)
                .filter(|w| (w[1].0 % 2 == 0) == warm)
                .map(|w| (w[1].1 .0 - w[0].1 .1).as_secs_f64() * 1e3)
                .collect();
            let instantiate_ms = instantiate
                .iter()
                .skip(1)
                .filter(|(g, _)| (g % 2 == 0) == warm)
                .map(|(_, t)| *t)
                .collect();
            Result {
                guest: guest.to_owned(),
                warm,
                module_mib: wasm.len() as f64 / (1 << 20) as f64,
                batch,
                record_gap_ms,
                pauses_ms,
                instantiate_ms,
                validation_ms: validation.clone(),
            }
        })
        .collect()
}

fn python_guest() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("SMT_PYTHON_GUEST") {
        return Some(p.into());
    }
    let dir = smt_tests::services::cache_dir().join("guests");
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("customers-python-") && n.ends_with(".wasm"))
        })
        .collect();
    found.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
    found.pop()
}

fn main() {
    let cache = std::env::temp_dir().join(format!("smt-bench-hotswap-{}", std::process::id()));
    let mut results = Vec::new();

    let rust = std::fs::read(env!("SMT_GUEST_DEBEZIUM_MONGO")).unwrap();
    let update = fixture("update-1kb.jsonl").remove(0);
    results.extend(run(
        "debezium-mongo (Rust)",
        &rust,
        "{}",
        vec![update; 100],
        &cache,
        SWAPS_RUST,
    ));

    match python_guest() {
        Some(path) => {
            let wasm = std::fs::read(&path).unwrap();
            let customers: Vec<Message> = fixture("schemas.jsonl")
                .into_iter()
                .filter(|m| m.topic.ends_with("customers"))
                .collect();
            let batch: Vec<Message> = customers.iter().cycle().take(20).cloned().collect();
            results.extend(run(
                "customers (Python)",
                &wasm,
                "{}",
                batch,
                &cache,
                SWAPS_PYTHON,
            ));
        }
        None => eprintln!("no Python guest (scripts/build-guests build python): skipped"),
    }
    let _ = std::fs::remove_dir_all(&cache);

    let mut report = format!(
        "## Hot swap\n\nOn {}, {}; `benches/hotswap.rs`. A worker thread \
         transforms batches like a pipeline worker while the main thread deploys new versions \
         (compile already cached) through the `Swapper` — validation on the recent records \
         included. **Pause**: the time between the last record done by the old version and the \
         first record done by the new one: the switch at the batch boundary and one record. \
         Swaps alternate between the two ways a worker switches: **warm** (it takes the \
         instance validation `init`ed and warmed up — the first worker of a transform after a \
         swap) and **cold** (it instantiates and `init`s one — every other worker). **Switch**: \
         the worker's time to get its new instance. Measured on a shared \
         machine (load average {} at the end, from concurrent builds on 2 cores): maxima are \
         noisy. Target: under 100 ms.\n\n\
         | guest | module | switch | swaps | batch | record gap | pause median | pause p95 | pause max | switch median | validation median |\n\
         |---|---|---|---|---|---|---|---|---|---|---|\n",
        machine(),
        today(),
        smt_tests::bench_report::load_average()
    );
    for r in &results {
        report.push_str(&format!(
            "| {} | {:.1} MiB | {} | {} | {} | {:.3} ms | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms | {:.1} ms |\n",
            r.guest,
            r.module_mib,
            if r.warm { "warm" } else { "cold" },
            r.pauses_ms.len(),
            r.batch,
            r.record_gap_ms,
            quantile(&r.pauses_ms, 0.5),
            quantile(&r.pauses_ms, 0.95),
            quantile(&r.pauses_ms, 1.0),
            quantile(&r.instantiate_ms, 0.5),
            quantile(&r.validation_ms, 0.5),
        ));
    }
    report.push('\n');
    print!("{report}");
    write_section("hot-swap", &report);
}
