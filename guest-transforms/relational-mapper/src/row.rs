//! One source row through one rule: the filter, and the mapped fragment
//! (selected columns, renamed into paths, converted, NULLs kept or omitted).

use crate::config::{CondOp, Nulls};
use crate::convert;
use crate::plan::{Condition, Rule};
use serde_json::{Map, Value};
use std::cmp::Ordering;

pub type Row = Map<String, Value>;

/// Whether the row passes every condition of the rule's filter (SQL
/// semantics: a comparison with NULL is false).
pub fn passes(rule: &Rule, row: &Row) -> bool {
    rule.filter
        .iter()
        .all(|c| holds(c, row.get(&c.column).unwrap_or(&Value::Null)))
}

fn holds(c: &Condition, v: &Value) -> bool {
    match c.op {
        CondOp::IsNull => v.is_null(),
        CondOp::IsNotNull => !v.is_null(),
        _ if v.is_null() => false,
        CondOp::In | CondOp::NotIn => {
            let list = c.value.as_array().map(Vec::as_slice).unwrap_or_default();
            let found = list.iter().any(|x| compare(v, x) == Some(Ordering::Equal));
            // `x NOT IN (…, NULL)` is never true in SQL.
            if c.op == CondOp::In {
                found
            } else {
                !found && !list.iter().any(Value::is_null)
            }
        }
        op => match compare(v, &c.value) {
            None => false,
            Some(o) => match op {
                CondOp::Eq => o == Ordering::Equal,
                CondOp::Ne => o != Ordering::Equal,
                CondOp::Lt => o == Ordering::Less,
                CondOp::Lte => o != Ordering::Greater,
                CondOp::Gt => o == Ordering::Greater,
                CondOp::Gte => o != Ordering::Less,
                _ => unreachable!("handled above"),
            },
        },
    }
}

/// Numbers (decimals, longs and dates included) compare as numbers,
/// everything else by its text; `None` for NULL.
fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    if a.is_null() || b.is_null() {
        return None;
    }
    match (convert::as_number(a), convert::as_number(b)) {
        (Some(x), Some(y)) => x.partial_cmp(&y),
        _ => Some(convert::to_text(a).cmp(&convert::to_text(b))),
    }
}

/// Why a value became NULL, for the log.
pub struct Unconvertible {
    pub column: String,
    pub value: Value,
    pub ty: crate::config::Type,
}

/// The rule's fragment of the row, in column order, with `_id` first when given.
pub fn fragment(rule: &Rule, row: &Row, id: Option<Value>, failed: &mut Vec<Unconvertible>) -> Row {
    let mut out = Map::new();
    if let Some(id) = id {
        out.insert("_id".into(), id);
    }
    for f in &rule.fields {
        let raw = row.get(&f.column).unwrap_or(&Value::Null);
        let value = match f.ty {
            None => raw.clone(),
            Some(ty) => convert::convert(raw, ty).unwrap_or_else(|| {
                failed.push(Unconvertible {
                    column: f.column.clone(),
                    value: raw.clone(),
                    ty,
                });
                Value::Null
            }),
        };
        if value.is_null() && rule.nulls == Nulls::Omit {
            continue;
        }
        insert_path(&mut out, &f.path, value);
    }
    out
}

fn insert_path(doc: &mut Row, path: &[String], value: Value) {
    let (last, parents) = path.split_last().expect("paths have at least one segment");
    let mut at = doc;
    for p in parents {
        let slot = at
            .entry(p.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        if !slot.is_object() {
            *slot = Value::Object(Map::new());
        }
        at = slot.as_object_mut().expect("made an object above");
    }
    at.insert(last.clone(), value);
}
