//! MongoDB → MongoDB, end to end: `examples/mongodb-source/run` starts its
//! own Kafka, MongoDB-protocol server and Kafka Connect with Debezium's
//! MongoDB connector, captures a collection (snapshot, then inserts, field
//! updates, unsets, array changes, replaces and deletes while `smt run`
//! writes with the default transform), and exits 0 only once the copy equals
//! the source collection in canonical Extended JSON (BSON types included):
//! the source itself is the expectation.

use smt_tests::smt_process::smt_bin;

const DEFAULT_TRANSFORM: &str = env!("SMT_GUEST_DEBEZIUM_MONGO");

#[test]
fn a_collection_captured_by_debezium_reaches_an_equal_copy() {
    let script = smt_tests::services::repo_root().join("examples/mongodb-source/run");
    let out = std::process::Command::new(&script)
        .env("SMT_BIN", smt_bin())
        .env("SMT_DEFAULT_WASM", DEFAULT_TRANSFORM)
        // Its own services, as a user's run has.
        .env_remove("SMT_KAFKA_BROKERS")
        .env_remove("SMT_MONGODB_URI")
        .output()
        .expect("running examples/mongodb-source/run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "examples/mongodb-source/run failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    // the snapshot's document with its last changes, and one inserted while smt ran
    assert!(stdout.contains("\"changed\""), "{stdout}");
    assert!(stdout.contains("\"inserted again\""), "{stdout}");
}
