//! Engine benchmark: the default transform as a Wasm guest vs the same Rust
//! code called natively, instantiation, and cold compile vs cached load.
//! Each comparison is measured side by side in one run (rounds interleaved)
//! and reported as medians and ratios. Run with `scripts/bench engine`; the
//! results go into `BENCHMARKS.md` between the `engine` markers.

use std::hint::black_box;
use std::time::Instant;

use smt_guest::Transform as _;
use smt_host::engine::{Engine, EngineConfig, Origin};
use smt_host::writeop::WriteOp;
use smt_tests::bench_report::{load_average, machine, median, today, write_section};
use smt_tests::native::{fixture, to_guest_message};

const DEFAULT: &str = env!("SMT_GUEST_DEBEZIUM_MONGO");
const ROUNDS: usize = 15;

/// Mean time per call of `f` over `n` calls.
fn per_call(n: usize, mut f: impl FnMut()) -> f64 {
    let started = Instant::now();
    for _ in 0..n {
        f();
    }
    started.elapsed().as_secs_f64() / n as f64
}

fn us(s: f64) -> String {
    format!("{:.2} µs", s * 1e6)
}
fn ms(s: f64) -> String {
    format!("{:.2} ms", s * 1e3)
}

/// What the host does with the operation a guest returns: `WriteOp::from_guest`.
/// The benchmark's record maps to one replace-one, handed over as the
/// engine hands over a guest's (the strings moved, not copied).
fn host_parse(op: smt_guest::WriteOp) -> WriteOp {
    use smt_host::contract;
    let smt_guest::WriteOp::ReplaceOne(r) = op else {
        panic!("the benchmark's record maps to one replace-one, got {op:?}")
    };
    let doc = |d: smt_guest::Document| match d {
        smt_guest::Document::Json(text) => contract::Document::Json(text),
        smt_guest::Document::Bson(bytes) => contract::Document::Bson(bytes),
    };
    WriteOp::from_guest(contract::WriteOp::ReplaceOne(contract::ReplaceOne {
        ns: contract::Namespace {
            database: r.ns.database,
            collection: r.ns.collection,
        },
        filter: doc(r.filter),
        replacement: doc(r.replacement),
        upsert: r.upsert,
    }))
    .unwrap()
}

fn main() {
    let load_before = load_average();
    let wasm_bytes = std::fs::read(DEFAULT).expect("the default transform component");
    let msg = fixture("update-1kb.jsonl").remove(0);
    let value_len = msg.value.as_ref().map_or(0, Vec::len);
    let guest_msg = to_guest_message(&msg);

    // Per record. The native side sends its documents as the component
    // does (BSON), so that both sides do the same work.
    smt_guest::ops::set_bson_output(true);
    let native = debezium_mongo::DebeziumMongo::init("{}").unwrap();
    let engine = Engine::new(&EngineConfig {
        no_cache: true,
        ..EngineConfig::default()
    })
    .unwrap();
    let module = engine.load("debezium-mongo", &wasm_bytes, DEFAULT).unwrap();
    let mut instance = module.instantiate("{}").unwrap();
    let n = 2_000;
    let (mut native_only, mut native_full, mut wasm) = (vec![], vec![], vec![]);
    for _ in 0..ROUNDS {
        native_only.push(per_call(n, || {
            black_box(native.transform(black_box(&guest_msg)).unwrap());
        }));
        native_full.push(per_call(n, || {
            // Same input copy and the same host-side parsing of the returned
            // operations as the Wasm path does.
            let m = to_guest_message(black_box(&msg));
            let ops: Vec<WriteOp> = native
                .transform(&m)
                .unwrap()
                .into_iter()
                .map(host_parse)
                .collect();
            black_box(ops);
        }));
        wasm.push(per_call(n, || {
            black_box(instance.transform(black_box(&msg)).unwrap());
        }));
    }
    let (native_only, native_full, wasm) = (median(native_only), median(native_full), median(wasm));

    // Instantiation (a fresh Store + instantiate + init), as after a trap or a swap.
    let instantiate = median(
        (0..ROUNDS)
            .map(|_| per_call(50, || drop(black_box(module.instantiate("{}").unwrap()))))
            .collect(),
    );

    // Cold compile vs cached load.
    let cache_dir = std::env::temp_dir().join(format!("smt-bench-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&cache_dir);
    let cached_engine = Engine::new(&EngineConfig {
        cache_dir: Some(cache_dir.clone()),
        ..EngineConfig::default()
    })
    .unwrap();
    let first = cached_engine
        .load("debezium-mongo", &wasm_bytes, DEFAULT)
        .unwrap();
    assert_eq!(first.origin(), Origin::Compiled);
    let (mut compile, mut cached) = (vec![], vec![]);
    for _ in 0..5 {
        compile.push(per_call(1, || {
            let m = engine.load("debezium-mongo", &wasm_bytes, DEFAULT).unwrap();
            assert_eq!(m.origin(), Origin::Compiled);
        }));
        cached.push(per_call(10, || {
            let m = cached_engine
                .load("debezium-mongo", &wasm_bytes, DEFAULT)
                .unwrap();
            assert_eq!(m.origin(), Origin::Cached);
        }));
    }
    let (compile, cached) = (median(compile), median(cached));
    let _ = std::fs::remove_dir_all(&cache_dir);

    let report = format!(
        "## Engine: Wasm guest vs native, instantiation, compile cache\n\n\
         Machine: {machine}. Command: `scripts/bench engine` (`cargo bench -p smt-tests --bench engine`, release build). \
         Medians of {ROUNDS} interleaved rounds; {date}; load average {load_before} at the start, {load_after} at the end.\n\n\
         Input: `tests/fixtures/debezium/update-1kb.jsonl` (a {value_len}-byte Debezium update, no schemas), \
         default transform `debezium-mongo` ({size} KB component, built with the `guest` profile and the \
         `wasm32-wasip2` flags of `.cargo/config.toml`; the native side is the release build of the same crates).\n\n\
         | measure | time | ratio |\n|---|---|---|\n\
         | native transform call (Rust, no Wasm) | {a} | 1.00 |\n\
         | native + host op parsing (what the host does with a guest's output) | {b} | {rb:.2}× native call |\n\
         | **Wasm guest, per record** (copy in, call, lift, parse ops) | {c} | **{rc:.2}× native + parsing** ({rc2:.2}× native call) |\n\
         | instantiate + `init` (fresh Store) | {d} | |\n\
         | cold compile (Cranelift) | {e} | |\n\
         | **cached load** (compiled artifact from disk) | {f} | **{rf:.0}× faster than compiling** |\n\n\
         Targets: Wasm ≤ 1.5× native per record; cached load ≥ 20× faster than compiling.\n",
        machine = machine(),
        date = today(),
        load_after = load_average(),
        size = wasm_bytes.len() / 1024,
        a = us(native_only),
        b = us(native_full),
        rb = native_full / native_only,
        c = us(wasm),
        rc = wasm / native_full,
        rc2 = wasm / native_only,
        d = us(instantiate),
        e = ms(compile),
        f = ms(cached),
        rf = compile / cached,
    );
    print!("{report}");
    write_section("engine", &report);
}
