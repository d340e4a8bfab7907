//! Work deferred to the end of a batch: the rebuilds of the documents the
//! batch's rows changed and the clean-up of their state rows.
//!
//! A rebuilt document is a function of the state collections only (see
//! docs/relational-mapper.md), so rebuilding it once after the state writes of
//! every record of the batch gives what rebuilding it after each would have
//! given last. The rows' `prev` (the parents they had) accumulates over the
//! batch's writes, so one climb from a row after them still reaches every
//! parent it had during the batch. A deleted row keeps its state row (every
//! rule off, `prev` set) until the rebuilds have climbed from it.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use smt_guest::{ops, WriteOp};

/// State keys by their JSON text: each once, in a stable order.
type Keys = BTreeMap<String, Value>;

#[derive(Default)]
pub struct Pending {
    /// Collection rule (with embedded children) → state keys of its table whose document is rebuilt.
    pub roots: BTreeMap<usize, Keys>,
    /// Embedding rule → state keys of its table whose parents' root documents are rebuilt.
    pub ups: BTreeMap<usize, Keys>,
    /// Table → state keys whose `prev` is cleared after the rebuilds.
    pub prev: BTreeMap<usize, Keys>,
    /// Table → state keys of deleted rows, removed after the rebuilds.
    pub gone: BTreeMap<usize, Keys>,
}

fn add(map: &mut BTreeMap<usize, Keys>, at: usize, key: &Value) {
    map.entry(at)
        .or_default()
        .insert(key.to_string(), key.clone());
}

fn remove(map: &mut BTreeMap<usize, Keys>, at: usize, key: &Value) {
    if let Some(keys) = map.get_mut(&at) {
        keys.remove(&key.to_string());
    }
}

impl Pending {
    pub fn is_empty(&self) -> bool {
        [&self.roots, &self.ups, &self.prev, &self.gone]
            .iter()
            .all(|m| m.values().all(BTreeMap::is_empty))
    }

    pub fn rebuild_root(&mut self, rule: usize, key: &Value) {
        add(&mut self.roots, rule, key);
    }

    pub fn rebuild_up(&mut self, rule: usize, key: &Value) {
        add(&mut self.ups, rule, key);
    }

    /// The row was written: its `prev` is cleared after the rebuilds, and it
    /// is no longer going.
    pub fn written(&mut self, table: usize, key: &Value, has_embeds: bool) {
        remove(&mut self.gone, table, key);
        if has_embeds {
            add(&mut self.prev, table, key);
        }
    }

    /// The row was deleted: its state row goes after the rebuilds.
    pub fn deleted(&mut self, table: usize, key: &Value) {
        remove(&mut self.prev, table, key);
        add(&mut self.gone, table, key);
    }

    /// Whether the row's state is to be removed at the flush: a later event
    /// of the same row must not find the deleted row's state (a create would
    /// take its TOASTed values, a carried-over row would not land), so the
    /// batch is flushed before it.
    pub fn is_gone(&self, table: usize, key: &Value) -> bool {
        self.gone
            .get(&table)
            .is_some_and(|keys| keys.contains_key(&key.to_string()))
    }

    /// The deferred operations, in the order they must run: root documents
    /// rebuilt, parents of changed rows rebuilt, `prev` cleared, deleted
    /// rows' state removed. Leaves the set empty.
    pub fn flush(&mut self, mapper: &crate::Mapper) -> Vec<WriteOp> {
        let mut out = Vec::new();
        for (rule, keys) in std::mem::take(&mut self.roots) {
            out.push(mapper.rebuild_roots(rule, values(keys)));
        }
        for (rule, keys) in std::mem::take(&mut self.ups) {
            out.push(mapper.rebuild_parents_of(rule, values(keys)));
        }
        for (table, keys) in std::mem::take(&mut self.prev) {
            let ns = mapper.state_ns(table);
            let unset = json!({"prev": ""});
            if keys.is_empty() {
                continue;
            }
            let one = keys.len() == 1;
            // Only the rows that left a parent hold `prev` (see
            // `render::moved_from`): the others are read, not written.
            let mut filter = id_in(values(keys));
            filter["prev"] = json!({"$exists": true});
            out.push(
                if one {
                    ops::update_one(ns, filter)
                } else {
                    ops::update_many(ns, filter)
                }
                .operator("$unset", unset)
                .build(),
            );
        }
        for (table, keys) in std::mem::take(&mut self.gone) {
            let ns = mapper.state_ns(table);
            if keys.is_empty() {
                continue;
            }
            let one = keys.len() == 1;
            // Only rows their delete marked: a row a later change wrote
            // (a replay, see `crate::Position`) stays.
            let mut filter = id_in(values(keys));
            filter["gone"] = Value::Bool(true);
            out.push(if one {
                ops::delete_one(ns, filter)
            } else {
                ops::delete_many(ns, filter)
            });
        }
        out
    }
}

fn values(keys: Keys) -> Vec<Value> {
    keys.into_values().collect()
}

/// `{_id: k}` for one key, `{_id: {$in: [...]}}` for several.
pub fn id_in(mut keys: Vec<Value>) -> Value {
    if keys.len() == 1 {
        json!({"_id": keys.pop()})
    } else {
        json!({"_id": {"$in": keys}})
    }
}
