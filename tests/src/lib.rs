//! Support for the tests and benchmarks, one module a job: the services
//! (`services`), Kafka (`kafka`), MongoDB (`mongo`), the record type
//! (`record`), the `smt` process (`smt_process`) and its configuration
//! (`config`), a headless Chromium driven over CDP (`browser`), the test guests and module versions made of them (`guests`), the Debezium workload of the failure tests (`workload`), the
//! secured broker and MongoDB server of the security tests (`kafka_secure`),
//! native runs of the Rust guests (`native`), the relational oracle
//! (`oracle`) and a TCP proxy for network faults (`proxy`).

pub mod admin;
pub mod bench_report;
pub mod browser;
pub mod config;
pub mod examples;
pub mod guests;
pub mod kafka;
pub mod kafka_secure;
pub mod mongo;
pub mod native;
pub mod oracle;
pub mod proxy;
pub mod record;
pub mod schema_registry;
pub mod services;
pub mod smt_process;
pub mod workload;
