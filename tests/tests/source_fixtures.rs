//! Fixtures of sources other than PostgreSQL, captured from real Debezium
//! (`tests/fixtures/debezium/mariadb-*.jsonl`: the MariaDB connector, with
//! its default type modes and with every other value of each type-mode
//! setting; `mongodb-*.jsonl`: the MongoDB connector on the local
//! MongoDB-protocol server), through `smt test` with the default
//! transform, as a user runs it: every record maps (none is refused as bad
//! input), each gives the operations of the checked-in expected file
//! (MariaDB: written by `scripts/expect-fixtures` from the documented rules
//! and MariaDB's own values, never by smt; MongoDB: written by hand;
//! tests/fixtures/README.md), and every MariaDB column keeps one BSON type
//! whatever its value.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde_json::Value;
use smt_tests::smt_process::smt_bin;

const DEFAULT: &str = env!("SMT_GUEST_DEBEZIUM_MONGO");

/// The captured MariaDB files, and how many fields (dotted paths) their
/// documents have at least: `all_types` alone has 43 columns; the type-mode
/// files' `modes` table 14, plus `_id` and `_id.id`. The type-mode files:
/// `bigint.unsigned.handling.mode=precise` (BIGINT UNSIGNED as a `Decimal`
/// of scale 0, up to 18446744073709551615) and
/// `binary.handling.mode=base64-url-safe`, with schemas and without; `time.precision.mode=connect`,
/// `decimal.handling.mode=string`, `binary.handling.mode=base64`;
/// `time.precision.mode=isostring`, `decimal.handling.mode=double`,
/// `binary.handling.mode=hex` (tests/fixtures/README.md).
const MARIADB: [(&str, usize); 6] = [
    ("mariadb-schemas", 44),
    ("mariadb-plain", 44),
    ("mariadb-precise-schemas", 16),
    ("mariadb-precise-plain", 16),
    ("mariadb-connect", 16),
    ("mariadb-isostring", 16),
];

fn fixture(name: &str) -> String {
    format!("{}/fixtures/debezium/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn lines(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect()
}

/// `smt test` of one fixture with the default transform: its output lines.
fn smt_test(name: &str) -> Vec<Value> {
    let out = Command::new(smt_bin())
        .args(["test", "--transform", DEFAULT, "--input", &fixture(name)])
        .output()
        .expect("running smt");
    assert!(
        out.status.success(),
        "smt test {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    lines(&String::from_utf8(out.stdout).unwrap())
}

/// The BSON type of a canonical Extended JSON value (`$numberLong`, `$date`…,
/// or the JSON kind), None for null.
fn bson_type(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::Object(m) if m.len() == 1 && m.keys().next().unwrap().starts_with('$') => {
            Some(m.keys().next().unwrap().clone())
        }
        Value::Object(_) => Some("document".into()),
        Value::Array(_) => Some("array".into()),
        Value::String(_) => Some("string".into()),
        Value::Bool(_) => Some("bool".into()),
        Value::Number(_) => Some("number".into()),
    }
}

/// Every field (dotted path into embedded documents) of a written document, with its BSON type.
fn field_types(prefix: &str, doc: &Value, out: &mut Vec<(String, String)>) {
    let Some(m) = doc.as_object() else { return };
    for (k, v) in m {
        let path = format!("{prefix}{k}");
        if let Some(t) = bson_type(v) {
            if t == "document" {
                field_types(&format!("{path}."), v, out);
            }
            out.push((path, t));
        }
    }
}

/// The MariaDB expected files are what `scripts/expect-fixtures` derives
/// from the documented rules (docs/debezium-mongo.md) without running smt or
/// the transform, and their `all_types` values equal the ones MariaDB itself
/// computes (`mariadb-values.json`, with the listed Debezium/BSON
/// exceptions): an expected file regenerated from `smt test` output fails
/// here.
#[test]
fn mariadb_expected_files_come_from_the_independent_generator() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate is in the repository");
    let script = root.join("scripts/expect-fixtures");
    let out = Command::new("python3")
        .arg(&script)
        .arg("--check")
        .output()
        .unwrap_or_else(|e| panic!("running python3 {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "scripts/expect-fixtures --check failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn mariadb_fixtures_give_the_expected_operations() {
    for (name, _) in MARIADB {
        let got = smt_test(&format!("{name}.jsonl"));
        let want = lines(
            &std::fs::read_to_string(fixture(&format!("{name}.expected.jsonl")))
                .expect("expected file"),
        );
        assert_eq!(got.len(), want.len(), "{name}: one line per record");
        for (g, w) in got.iter().zip(&want) {
            assert!(g.get("error").is_none(), "{name}: refused: {g}");
            assert_eq!(g, w, "{name}: {}@{}", g["topic"], g["offset"]);
        }
    }
}

/// Debezium's MongoDB connector: `after` as Extended JSON text, `_id` in the
/// key as Extended JSON text; with schemas and without, the same writes
/// (`mongodb.expected.jsonl`, written by hand).
#[test]
fn mongodb_source_fixtures_give_the_hand_written_operations() {
    let want =
        lines(&std::fs::read_to_string(fixture("mongodb.expected.jsonl")).expect("expected file"));
    for name in ["mongodb-schemas", "mongodb-plain"] {
        let got = smt_test(&format!("{name}.jsonl"));
        assert_eq!(got.len(), want.len(), "{name}: one line per record");
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g, w, "{name}: {}@{}", g["topic"], g["offset"]);
        }
    }
}

#[test]
fn every_mariadb_column_has_one_bson_type() {
    for (name, at_least) in MARIADB {
        let mut seen: BTreeMap<(String, String), (String, String)> = BTreeMap::new();
        let mut columns = 0;
        for line in smt_test(&format!("{name}.jsonl")) {
            assert!(line.get("error").is_none(), "{name}: refused: {line}");
            for op in line["ops"].as_array().unwrap() {
                let coll = op["coll"].as_str().unwrap().to_owned();
                if coll.starts_with("__smt_moves.") {
                    continue;
                }
                let doc = op
                    .get("replacement")
                    .or_else(|| op.get("update").and_then(|u| u.get("$set")));
                let Some(doc) = doc else { continue };
                let mut fields = Vec::new();
                field_types("", doc, &mut fields);
                for (field, t) in fields {
                    let at = format!("{}@{}", line["topic"], line["offset"]);
                    match seen.get(&(coll.clone(), field.clone())) {
                        Some((t0, at0)) => assert_eq!(
                            &t, t0,
                            "{name}: {coll}.{field} is {t} at {at} but {t0} at {at0}"
                        ),
                        None => {
                            columns += 1;
                            seen.insert((coll.clone(), field), (t, at));
                        }
                    }
                }
            }
        }
        // the check saw every column of the type families
        assert!(columns >= at_least, "{name}: only {columns} fields seen");
    }
}
