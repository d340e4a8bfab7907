//! The host's structured log.
//!
//! In a component these call the contract's `log` import: the host tags the
//! line with the transform, its version and the record being processed.
//! Natively (unit tests, benchmarks) they write to stderr, which the test
//! harness captures.

#[cfg(target_arch = "wasm32")]
use crate::bindings::smt::transform::log::Level;

#[cfg(target_arch = "wasm32")]
fn emit(level: Level, message: &str) {
    crate::bindings::smt::transform::log::log(level, message);
}

#[cfg(not(target_arch = "wasm32"))]
#[allow(non_snake_case, non_upper_case_globals)]
mod Level {
    pub const Trace: &str = "TRACE";
    pub const Debug: &str = "DEBUG";
    pub const Info: &str = "INFO";
    pub const Warn: &str = "WARN";
    pub const Error: &str = "ERROR";
}

#[cfg(not(target_arch = "wasm32"))]
fn emit(level: &str, message: &str) {
    eprintln!("[smt-guest {level}] {message}");
}

/// Logs at trace level.
pub fn trace(message: &str) {
    emit(Level::Trace, message)
}

/// Logs at debug level.
pub fn debug(message: &str) {
    emit(Level::Debug, message)
}

/// Logs at info level.
pub fn info(message: &str) {
    emit(Level::Info, message)
}

/// Logs at warn level.
pub fn warn(message: &str) {
    emit(Level::Warn, message)
}

/// Logs at error level.
pub fn error(message: &str) {
    emit(Level::Error, message)
}
