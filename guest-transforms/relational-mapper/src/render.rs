//! Aggregation pipelines that rebuild documents from the state collections:
//! downward (a root row → its document, children by nested `$lookup`) and
//! upward (a changed child row → the roots it belongs or belonged to).

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

/// Stages turning state rows of `rule`'s table into the rule's fragments
/// (for a collection rule: its documents, `_id` first).
///
/// Every descendant rule's state rows are joined in first, one simple
/// `$lookup` (`localField`/`foreignField`, no sub-pipeline) per rule into a
/// flat array `__<rule>` — the join a server drives through an index on the
/// state collection's `fk.<rule>` (see docs/relational-mapper.md,
/// *Indexes*) — and one `$replaceWith` then builds the fragment by
/// expressions: each parent row takes the rows of the flat array whose
/// `fk` is its `join`, filtered, sorted, limited and rendered in turn.
pub fn render(plan: &Plan, rule: usize) -> Vec<Value> {
    let mut stages = Vec::new();
    lookups(plan, rule, true, &mut stages);
    stages.push(json!({"$replaceWith": fragment(plan, rule, "$$ROOT")}));
    stages
}

/// The `$lookup`s of `rule`'s descendants, parents before children.
fn lookups(plan: &Plan, rule: usize, top: bool, stages: &mut Vec<Value>) {
    let rid = plan.rules[rule].id();
    for &c in &plan.rules[rule].children {
        let cid = plan.rules[c].id();
        let local = if top {
            format!("join.{cid}")
        } else {
            // The join values of every row of the parent's flat array.
            let j = format!("__j{cid}");
            stages.push(json!({"$set": {j.clone(): format!("$__{rid}.join.{cid}")}}));
            j
        };
        stages.push(json!({"$lookup": {
            "from": plan.state_collection(plan.rules[c].table),
            "localField": local,
            "foreignField": format!("fk.{cid}"),
            "as": format!("__{cid}"),
        }}));
        lookups(plan, c, false, stages);
    }
}

/// The expression of `rule`'s fragment of the state row `row` (`$$ROOT` or a
/// `$map` variable), its embedded children included.
fn fragment(plan: &Plan, rule: usize, row: &str) -> Value {
    let base = json!({"$ifNull": [format!("{row}.doc.{}", plan.rules[rule].id()), {}]});
    let mut merged = vec![base.clone()];
    let mut sets = Vec::new();
    for &c in &plan.rules[rule].children {
        let child = &plan.rules[c];
        let cid = child.id();
        let e = child.embed().expect("children are embedding rules");
        let x = format!("x{cid}");
        let rows = json!({"$filter": {"input": format!("$__{cid}"), "as": x, "cond": {"$and": [
            {"$eq": [format!("$${x}.on.{cid}"), true]},
            {"$eq": [format!("$${x}.fk.{cid}"), format!("{row}.join.{cid}")]},
        ]}}});
        let mut sort = Map::new();
        for (col, order) in &e.sort {
            let dir = if *order == Order::Asc { 1 } else { -1 };
            sort.insert(format!("s.{cid}.{col}"), json!(dir));
        }
        sort.insert("_id".into(), json!(1));
        let sorted = json!({"$sortArray": {"input": rows, "sortBy": sort}});
        let limited = match (e.kind, e.limit) {
            (EmbedKind::Array, Some(n)) => json!({"$slice": [sorted, n]}),
            (EmbedKind::Array, None) => sorted,
            (EmbedKind::Document | EmbedKind::Merge, _) => json!({"$slice": [sorted, 1]}),
        };
        let var = format!("c{cid}");
        let frags = json!({"$map": {"input": limited, "as": var, "in": fragment(plan, c, &format!("$${var}"))}});
        match e.kind {
            EmbedKind::Merge => {
                merged.push(json!({"$ifNull": [{"$arrayElemAt": [frags, 0]}, {}]}));
            }
            EmbedKind::Array => sets.push((e.as_path.clone(), frags, false)),
            EmbedKind::Document => sets.push((e.as_path.clone(), frags, true)),
        }
    }
    if merged.len() > 1 {
        // The parent's own fields win a clash and keep their places.
        merged.push(base);
    }
    let mut doc = if merged.len() == 1 {
        merged.pop().expect("one")
    } else {
        json!({"$mergeObjects": merged})
    };
    for (path, frags, first_only) in sets {
        let segments: Vec<&str> = path.split('.').collect();
        doc = if first_only {
            // A sub-document only when there is a matching row.
            json!({"$let": {"vars": {"d": doc, "f": frags}, "in": {"$cond": [
                {"$gt": [{"$size": "$$f"}, 0]},
                set_path(json!("$$d"), &segments, json!({"$arrayElemAt": ["$$f", 0]})),
                "$$d"]}}})
        } else {
            set_path(doc, &segments, frags)
        };
    }
    doc
}

/// `obj` with `value` at the dotted `path`, as `$set` of that path would
/// leave it (existing sub-documents kept, the field last when new).
fn set_path(obj: Value, path: &[&str], value: Value) -> Value {
    let (first, rest) = path.split_first().expect("a path has a segment");
    let inner = if rest.is_empty() {
        value
    } else {
        let sub = json!({"$cond": [{"$eq": [{"$type": format!("$$d.{first}")}, "object"]}, format!("$$d.{first}"), {}]});
        set_path(sub, rest, value)
    };
    json!({"$let": {"vars": {"d": obj}, "in": {"$mergeObjects": ["$$d", {*first: inner}]}}})
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
    stages.extend(render(plan, root));
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

/// `prev.<rule>` after a change: the old values plus the current `fk`, so a
/// crash before the rebuild still rebuilds the parent the row left.
pub fn prev_expr(plan: &Plan, table: usize) -> Value {
    let mut prev = Map::new();
    for &r in &plan.tables[table].rules {
        if plan.rules[r].embed().is_some() {
            let id = plan.rules[r].id();
            prev.insert(id.clone(), parents_expr(&id, true));
        }
    }
    Value::Object(prev)
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
        stages.push(json!({"$lookup": {
            "from": plan.state_collection(plan.rules[parent].table),
            "localField": "j",
            "foreignField": format!("join.{cid}"),
            "as": "p",
        }}));
        stages.push(json!({"$unwind": "$p"}));
        stages.push(json!({"$replaceWith": "$p"}));
    }
    let root = *chain.last().expect("a chain has its rule");
    let rid = plan.rules[root].id();
    stages.push(json!({"$match": {format!("on.{rid}"): true}}));
    stages.push(json!({"$group": {"_id": "$_id", "row": {"$first": "$$ROOT"}}}));
    stages.push(json!({"$replaceWith": "$row"}));
    stages.extend(render(plan, root));
    stages.push(merge_into(plan, root));
    stages
}
