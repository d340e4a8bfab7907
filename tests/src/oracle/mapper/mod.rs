//! The relational mapper's oracle (tests/tests/relational_oracle.rs): a
//! seeded random workload on the `shop` schema, the expected documents
//! computed by SQL from the final tables, and the state collections checked
//! against the tables' keys.

pub mod expected;
pub mod state;
pub mod workload;

pub use expected::{expected_documents, fixture, table_keys};
pub use state::{check_state, Key, StateCheck};
pub use workload::{generate, timestamp, Workload, TABLES};
