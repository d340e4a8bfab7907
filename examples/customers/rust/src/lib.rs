//! The customers example (`examples/customers/README.md`) with the smt-guest
//! SDK: `inventory.customers` change events to documents
//! `{_id, name, email, balance: Decimal128, isVip}` in `customers`.

use base64::Engine as _;
use serde_json::{json, Value};
use smt_guest::debezium::{decimal, Event, Fields, Op, Record};
use smt_guest::{ops, Message, Transform, TransformError, WriteOp};

/// `balance` is `numeric(10,2)`: its scale when the record carries no schema.
const BALANCE_SCALE: i32 = 2;
const COLLECTION: &str = "customers";

pub struct Customers;

impl Transform for Customers {
    fn init(_config: &str) -> Result<Self, String> {
        Ok(Customers)
    }

    fn transform(&self, msg: &Message) -> Result<Vec<WriteOp>, TransformError> {
        let mut event = match Event::classify(msg)? {
            Record::Change(event) => event,
            Record::Tombstone => return Ok(vec![]),
            Record::NotAChange => {
                return Err(TransformError::bad_input("not a change event: no 'op'"))
            }
        };
        let table = event.source().table().unwrap_or_default().to_owned();
        if table != "customers" {
            return Err(TransformError::unsupported(format!(
                "table {table:?} is not customers"
            )));
        }
        let key = event.require_key()?;
        let id = match key.get("id") {
            Some(id) if id.is_i64() => id.clone(),
            _ => return Err(TransformError::bad_input("the key has no integer 'id'")),
        };
        match event.op() {
            Op::Delete => Ok(vec![ops::delete_one(COLLECTION, json!({ "_id": id }))]),
            Op::Read | Op::Create | Op::Update => {
                let after = event.require_after()?;
                let doc = json!({
                    "_id": id,
                    "name": format!("{} {}", text(&after, "first_name")?, text(&after, "last_name")?),
                    "email": text(&after, "email")?,
                    "balance": balance(&after)?,
                    "isVip": after.get("vip").and_then(Value::as_bool)
                        .ok_or_else(|| TransformError::bad_input("'vip' must be a boolean"))?,
                });
                Ok(vec![ops::replace_one(
                    COLLECTION,
                    json!({ "_id": id }),
                    doc,
                )
                .upsert()
                .into()])
            }
            op => Err(TransformError::unsupported(format!(
                "op {:?} is not handled",
                op.code()
            ))),
        }
    }
}

fn text<'a>(row: &'a Fields, field: &str) -> Result<&'a str, TransformError> {
    row.get(field)
        .and_then(Value::as_str)
        .ok_or_else(|| TransformError::bad_input(format!("'{field}' must be a string")))
}

/// With a schema the SDK has already decoded the numeric to Decimal128;
/// without one it is still the base64 of the unscaled integer.
fn balance(row: &Fields) -> Result<Value, TransformError> {
    match row.get("balance") {
        None | Some(Value::Null) => Ok(Value::Null),
        Some(Value::Object(d)) if d.contains_key("$numberDecimal") => Ok(Value::Object(d.clone())),
        Some(Value::String(b64)) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|_| TransformError::bad_input("'balance' is not base64"))?;
            let (text, _) = decimal::decimal_from_unscaled(&bytes, BALANCE_SCALE);
            Ok(json!({ "$numberDecimal": text }))
        }
        Some(_) => Err(TransformError::bad_input("'balance' must be a decimal")),
    }
}

smt_guest::export_transform!(Customers);

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(key: &str, value: Option<&str>) -> Message {
        Message::new(
            "dbz.inventory.customers",
            Some(key.as_bytes()),
            value.map(str::as_bytes),
        )
    }

    fn run(value: Option<&str>) -> Result<Vec<Value>, TransformError> {
        let t = Customers::init("{}").unwrap();
        t.transform(&msg(r#"{"id": 7}"#, value))
            .map(|ops| ops.iter().map(ops::describe).collect())
    }

    #[test]
    fn a_create_becomes_an_upsert_of_the_mapped_document() {
        let value = r#"{"op": "c", "source": {"table": "customers"}, "after": {"id": 7, "first_name": "Ada",
            "last_name": "Lovelace", "email": "ada@example.com", "balance": "/zg=", "vip": true, "created_at": "x"}}"#;
        let ops = run(Some(value)).unwrap();
        assert_eq!(ops.len(), 1);
        let text = ops[0].to_string();
        for part in [
            r#""name":"Ada Lovelace""#,
            r#""$numberDecimal":"-2.00""#,
            r#""isVip":true"#,
            r#""upsert":true"#,
        ] {
            assert!(text.contains(part), "{part} in {text}");
        }
        assert!(!text.contains("created_at"), "{text}");
    }

    #[test]
    fn deletes_tombstones_and_bad_records() {
        let delete = run(Some(
            r#"{"op": "d", "source": {"table": "customers"}, "before": {"id": 7}}"#,
        ))
        .unwrap();
        assert!(delete[0].to_string().contains("delete-one"), "{delete:?}");
        assert_eq!(run(None).unwrap(), Vec::<Value>::new());
        assert_eq!(
            run(Some("{not json")).unwrap_err().kind,
            smt_guest::ErrorKind::BadInput
        );
        let other = run(Some(
            r#"{"op": "c", "source": {"table": "orders"}, "after": {}}"#,
        ))
        .unwrap_err();
        assert_eq!(other.kind, smt_guest::ErrorKind::Unsupported);
    }
}
