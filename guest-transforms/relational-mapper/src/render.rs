//! Aggregation pipelines that rebuild documents from the state collections:
//! downward (a root row → its document) and upward (a changed child row →
//! the roots it belongs or belonged to).
//!
//! Every join is `$lookup`'s simple form (`localField`/`foreignField`, no
//! sub-pipeline), which a server runs as one probe of the index on
//! `fk.<rule>` per row. The sub-pipeline form is not used: some servers
//! (secantusd-rs) read the whole foreign collection for it once per stage and
//! compare every row with every candidate, so a rebuild cost as much as the
//! child table was large. The fetched rows are then filtered, sorted, limited
//! and shaped by expressions (`$filter`, `$sortArray`, `$slice`, `$map`).

use crate::config::{EmbedKind, Order};
use crate::plan::Plan;
use serde_json::{json, Map, Value};

/// `$merge` of rebuilt root documents into the rule's collection.
pub fn merge_into(plan: &Plan, root: usize) -> Value {
    let crate::plan::Target::Collection { collection, .. } = &plan.rules[root].target else {
        unreachable!("only collection rules are roots");
    };
    json!({"$merge": {"into": collection, "on": "_id", "whenMatched": "replace", "whenNotMatched": "insert"}})
}

/// Stages turning state rows of collection rule `root` into its documents
/// (`_id` first).
fn documents(plan: &Plan, root: usize) -> Vec<Value> {
    let mut stages = Vec::new();
    fetch(plan, root, None, &mut stages);
    stages.push(json!({"$replaceWith": fragment(plan, root, "$", true)}));
    stages
}

/// Where the rows of an embedding rule wait on the root row being rebuilt.
fn rows_field(rule_id: &str) -> String {
    format!("__{rule_id}")
}

/// Stages putting on the current row the state rows of every rule embedded
/// below `rule` that pass their rule's filter: the children of the current row
/// itself (`parent_rows` is `None`), or of every row in the field
/// `parent_rows` (grandchildren and below: one fetch for all their parents,
/// which [`fragment`] hands out by join value).
fn fetch(plan: &Plan, rule: usize, parent_rows: Option<&str>, stages: &mut Vec<Value>) {
    for &c in &plan.rules[rule].children {
        let cid = plan.rules[c].id();
        let rows = rows_field(&cid);
        let local = match parent_rows {
            None => format!("join.{cid}"),
            Some(parents) => {
                // A path through an array (`__r1.join.r2`) is not read the
                // same way by every server: the values are collected first.
                let keys = format!("__k{cid}");
                stages.push(json!({"$set": {&keys: {"$map": {
                    "input": format!("${parents}"),
                    "in": format!("$$this.join.{cid}"),
                }}}}));
                keys
            }
        };
        stages.push(json!({"$lookup": {
            "from": plan.state_collection(plan.rules[c].table),
            "localField": local,
            "foreignField": format!("fk.{cid}"),
            "as": &rows,
        }}));
        stages.push(json!({"$set": {&rows: {"$filter": {
            "input": format!("${rows}"),
            "cond": {"$eq": [format!("$$this.on.{cid}"), true]},
        }}}}));
        fetch(plan, c, Some(&rows), stages);
    }
}

/// The expression of rule `rule`'s fragment of one state row: `row` reaches
/// the row (`"$"` for the current document, `"$$xr2."` for a variable).
/// `own_rows` says the children fetched are the row's own (it is the current
/// document); otherwise they are picked from all fetched by join value.
fn fragment(plan: &Plan, rule: usize, row: &str, own_rows: bool) -> Value {
    let r = &plan.rules[rule];
    let base = json!({"$ifNull": [format!("{row}doc.{}", r.id()), {}]});
    if r.children.is_empty() {
        return base;
    }
    let mut vars = Map::new();
    let mut merged = vec![base.clone()];
    let mut places = Vec::new();
    for &c in &r.children {
        let child = &plan.rules[c];
        let cid = child.id();
        let e = child.embed().expect("children are embedding rules");
        let fetched = json!(format!("${}", rows_field(&cid)));
        let mine = if own_rows {
            fetched
        } else {
            json!({"$filter": {"input": fetched, "as": "y", "cond":
                {"$eq": [format!("$$y.fk.{cid}"), format!("{row}join.{cid}")]}}})
        };
        let mut sort = Map::new();
        for (col, order) in &e.sort {
            let dir = if *order == Order::Asc { 1 } else { -1 };
            sort.insert(format!("s.{cid}.{col}"), json!(dir));
        }
        sort.insert("key".into(), json!(1));
        let sorted = json!({"$sortArray": {"input": mine, "sortBy": sort}});
        let limited = match (e.kind, e.limit) {
            (EmbedKind::Array, None) => sorted,
            (EmbedKind::Array, Some(n)) => json!({"$slice": [sorted, n]}),
            (EmbedKind::Document | EmbedKind::Merge, _) => json!({"$slice": [sorted, 1]}),
        };
        let var = format!("x{cid}");
        let shaped = json!({"$map": {"input": limited, "as": &var,
            "in": fragment(plan, c, &format!("$${var}."), false)}});
        let name = format!("v{cid}");
        let first = json!({"$arrayElemAt": [format!("$${name}"), 0]});
        vars.insert(name.clone(), shaped);
        match e.kind {
            EmbedKind::Merge => merged.push(json!({"$ifNull": [first, {}]})),
            EmbedKind::Array => places.push((&e.as_path, json!(format!("$${name}")), None)),
            EmbedKind::Document => places.push((
                &e.as_path,
                first,
                Some(json!({"$gt": [{"$size": format!("$${name}")}, 0]})),
            )),
        }
    }
    let mut doc = if merged.len() == 1 {
        base
    } else {
        // The parent's own fields win a clash and keep their places.
        merged.push(base);
        json!({"$mergeObjects": merged})
    };
    // Each embedding at its path, as a `$set` stage would put it; a document
    // embedding with no row removes the path.
    for (k, (path, value, present)) in places.into_iter().enumerate() {
        let parts: Vec<&str> = path.split('.').collect();
        let o = format!("o{}_{k}", r.id());
        let var = format!("$${o}");
        let placed = match present {
            None => put(&var, &parts, Some(value)),
            Some(present) => json!({"$cond": [
                present,
                put(&var, &parts, Some(value)),
                put(&var, &parts, None),
            ]}),
        };
        doc = json!({"$let": {"vars": {&o: doc}, "in": placed}});
    }
    json!({"$let": {"vars": vars, "in": doc}})
}

/// The document in variable `doc` with `value` at the dotted path `parts`,
/// or without it (`None`), as a `$set` stage does: a missing or non-document
/// step on the path becomes a sub-document when a value goes there, and
/// stays as it is when nothing does.
fn put(doc: &str, parts: &[&str], value: Option<Value>) -> Value {
    let (first, rest) = parts.split_first().expect("paths have a segment");
    if rest.is_empty() {
        let value = value.unwrap_or_else(|| json!("$$REMOVE"));
        return json!({"$setField": {"field": first, "input": doc, "value": value}});
    }
    let var = format!("{}_", doc.trim_start_matches("$$"));
    let inner = format!("$${var}");
    let step = json!({"$getField": {"field": first, "input": doc}});
    let is_doc = |v: &Value| json!({"$eq": [{"$type": v}, "object"]});
    match value {
        Some(v) => {
            let sub = json!({"$cond": [is_doc(&step), &step, {}]});
            let value = json!({"$let": {"vars": {&var: sub}, "in": put(&inner, rest, Some(v))}});
            json!({"$setField": {"field": first, "input": doc, "value": value}})
        }
        None => json!({"$let": {"vars": {&var: step}, "in": {"$cond": [
            is_doc(&json!(&inner)),
            {"$setField": {"field": first, "input": doc, "value": put(&inner, rest, None)}},
            doc,
        ]}}}),
    }
}

/// Rebuilds the documents of collection rule `root`: those of the state
/// rows of its table whose `_id` matches `ids` (a key, or `{"$in": [keys]}`;
/// nothing for a row gone or filtered out), or with `None` every one (after
/// a truncate of a table embedded in it).
pub fn rebuild(plan: &Plan, root: usize, ids: Option<Value>) -> Vec<Value> {
    let mut matched = Map::new();
    if let Some(ids) = ids {
        matched.insert("_id".into(), ids);
    }
    matched.insert(format!("on.{}", plan.rules[root].id()), json!(true));
    let mut stages = vec![json!({ "$match": matched })];
    stages.extend(documents(plan, root));
    stages.push(merge_into(plan, root));
    stages
}

/// Every join value a state row's `fk.<rule>` held: the current one and the
/// ones kept in `prev` since (nulls dropped).
fn parents_expr(rule_id: &str, with_prev: bool) -> Value {
    let current = json!([format!("$fk.{rule_id}")]);
    let all = if with_prev {
        json!({"$setUnion": [{"$ifNull": [format!("$prev.{rule_id}"), []]}, current]})
    } else {
        current
    };
    json!({"$filter": {"input": all, "cond": {"$ne": ["$$this", null]}}})
}

/// What a state upsert merges into the row it writes for the parents the
/// row leaves: `{"prev": {<rule>: [join values]}}` with the join values it
/// had (the stored `fk` and `prev`) that differ from the new ones in `fk`,
/// or `{}` when it leaves none — a snapshot row or a change that keeps its
/// parents then carries no `prev`, and the clean-up after the rebuilds
/// ([`crate::pending`]) writes nothing for it. A crash before that clean-up
/// keeps the parents it left for the replay to rebuild.
pub fn moved_from(plan: &Plan, table: usize, fk: &Value) -> Value {
    let mut left = Map::new();
    let mut any = Vec::new();
    for &r in &plan.tables[table].rules {
        if plan.rules[r].embed().is_some() {
            let id = plan.rules[r].id();
            let now = fk.get(&id).cloned().unwrap_or(Value::Null);
            left.insert(
                id.clone(),
                json!({"$setDifference": [parents_expr(&id, true), [{"$literal": now}]]}),
            );
            any.push(json!({"$gt": [{"$size": format!("$$left.{id}")}, 0]}));
        }
    }
    json!({"$let": {"vars": {"left": left},
        "in": {"$cond": [{"$or": any}, {"prev": "$$left"}, {}]}}})
}

/// Rebuilds the root documents the state rows of embedding rule `rule`'s
/// table whose `_id` matches `ids` (a key, or `{"$in": [keys]}`) belong or
/// belonged to: climbs from the rows to their parent rows (current and
/// previous), up to the roots, and rebuilds each root once.
pub fn rebuild_up(plan: &Plan, rule: usize, ids: &Value) -> Vec<Value> {
    let chain = plan.chain_to_root(rule);
    let mut stages = vec![json!({"$match": {"_id": ids}})];
    for (step, pair) in chain.windows(2).enumerate() {
        let (child, parent) = (pair[0], pair[1]);
        let cid = plan.rules[child].id();
        stages.push(json!({"$project": {"_id": 0, "j": parents_expr(&cid, step == 0)}}));
        stages.push(json!({"$unwind": "$j"}));
        // Each join value once: a parent row has one `join.<rule>` value, so
        // it is found once, and the climb needs no `$group` of whole rows.
        stages.push(json!({"$group": {"_id": "$j"}}));
        stages.push(json!({"$lookup": {
            "from": plan.state_collection(plan.rules[parent].table),
            "localField": "_id",
            "foreignField": format!("join.{cid}"),
            "as": "p",
        }}));
        stages.push(json!({"$unwind": "$p"}));
        stages.push(json!({"$replaceWith": "$p"}));
    }
    let root = *chain.last().expect("a chain has its rule");
    let rid = plan.rules[root].id();
    stages.push(json!({"$match": {format!("on.{rid}"): true}}));
    stages.extend(documents(plan, root));
    stages.push(merge_into(plan, root));
    stages
}
