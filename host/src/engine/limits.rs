//! Per-instance resource limits: a memory cap enforced by a store limiter
//! that reports *why* it refused, so a memory bomb is told apart from a bug.

use serde::Deserialize;
use wasmtime::ResourceLimiter;

/// Limits applied to every instance of every transform.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct Limits {
    /// Largest linear memory an instance may grow to, in MiB. JavaScript
    /// guests keep a ~100 MiB heap: give them at least 128.
    pub memory_mib: u64,
    /// Wall-clock deadline of one `init` or `transform` call, in milliseconds.
    /// A call past it is interrupted and its instance discarded.
    pub call_timeout_ms: u64,
    /// Largest total size of the documents one `transform` call may return, in bytes.
    pub max_output_bytes: usize,
    /// Most write operations one `transform` call may return.
    pub max_output_ops: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_mib: 256,
            call_timeout_ms: 1_000,
            max_output_bytes: 16 << 20,
            max_output_ops: 10_000,
        }
    }
}

/// The error a limiter raises when a guest asks for more memory than its cap.
#[derive(Debug, thiserror::Error)]
#[error("memory limit exceeded: the guest asked to grow its memory to {requested} bytes, the limit is {limit} bytes")]
pub struct MemoryLimitExceeded {
    pub requested: usize,
    pub limit: usize,
}

/// Caps memories and tables of one store.
pub(crate) struct MemoryCap {
    limit: usize,
}

impl MemoryCap {
    pub(crate) fn new(limits: &Limits) -> Self {
        MemoryCap {
            limit: usize::try_from(limits.memory_mib << 20).unwrap_or(usize::MAX),
        }
    }
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limit {
            // An error (not `Ok(false)`) traps the guest: a language runtime
            // that handles allocation failure itself would otherwise spin.
            return Err(wasmtime::Error::new(MemoryLimitExceeded {
                requested: desired,
                limit: self.limit,
            }));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}
