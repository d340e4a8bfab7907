//! Guest-language benchmark: the customers example (`examples/customers`) in
//! Rust, Python, JavaScript, C and Go — component size, cold compile, cached
//! load, instantiate + init, and per-record cost. Run with
//! `scripts/bench languages`; the results go into `BENCHMARKS.md` between
//! the `languages` markers.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use smt_host::engine::{Engine, EngineConfig, Message, Origin};
use smt_tests::bench_report::{machine, median, today, write_section};
use smt_tests::native::fixture;

const RUST: &str = env!("SMT_GUEST_EXAMPLE_CUSTOMERS");

fn timed(f: impl FnOnce()) -> f64 {
    let started = Instant::now();
    f();
    started.elapsed().as_secs_f64()
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

fn guests() -> Vec<(String, PathBuf)> {
    let out = Command::new(root().join("scripts/build-guests"))
        .args(["build", "python", "js", "c", "go"])
        .output()
        .expect("running scripts/build-guests");
    assert!(
        out.status.success(),
        "scripts/build-guests failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut all = vec![("Rust".to_owned(), PathBuf::from(RUST))];
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let (lang, path) = line.split_once(' ').unwrap();
        let title = match lang {
            "python" => "Python",
            "js" => "JavaScript",
            "c" => "C",
            "go" => "Go",
            other => other,
        };
        all.push((title.to_owned(), PathBuf::from(path)));
    }
    all
}

fn customers(file: &str) -> Vec<Message> {
    fixture(file)
        .into_iter()
        .filter(|m| m.topic == "dbz.inventory.customers")
        .collect()
}

struct Row {
    lang: String,
    size_kb: usize,
    compile: f64,
    cached: f64,
    instantiate: f64,
    first_call: f64,
    plain: f64,
    schemas: f64,
}

fn measure(lang: &str, path: &Path, plain: &[Message], schemas: &[Message]) -> Row {
    let wasm = std::fs::read(path).unwrap();
    let big = wasm.len() > 1 << 20;
    let uncached = Engine::new(&EngineConfig {
        no_cache: true,
        ..EngineConfig::default()
    })
    .unwrap();
    let cache_dir =
        std::env::temp_dir().join(format!("smt-bench-lang-{}-{lang}", std::process::id()));
    let _ = std::fs::remove_dir_all(&cache_dir);
    let cached_engine = Engine::new(&EngineConfig {
        cache_dir: Some(cache_dir.clone()),
        ..EngineConfig::default()
    })
    .unwrap();

    // First load: compiles (and fills the cache); later loads come from it.
    let first = cached_engine.load(lang, &wasm, "bench").unwrap();
    assert_eq!(first.origin(), Origin::Compiled);
    let mut compile = vec![first.load_time().as_secs_f64()];
    for _ in 0..if big { 1 } else { 4 } {
        compile.push(timed(|| {
            uncached.load(lang, &wasm, "bench").unwrap();
        }));
    }
    let cached: Vec<f64> = (0..9)
        .map(|_| {
            timed(|| {
                let m = cached_engine.load(lang, &wasm, "bench").unwrap();
                assert_eq!(m.origin(), Origin::Cached);
            })
        })
        .collect();
    let _ = std::fs::remove_dir_all(&cache_dir);

    let module = first;
    let n_inst = if big { 20 } else { 200 };
    let instantiate: Vec<f64> = (0..n_inst)
        .map(|_| timed(|| drop(black_box(module.instantiate("{}").unwrap()))))
        .collect();

    let mut first_calls = vec![];
    for _ in 0..5 {
        let mut inst = module.instantiate("{}").unwrap();
        first_calls.push(timed(|| {
            black_box(inst.transform(&plain[0]).unwrap());
        }));
    }

    let mut inst = module.instantiate("{}").unwrap();
    let per_record = |inst: &mut smt_host::engine::TransformInstance, msgs: &[Message]| {
        let rounds = if big { 30 } else { 300 };
        median(
            (0..9)
                .map(|_| {
                    timed(|| {
                        for _ in 0..rounds {
                            for m in msgs {
                                black_box(inst.transform(black_box(m)).unwrap());
                            }
                        }
                    }) / (rounds * msgs.len()) as f64
                })
                .collect(),
        )
    };
    // Warm up, then measure.
    per_record(&mut inst, plain);
    let plain_t = per_record(&mut inst, plain);
    let schemas_t = per_record(&mut inst, schemas);
    Row {
        lang: lang.to_owned(),
        size_kb: wasm.len() / 1024,
        compile: median(compile),
        cached: median(cached),
        instantiate: median(instantiate),
        first_call: median(first_calls),
        plain: plain_t,
        schemas: schemas_t,
    }
}

const NOTES: &str = "Reading: the C guest scans the JSON in place (no tree), Rust builds a `serde_json` tree with the SDK, Python and JavaScript run an interpreter (CPython, SpiderMonkey without JIT) inside the guest, and JavaScript also walks each parsed value to refuse nesting past 127 levels as the others do. The cached load is a memory map of the compiled artifact: it is what makes Python and JavaScript restarts cheap (compiling them takes tens of seconds on this loaded machine, about 9 s on a quiet one). JavaScript keeps a ~100 MiB heap per instance: give it `memory-mib` ≥ 128. Go is standard Go (wasip1 and the WASI adapter) with its garbage collector on: `encoding/json` decodes each value into maps by reflection.\n";

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().next().unwrap_or("?").to_owned())
        .unwrap_or_else(|_| "?".into())
}

fn main() {
    let load_before = load_average();
    let plain = customers("plain.jsonl");
    let schemas = customers("schemas.jsonl");
    let plain_bytes: usize = plain
        .iter()
        .map(|m| m.value.as_ref().map_or(0, Vec::len))
        .sum::<usize>()
        / plain.len();
    let schemas_bytes: usize = schemas
        .iter()
        .map(|m| m.value.as_ref().map_or(0, Vec::len))
        .sum::<usize>()
        / schemas.len();
    let rows: Vec<Row> = guests()
        .iter()
        .map(|(lang, path)| {
            let row = measure(lang, path, &plain, &schemas);
            eprintln!("{lang}: done");
            row
        })
        .collect();
    let rust = rows[0].plain;
    let mut table = String::from(
        "| language | component | first load (compile) | cached load | instantiate + init | first call | per record, no schemas | per record, schemas |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    for r in &rows {
        table.push_str(&format!(
            "| {} | {} | {} | **{}** | {} | {} | {} ({:.1}× Rust) | {} |\n",
            r.lang,
            if r.size_kb >= 1024 {
                format!("{:.1} MB", r.size_kb as f64 / 1024.0)
            } else {
                format!("{} KB", r.size_kb)
            },
            secs(r.compile),
            secs(r.cached),
            secs(r.instantiate),
            secs(r.first_call),
            secs(r.plain),
            r.plain / rust,
            secs(r.schemas),
        ));
    }
    let slowest_cached = rows
        .iter()
        .filter(|r| r.lang == "Python" || r.lang == "JavaScript")
        .map(|r| r.cached)
        .fold(0.0, f64::max);
    let report = format!(
        "## Guest languages: the customers example in Rust, Python, JavaScript, C and Go\n\n\
         Machine: {machine}. Command: `scripts/bench languages` (`cargo bench -p smt-tests --bench languages`{profile}); {date}; \
         load average {load_before} at the start, {load_after} at the end (other builds share the machine: compare rows, not runs).\n\n\
         The same mapping (`examples/customers`) in each language, run by the engine with its default limits \
         (epoch deadlines on). Per record: the mean over the 12 `inventory.customers` records of \
         `tests/fixtures/debezium/plain.jsonl` (values of {plain_bytes} bytes on average) and of `schemas.jsonl` \
         ({schemas_bytes} bytes: the Connect schema travels in every value), median of 9 rounds. \
         First load: `Component::new` (Cranelift), the median of the cold loads. Cached load: the engine's \
         compile cache (`~/.cache/smt/compiled`), what every restart after the first pays, median of 9. \
         Instantiate + init: a fresh Store, as after a trap or for a new worker. First call: the first \
         `transform` of a fresh instance.\n\n\
         {table}\n\
         Target: cached load of the Python and JavaScript guests under 1 s — measured: {worst} at most.\n\n\
         {NOTES}",
        machine = machine(),
        profile = if cfg!(debug_assertions) {
            " --profile dev: wasmtime and cranelift at opt-level 2, smt's own crates unoptimised"
        } else {
            ", release build"
        },
        date = today(),
        worst = secs(slowest_cached),
        load_after = load_average(),
    );
    print!("{report}");
    write_section("languages", &report);
}

fn secs(s: f64) -> String {
    if s >= 1.0 {
        format!("{s:.2} s")
    } else if s >= 1e-3 {
        format!("{:.2} ms", s * 1e3)
    } else {
        format!("{:.1} µs", s * 1e6)
    }
}
