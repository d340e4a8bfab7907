//! The relational mapper (see docs/relational-mapper.md). Work in progress.

use smt_guest::{Message, TransformError, WriteOp};

pub struct Mapper;

impl smt_guest::Transform for Mapper {
    fn init(_config: &str) -> Result<Self, String> {
        Ok(Mapper)
    }

    fn transform(&self, _msg: &Message) -> Result<Vec<WriteOp>, TransformError> {
        Ok(Vec::new())
    }
}

#[cfg(feature = "export")]
smt_guest::export_transform!(Mapper);
