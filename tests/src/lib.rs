pub mod bench_report;
pub mod kafka_secure;
pub mod native;
pub mod oracle;
pub mod pipeline;
pub mod services;
