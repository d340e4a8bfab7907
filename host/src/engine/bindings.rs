//! The one place that runs `bindgen!` over the contract in `wit/`.
//! Everything else in the host uses the types re-exported from here.

wasmtime::component::bindgen!({
    world: "transform",
    path: "../wit",
});

pub use smt::transform::log::Level;
pub use smt::transform::types::{
    Aggregate, Delete, Document, ErrorKind, Header, InsertOne, Namespace, ReplaceOne, Update,
    UpdateBody,
};
