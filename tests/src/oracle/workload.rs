//! What both oracles' generators produce: the statements of a seeded
//! workload and the records Debezium will write for them, per table.

use std::collections::BTreeMap;

/// A generated workload on `N` tables.
#[derive(Clone, Debug)]
pub struct Workload<const N: usize> {
    pub seed: u64,
    /// The tables, in the order of every per-table array here.
    pub tables: [&'static str; N],
    /// Statements run before the Debezium connector exists (its snapshot reads the result).
    pub before: Vec<String>,
    /// Statements run while `smt` consumes.
    pub during: Vec<String>,
    /// Records Debezium writes per table: snapshot reads, then change events
    /// and tombstones of `during`.
    pub records: [u64; N],
    /// Of which snapshot reads.
    pub snapshot_records: [u64; N],
    /// Rows per table at the end (the model's count; the test checks PostgreSQL agrees).
    pub rows: [u64; N],
    /// How many operations of each kind were generated (rolled back ones included).
    pub kinds: BTreeMap<&'static str, u64>,
    /// Transactions committed and rolled back.
    pub transactions: (u64, u64),
}

impl<const N: usize> Workload<N> {
    pub fn total_records(&self) -> u64 {
        self.records.iter().sum()
    }

    /// One line: what the workload holds.
    pub fn summary(&self) -> String {
        let kinds: Vec<String> = self.kinds.iter().map(|(k, n)| format!("{k} {n}")).collect();
        format!(
            "{} statements before the connector, {} after; {} records expected ({}); \
             {} transactions committed, {} rolled back; {}",
            self.before.len(),
            self.during.len(),
            self.total_records(),
            self.tables
                .iter()
                .zip(self.records)
                .map(|(t, n)| format!("{t} {n}"))
                .collect::<Vec<_>>()
                .join(", "),
            self.transactions.0,
            self.transactions.1,
            kinds.join(", ")
        )
    }
}
