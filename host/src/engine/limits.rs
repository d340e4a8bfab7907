//! Per-instance resource limits: a memory cap enforced by a store limiter
//! that reports *why* it refused, so a memory bomb is told apart from a bug.

use crate::config::Limits;
use wasmtime::ResourceLimiter;

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
