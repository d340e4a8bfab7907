//! MongoDB → MongoDB, end to end: `examples/mongodb-source/run` starts its
//! own Kafka, MongoDB-protocol server and Kafka Connect with Debezium's
//! MongoDB connector, captures a collection (snapshot, then inserts, field
//! updates, unsets, array changes, replaces and deletes while `smt run`
//! writes with the default transform), and exits 0 only once the copy equals
//! the source collection in canonical Extended JSON (BSON types included):
//! the source itself is the expectation.

const DEFAULT_TRANSFORM: &str = env!("SMT_GUEST_DEBEZIUM_MONGO");

#[test]
fn a_collection_captured_by_debezium_reaches_an_equal_copy() {
    let stdout =
        smt_tests::examples::run("mongodb-source", &[("SMT_DEFAULT_WASM", DEFAULT_TRANSFORM)]);
    // the snapshot's document with its last changes, and one inserted while smt ran
    assert!(stdout.contains("\"changed\""), "{stdout}");
    assert!(stdout.contains("\"inserted again\""), "{stdout}");
}
