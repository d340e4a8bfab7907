//! `fields.<column>.type`: converting a decoded column value (Extended JSON)
//! to the target BSON type. `None`: the value cannot be converted.

use crate::config::Type;
use serde_json::{json, Value};
use smt_guest::debezium::time;

pub fn convert(v: &Value, ty: Type) -> Option<Value> {
    if v.is_null() {
        return Some(Value::Null);
    }
    match ty {
        Type::String => Some(Value::String(to_text(v))),
        Type::Int => to_i64(v)
            .and_then(|n| i32::try_from(n).ok())
            .map(Value::from),
        Type::Long => to_i64(v).map(|n| json!({"$numberLong": n.to_string()})),
        Type::Double => to_f64(v).map(|f| {
            // serde_json writes 2.0 as "2.0": the host reads it as a double.
            serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
        }),
        Type::Decimal => decimal_text(v).map(|s| json!({"$numberDecimal": s})),
        Type::Boolean => to_bool(v).map(Value::Bool),
        Type::Date => to_date_ms(v).map(smt_guest::debezium::decode::date_ms),
    }
}

/// `{"$numberDecimal": s}`, `{"$numberLong": s}`: the wrapped text.
fn wrapped<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    let o = v.as_object()?;
    if o.len() != 1 {
        return None;
    }
    o.get(key)?.as_str()
}

fn number_text(v: &Value) -> Option<String> {
    match v {
        Value::Number(n) => Some(n.to_string()),
        _ => wrapped(v, "$numberDecimal")
            .or_else(|| wrapped(v, "$numberLong"))
            .map(str::to_owned),
    }
}

pub fn date_ms(v: &Value) -> Option<i64> {
    let inner = v.as_object().filter(|o| o.len() == 1)?.get("$date")?;
    match inner {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => time::parse_zoned_timestamp(s).map(|(ms, _)| ms),
        other => wrapped(other, "$numberLong")?.parse().ok(),
    }
}

/// Plain decimal text: `-12`, `3.50`, `1e3`.
fn is_decimal_text(s: &str) -> bool {
    let b = s.trim().as_bytes();
    let mut i = 0;
    if matches!(b.first(), Some(b'+' | b'-')) {
        i += 1;
    }
    let start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let mut digits = i - start;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let f = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        digits += i - f;
    }
    if digits == 0 {
        return false;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let e = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == e {
            return false;
        }
    }
    i == b.len()
}

fn decimal_text(v: &Value) -> Option<String> {
    match v {
        Value::Bool(b) => Some(if *b { "1" } else { "0" }.to_owned()),
        Value::String(s) if is_decimal_text(s) => Some(s.trim().to_owned()),
        _ => number_text(v),
    }
}

fn to_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Bool(b) => Some(*b as i64),
        Value::Number(n) => n.as_i64().or_else(|| {
            let f = n.as_f64()?;
            (f.fract() == 0.0 && f.abs() < 9.2e18).then_some(f as i64)
        }),
        _ => {
            let text = match v {
                Value::String(s) => s.trim().to_owned(),
                _ => number_text(v)?,
            };
            integral_text(&text)
        }
    }
}

/// `12`, `-3.00` → the integer; `1.5`, `1e3`, `x` → `None`.
fn integral_text(s: &str) -> Option<i64> {
    if let Ok(n) = s.parse::<i64>() {
        return Some(n);
    }
    let (int, frac) = s.split_once('.')?;
    if !frac.bytes().all(|c| c == b'0') || !is_decimal_text(s) {
        return None;
    }
    int.parse().ok()
}

fn to_f64(v: &Value) -> Option<f64> {
    let f = match v {
        Value::Bool(b) => *b as i64 as f64,
        Value::Number(n) => n.as_f64()?,
        Value::String(s) if is_decimal_text(s) => s.trim().parse().ok()?,
        _ => number_text(v)?.parse().ok()?,
    };
    f.is_finite().then_some(f)
}

fn to_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "t" | "yes" | "y" | "1" => Some(true),
            "false" | "f" | "no" | "n" | "0" => Some(false),
            _ => None,
        },
        _ => to_f64(v).map(|f| f != 0.0),
    }
}

fn to_date_ms(v: &Value) -> Option<i64> {
    if let Some(ms) = date_ms(v) {
        return Some(ms);
    }
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => parse_date_text(s.trim()),
        _ => wrapped(v, "$numberLong")?.parse().ok(),
    }
}

/// `2024-01-02`, `2024-01-02T03:04:05[.fff][Z|±hh:mm]` (no zone: UTC).
fn parse_date_text(s: &str) -> Option<i64> {
    if s.len() == 10 {
        return time::parse_zoned_timestamp(&format!("{s}T00:00:00Z")).map(|(ms, _)| ms);
    }
    let t = s.replacen(' ', "T", 1);
    let has_zone = t.ends_with('Z')
        || t.get(19..)
            .is_some_and(|rest| rest.contains('+') || rest.contains('-'));
    let t = if has_zone { t } else { format!("{t}Z") };
    time::parse_zoned_timestamp(&t).map(|(ms, _)| ms)
}

/// Text of any value: numbers as written, dates as ISO-8601 with milliseconds.
pub fn to_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        _ => {
            if let Some(ms) = date_ms(v) {
                return iso_ms(ms);
            }
            number_text(v).unwrap_or_else(|| v.to_string())
        }
    }
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` of milliseconds since the epoch.
pub fn iso_ms(ms: i64) -> String {
    let days = ms.div_euclid(time::MS_PER_DAY);
    let in_day = ms.rem_euclid(time::MS_PER_DAY);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1000 % 60,
        in_day % 1000
    )
}

/// Howard Hinnant's inverse of `days_from_civil`.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// A value as a number, for filter comparisons (decimals and longs included).
pub fn as_number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        _ => date_ms(v)
            .map(|ms| ms as f64)
            .or_else(|| number_text(v)?.parse().ok()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(v: Value, ty: Type) -> Option<Value> {
        convert(&v, ty)
    }

    #[test]
    fn strings() {
        assert_eq!(c(json!(12), Type::String), Some(json!("12")));
        assert_eq!(
            c(json!({"$numberDecimal": "1.50"}), Type::String),
            Some(json!("1.50"))
        );
        assert_eq!(c(json!(true), Type::String), Some(json!("true")));
        assert_eq!(
            c(
                json!({"$date": {"$numberLong": "1704164645678"}}),
                Type::String
            ),
            Some(json!("2024-01-02T03:04:05.678Z"))
        );
        assert_eq!(
            c(json!({"a": [1]}), Type::String),
            Some(json!("{\"a\":[1]}"))
        );
    }

    #[test]
    fn integers() {
        assert_eq!(c(json!("42"), Type::Int), Some(json!(42)));
        assert_eq!(
            c(json!({"$numberDecimal": "-3.00"}), Type::Int),
            Some(json!(-3))
        );
        assert_eq!(c(json!({"$numberDecimal": "3.50"}), Type::Int), None);
        assert_eq!(c(json!(3_000_000_000i64), Type::Int), None);
        assert_eq!(
            c(json!(3_000_000_000i64), Type::Long),
            Some(json!({"$numberLong": "3000000000"}))
        );
        assert_eq!(c(json!("x"), Type::Long), None);
        assert_eq!(c(json!(false), Type::Int), Some(json!(0)));
    }

    #[test]
    fn doubles_decimals_booleans() {
        assert_eq!(
            c(json!({"$numberDecimal": "1234.50"}), Type::Double),
            Some(json!(1234.5))
        );
        assert_eq!(c(json!("abc"), Type::Double), None);
        assert_eq!(
            c(json!(2.5), Type::Decimal),
            Some(json!({"$numberDecimal": "2.5"}))
        );
        assert_eq!(
            c(json!(" 7.10 "), Type::Decimal),
            Some(json!({"$numberDecimal": "7.10"}))
        );
        assert_eq!(c(json!("1.2.3"), Type::Decimal), None);
        assert_eq!(c(json!("Yes"), Type::Boolean), Some(json!(true)));
        assert_eq!(c(json!(0), Type::Boolean), Some(json!(false)));
        assert_eq!(c(json!("maybe"), Type::Boolean), None);
    }

    #[test]
    fn dates() {
        let d = |ms: i64| Some(json!({"$date": {"$numberLong": ms.to_string()}}));
        assert_eq!(c(json!("2024-01-02"), Type::Date), d(1704153600000));
        assert_eq!(
            c(json!("2024-01-02T03:04:05.678Z"), Type::Date),
            d(1704164645678)
        );
        assert_eq!(
            c(json!("2024-01-02 03:04:05"), Type::Date),
            d(1704164645000)
        );
        assert_eq!(
            c(json!("2024-01-02T05:04:05+02:00"), Type::Date),
            d(1704164645000)
        );
        assert_eq!(c(json!(5), Type::Date), d(5));
        assert_eq!(c(json!("soon"), Type::Date), None);
        assert_eq!(c(Value::Null, Type::Date), Some(Value::Null));
        assert_eq!(iso_ms(-1), "1969-12-31T23:59:59.999Z");
    }
}
