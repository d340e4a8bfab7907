//! {{name}}: Debezium change events to MongoDB writes.

use serde_json::{json, Map, Value};
use smt_guest::debezium::{Event, Op};
use smt_guest::{ops, Message, Transform, TransformError, WriteOp};

pub struct App;

impl Transform for App {
    fn init(_config: &str) -> Result<Self, String> {
        Ok(App)
    }

    fn transform(&self, msg: &Message) -> Result<Vec<WriteOp>, TransformError> {
        // `None`: a tombstone, or a record that is not a change event.
        let Some(mut event) = Event::parse(msg)? else { return Ok(vec![]) };
        let collection = event.source().table().ok_or_else(|| TransformError::bad_input("no source.table"))?.to_owned();
        // The key and the row images come decoded by their schema, when the
        // records carry one (Decimal128, dates, ...: see the SDK's `debezium::decode`).
        let key = Value::Object(event.require_key()?);
        let filter = json!({ "_id": key });
        match event.op() {
            Op::Delete => Ok(vec![ops::delete_one(collection, filter)]),
            Op::Create | Op::Read | Op::Update => {
                let mut doc = Map::new();
                doc.insert("_id".into(), key);
                doc.extend(event.require_after()?);
                Ok(vec![ops::replace_one(collection, filter, Value::Object(doc)).upsert().into()])
            }
            op => Err(TransformError::unsupported(format!("op {:?} is not handled", op.code()))),
        }
    }
}

smt_guest::export_transform!(App);
