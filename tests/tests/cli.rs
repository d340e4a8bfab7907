//! `smt check` and `smt test`, the offline tools users run in their own CI,
//! as a user runs them: the real binary over the real fixtures.

use std::process::Command;

use serde_json::Value;
use smt_tests::smt_process::smt_bin;

const DEFAULT: &str = env!("SMT_GUEST_DEBEZIUM_MONGO");
const HOSTILE: &str = env!("SMT_GUEST_HOSTILE");

fn fixture(name: &str) -> String {
    format!("{}/fixtures/debezium/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn run(args: &[&str]) -> (i32, Vec<Value>, String) {
    let out = Command::new(smt_bin())
        .args(args)
        .output()
        .expect("running smt");
    let lines = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect();
    (
        out.status.code().unwrap_or(-1),
        lines,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `smt check` of a module that must pass: its standard output.
fn check_ok(module: &str) -> String {
    let out = Command::new(smt_bin())
        .args(["check", "--transform", module])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn check_accepts_the_default_transform() {
    let stdout = check_ok(DEFAULT);
    assert!(
        stdout.starts_with("ok: ") && stdout.contains("implements smt:transform@0.2.0 "),
        "{stdout}"
    );
}

#[test]
fn test_prints_one_line_of_canonical_operations_per_record() {
    let (code, lines, stderr) = run(&[
        "test",
        "--transform",
        DEFAULT,
        "--input",
        &fixture("schemas.jsonl"),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let records = std::fs::read_to_string(fixture("schemas.jsonl"))
        .unwrap()
        .lines()
        .count();
    assert_eq!(lines.len(), records);
    let first = &lines[0];
    assert!(
        first["topic"].as_str().unwrap().starts_with("dbz"),
        "{first}"
    );
    let customers_insert = lines
        .iter()
        .find(|l| l["topic"] == "dbz.inventory.customers" && l["offset"] == 0)
        .expect("customers@0");
    let op = &customers_insert["ops"][0];
    assert_eq!(op["op"], "replace-one");
    // Canonical Extended JSON: every number carries its BSON type.
    assert_eq!(
        op["filter"],
        serde_json::json!({"_id": {"id": {"$numberInt": "1"}}})
    );
    assert_eq!(
        op["replacement"]["balance"],
        serde_json::json!({"$numberDecimal": "1234.50"})
    );
}

#[test]
fn test_reports_failures_per_record_and_exits_non_zero() {
    let dir = std::env::temp_dir().join(format!("smt-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("trap.json");
    std::fs::write(&config, r#"{"mode":"trap","trap_key":"boom"}"#).unwrap();
    let input = dir.join("in.jsonl");
    std::fs::write(
        &input,
        concat!(
            r#"{"topic":"t","partition":0,"offset":1,"key":"fine","value":"{}","headers":[]}"#,
            "\n",
            r#"{"topic":"t","partition":0,"offset":2,"key":"boom","value":"{}","headers":[]}"#,
            "\n",
            "this is not a record line\n",
            r#"{"topic":"t","partition":0,"offset":3,"key":"fine","value":"{}","headers":[]}"#,
            "\n",
        ),
    )
    .unwrap();
    // The deprecated spelling of `--transform-config` still works, with a warning.
    let (code, lines, stderr) = run(&[
        "test",
        "--transform",
        HOSTILE,
        "--config",
        config.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
    ]);
    assert!(
        stderr.contains("`--config` of `smt check`/`smt test` is deprecated"),
        "{stderr}"
    );
    assert_eq!(code, 1);
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[0]["ops"].as_array().unwrap().len(), 1);
    assert_eq!(lines[1]["error"]["kind"], "trap");
    assert_eq!(lines[1]["offset"], 2);
    assert_eq!(lines[2]["error"]["kind"], "invalid-record-line");
    assert_eq!(
        lines[3]["ops"].as_array().unwrap().len(),
        1,
        "a fresh instance serves the record after a trap"
    );
}

#[test]
fn check_names_the_contract_version_of_a_0_1_0_guest() {
    let stdout = check_ok(env!("SMT_GUEST_CONTRACT_0_1_0"));
    assert!(
        stdout.contains("implements smt:transform@0.1.0 "),
        "{stdout}"
    );
}

#[test]
fn test_prints_an_aggregate_operation_and_refuses_an_invalid_one() {
    let dir = std::env::temp_dir().join(format!("smt-cli-agg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("in.jsonl");
    std::fs::write(
        &input,
        concat!(
            r#"{"topic":"t","partition":0,"offset":1,"key":"k","value":"{}","headers":[]}"#,
            "\n"
        ),
    )
    .unwrap();
    let run_with = |config: serde_json::Value| {
        let path = dir.join("aggregate.json");
        std::fs::write(&path, config.to_string()).unwrap();
        run(&[
            "test",
            "--transform",
            HOSTILE,
            "--transform-config",
            path.to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
        ])
    };
    let (code, lines, stderr) = run_with(serde_json::json!({"mode": "aggregate", "pipeline": [
        {"$match": {"n": {"$gt": 1}}},
        {"$merge": {"into": {"db": "other", "coll": "docs"}, "whenMatched": "replace"}},
    ]}));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        lines[0]["ops"],
        serde_json::json!([{"op": "aggregate", "db": null, "coll": "hostile", "pipeline": [
            {"$match": {"n": {"$gt": {"$numberInt": "1"}}}},
            {"$merge": {"into": {"db": "other", "coll": "docs"}, "whenMatched": "replace"}},
        ]}])
    );

    let (code, lines, _) = run_with(serde_json::json!({"mode": "aggregate", "pipeline": [
        {"$out": "docs"},
    ]}));
    assert_eq!(code, 1);
    assert_eq!(lines[0]["error"]["kind"], "invalid-operation");
    let message = lines[0]["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("pipeline") && message.contains("$out"),
        "{message}"
    );
}

#[test]
fn usage_errors_and_startup_failures_exit_differently() {
    let (usage, _, stderr) = run(&["test", "--no-such-flag"]);
    assert_eq!(usage, 64, "a usage error is EX_USAGE: {stderr}");
    let (both, _, stderr) = run(&[
        "check",
        "--transform",
        HOSTILE,
        "--config",
        "a.json",
        "--transform-config",
        "b.json",
    ]);
    assert_eq!(both, 64, "the old and new spelling together: {stderr}");
    let (missing, _, stderr) = run(&["check", "--transform", "/nonexistent/t.wasm"]);
    assert_eq!(missing, 2, "a transform that cannot load: {stderr}");
}
