pub mod bench_report;
pub mod native;
pub mod oracle;
pub mod pipeline;
pub mod schema_registry;
pub mod services;
