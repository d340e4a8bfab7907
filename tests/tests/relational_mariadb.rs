//! The relational mapper on MariaDB, end to end: `examples/blog-mariadb/run`
//! starts its own Kafka, MongoDB-protocol server, MariaDB and Kafka Connect
//! with Debezium's MariaDB connector, streams the blog's tables through
//! `smt run` while changes are applied, and exits 0 only once MongoDB holds
//! exactly the documents computed from MariaDB's final tables by SQL
//! (`examples/blog-mariadb/expected.sql`), types included.

const MAPPER: &str = env!("SMT_GUEST_RELATIONAL_MAPPER");

#[test]
fn the_mariadb_blog_example_reaches_the_documents_computed_from_mariadb() {
    let stdout = smt_tests::examples::run("blog-mariadb", &[("SMT_MAPPER_WASM", MAPPER)]);
    // the posts, with the comment that moved to post 13 and the one on the re-keyed post 14
    assert!(stdout.contains("blog.posts:"), "{stdout}");
    assert!(stdout.contains("\"Publish it!\""), "{stdout}");
}
