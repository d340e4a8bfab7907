//! {{name}}: Debezium change events to MongoDB writes.

use serde_json::{Map, Value};
use smt_guest::debezium::{Event, Op};
use smt_guest::{ops, Message, Transform, TransformError, WriteOp};

pub struct App;

impl Transform for App {
    fn init(_config: &str) -> Result<Self, String> {
        Ok(App)
    }

    fn transform(&self, msg: &Message) -> Result<Vec<WriteOp>, TransformError> {
        // `None`: a tombstone, or a record that is not a change event.
        let Some(event) = Event::parse(msg)? else { return Ok(vec![]) };
        let collection = event.source().table().ok_or_else(|| TransformError::bad_input("no source.table"))?.to_owned();
        let key = Value::Object(event.raw_key().cloned().ok_or_else(|| TransformError::bad_input("no key"))?);
        let filter = serde_json::json!({ "_id": key });
        match event.op() {
            Op::Delete => Ok(vec![ops::delete_one(collection, filter)]),
            Op::Create | Op::Read | Op::Update => {
                let Some(Value::Object(after)) = event.raw("after") else {
                    return Err(TransformError::bad_input("no 'after' image"));
                };
                let mut doc = Map::new();
                doc.insert("_id".into(), key);
                doc.extend(after.iter().map(|(k, v)| (k.clone(), v.clone())));
                Ok(vec![ops::replace_one(collection, filter, Value::Object(doc)).upsert().into()])
            }
            op => Err(TransformError::unsupported(format!("op {:?} is not handled", op.code()))),
        }
    }
}

smt_guest::export_transform!(App);
