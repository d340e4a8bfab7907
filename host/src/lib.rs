//! smt: consume Debezium change events from Kafka, run each through a
//! WebAssembly transform, execute the MongoDB writes it returns.

pub mod admin;
pub mod app;
pub mod board;
pub mod config;
pub mod contract;
pub mod decode;
pub mod dlq;
pub mod doctor;
pub mod engine;
pub mod extjson;
pub mod kafka;
pub mod offline;
pub mod offsets;
pub mod pipeline;
pub mod records;
pub mod registry;
pub mod replay;
pub mod retry;
pub mod scaffold;
pub mod sink;
pub mod source;
pub mod status;
pub mod swap;
pub mod telemetry;
pub mod writeop;
