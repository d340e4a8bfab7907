pub mod bench_report;
pub mod native;
pub mod oracle;
pub mod pipeline;
pub mod proxy;
pub mod services;
