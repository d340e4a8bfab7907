//! The relational mapper on MariaDB, end to end: `examples/blog-mariadb/run`
//! starts its own Kafka, MongoDB-protocol server, MariaDB and Kafka Connect
//! with Debezium's MariaDB connector, streams the blog's tables through
//! `smt run` while changes are applied, and exits 0 only once MongoDB holds
//! exactly the documents computed from MariaDB's final tables by SQL
//! (`examples/blog-mariadb/expected.sql`), types included.

use smt_tests::smt_process::smt_bin;

const MAPPER: &str = env!("SMT_GUEST_RELATIONAL_MAPPER");

#[test]
fn the_mariadb_blog_example_reaches_the_documents_computed_from_mariadb() {
    let script = smt_tests::services::repo_root().join("examples/blog-mariadb/run");
    let out = std::process::Command::new(&script)
        .env("SMT_BIN", smt_bin())
        .env("SMT_MAPPER_WASM", MAPPER)
        // Its own services, as a user's run has.
        .env_remove("SMT_KAFKA_BROKERS")
        .env_remove("SMT_MONGODB_URI")
        .env_remove("SMT_MARIADB_URL")
        .output()
        .expect("running examples/blog-mariadb/run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "examples/blog-mariadb/run failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    // the posts, with the comment that moved to post 13 and the one on the re-keyed post 14
    assert!(stdout.contains("blog.posts:"), "{stdout}");
    assert!(stdout.contains("\"Publish it!\""), "{stdout}");
}
