//! Per-instance resource limits, enforced by a store limiter that reports
//! *why* it refused, so a memory bomb is told apart from a bug.
//!
//! The cap is on the whole `Store` (one transform instance), not on each
//! memory: a component is several core instances, each may declare memories
//! and tables, and a per-memory cap would let a hostile component hold the
//! cap many times over. So the limiter keeps a running total of the bytes of
//! every linear memory and every table of the store, and the counts of
//! instances, memories and tables are capped low (wasmtime's default is
//! 10,000 of each; every memory reserves gigabytes of address space).

use crate::config::Limits;
use wasmtime::ResourceLimiter;

/// The error a limiter raises when a guest asks for more memory than its cap.
#[derive(Debug, thiserror::Error)]
#[error("memory limit exceeded: the guest asked for {requested} bytes of memories and tables in total, the limit is {limit} bytes")]
pub struct MemoryLimitExceeded {
    /// The total the store would hold after the growth.
    pub requested: usize,
    pub limit: usize,
}

/// Wasmtime stores a pointer per table element.
const TABLE_ELEMENT_BYTES: usize = std::mem::size_of::<usize>();

/// Caps the memories and tables of one store, together.
pub(crate) struct MemoryCap {
    limit: usize,
    instances: usize,
    memories: usize,
    tables: usize,
    /// Bytes of every memory and table of the store granted so far.
    used: usize,
    /// The growth granted last, taken back when wasmtime reports it failed.
    pending: usize,
}

impl MemoryCap {
    pub(crate) fn new(limits: &Limits) -> Self {
        MemoryCap {
            limit: usize::try_from(limits.memory_mib << 20).unwrap_or(usize::MAX),
            instances: limits.max_instances,
            memories: limits.max_memories,
            tables: limits.max_tables,
            used: 0,
            pending: 0,
        }
    }

    /// Grants growing by `delta` bytes if the store's total stays within the cap.
    fn grow(&mut self, delta: usize) -> wasmtime::Result<bool> {
        let total = self.used.saturating_add(delta);
        if total > self.limit {
            // An error (not `Ok(false)`) traps the guest: a language runtime
            // that handles allocation failure itself would otherwise spin.
            return Err(wasmtime::Error::new(MemoryLimitExceeded {
                requested: total,
                limit: self.limit,
            }));
        }
        self.used = total;
        self.pending = delta;
        Ok(true)
    }

    /// Takes back the growth granted last (wasmtime could not perform it,
    /// e.g. it exceeded the memory's own maximum).
    fn undo(&mut self) {
        self.used -= std::mem::take(&mut self.pending);
    }

    /// Bytes of memories and tables the store holds.
    #[cfg(test)]
    fn used(&self) -> usize {
        self.used
    }
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Also called when a memory is created (current 0): its initial size counts.
        self.grow(desired.saturating_sub(current))
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.undo();
        Ok(())
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.grow(
            desired
                .saturating_sub(current)
                .saturating_mul(TABLE_ELEMENT_BYTES),
        )
    }

    fn table_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.undo();
        Ok(())
    }

    fn instances(&self) -> usize {
        self.instances
    }

    fn tables(&self) -> usize {
        self.tables
    }

    fn memories(&self) -> usize {
        self.memories
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cap(mib: u64) -> MemoryCap {
        MemoryCap::new(&Limits {
            memory_mib: mib,
            ..Limits::default()
        })
    }

    #[test]
    fn memories_and_tables_share_one_total() {
        let mut c = cap(1);
        assert!(c.memory_growing(0, 512 << 10, None).unwrap());
        // A second memory of the same size fits exactly; one more byte of table does not.
        assert!(c.memory_growing(0, 512 << 10, None).unwrap());
        assert_eq!(c.used(), 1 << 20);
        let err = c.table_growing(0, 1, None).unwrap_err();
        let e = err.downcast_ref::<MemoryLimitExceeded>().unwrap();
        assert_eq!((e.requested, e.limit), ((1 << 20) + 8, 1 << 20));
        // A refused growth is not counted.
        assert_eq!(c.used(), 1 << 20);
    }

    #[test]
    fn a_failed_growth_is_given_back() {
        let mut c = cap(1);
        assert!(c.table_growing(10, 1010, None).unwrap());
        assert_eq!(c.used(), 8000);
        c.table_grow_failed(wasmtime::Error::msg("past the maximum"))
            .unwrap();
        assert_eq!(c.used(), 0);
        assert!(c.memory_growing(0, 1 << 20, None).unwrap());
    }
}
