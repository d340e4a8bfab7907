pub mod services;
pub mod pipeline;
pub mod native;
pub mod bench_report;
