//! Schema-aware decoding of Kafka Connect JSON values into MongoDB Extended
//! JSON v2 (as `serde_json::Value`).
//!
//! | Connect schema (`name`, else `type`) | Extended JSON |
//! |---|---|
//! | `org.apache.kafka.connect.data.Decimal` (base64 unscaled bytes, `scale` parameter) | `{"$numberDecimal": "1234.50"}`, exact, trailing zeros kept; more than 34 significant digits: rounded to 34 (half to even), or the exact decimal as a string with [`DecimalMode::ExactString`] |
//! | `io.debezium.data.VariableScaleDecimal` (struct `{scale, value}`) | `{"$numberDecimal": …}` as above |
//! | `io.debezium.time.ZonedTimestamp` (ISO-8601 text) | `{"$date": {"$numberLong": "<ms>"}}`, truncated to the millisecond ([`TimestampMode::TruncateToMillis`]); `infinity`/`-infinity` → the largest/smallest date; or, with [`TimestampMode::IsoString`], UTC text with 6 fractional digits (9 when it has nanoseconds) |
//! | `io.debezium.time.Timestamp`, `org.apache.kafka.connect.data.Timestamp` (ms) | `$date` (or UTC text with 3 digits) |
//! | `io.debezium.time.MicroTimestamp` (µs), `io.debezium.time.NanoTimestamp` (ns) | `$date` truncated to the millisecond (or UTC text with 6 / 9 digits) |
//! | `io.debezium.time.IsoTimestamp` (`time.precision.mode=isostring`: UTC text, fraction trimmed) | as `ZonedTimestamp` |
//! | `io.debezium.time.Date`, `org.apache.kafka.connect.data.Date` (days), `io.debezium.time.IsoDate` (`2024-03-04Z`) | `$date` at midnight UTC |
//! | `io.debezium.time.Time`/`MicroTime`/`NanoTime`, `org.apache.kafka.connect.data.Time` | the number (time of day since midnight; BSON has no time type) |
//! | `io.debezium.time.IsoTime` (`12:34:56.1Z`) | µs since midnight, as an `int64` (digits beyond µs dropped) |
//! | `io.debezium.data.Json` | the parsed JSON ([`JsonMode::Parse`], unless it has `$`-prefixed keys) or the text ([`JsonMode::String`]) |
//! | `bytes` (and `io.debezium.data.Bits`) | `{"$binary": {"base64": …, "subType": "00"}}` |
//! | `int64` | a number; `{"$numberLong": …}` beyond ±2^53 (or always with [`Int64Mode::Long`]) |
//! | `float32`, `float64` | a double (`1` → `1.0`); the converter's `"NaN"`, `"Infinity"`, `"-Infinity"` → `{"$numberDouble": …}` |
//! | `struct`, `array`, `map` (string keys) | decoded recursively |
//! | anything else (`io.debezium.data.Uuid`, enums, strings, int8–int32, floats, booleans, null) | unchanged |
//!
//! Whatever the options, the BSON type of a column never depends on its
//! values, except with [`Int64Mode::Relaxed`] (int32 or int64 by magnitude)
//! and [`DecimalMode::ExactString`].
//!
//! A value with no schema (the JSON converter's `schemas.enable=false`)
//! passes through unchanged: a `numeric` column then arrives as base64 text
//! that cannot be decoded without its scale, and stays that string.

use super::schema::Schema;
use super::{decimal, time};
use crate::TransformError;
use base64::Engine as _;
use serde_json::{Map, Value};

/// How `io.debezium.data.Json` columns (`json`, `jsonb`) are decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum JsonMode {
    /// Embed the parsed JSON as a sub-document/array/value. Text that does not
    /// parse, or objects with `$`-prefixed keys (which Extended JSON would
    /// misread as type wrappers), stay strings.
    #[default]
    Parse,
    /// Keep the JSON text as a string (the reference sink's behaviour).
    String,
}

/// How `int64` values without a logical type are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Int64Mode {
    /// Relaxed numbers (the server stores int32 or int64 by magnitude);
    /// `$numberLong` beyond ±2^53 so that any Extended JSON reader stays exact.
    #[default]
    Relaxed,
    /// Always `{"$numberLong": "…"}`: the column is always a BSON long.
    Long,
}

/// How timestamps (`ZonedTimestamp`, `Timestamp`, `MicroTimestamp`,
/// `NanoTimestamp`) are written. Either way every value of a column has the
/// same BSON type; BSON dates hold milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimestampMode {
    /// Always a `$date`, truncated (towards the past) to the millisecond.
    #[default]
    TruncateToMillis,
    /// Always ISO-8601 text in UTC with a fixed number of fractional digits
    /// per type (3 for ms, 6 for µs and `ZonedTimestamp`, 9 for ns): exact,
    /// and sorts like the instants.
    IsoString,
}

/// How decimals beyond Decimal128's 34 significant digits are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DecimalMode {
    /// Always Decimal128, rounded half to even beyond 34 digits.
    #[default]
    Decimal128,
    /// Decimal128 up to 34 digits, the exact decimal text beyond (the type
    /// then depends on the value).
    ExactString,
}

/// Options for schema-aware decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DecodeOptions {
    pub json: JsonMode,
    pub int64: Int64Mode,
    pub timestamps: TimestampMode,
    pub decimals: DecimalMode,
}

const MAX_SAFE_INTEGER: i64 = (1 << 53) - 1;

/// `{"$date": {"$numberLong": "<ms>"}}`.
pub fn date_ms(ms: i64) -> Value {
    let mut inner = Map::with_capacity(1);
    inner.insert("$numberLong".to_owned(), Value::String(ms.to_string()));
    wrap("$date", Value::Object(inner))
}

/// `{"$numberDecimal": "<text>"}`.
pub fn number_decimal(text: String) -> Value {
    wrap("$numberDecimal", Value::String(text))
}

/// `{"$numberLong": "<n>"}`.
pub fn number_long(n: i64) -> Value {
    wrap("$numberLong", Value::String(n.to_string()))
}

/// `{"$binary": {"base64": "<b64>", "subType": "00"}}`.
pub fn binary_base64(b64: String) -> Value {
    let mut inner = Map::with_capacity(2);
    inner.insert("base64".to_owned(), Value::String(b64));
    inner.insert("subType".to_owned(), Value::String("00".to_owned()));
    wrap("$binary", Value::Object(inner))
}

fn wrap(key: &str, v: Value) -> Value {
    let mut m = Map::with_capacity(1);
    m.insert(key.to_owned(), v);
    Value::Object(m)
}

fn bad(field: &str, what: impl std::fmt::Display) -> TransformError {
    TransformError::bad_input(format!("field '{field}': {what}"))
}

fn schema_scale(schema: &Schema) -> Option<i32> {
    schema
        .int_parameter("scale")
        .and_then(|n| i32::try_from(n).ok())
}

/// The exact decimal of base64 unscaled bytes and a scale, as Decimal128 or,
/// beyond its 34 digits, as the decimal string.
fn decimal_value(
    field: &str,
    b64: &str,
    scale: i32,
    mode: DecimalMode,
) -> Result<Value, TransformError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| bad(field, format_args!("decimal is not base64 ({e}): {b64:?}")))?;
    if mode == DecimalMode::Decimal128 {
        return Ok(number_decimal(decimal::decimal128_from_unscaled(
            &bytes, scale,
        )));
    }
    let (text, significant) = decimal::decimal_from_unscaled(&bytes, scale);
    Ok(if significant <= decimal::DECIMAL128_DIGITS {
        number_decimal(text)
    } else {
        Value::String(text)
    })
}

/// A decimal that the converter wrote as a JSON number (`decimal.format=NUMERIC`).
fn numeric_decimal(n: &serde_json::Number, scale: i32) -> Value {
    let text = if let Some(i) = n.as_i64() {
        decimal::format_scaled(i < 0, &i.unsigned_abs().to_string(), 0)
    } else if let Some(u) = n.as_u64() {
        u.to_string()
    } else {
        // Exact for up to 15 significant digits.
        format!("{:.*}", scale.max(0) as usize, n.as_f64().unwrap_or(0.0))
    };
    number_decimal(text)
}

fn has_dollar_key(v: &Value) -> bool {
    match v {
        Value::Object(m) => m
            .iter()
            .any(|(k, v)| k.starts_with('$') || has_dollar_key(v)),
        Value::Array(a) => a.iter().any(has_dollar_key),
        _ => false,
    }
}

/// Decodes one value by its Connect schema (`None`: no schema, unchanged).
/// `field` names the value in error messages.
pub fn decode_value(
    value: &Value,
    schema: Option<&Schema>,
    opts: &DecodeOptions,
    field: &str,
) -> Result<Value, TransformError> {
    decode_owned(value.clone(), schema, opts, field)
}

/// [`decode_value`] taking the value: nothing is copied that passes through.
pub fn decode_owned(
    value: Value,
    schema: Option<&Schema>,
    opts: &DecodeOptions,
    field: &str,
) -> Result<Value, TransformError> {
    let Some(schema) = schema else {
        return Ok(value);
    };
    if value.is_null() {
        return Ok(value);
    }
    let value = match schema.name.as_deref() {
        Some(name) => match decode_logical(name, value, schema, opts, field)? {
            Ok(decoded) => return Ok(decoded),
            Err(undecoded) => undecoded,
        },
        None => value,
    };
    match schema.type_.as_str() {
        "struct" => match value {
            Value::Object(mut m) => {
                decode_fields(&mut m, schema, opts)?;
                Ok(Value::Object(m))
            }
            other => Err(bad(
                field,
                format_args!("expected a struct, found {}", kind(&other)),
            )),
        },
        "array" => match value {
            Value::Array(mut items) => {
                let item_schema = schema.items.as_deref();
                if item_schema.is_some() {
                    for v in &mut items {
                        *v = decode_owned(std::mem::take(v), item_schema, opts, field)?;
                    }
                }
                Ok(Value::Array(items))
            }
            other => Err(bad(
                field,
                format_args!("expected an array, found {}", kind(&other)),
            )),
        },
        "map" => match value {
            Value::Object(mut m) => {
                let value_schema = schema.values.as_deref();
                if value_schema.is_some() {
                    for v in m.values_mut() {
                        *v = decode_owned(std::mem::take(v), value_schema, opts, field)?;
                    }
                }
                Ok(Value::Object(m))
            }
            // Maps with non-string keys arrive as [[k, v], ...]: kept as they are.
            other => Ok(other),
        },
        "bytes" => match value {
            Value::String(s) => Ok(binary_base64(s)),
            other => Err(bad(
                field,
                format_args!("expected base64 bytes, found {}", kind(&other)),
            )),
        },
        "float32" | "float64" => double(value, field),
        "int64" => match value.as_i64() {
            Some(n)
                if opts.int64 == Int64Mode::Long
                    || !(-MAX_SAFE_INTEGER..=MAX_SAFE_INTEGER).contains(&n) =>
            {
                Ok(number_long(n))
            }
            _ => Ok(value),
        },
        _ => Ok(value),
    }
}

/// Logical types by schema name: `Ok(decoded)`, or `Err(value)` back to be
/// decoded by its physical type.
fn decode_logical(
    name: &str,
    value: Value,
    schema: &Schema,
    opts: &DecodeOptions,
    field: &str,
) -> Result<Result<Value, Value>, TransformError> {
    let iso = opts.timestamps == TimestampMode::IsoString;
    let v = match name {
        "org.apache.kafka.connect.data.Decimal" => {
            let scale = schema_scale(schema)
                .ok_or_else(|| bad(field, "Decimal schema has no integer 'scale' parameter"))?;
            match &value {
                Value::String(s) => decimal_value(field, s, scale, opts.decimals)?,
                Value::Number(n) => numeric_decimal(n, scale),
                other => {
                    return Err(bad(
                        field,
                        format_args!("expected a Decimal, found {}", kind(other)),
                    ))
                }
            }
        }
        "io.debezium.data.VariableScaleDecimal" => {
            let scale = value
                .get("scale")
                .and_then(Value::as_i64)
                .and_then(|s| i32::try_from(s).ok());
            let bytes = value.get("value").and_then(Value::as_str);
            match (scale, bytes) {
                (Some(scale), Some(b64)) => decimal_value(field, b64, scale, opts.decimals)?,
                _ => {
                    return Err(bad(
                        field,
                        "VariableScaleDecimal needs an integer 'scale' and base64 'value'",
                    ))
                }
            }
        }
        // `IsoTimestamp` (time.precision.mode=isostring) is a local date-time
        // written as UTC text: the same instant as the adaptive modes' number.
        "io.debezium.time.ZonedTimestamp" | "io.debezium.time.IsoTimestamp" => {
            zoned_timestamp(value, iso, field)?
        }
        "io.debezium.time.IsoDate" => {
            let ms = value
                .as_str()
                .and_then(time::parse_iso_date)
                .and_then(|d| d.checked_mul(time::MS_PER_DAY))
                .ok_or_else(|| bad(field, format_args!("not an ISO-8601 date: {value}")))?;
            date_ms(ms)
        }
        // A time of day as text: µs since midnight, as `MicroTime` (BSON has
        // no time-of-day type, and text with trimmed fractions does not sort).
        "io.debezium.time.IsoTime" => {
            let us = value
                .as_str()
                .and_then(time::parse_iso_time_micros)
                .ok_or_else(|| bad(field, format_args!("not an ISO-8601 UTC time: {value}")))?;
            match opts.int64 {
                Int64Mode::Long => number_long(us),
                Int64Mode::Relaxed => Value::from(us),
            }
        }
        "io.debezium.time.Timestamp" | "org.apache.kafka.connect.data.Timestamp" => {
            epoch_timestamp(value, 3, iso, field)?
        }
        "io.debezium.time.MicroTimestamp" => epoch_timestamp(value, 6, iso, field)?,
        "io.debezium.time.NanoTimestamp" => epoch_timestamp(value, 9, iso, field)?,
        "io.debezium.time.Date" | "org.apache.kafka.connect.data.Date" => {
            match value.as_i64().and_then(|d| d.checked_mul(time::MS_PER_DAY)) {
                Some(ms) => date_ms(ms),
                None => value,
            }
        }
        "io.debezium.data.Json" => match (opts.json, &value) {
            (JsonMode::Parse, Value::String(s)) => match serde_json::from_str::<Value>(s) {
                Ok(parsed) if !has_dollar_key(&parsed) => parsed,
                _ => value,
            },
            _ => value,
        },
        // Time of day, UUID, enums, XML, ... keep their JSON value; structs
        // with a name (geometry, ...) decode by their physical type.
        _ => return Ok(Err(value)),
    };
    Ok(Ok(v))
}

/// A `ZonedTimestamp` (ISO-8601 text with an offset): a date truncated to the
/// millisecond, or UTC text with 6 fractional digits (9 when it has
/// nanoseconds). PostgreSQL's `infinity`/`-infinity` become the largest and
/// smallest dates (or stay as text); any other text is an error rather than
/// a value of another type.
fn zoned_timestamp(value: Value, iso: bool, field: &str) -> Result<Value, TransformError> {
    let Value::String(s) = &value else {
        return Err(bad(
            field,
            format_args!("expected ISO-8601 text, found {}", kind(&value)),
        ));
    };
    match (s.as_str(), iso) {
        ("infinity" | "+infinity" | "-infinity", true) => return Ok(value),
        ("infinity" | "+infinity", false) => return Ok(date_ms(i64::MAX)),
        ("-infinity", false) => return Ok(date_ms(i64::MIN)),
        _ => {}
    }
    let (secs, nanos) = time::parse_zoned_instant(s)
        .ok_or_else(|| bad(field, format_args!("not an ISO-8601 timestamp: {s:?}")))?;
    if iso {
        let (units, digits) = if nanos % 1000 == 0 {
            (i128::from(secs) * 1_000_000 + i128::from(nanos / 1000), 6)
        } else {
            (i128::from(secs) * 1_000_000_000 + i128::from(nanos), 9)
        };
        return Ok(Value::String(time::format_utc(units, digits)));
    }
    let ms = secs
        .checked_mul(1000)
        .and_then(|ms| ms.checked_add(i64::from(nanos / 1_000_000)))
        .ok_or_else(|| bad(field, format_args!("timestamp out of range: {s:?}")))?;
    Ok(date_ms(ms))
}

/// A timestamp counted since the epoch in units of 10^-`digits` seconds: a
/// date truncated (towards the past) to the millisecond, or UTC text.
fn epoch_timestamp(
    value: Value,
    digits: u32,
    iso: bool,
    field: &str,
) -> Result<Value, TransformError> {
    let n = value.as_i64().ok_or_else(|| {
        bad(
            field,
            format_args!("expected an integer timestamp, found {}", kind(&value)),
        )
    })?;
    Ok(if iso {
        Value::String(time::format_utc(i128::from(n), digits))
    } else {
        date_ms(n.div_euclid(10i64.pow(digits - 3)))
    })
}

/// A `float32`/`float64` value: always a double. The JSON converter writes
/// NaN and the infinities as strings.
fn double(value: Value, field: &str) -> Result<Value, TransformError> {
    match value {
        Value::Number(n) if n.is_f64() => Ok(Value::Number(n)),
        Value::Number(n) => Ok(n
            .as_f64()
            .and_then(serde_json::Number::from_f64)
            .map_or(Value::Number(n), Value::Number)),
        Value::String(s) if matches!(s.as_str(), "NaN" | "Infinity" | "-Infinity") => {
            Ok(wrap("$numberDouble", Value::String(s)))
        }
        other => Err(bad(
            field,
            format_args!("expected a floating-point number, found {}", kind(&other)),
        )),
    }
}

/// Decodes the fields of a struct in place by the schema's `fields`; fields
/// missing from the schema are left as they are.
pub fn decode_fields(
    value: &mut Map<String, Value>,
    schema: &Schema,
    opts: &DecodeOptions,
) -> Result<(), TransformError> {
    let fields = &schema.fields;
    if fields.is_empty() {
        return Ok(());
    }
    // Payload and schema list the fields in the same order: look at the next
    // schema field first, search only when they differ.
    let mut cursor = 0;
    for (name, v) in value.iter_mut() {
        let field_schema = match fields.get(cursor) {
            Some(f) if f.field.as_deref() == Some(name.as_str()) => {
                cursor += 1;
                Some(f)
            }
            _ => fields
                .iter()
                .position(|f| f.field.as_deref() == Some(name.as_str()))
                .map(|i| {
                    cursor = i + 1;
                    &fields[i]
                }),
        };
        if let Some(fs) = field_schema {
            *v = decode_owned(std::mem::take(v), Some(fs), opts, name)?;
        }
    }
    Ok(())
}

/// Decodes the fields of a struct by its schema; fields missing from the
/// schema pass through. Field order is the payload's.
pub fn decode_struct(
    value: &Map<String, Value>,
    schema: Option<&Schema>,
    opts: &DecodeOptions,
) -> Result<Map<String, Value>, TransformError> {
    let mut out = value.clone();
    if let Some(schema) = schema {
        decode_fields(&mut out, schema, opts)?;
    }
    Ok(out)
}

pub(crate) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sc(schema: Value) -> Schema {
        serde_json::from_value(schema).unwrap()
    }

    fn d(value: Value, schema: Value) -> Value {
        decode_value(&value, Some(&sc(schema)), &DecodeOptions::default(), "f").unwrap()
    }

    fn decimal_schema(scale: &str) -> Value {
        json!({"type": "bytes", "optional": false, "name": "org.apache.kafka.connect.data.Decimal", "version": 1,
               "parameters": {"scale": scale, "connect.decimal.precision": "10"}, "field": "amount"})
    }

    #[test]
    fn decimals() {
        // 123450 = 0x01E23A
        assert_eq!(
            d(json!("AeI6"), decimal_schema("2")),
            json!({"$numberDecimal": "1234.50"})
        );
        assert_eq!(
            d(json!("AQ=="), decimal_schema("2")),
            json!({"$numberDecimal": "0.01"})
        );
        assert_eq!(
            d(json!("BV8="), decimal_schema("2")),
            json!({"$numberDecimal": "13.75"})
        );
        // -123450 = 0xFE1DC6
        assert_eq!(
            d(json!("/h3G"), decimal_schema("2")),
            json!({"$numberDecimal": "-1234.50"})
        );
        assert_eq!(
            d(json!("AA=="), decimal_schema("3")),
            json!({"$numberDecimal": "0.000"})
        );
        assert_eq!(d(Value::Null, decimal_schema("2")), Value::Null);
        // decimal.format=NUMERIC
        assert_eq!(
            d(json!(1234.5), decimal_schema("2")),
            json!({"$numberDecimal": "1234.50"})
        );
        assert_eq!(
            d(json!(7), decimal_schema("0")),
            json!({"$numberDecimal": "7"})
        );
    }

    #[test]
    fn big_decimals() {
        use base64::Engine as _;
        let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
        // 10^33 - 1 (33 nines) at scale 4: 34 digits max → Decimal128.
        let v: i128 = 10i128.pow(34) - 1;
        let bytes = v.to_be_bytes();
        let start = bytes.iter().position(|&b| b != 0).unwrap();
        let mut be = bytes[start..].to_vec();
        if be[0] & 0x80 != 0 {
            be.insert(0, 0);
        }
        let nines = "9".repeat(34);
        assert_eq!(
            d(json!(b64(&be)), decimal_schema("4")),
            json!({"$numberDecimal": format!("{}.{}", &nines[..30], &nines[30..])})
        );
        // 10^40 has 41 digits: rounded to a Decimal128 of 34 digits (one
        // type per column), or the exact string when asked for.
        let big = [
            0x1d, 0x63, 0x29, 0xf1, 0xc3, 0x5c, 0xa4, 0xbf, 0xab, 0xb9, 0xf5, 0x61, 0, 0, 0, 0, 0,
        ];
        assert_eq!(
            d(json!(b64(&big)), decimal_schema("0")),
            json!({"$numberDecimal": format!("1{}E+7", "0".repeat(33))})
        );
        let exact = DecodeOptions {
            decimals: DecimalMode::ExactString,
            ..Default::default()
        };
        assert_eq!(
            decode_value(
                &json!(b64(&big)),
                Some(&sc(decimal_schema("0"))),
                &exact,
                "f"
            )
            .unwrap(),
            json!(format!("1{}", "0".repeat(40)))
        );
    }

    #[test]
    fn bad_decimals() {
        let err = decode_value(
            &json!("***"),
            Some(&sc(decimal_schema("2"))),
            &DecodeOptions::default(),
            "amount",
        )
        .unwrap_err();
        assert_eq!(err.kind, crate::ErrorKind::BadInput);
        assert!(err.message.contains("amount"), "{}", err.message);
        let no_scale = json!({"type": "bytes", "name": "org.apache.kafka.connect.data.Decimal"});
        assert!(decode_value(
            &json!("AQ=="),
            Some(&sc(no_scale)),
            &DecodeOptions::default(),
            "x"
        )
        .is_err());
    }

    #[test]
    fn variable_scale_decimal() {
        let schema = json!({"type": "struct", "name": "io.debezium.data.VariableScaleDecimal",
            "fields": [{"type": "int32", "field": "scale"}, {"type": "bytes", "field": "value"}]});
        assert_eq!(
            d(json!({"scale": 3, "value": "AeI6"}), schema.clone()),
            json!({"$numberDecimal": "123.450"})
        );
        assert_eq!(
            d(json!({"scale": 0, "value": "AQ=="}), schema),
            json!({"$numberDecimal": "1"})
        );
    }

    #[test]
    fn timestamps_are_always_dates() {
        // One BSON type per column: sub-millisecond digits are truncated
        // (towards the past), never a reason to keep the text or the number.
        let zoned = json!({"type": "string", "name": "io.debezium.time.ZonedTimestamp"});
        assert_eq!(
            d(json!("2024-03-04T12:00:00.123000Z"), zoned.clone()),
            date_ms(1_709_553_600_123)
        );
        assert_eq!(
            d(json!("2024-03-04T12:00:00Z"), zoned.clone()),
            json!({"$date": {"$numberLong": "1709553600000"}})
        );
        assert_eq!(
            d(json!("2024-03-04T12:00:00.123456Z"), zoned.clone()),
            date_ms(1_709_553_600_123)
        );
        assert_eq!(
            d(json!("1969-12-31T23:59:59.999999Z"), zoned.clone()),
            date_ms(-1)
        );
        assert_eq!(d(json!("infinity"), zoned.clone()), date_ms(i64::MAX));
        assert_eq!(d(json!("-infinity"), zoned.clone()), date_ms(i64::MIN));
        let err = decode_value(
            &json!("yesterday"),
            Some(&sc(zoned)),
            &DecodeOptions::default(),
            "at",
        )
        .unwrap_err();
        assert!(err.message.contains("'at'"), "{}", err.message);

        let micro = json!({"type": "int64", "name": "io.debezium.time.MicroTimestamp"});
        assert_eq!(
            d(json!(1_709_553_600_123_000i64), micro.clone()),
            date_ms(1_709_553_600_123)
        );
        assert_eq!(
            d(json!(1_709_553_600_123_456i64), micro.clone()),
            date_ms(1_709_553_600_123)
        );
        assert_eq!(d(json!(-1), micro), date_ms(-1));
        let nano = json!({"type": "int64", "name": "io.debezium.time.NanoTimestamp"});
        assert_eq!(d(json!(5_000_000i64), nano.clone()), date_ms(5));
        assert_eq!(d(json!(5_999_999i64), nano), date_ms(5));
        let millis = json!({"type": "int64", "name": "io.debezium.time.Timestamp"});
        assert_eq!(d(json!(-1), millis), date_ms(-1));
        let connect = json!({"type": "int64", "name": "org.apache.kafka.connect.data.Timestamp"});
        assert_eq!(d(json!(42), connect), date_ms(42));
    }

    #[test]
    fn timestamps_as_iso_strings_are_always_text_of_one_width() {
        let opts = DecodeOptions {
            timestamps: TimestampMode::IsoString,
            ..Default::default()
        };
        let t = |v: Value, s: &Value| decode_value(&v, Some(&sc(s.clone())), &opts, "f").unwrap();
        let zoned = json!({"type": "string", "name": "io.debezium.time.ZonedTimestamp"});
        assert_eq!(
            t(json!("2024-03-04T12:00:00Z"), &zoned),
            json!("2024-03-04T12:00:00.000000Z")
        );
        assert_eq!(
            t(json!("2024-03-04T14:00:00.123456+02:00"), &zoned),
            json!("2024-03-04T12:00:00.123456Z")
        );
        assert_eq!(t(json!("infinity"), &zoned), json!("infinity"));
        let micro = json!({"type": "int64", "name": "io.debezium.time.MicroTimestamp"});
        assert_eq!(
            t(json!(1_709_553_600_123_456i64), &micro),
            json!("2024-03-04T12:00:00.123456Z")
        );
        assert_eq!(
            t(json!(1_709_553_600_000_000i64), &micro),
            json!("2024-03-04T12:00:00.000000Z")
        );
        let millis = json!({"type": "int64", "name": "io.debezium.time.Timestamp"});
        assert_eq!(t(json!(-1), &millis), json!("1969-12-31T23:59:59.999Z"));
        let nano = json!({"type": "int64", "name": "io.debezium.time.NanoTimestamp"});
        assert_eq!(
            t(json!(1i64), &nano),
            json!("1970-01-01T00:00:00.000000001Z")
        );
        // isostring's trimmed fractions get the fixed width too; dates stay dates
        let iso_ts = json!({"type": "string", "name": "io.debezium.time.IsoTimestamp"});
        assert_eq!(
            t(json!("2024-03-04T12:00:00.1Z"), &iso_ts),
            json!("2024-03-04T12:00:00.100000Z")
        );
        assert_eq!(
            t(json!("2024-03-04T12:00:00Z"), &iso_ts),
            json!("2024-03-04T12:00:00.000000Z")
        );
        let iso_date = json!({"type": "string", "name": "io.debezium.time.IsoDate"});
        assert_eq!(
            t(json!("2024-03-04Z"), &iso_date),
            date_ms(1_709_510_400_000)
        );
    }

    /// isostring text that is not what Debezium writes is refused, not kept as
    /// a string (the column would then hold two types).
    #[test]
    fn iso_text_that_does_not_parse_is_bad_input() {
        for (name, text) in [
            ("io.debezium.time.IsoDate", "2024-02-30Z"),
            ("io.debezium.time.IsoTime", "25:00:00Z"),
            ("io.debezium.time.IsoTime", "12:00:00+02:00"),
            ("io.debezium.time.IsoTimestamp", "2024-03-04 noon"),
        ] {
            let schema = json!({"type": "string", "name": name});
            let err = decode_value(
                &json!(text),
                Some(&sc(schema)),
                &DecodeOptions::default(),
                "at",
            )
            .unwrap_err();
            assert!(
                err.message.contains("'at'"),
                "{name} {text}: {}",
                err.message
            );
        }
    }

    #[test]
    fn doubles_stay_doubles() {
        let f = json!({"type": "float64"});
        assert_eq!(
            serde_json::to_string(&d(json!(1), f.clone())).unwrap(),
            "1.0"
        );
        assert_eq!(d(json!(1.5), f.clone()), json!(1.5));
        assert_eq!(d(json!("NaN"), f.clone()), json!({"$numberDouble": "NaN"}));
        assert_eq!(
            d(json!("-Infinity"), json!({"type": "float32"})),
            json!({"$numberDouble": "-Infinity"})
        );
    }

    #[test]
    fn dates_and_times() {
        let date = json!({"type": "int32", "name": "io.debezium.time.Date"});
        assert_eq!(d(json!(19724), date.clone()), date_ms(19724 * 86_400_000));
        assert_eq!(d(json!(-1), date), date_ms(-86_400_000));
        let connect = json!({"type": "int32", "name": "org.apache.kafka.connect.data.Date"});
        assert_eq!(d(json!(1), connect), date_ms(86_400_000));
        let micro_time = json!({"type": "int64", "name": "io.debezium.time.MicroTime"});
        assert_eq!(
            d(json!(3_600_000_000i64), micro_time),
            json!(3_600_000_000i64)
        );
        let time = json!({"type": "int32", "name": "io.debezium.time.Time"});
        assert_eq!(d(json!(1000), time), json!(1000));
    }

    #[test]
    fn json_uuid_bytes() {
        let js = json!({"type": "string", "name": "io.debezium.data.Json"});
        assert_eq!(
            d(json!("[1, \"two\", {\"three\": 3}]"), js.clone()),
            json!([1, "two", {"three": 3}])
        );
        assert_eq!(
            d(json!("{\"$set\": 1}"), js.clone()),
            json!("{\"$set\": 1}")
        );
        assert_eq!(d(json!("not json"), js.clone()), json!("not json"));
        let opts = DecodeOptions {
            json: JsonMode::String,
            ..Default::default()
        };
        assert_eq!(
            decode_value(&json!("{\"a\":1}"), Some(&sc(js)), &opts, "f").unwrap(),
            json!("{\"a\":1}")
        );

        let uuid = json!({"type": "string", "name": "io.debezium.data.Uuid"});
        assert_eq!(
            d(json!("4c76d537-0000-0000-0000-000000000000"), uuid),
            json!("4c76d537-0000-0000-0000-000000000000")
        );
        assert_eq!(
            d(json!("AAEC"), json!({"type": "bytes"})),
            json!({"$binary": {"base64": "AAEC", "subType": "00"}})
        );
    }

    #[test]
    fn int64() {
        let s = json!({"type": "int64"});
        assert_eq!(d(json!(42), s.clone()), json!(42));
        assert_eq!(
            d(json!(9_007_199_254_740_993i64), s.clone()),
            json!({"$numberLong": "9007199254740993"})
        );
        assert_eq!(
            d(json!(-9_007_199_254_740_993i64), s.clone()),
            json!({"$numberLong": "-9007199254740993"})
        );
        let opts = DecodeOptions {
            int64: Int64Mode::Long,
            ..Default::default()
        };
        assert_eq!(
            decode_value(&json!(42), Some(&sc(s)), &opts, "f").unwrap(),
            json!({"$numberLong": "42"})
        );
        assert_eq!(d(json!(42), json!({"type": "int32"})), json!(42));
        assert_eq!(d(json!(1.5), json!({"type": "float64"})), json!(1.5));
    }

    #[test]
    fn nested_structs_arrays_maps() {
        let schema = json!({"type": "struct", "fields": [
            {"type": "array", "items": {"type": "int32", "name": "io.debezium.time.Date"}, "field": "days"},
            {"type": "struct", "fields": [{"type": "bytes", "field": "wkb"}, {"type": "int32", "field": "srid"}], "field": "geo"},
            {"type": "map", "keys": {"type": "string"}, "values": {"type": "int64", "name": "io.debezium.time.Timestamp"}, "field": "m"},
            {"type": "string", "optional": true, "field": "s"}
        ]});
        let v = json!({"days": [0, 1], "geo": {"wkb": "AQ==", "srid": 4326}, "m": {"a": 5}, "s": null, "extra": 1});
        assert_eq!(
            d(v, schema),
            json!({"days": [date_ms(0), date_ms(86_400_000)],
                   "geo": {"wkb": {"$binary": {"base64": "AQ==", "subType": "00"}}, "srid": 4326},
                   "m": {"a": date_ms(5)}, "s": null, "extra": 1})
        );
    }

    #[test]
    fn no_schema_passes_through() {
        let v = json!({"amount": "AQ==", "d": 19724});
        assert_eq!(
            decode_value(&v, None, &DecodeOptions::default(), "f").unwrap(),
            v
        );
        assert_eq!(
            decode_value(&v, Some(&Schema::default()), &DecodeOptions::default(), "f").unwrap(),
            v
        );
    }

    /// Every type-mode setting of Debezium's connectors (`time.precision.mode`,
    /// `decimal.handling.mode`, `binary.handling.mode`) and the named types
    /// of the MySQL, SQL Server and Oracle connectors, with the options of
    /// the default transform (int64 always a long): one BSON type each
    /// (docs/debezium-mongo.md, "Every source and mode").
    #[test]
    fn every_debezium_type_mode_decodes_to_one_bson_type() {
        let opts = DecodeOptions {
            int64: Int64Mode::Long,
            ..DecodeOptions::default()
        };
        let named = |ty: &str, name: &str| json!({"type": ty, "name": name});
        let point = json!({"type": "struct", "name": "io.debezium.data.geometry.Point", "fields": [
            {"type": "float64", "field": "x"}, {"type": "float64", "field": "y"},
            {"type": "bytes", "optional": true, "field": "wkb"},
            {"type": "int32", "optional": true, "field": "srid"}]});
        let unsigned_bigint = json!({"type": "bytes", "name": "org.apache.kafka.connect.data.Decimal",
            "parameters": {"scale": "0", "connect.decimal.precision": "20"}});
        let cases: Vec<(&str, Value, Value, Value)> = vec![
            // time.precision.mode=connect: Kafka Connect's logical types.
            (
                "connect Timestamp",
                named("int64", "org.apache.kafka.connect.data.Timestamp"),
                json!(1704164645123_i64),
                json!({"$date": {"$numberLong": "1704164645123"}}),
            ),
            (
                "connect Date",
                named("int32", "org.apache.kafka.connect.data.Date"),
                json!(19724),
                json!({"$date": {"$numberLong": "1704153600000"}}),
            ),
            (
                "connect Time (ms, int32)",
                named("int32", "org.apache.kafka.connect.data.Time"),
                json!(11045123),
                json!(11045123),
            ),
            // adaptive / adaptive_time_microseconds
            (
                "NanoTimestamp",
                named("int64", "io.debezium.time.NanoTimestamp"),
                json!(1704164645123456789_i64),
                json!({"$date": {"$numberLong": "1704164645123"}}),
            ),
            (
                "NanoTime",
                named("int64", "io.debezium.time.NanoTime"),
                json!(11045123456789_i64),
                json!({"$numberLong": "11045123456789"}),
            ),
            (
                "MicroTime",
                named("int64", "io.debezium.time.MicroTime"),
                json!(11045123456_i64),
                json!({"$numberLong": "11045123456"}),
            ),
            (
                "Time (ms)",
                named("int32", "io.debezium.time.Time"),
                json!(11045123),
                json!(11045123),
            ),
            (
                "ZonedTime",
                named("string", "io.debezium.time.ZonedTime"),
                json!("03:04:05.123456Z"),
                json!("03:04:05.123456Z"),
            ),
            (
                "Year",
                named("int32", "io.debezium.time.Year"),
                json!(2024),
                json!(2024),
            ),
            (
                "MicroDuration",
                named("int64", "io.debezium.time.MicroDuration"),
                json!(90061000001_i64),
                json!({"$numberLong": "90061000001"}),
            ),
            (
                "Interval (string mode)",
                named("string", "io.debezium.time.Interval"),
                json!("P1DT1H1M1.000001S"),
                json!("P1DT1H1M1.000001S"),
            ),
            // time.precision.mode=isostring: UTC text, the fraction trimmed.
            (
                "IsoTimestamp",
                named("string", "io.debezium.time.IsoTimestamp"),
                json!("2024-03-04T12:00:00.1Z"),
                json!({"$date": {"$numberLong": "1709553600100"}}),
            ),
            (
                "IsoDate",
                named("string", "io.debezium.time.IsoDate"),
                json!("2024-01-02Z"),
                json!({"$date": {"$numberLong": "1704153600000"}}),
            ),
            (
                "IsoTime (µs since midnight)",
                named("string", "io.debezium.time.IsoTime"),
                json!("03:04:05.1Z"),
                json!({"$numberLong": "11045100000"}),
            ),
            (
                "IsoTime without a fraction",
                named("string", "io.debezium.time.IsoTime"),
                json!("03:04:05Z"),
                json!({"$numberLong": "11045000000"}),
            ),
            // decimal.handling.mode
            (
                "decimal precise: MySQL BIGINT UNSIGNED",
                unsigned_bigint,
                json!("AP//////////"),
                json!({"$numberDecimal": "18446744073709551615"}),
            ),
            (
                "decimal string",
                json!({"type": "string"}),
                json!("12.30"),
                json!("12.30"),
            ),
            (
                "decimal double",
                json!({"type": "float64"}),
                json!(12.3),
                json!(12.3),
            ),
            // binary.handling.mode
            (
                "binary bytes",
                json!({"type": "bytes"}),
                json!("3q2+7w=="),
                json!({"$binary": {"base64": "3q2+7w==", "subType": "00"}}),
            ),
            (
                "binary base64 / base64-url-safe / hex (text)",
                json!({"type": "string"}),
                json!("deadbeef"),
                json!("deadbeef"),
            ),
            // named types of the MySQL family
            (
                "Bits (BIT(n > 1))",
                named("bytes", "io.debezium.data.Bits"),
                json!("BQ=="),
                json!({"$binary": {"base64": "BQ==", "subType": "00"}}),
            ),
            (
                "Enum",
                named("string", "io.debezium.data.Enum"),
                json!("small"),
                json!("small"),
            ),
            (
                "EnumSet",
                named("string", "io.debezium.data.EnumSet"),
                json!("a,c"),
                json!("a,c"),
            ),
            (
                "geometry Point",
                point,
                json!({"x": 1, "y": 2.5, "wkb": "AQEAAAAAAAAAAADwPwAAAAAAAARA", "srid": null}),
                json!({"x": 1.0, "y": 2.5, "wkb": {"$binary": {"base64": "AQEAAAAAAAAAAADwPwAAAAAAAARA", "subType": "00"}}, "srid": null}),
            ),
        ];
        for (what, schema, value, want) in cases {
            let got = decode_value(&value, Some(&sc(schema)), &opts, "f")
                .unwrap_or_else(|e| panic!("{what}: {e:?}"));
            assert_eq!(got, want, "{what}");
        }
    }
}
