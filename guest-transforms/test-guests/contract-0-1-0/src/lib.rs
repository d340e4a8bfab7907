//! A transform built directly against the frozen `smt:transform@0.1.0`
//! contract (`wit/history/0.1.0`), as a guest compiled before 0.2.0 was: the
//! engine tests check that the host still loads and runs it.
//!
//! Every record gives one operation of each of the six kinds (documents as
//! JSON and as BSON), after a log line; the key `bad` gives a `bad-input`
//! error. `init` refuses the configuration `"reject"`.

#[allow(clippy::all)]
mod bindings {
    wit_bindgen::generate!({
        world: "transform",
        path: "../../../wit/history/0.1.0",
    });
}

use bindings::smt::transform::log::{log, Level};
use bindings::smt::transform::types::{
    Delete, Document, ErrorKind, InsertOne, Namespace, ReplaceOne, Update, UpdateBody,
};
use bindings::{Guest, Message, TransformError, WriteOp};

struct Guest01;

fn ns(collection: &str) -> Namespace {
    Namespace {
        database: None,
        collection: collection.into(),
    }
}

fn json(text: String) -> Document {
    Document::Json(text)
}

/// `{"_id": <offset as int32>}` as raw BSON.
fn bson_id(id: i32) -> Document {
    let mut doc = Vec::with_capacity(14);
    doc.extend_from_slice(&14i32.to_le_bytes());
    doc.push(0x10); // int32
    doc.extend_from_slice(b"_id\0");
    doc.extend_from_slice(&id.to_le_bytes());
    doc.push(0);
    Document::Bson(doc)
}

impl Guest for Guest01 {
    fn init(config: String) -> Result<(), String> {
        if config == "\"reject\"" {
            return Err("rejected by request".into());
        }
        Ok(())
    }

    fn transform(msg: Message) -> Result<Vec<WriteOp>, TransformError> {
        let key = String::from_utf8(msg.key.clone().unwrap_or_default()).unwrap_or_default();
        log(
            Level::Info,
            &format!("0.1.0 guest at offset {}", msg.offset),
        );
        if key == "bad" {
            return Err(TransformError {
                kind: ErrorKind::BadInput,
                message: "the key is bad".into(),
            });
        }
        let id = msg.offset as i32;
        let headers = msg.headers.len();
        Ok(vec![
            WriteOp::InsertOne(InsertOne {
                ns: ns("c"),
                document: json(format!(
                    r#"{{"_id":{id},"key":"{key}","topic":"{}","headers":{headers}}}"#,
                    msg.topic
                )),
            }),
            WriteOp::ReplaceOne(ReplaceOne {
                ns: Namespace {
                    database: Some("other".into()),
                    collection: "c".into(),
                },
                filter: bson_id(id),
                replacement: json(format!(r#"{{"_id":{id},"r":true}}"#)),
                upsert: true,
            }),
            WriteOp::UpdateOne(Update {
                ns: ns("c"),
                filter: json(format!(r#"{{"_id":{id}}}"#)),
                update: UpdateBody::Operators(json(r#"{"$set":{"a.$[e].x":1}}"#.into())),
                upsert: false,
                array_filters: vec![json(r#"{"e.k":2}"#.into())],
            }),
            WriteOp::UpdateMany(Update {
                ns: ns("c"),
                filter: json("{}".into()),
                update: UpdateBody::Pipeline(vec![json(r#"{"$set":{"n":1}}"#.into())]),
                upsert: false,
                array_filters: vec![],
            }),
            WriteOp::DeleteOne(Delete {
                ns: ns("c"),
                filter: bson_id(id),
            }),
            WriteOp::DeleteMany(Delete {
                ns: ns("d"),
                filter: json("{}".into()),
            }),
        ])
    }
}

bindings::export!(Guest01 with_types_in bindings);
