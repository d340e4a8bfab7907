//! The customers example (`examples/customers`) in every guest language over
//! the same real Debezium fixtures: the operations must be identical
//! (canonical Extended JSON), equal to the hand-checked
//! `examples/customers/expected.jsonl`, and malformed records must be
//! `bad-input` errors (not traps) in every language. The Go guest also runs
//! 100,000 records in one instance with its garbage collector on, and the
//! Go SDK's unit tests run natively.
//!
//! The Rust guest comes from `tests/build.rs`; the others are built from
//! source here by `scripts/build-guests build`, which installs their
//! toolchains on first use (cached under `${SMT_CACHE:-~/.cache/smt}`) and
//! skips builds whose sources did not change.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};

use serde_json::{json, Value};
use smt_host::config::Limits;
use smt_host::engine::{Engine, EngineConfig, FailureKind, TransformModule};
use smt_tests::native::fixture;
use smt_tests::record::{record, Record};

const RUST: &str = env!("SMT_GUEST_EXAMPLE_CUSTOMERS");

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

/// Runs `scripts/build-guests build <lang>...` and returns `(lang, path)` per guest.
pub fn build_guests(langs: &[&str]) -> Vec<(String, PathBuf)> {
    let out = Command::new(root().join("scripts/build-guests"))
        .arg("build")
        .args(langs)
        .output()
        .expect("running scripts/build-guests");
    assert!(
        out.status.success(),
        "scripts/build-guests build {} failed:\n{}",
        langs.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (lang, path) = l.split_once(' ').expect("`<lang> <path>` lines");
            (lang.to_owned(), PathBuf::from(path))
        })
        .collect()
}

/// Every implementation, Rust first, loaded once per test process.
fn guests() -> &'static [(String, Arc<TransformModule>)] {
    static GUESTS: OnceLock<Vec<(String, Arc<TransformModule>)>> = OnceLock::new();
    GUESTS.get_or_init(|| {
        let engine = Engine::new(&EngineConfig::default()).unwrap();
        let mut all = vec![("rust".to_owned(), PathBuf::from(RUST))];
        all.extend(build_guests(&["python", "js", "c", "go"]));
        all.into_iter()
            .map(|(lang, path)| {
                let module = engine
                    .load_file(&format!("customers-{lang}"), &path)
                    .unwrap_or_else(|e| panic!("{lang}: {e}"));
                (lang, module)
            })
            .collect()
    })
}

/// One record's result as `smt test` prints it, without the error message
/// (messages are each language's own words).
fn outcome(
    msg: &Record,
    result: Result<Vec<smt_host::writeop::WriteOp>, smt_host::engine::CallError>,
) -> Value {
    let mut line = json!({ "topic": msg.topic, "partition": msg.partition, "offset": msg.offset });
    match result {
        Ok(ops) => line["ops"] = ops.iter().map(|op| op.to_extjson()).collect(),
        Err(e) => line["error"] = json!(e.kind.as_str()),
    }
    line
}

fn run(module: &Arc<TransformModule>, msgs: &[Record]) -> Vec<Value> {
    let mut inst = module.instantiate("{}").unwrap();
    msgs.iter().map(|m| outcome(m, inst.transform(m))).collect()
}

#[test]
fn every_language_gives_the_same_operations_on_every_fixture_record() {
    let guests = guests();
    assert_eq!(
        guests.iter().map(|(l, _)| l.as_str()).collect::<Vec<_>>(),
        ["rust", "python", "js", "c", "go"]
    );
    // The C guest's committed bindings are of contract 0.1.0: the same
    // operations from it prove that the host still runs 0.1.0 guests.
    assert_eq!(
        guests
            .iter()
            .map(|(_, m)| m.contract_version())
            .collect::<Vec<_>>(),
        ["0.2.0", "0.2.0", "0.2.0", "0.1.0", "0.2.0"]
    );
    for file in ["schemas.jsonl", "plain.jsonl"] {
        let msgs = fixture(file);
        let reference = run(&guests[0].1, &msgs);
        for (lang, module) in &guests[1..] {
            let got = run(module, &msgs);
            for (n, (r, g)) in reference.iter().zip(&got).enumerate() {
                assert_eq!(g, r, "{lang} differs from rust on {file} line {}", n + 1);
            }
        }
        // Every customers record maps; every other table is `unsupported`.
        for r in &reference {
            let customers = r["topic"] == "dbz.inventory.customers";
            assert_eq!(
                r.get("ops").is_some(),
                customers || r["ops"] == json!([]),
                "{file}: {r}"
            );
            if !customers && r.get("error").is_some() {
                assert_eq!(r["error"], "unsupported", "{file}: {r}");
            }
        }
    }
}

fn expected() -> Vec<Value> {
    let path = root().join("examples/customers/expected.jsonl");
    std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn every_language_matches_the_hand_checked_expected_file_with_and_without_schemas() {
    let expected = expected();
    assert_eq!(expected.len(), 12);
    for file in ["schemas.jsonl", "plain.jsonl"] {
        let msgs: Vec<Record> = fixture(file)
            .into_iter()
            .filter(|m| m.topic == "dbz.inventory.customers")
            .collect();
        for (lang, module) in guests() {
            let got = run(module, &msgs);
            assert_eq!(got.len(), expected.len());
            for (g, e) in got.iter().zip(&expected) {
                assert_eq!(g, e, "{lang} on {file}");
            }
        }
    }
}

fn message(key: Option<&[u8]>, value: Option<&[u8]>) -> Record {
    record("dbz.inventory.customers", key, value)
}

/// A valid create of `inventory.customers` without schemas, with `after` edited.
fn create(after: Value) -> Vec<u8> {
    json!({ "before": null, "after": after, "op": "c", "source": { "schema": "inventory", "table": "customers" } })
        .to_string()
        .into_bytes()
}

fn sally() -> Value {
    json!({ "id": 1, "first_name": "Sally", "last_name": "Thomas", "email": "s@acme.com",
            "balance": "AeI6", "vip": true, "created_at": "2024-01-02T03:04:05.678901Z" })
}

#[test]
fn malformed_records_are_bad_input_errors_not_traps_in_every_language() {
    let key: &[u8] = br#"{"id":1}"#;
    let mut no_name = sally();
    no_name.as_object_mut().unwrap().remove("first_name");
    let mut bad_balance = sally();
    bad_balance["balance"] = json!("not base64!");
    let mut vip_text = sally();
    vip_text["vip"] = json!("yes");
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    // 128 levels in all: one more than serde_json (and so every implementation) accepts.
    let nested = |levels: usize| {
        let inner = format!("{}{}", "[".repeat(levels - 1), "]".repeat(levels - 1));
        format!(r#"{{"op": "c", "source": {{"table": "customers"}}, "x": {inner}}}"#)
    };
    let too_deep = nested(128);
    let cases: Vec<(&str, Record)> = vec![
        ("value not JSON", message(Some(key), Some(b"{not json"))),
        (
            "value not an object",
            message(Some(key), Some(b"[1, 2, 3]")),
        ),
        (
            "value not UTF-8",
            message(Some(key), Some(b"{\"op\": \"c\xff\"}")),
        ),
        (
            "nested 100k deep",
            message(Some(key), Some(deep.as_bytes())),
        ),
        (
            "nested 128 deep",
            message(Some(key), Some(too_deep.as_bytes())),
        ),
        (
            "no op",
            message(Some(key), Some(br#"{"after": {"id": 1}}"#)),
        ),
        (
            "unknown op",
            message(
                Some(key),
                Some(br#"{"op": "x", "source": {"table": "customers"}}"#),
            ),
        ),
        ("no key", message(None, Some(&create(sally())))),
        (
            "key not JSON",
            message(Some(b"{id"), Some(&create(sally()))),
        ),
        (
            "key without id",
            message(Some(br#"{"uid": 1}"#), Some(&create(sally()))),
        ),
        ("no after", message(Some(key), Some(&create(Value::Null)))),
        (
            "first_name missing",
            message(Some(key), Some(&create(no_name))),
        ),
        (
            "balance not base64",
            message(Some(key), Some(&create(bad_balance))),
        ),
        (
            "vip not a boolean",
            message(Some(key), Some(&create(vip_text))),
        ),
    ];
    let good = message(Some(key), Some(&create(sally())));
    for (lang, module) in guests() {
        let mut inst = module.instantiate("{}").unwrap();
        for (what, msg) in &cases {
            match inst.transform(msg) {
                Err(e) => assert_eq!(e.kind, FailureKind::BadInput, "{lang}: {what}: {e:?}"),
                Ok(ops) => panic!("{lang}: {what}: expected bad-input, got {ops:?}"),
            }
            // The same instance goes on: an error is a result, not a trap.
            let ops = inst
                .transform(&good)
                .unwrap_or_else(|e| panic!("{lang} after {what}: {e:?}"));
            assert_eq!(ops.len(), 1, "{lang} after {what}");
        }
        // 127 levels parse (and then there is no `after`).
        let err = inst
            .transform(&message(Some(key), Some(nested(127).as_bytes())))
            .unwrap_err();
        assert_eq!(err.kind, FailureKind::BadInput, "{lang}: {err:?}");
        assert!(
            err.message.contains("after"),
            "{lang}: 127 levels must parse: {err:?}"
        );
        // A tombstone and another table.
        assert_eq!(
            inst.transform(&message(Some(key), None)).unwrap(),
            vec![],
            "{lang}"
        );
        let other = br#"{"op": "c", "after": {"id": 1}, "source": {"table": "orders"}}"#;
        let err = inst
            .transform(&message(Some(key), Some(other)))
            .unwrap_err();
        assert_eq!(err.kind, FailureKind::Unsupported, "{lang}: {err:?}");
    }
}

/// The memory cap of the 100k-record run: the Go guest's whole store (its
/// linear memory, the WASI adapter's, tables). Its linear memory stays at 9.1 MiB
/// (146 pages from the first 10,000 records on, 270 collections in all); a
/// leak of 100 bytes a record would pass 18 MiB long before the end.
const GO_MEMORY_CAP_MIB: u64 = 18;

/// Issue 23: standard Go's collector used to start inside `cabi_realloc`
/// while the host lowered a call's arguments and to read the clock there,
/// which traps (`cannot leave component instance`, about every 5,500 calls
/// of this example). The SDK's runtime (guest-transforms/go/wit-pkg) serves
/// those allocations outside the Go heap instead, so the collector runs as
/// usual, in Go code. 100,000 records, every fixture record in turn, through
/// one instance: each one a result (operations or the guest's own error),
/// never a trap, within a small memory cap.
#[test]
fn the_go_guest_runs_100k_records_in_one_instance_with_its_collector_on_and_bounded_memory() {
    // Nothing turns the collector off or runs it by hand.
    for dir in ["guest-transforms/go", "examples/customers/go"] {
        for file in go_files(&root().join(dir)) {
            let text = std::fs::read_to_string(&file).unwrap();
            for workaround in ["SetGCPercent", "runtime.GC()", "SetMemoryLimit"] {
                assert!(
                    !text.contains(workaround),
                    "{} uses {workaround}",
                    file.display()
                );
            }
        }
    }
    let (_, path) = build_guests(&["go"]).remove(0);
    let engine = Engine::new(&EngineConfig {
        limits: Limits {
            memory_mib: GO_MEMORY_CAP_MIB,
            ..Limits::default()
        },
        ..EngineConfig::default()
    })
    .unwrap();
    let module = engine.load_file("customers-go", &path).unwrap();
    let mut msgs = fixture("schemas.jsonl");
    msgs.extend(fixture("plain.jsonl"));
    let mut inst = module.instantiate("{}").unwrap();
    let (mut ok, mut errors) = (0, 0);
    for n in 0..100_000 {
        let msg = &msgs[n % msgs.len()];
        match inst.transform(msg) {
            Ok(_) => ok += 1,
            Err(e) if matches!(e.kind, FailureKind::BadInput | FailureKind::Unsupported) => {
                errors += 1
            }
            Err(e) => panic!("call {n}: {e:?}"),
        }
    }
    // Both paths ran many times: the customers records map, the others are refused.
    assert!(
        ok > 10_000 && errors > 10_000,
        "{ok} mapped, {errors} refused"
    );
}

fn go_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(go_files(&path));
        } else if path.extension().is_some_and(|e| e == "go") {
            out.push(path);
        }
    }
    out
}

/// The Go SDK's own unit tests (`guest-transforms/go/smt_test.go`: envelope
/// parsing, depth and UTF-8 checks, decimals, operation builders, error
/// kinds), natively with the Go of `scripts/build-guests`.
#[test]
fn the_go_sdk_unit_tests_pass_natively() {
    let script = root().join("scripts/build-guests");
    let install = Command::new(&script)
        .args(["install", "go"])
        .output()
        .unwrap();
    assert!(
        install.status.success(),
        "{}",
        String::from_utf8_lossy(&install.stderr)
    );
    let env = Command::new(&script).arg("env").output().unwrap();
    let env = String::from_utf8(env.stdout).unwrap();
    let go = env
        .lines()
        .find_map(|l| l.strip_prefix("GO="))
        .expect("GO= in scripts/build-guests env");
    let out = Command::new(go)
        .args(["test", "-count=1", "./..."])
        .current_dir(root().join("guest-transforms/go"))
        .env("GOFLAGS", "-mod=mod")
        .env("GOPROXY", "off")
        .env("GOTOOLCHAIN", "local")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "go test ./...:\n{text}");
    assert!(text.contains("ok  \tsmt\t"), "{text}");
}
