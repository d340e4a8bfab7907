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
pub fn render(plan: &Plan, rule: usize) -> Vec<Value> {
    let r = &plan.rules[rule];
    let base = json!({"$ifNull": [format!("$doc.{}", r.id()), {}]});
    let mut stages = Vec::new();
    let mut merged = vec![base.clone()];
    let mut carried = Map::new();
    let mut set = Map::new();
    let mut temps = Vec::new();
    for &c in &r.children {
        let child = &plan.rules[c];
        let cid = child.id();
        let e = child.embed().expect("children are embedding rules");
        let mut sort = Map::new();
        for (col, order) in &e.sort {
            let dir = if *order == Order::Asc { 1 } else { -1 };
            sort.insert(format!("s.{cid}.{col}"), json!(dir));
        }
        sort.insert("_id".into(), json!(1));
        let mut sub = vec![
            json!({"$match": {format!("on.{cid}"): true}}),
            json!({"$sort": sort}),
        ];
        match (e.kind, e.limit) {
            (EmbedKind::Array, Some(n)) => sub.push(json!({"$limit": n})),
            (EmbedKind::Array, None) => {}
            (EmbedKind::Document | EmbedKind::Merge, _) => sub.push(json!({"$limit": 1})),
        }
        sub.extend(render(plan, c));
        let temp = format!("__{cid}");
        stages.push(json!({"$lookup": {
            "from": plan.state_collection(child.table),
            "localField": format!("join.{cid}"),
            "foreignField": format!("fk.{cid}"),
            "pipeline": sub,
            "as": temp,
        }}));
        let first = json!({"$arrayElemAt": [format!("${temp}"), 0]});
        match e.kind {
            EmbedKind::Merge => merged.push(json!({"$ifNull": [first, {}]})),
            EmbedKind::Array => {
                set.insert(e.as_path.clone(), json!(format!("${temp}")));
            }
            EmbedKind::Document => {
                set.insert(
                    e.as_path.clone(),
                    json!({"$cond": [{"$gt": [{"$size": format!("${temp}")}, 0]}, first, "$$REMOVE"]}),
                );
            }
        }
        carried.insert(temp.clone(), json!(format!("${temp}")));
        temps.push(temp);
    }
    if merged.len() > 1 {
        // The parent's own fields win a clash and keep their places.
        merged.push(base);
    }
    if !carried.is_empty() {
        merged.push(Value::Object(carried));
    }
    stages.push(if merged.len() == 1 {
        json!({"$replaceWith": merged.pop()})
    } else {
        json!({"$replaceWith": {"$mergeObjects": merged}})
    });
    if !set.is_empty() {
        stages.push(json!({"$set": set}));
    }
    if !temps.is_empty() {
        stages.push(json!({"$unset": temps}));
    }
    stages
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
