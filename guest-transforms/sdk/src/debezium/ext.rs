//! Typed Extended JSON values, for [`super::Event::after_as`] and friends.
//!
//! ```
//! use smt_guest::debezium::ext::{DateTime, Decimal};
//! #[derive(serde::Deserialize)]
//! struct Order {
//!     id: i32,
//!     amount: Decimal,        // numeric(10,2) → {"$numberDecimal": "1234.50"}
//!     created_at: DateTime,   // timestamptz → {"$date": {"$numberLong": "…"}}
//! }
//! let o: Order = serde_json::from_value(serde_json::json!({"id": 1,
//!     "amount": {"$numberDecimal": "1234.50"}, "created_at": {"$date": {"$numberLong": "5"}}})).unwrap();
//! assert_eq!(o.amount.0, "1234.50");
//! assert_eq!(o.created_at.0, 5);
//! ```

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// An exact decimal: `{"$numberDecimal": "<text>"}` (also accepts a plain
/// string or number). Serialises back to `$numberDecimal`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decimal(pub String);

/// A BSON date: milliseconds since the epoch. Accepts `{"$date": {"$numberLong": "…"}}`,
/// `{"$date": <ms>}` and a plain number of ms. Serialises to canonical `$date`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct DateTime(pub i64);

impl<'de> Deserialize<'de> for Decimal {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::Object(mut m) => match m.remove("$numberDecimal") {
                Some(Value::String(s)) => Ok(Decimal(s)),
                _ => Err(D::Error::custom("expected {\"$numberDecimal\": \"…\"}")),
            },
            Value::String(s) => Ok(Decimal(s)),
            Value::Number(n) => Ok(Decimal(n.to_string())),
            _ => Err(D::Error::custom("expected a decimal")),
        }
    }
}

impl Serialize for Decimal {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        super::decode::number_decimal(self.0.clone()).serialize(s)
    }
}

fn as_ms(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::Object(m) => m.get("$numberLong")?.as_str()?.parse().ok(),
        _ => None,
    }
}

impl<'de> Deserialize<'de> for DateTime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        let ms = match &v {
            Value::Object(m) => m.get("$date").and_then(as_ms),
            other => as_ms(other),
        };
        ms.map(DateTime)
            .ok_or_else(|| D::Error::custom(format!("expected a $date, found {v}")))
    }
}

impl Serialize for DateTime {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        super::decode::date_ms(self.0).serialize(s)
    }
}
