//! The relational mapper: Debezium change events of related tables →
//! MongoDB documents shaped by declarative rules (a table → a collection;
//! child tables embedded as sub-documents, merged fields or arrays), kept
//! equal to the mapping of the current source rows under any event order and
//! any replay. The reference is `docs/relational-mapper.md`.
//!
//! - [`config`]: the mapping file; [`plan`]: checked and resolved.
//! - [`row`]: filters and mapped fragments; [`convert`]: type conversions.
//! - [`render`]: the aggregation pipelines that rebuild documents.
//! - [`pending`]: the rebuilds and state clean-up deferred to a batch's end;
//!   [`export`]: the component's exports, `transform-batch` among them.

pub mod config;
pub mod convert;
pub mod export;
pub mod pending;
pub mod plan;
pub mod render;
pub mod row;

use pending::Pending;
use plan::{Plan, Target};
use row::Row;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use smt_guest::debezium::{DecodeOptions, Event, Op, Record, TimestampMode};
use smt_guest::{ops, Message, Namespace, TransformError, WriteOp};

/// What Debezium writes for an unchanged TOASTed column it cannot read.
const UNAVAILABLE: &str = "__debezium_unavailable_value";

/// On the delete half of a primary-key change: the row's new key.
const NEW_KEY_HEADER: &str = "__debezium.newkey";

/// Where a change comes from: its topic, partition and offset. Every state
/// row keeps the position of the change that wrote it (`at`), and a change
/// leaves alone a row that a later change of the same partition wrote. A
/// replay after a crash re-applies changes to state that is already past
/// them: without this, the replayed delete of a key removed the row a later
/// change had put there, and the replayed delete half of a primary-key change
/// carried over the row a later change had put at the old key (the new key
/// then took an unchanged TOASTed column from the wrong row: relational
/// oracle seed 81669600). Positions of different partitions (a topic routed
/// elsewhere, a dead letter replayed from its own topic) are not compared:
/// the change applies.
pub(crate) struct Position {
    topic: String,
    partition: i32,
    offset: i64,
}

impl Position {
    pub(crate) fn of(msg: &Message) -> Position {
        Position {
            topic: msg.topic.clone(),
            partition: msg.partition,
            offset: msg.offset,
        }
    }

    /// What a state row stores in `at`.
    pub(crate) fn value(&self) -> Value {
        json!({"t": self.topic, "p": self.partition, "o": self.offset})
    }

    /// An aggregation expression: whether the position stored at `stored`
    /// (a field path, `"$at"`) is a later change of this one's partition.
    pub(crate) fn is_before(&self, stored: &str) -> Value {
        json!({"$and": [
            {"$eq": [format!("{stored}.t"), {"$literal": self.topic}]},
            {"$eq": [format!("{stored}.p"), self.partition]},
            {"$gt": [format!("{stored}.o"), self.offset]},
        ]})
    }
}

/// The key in a Debezium key header (`{"id": 2}`, or with its schema).
fn header_key(msg: &Message, name: &str) -> Result<Option<Row>, TransformError> {
    let Some(bytes) = msg
        .headers
        .iter()
        .find(|h| h.key == name)
        .and_then(|h| h.value.as_deref())
    else {
        return Ok(None);
    };
    let bad = |why: &str| TransformError::bad_input(format!("header {name}: {why}"));
    let value: Value = serde_json::from_slice(bytes).map_err(|e| bad(&e.to_string()))?;
    let key = match value {
        Value::Object(mut o) if o.contains_key("schema") && o.contains_key("payload") => {
            o.remove("payload").unwrap_or(Value::Null)
        }
        other => other,
    };
    match key {
        Value::Object(o) => Ok(Some(o)),
        _ => Err(bad("not a JSON object")),
    }
}

/// The `_id` of a row's state document: the key's one value, or for a
/// composite key the JSON text of its values in key order. Not the key as a
/// document: a server may find a document-valued `_id` by reading the whole
/// collection (secantusd-rs does), and then every state write cost as much as
/// the table was large. The key as a document is kept in `key` (sorted
/// embeddings break ties by it).
pub(crate) fn state_id(key: &Row) -> Value {
    let mut values = key.values();
    match (values.next(), values.next()) {
        (Some(v), None) if is_scalar(v) => v.clone(),
        _ => Value::String(Value::Array(key.values().cloned().collect()).to_string()),
    }
}

/// A value that is one BSON scalar: not an array, a document or null (an
/// Extended JSON value such as `{"$numberDecimal": "1.5"}` is one).
fn is_scalar(v: &Value) -> bool {
    match v {
        Value::Null | Value::Array(_) => false,
        Value::Object(o) => !o.is_empty() && o.keys().all(|k| k.starts_with('$')),
        _ => true,
    }
}

pub struct Mapper {
    plan: Plan,
}

impl smt_guest::Transform for Mapper {
    fn init(config: &str) -> Result<Self, String> {
        let plan = plan::build(config)?;
        let indexes = plan.join_indexes();
        if !indexes.is_empty() {
            let list: Vec<String> = indexes
                .iter()
                .map(|(coll, field)| format!("db[{coll:?}].createIndex({{{field:?}: 1}})"))
                .collect();
            smt_guest::log::info(&format!(
                "the rebuilds join the state collections through these fields; without an index each join reads the whole collection: {}",
                list.join("; ")
            ));
        }
        Ok(Mapper { plan })
    }

    /// One record alone: its operations, then the deferred ones.
    fn transform(&self, msg: &Message) -> Result<Vec<WriteOp>, TransformError> {
        let mut pending = Pending::default();
        let mut ops = self.record(msg, &mut pending)?;
        ops.extend(pending.flush(self));
        Ok(ops)
    }
}

impl Mapper {
    /// The records of a batch: each record's own operations, and the
    /// rebuilds of the documents they changed once per batch, after the last
    /// successful record's (see [`pending`]).
    pub fn transform_batch(&self, msgs: &[Message]) -> Vec<Result<Vec<WriteOp>, TransformError>> {
        let mut pending = Pending::default();
        let mut results: Vec<_> = msgs.iter().map(|m| self.record(m, &mut pending)).collect();
        if !pending.is_empty() {
            let flush = pending.flush(self);
            // Only successful records register work, so one is there.
            if let Some(Ok(last)) = results.iter_mut().rev().find(|r| r.is_ok()) {
                last.extend(flush);
            }
        }
        results
    }

    /// One record's own operations; the rebuilds it calls for go to `pending`.
    fn record(&self, msg: &Message, pending: &mut Pending) -> Result<Vec<WriteOp>, TransformError> {
        let options = DecodeOptions {
            timestamps: TimestampMode::TruncateToMillis,
            ..DecodeOptions::default()
        };
        let mut event = match Event::classify_with(msg, options)? {
            Record::Change(e) => e,
            Record::Tombstone | Record::NotAChange => return Ok(vec![]),
        };
        let source = event.source();
        // MySQL/MariaDB have no schema: their tables are `<database>.<table>`
        let (Some(schema), Some(name)) = (source.schema().or(source.db()), source.table()) else {
            return Err(TransformError::bad_input(
                "the change event's source block names no schema and table",
            ));
        };
        let table_name = format!("{schema}.{name}");
        let Some(table) = self.plan.table_index(&table_name) else {
            smt_guest::log::debug(&format!("{table_name} is not in the mapping: skipped"));
            return Ok(vec![]);
        };
        let op = event.op();
        match op {
            // A truncate rebuilds from what the state holds now: after the deferred work.
            Op::Truncate => {
                let mut out = pending.flush(self);
                out.extend(self.truncate(table));
                return Ok(out);
            }
            Op::Message => return Ok(vec![]),
            _ => {}
        }
        let key = event.take_key()?.ok_or_else(|| {
            TransformError::unsupported(format!(
                "{table_name} has no primary key (the record has no key): the relational mapper needs one"
            ))
        })?;
        let at = Position::of(msg);
        if op == Op::Delete {
            let new_key = header_key(msg, NEW_KEY_HEADER)?;
            let mut out = self.flush_if_gone(table, [Some(&key), new_key.as_ref()], pending);
            if let Some(new_key) = new_key {
                out.extend(self.carry_over(table, &key, &new_key, &at));
            }
            out.extend(self.delete(table, &key, &at, pending));
            return Ok(out);
        }
        let after = event.take_after()?.ok_or_else(|| {
            TransformError::bad_input(format!("a {:?} event without an after image", op))
        })?;
        let mut out = self.flush_if_gone(table, [Some(&key), None], pending);
        out.extend(self.upsert(table, &key, &after, &at, pending));
        Ok(out)
    }

    /// The deferred work, now, when one of these rows of `table` was deleted
    /// earlier in the batch (its state row is still there until the flush).
    fn flush_if_gone(
        &self,
        table: usize,
        keys: [Option<&Row>; 2],
        pending: &mut Pending,
    ) -> Vec<WriteOp> {
        let gone = keys
            .into_iter()
            .flatten()
            .any(|k| pending.is_gone(table, &state_id(k)));
        if gone {
            pending.flush(self)
        } else {
            Vec::new()
        }
    }

    /// Rebuilds the documents of collection rule `rule` of these state rows.
    pub(crate) fn rebuild_roots(&self, rule: usize, keys: Vec<Value>) -> WriteOp {
        let table = self.plan.rules[rule].table;
        ops::aggregate(
            self.state_ns(table),
            render::rebuild(&self.plan, rule, Some(pending::id_in(keys)["_id"].take())),
        )
    }

    /// Rebuilds the root documents these state rows of embedding rule
    /// `rule`'s table belong or belonged to.
    pub(crate) fn rebuild_parents_of(&self, rule: usize, keys: Vec<Value>) -> WriteOp {
        let table = self.plan.rules[rule].table;
        ops::aggregate(
            self.state_ns(table),
            render::rebuild_up(&self.plan, rule, &pending::id_in(keys)["_id"]),
        )
    }

    fn ns(&self, collection: impl Into<String>) -> Namespace {
        match &self.plan.database {
            Some(db) => ops::ns_in(db.clone(), collection),
            None => ops::ns(collection),
        }
    }

    pub(crate) fn state_ns(&self, table: usize) -> Namespace {
        self.ns(self.plan.state_collection(table))
    }

    /// The `_id` of collection rule `rule`'s document for a row key.
    fn doc_id(&self, rule: usize, key: &Row) -> Value {
        let r = &self.plan.rules[rule];
        let Target::Collection { id, .. } = &r.target else {
            unreachable!("embedding rules have no _id");
        };
        match id {
            config::IdMode::PrimaryKey if key.len() == 1 => {
                key.values().next().cloned().unwrap_or(Value::Null)
            }
            config::IdMode::PrimaryKey | config::IdMode::KeyDocument => Value::Object(key.clone()),
            config::IdMode::ObjectId => {
                let table = &self.plan.tables[r.table].name;
                let mut h = Sha256::new();
                h.update(table.as_bytes());
                h.update([0]);
                h.update(Value::Object(key.clone()).to_string().as_bytes());
                json!({"$oid": hex::encode(&h.finalize()[..12])})
            }
        }
    }

    fn upsert(
        &self,
        table: usize,
        key: &Row,
        after: &Row,
        at: &Position,
        pending: &mut Pending,
    ) -> Vec<WriteOp> {
        let plan = &self.plan;
        let t = &plan.tables[table];
        let sid = state_id(key);
        let toasted: Vec<&String> = after
            .iter()
            .filter(|(_, v)| v.as_str() == Some(UNAVAILABLE))
            .map(|(k, _)| k)
            .collect();
        let mut failed = Vec::new();
        let mut out = Vec::new();
        let stateful = t.needs_state(plan);
        let has_embeds = t.has_embeds(plan);

        if stateful {
            let state = self.state_doc(table, key, &sid, after, at, &mut failed);
            out.push(self.write_state(table, &sid, state, at, &toasted));
        }
        for &r in &t.rules {
            let rule = &plan.rules[r];
            let Target::Collection { collection, .. } = &rule.target else {
                continue;
            };
            let id = self.doc_id(r, key);
            if !row::passes(rule, after) {
                out.push(ops::delete_one(
                    self.ns(collection.clone()),
                    json!({"_id": id}),
                ));
            } else if !rule.children.is_empty() {
                pending.rebuild_root(r, &sid);
            } else {
                let doc = row::fragment(rule, after, Some(id.clone()), &mut failed);
                out.push(direct_write(
                    self.ns(collection.clone()),
                    rule,
                    id,
                    doc,
                    &toasted,
                ));
            }
        }
        self.rebuild_parents(table, &sid, pending);
        if stateful {
            pending.written(table, &sid, has_embeds);
        }
        for f in failed {
            smt_guest::log::warn(&format!(
                "{}: column {} value {} cannot be converted to {:?}: written as null",
                t.name, f.column, f.value, f.ty
            ));
        }
        out
    }

    /// The delete half of a primary-key change: what the row had moves to
    /// its new key unless that key is there already, because the create half
    /// carries the unavailable value of every unchanged TOASTed column and
    /// takes it from there (the halves may arrive in either order: their keys
    /// can be on different partitions). A state row a later change wrote (a
    /// replay after a crash: the old key lived again since) is not this
    /// change's row and stays where it is.
    fn carry_over(&self, table: usize, old: &Row, new: &Row, at: &Position) -> Vec<WriteOp> {
        let plan = &self.plan;
        let t = &plan.tables[table];
        let keep_or_insert = |into: &str| json!({"$merge": {"into": into, "on": "_id", "whenMatched": "keepExisting", "whenNotMatched": "insert"}});
        let mut out = Vec::new();
        if t.needs_state(plan) {
            out.push(ops::aggregate(
                self.state_ns(table),
                vec![
                    // two stages: `_id` alone is a point lookup on every server
                    json!({"$match": {"_id": state_id(old)}}),
                    json!({"$match": {"$expr": {"$not": [at.is_before("$at")]}}}),
                    json!({"$project": {"_id": {"$literal": state_id(new)},
                        "key": {"$literal": Value::Object(new.clone())}, "doc": 1, "s": 1, "fk": 1, "join": 1, "at": {"$literal": at.value()}}}),
                    keep_or_insert(&plan.state_collection(table)),
                ],
            ));
        }
        for &r in &t.rules {
            let rule = &plan.rules[r];
            let Target::Collection { collection, .. } = &rule.target else {
                continue;
            };
            if !rule.children.is_empty() {
                continue; // rebuilt from the state
            }
            out.push(ops::aggregate(
                self.ns(collection.clone()),
                vec![
                    json!({"$match": {"_id": self.doc_id(r, old)}}),
                    json!({"$replaceWith": {"$mergeObjects": ["$$ROOT", {"_id": {"$literal": self.doc_id(r, new)}}]}}),
                    keep_or_insert(collection),
                ],
            ));
        }
        out
    }

    /// A delete marks the state row (every rule off, `prev` kept, `gone`)
    /// unless a later change wrote it (a replay after a crash: the key lived
    /// again since); the flush removes the marked rows after the rebuilds.
    fn delete(
        &self,
        table: usize,
        key: &Row,
        at: &Position,
        pending: &mut Pending,
    ) -> Vec<WriteOp> {
        let plan = &self.plan;
        let t = &plan.tables[table];
        let sid = state_id(key);
        let mut out = Vec::new();
        let stateful = t.needs_state(plan);
        if stateful {
            let off: Map<String, Value> = t
                .rules
                .iter()
                .map(|&r| (plan.rules[r].id(), Value::Bool(false)))
                .collect();
            let mut set = Map::new();
            // `fk` and `prev` stay: the climb after the delete starts from them.
            set.insert("on".into(), Value::Object(off));
            set.insert("gone".into(), Value::Bool(true));
            set.insert("at".into(), json!({"$literal": at.value()}));
            // The condition is in the pipeline, not in the filter: a filter
            // with `$expr` beside `_id` is no point lookup on some servers
            // (secantusd-rs reads the whole collection for it).
            let marked = json!({"$mergeObjects": ["$$ROOT", set]});
            out.push(
                ops::update_one(self.state_ns(table), json!({"_id": &sid}))
                    .pipeline(vec![
                        json!({"$replaceWith": {"$cond": [at.is_before("$at"), "$$ROOT", marked]}}),
                    ])
                    .build(),
            );
        }
        for &r in &t.rules {
            if let Target::Collection { collection, .. } = &plan.rules[r].target {
                let id = self.doc_id(r, key);
                out.push(ops::delete_one(
                    self.ns(collection.clone()),
                    json!({"_id": id}),
                ));
            }
        }
        self.rebuild_parents(table, &sid, pending);
        if stateful {
            pending.deleted(table, &sid);
        }
        out
    }

    /// One rebuild per embedding rule of the table: the documents the row
    /// belongs or belonged to.
    fn rebuild_parents(&self, table: usize, sid: &Value, pending: &mut Pending) {
        let plan = &self.plan;
        for &r in &plan.tables[table].rules {
            if plan.rules[r].embed().is_some() {
                pending.rebuild_up(r, sid);
            }
        }
    }

    fn truncate(&self, table: usize) -> Vec<WriteOp> {
        let plan = &self.plan;
        let t = &plan.tables[table];
        let mut out = Vec::new();
        if t.needs_state(plan) {
            out.push(ops::delete_many(self.state_ns(table), json!({})));
        }
        for &r in &t.rules {
            match &plan.rules[r].target {
                Target::Collection { collection, .. } => {
                    out.push(ops::delete_many(self.ns(collection.clone()), json!({})));
                }
                Target::Embed(_) => {
                    let root = *plan.chain_to_root(r).last().expect("a chain has its rule");
                    let root_table = plan.rules[root].table;
                    out.push(ops::aggregate(
                        self.state_ns(root_table),
                        render::rebuild(plan, root, None),
                    ));
                }
            }
        }
        out
    }

    /// The row's state document: per rule whether its filter holds and its
    /// fragment; the join values its children match on; its own join values
    /// towards its parents; its sort values.
    fn state_doc(
        &self,
        table: usize,
        key: &Row,
        sid: &Value,
        after: &Row,
        at: &Position,
        failed: &mut Vec<row::Unconvertible>,
    ) -> Value {
        let plan = &self.plan;
        let t = &plan.tables[table];
        let key_doc = Value::Object(key.clone());
        let mut on = Map::new();
        let mut doc = Map::new();
        let mut fk = Map::new();
        let mut sort = Map::new();
        for &r in &t.rules {
            let rule = &plan.rules[r];
            let id = rule.id();
            on.insert(id.clone(), Value::Bool(row::passes(rule, after)));
            let doc_id =
                matches!(rule.target, Target::Collection { .. }).then(|| self.doc_id(r, key));
            doc.insert(
                id.clone(),
                Value::Object(row::fragment(rule, after, doc_id, failed)),
            );
            if let Some(e) = rule.embed() {
                let values =
                    e.on.iter()
                        .map(|(child, parent)| (parent, after.get(child)));
                fk.insert(id.clone(), join_value(values, "__nofk", &key_doc));
                let s: Map<String, Value> = e
                    .sort
                    .iter()
                    .map(|(c, _)| (c.clone(), after.get(c).cloned().unwrap_or(Value::Null)))
                    .collect();
                sort.insert(id, Value::Object(s));
            }
        }
        let mut join = Map::new();
        for &c in &t.child_rules {
            let e = plan.rules[c].embed().expect("child rules embed");
            let values = e.on.iter().map(|(_, parent)| (parent, after.get(parent)));
            join.insert(plan.rules[c].id(), join_value(values, "__nojoin", &key_doc));
        }
        let mut state = Map::new();
        state.insert("_id".into(), sid.clone());
        state.insert("key".into(), key_doc);
        state.insert("on".into(), Value::Object(on));
        state.insert("doc".into(), Value::Object(doc));
        state.insert("join".into(), Value::Object(join));
        state.insert("fk".into(), Value::Object(fk));
        state.insert("s".into(), Value::Object(sort));
        state.insert("at".into(), at.value());
        Value::Object(state)
    }

    /// The upsert of a state document, keeping `prev` (the parents the row
    /// had) and, for unchanged TOASTed columns, the stored fragments' values.
    ///
    /// A row a later change of the same partition wrote stays as it is (a
    /// replay after a crash: see [`Position`]).
    fn write_state(
        &self,
        table: usize,
        sid: &Value,
        state: Value,
        at: &Position,
        toasted: &[&String],
    ) -> WriteOp {
        let plan = &self.plan;
        let t = &plan.tables[table];
        // What is written: the row, the parents it leaves, the stored row
        // for the restore of unchanged TOASTed values below.
        let moved = t
            .has_embeds(plan)
            .then(|| render::moved_from(plan, table, &state["fk"]));
        let mut merged = vec![json!({"$literal": state})];
        merged.extend(moved);
        let mut kept = json!("$$ROOT");
        if !toasted.is_empty() {
            merged.push(json!({"__old": "$$ROOT"}));
            // The restore below then puts the kept row's values back.
            kept = json!({"$mergeObjects": ["$$ROOT", {"__old": "$$ROOT"}]});
        }
        let written = if merged.len() == 1 {
            merged.remove(0)
        } else {
            json!({"$mergeObjects": merged})
        };
        let mut stages =
            vec![json!({"$replaceWith": {"$cond": [at.is_before("$at"), kept, written]}})];
        if !toasted.is_empty() {
            // Every place the unavailable value went: the fragments, the sort
            // values and the join values take the stored ones back.
            let mut paths = Vec::new();
            let is_toasted = |c: &String| toasted.contains(&c);
            for &r in &t.rules {
                let rule = &plan.rules[r];
                let id = rule.id();
                for f in rule.fields.iter().filter(|f| is_toasted(&f.column)) {
                    paths.push(format!("doc.{id}.{}", f.path.join(".")));
                }
                if let Some(e) = rule.embed() {
                    for (c, _) in e.sort.iter().filter(|(c, _)| is_toasted(c)) {
                        paths.push(format!("s.{id}.{c}"));
                    }
                    if e.on.iter().any(|(c, _)| is_toasted(c)) {
                        paths.push(format!("fk.{id}"));
                    }
                }
            }
            for &c in &t.child_rules {
                let e = plan.rules[c].embed().expect("child rules embed");
                if e.on.iter().any(|(_, p)| is_toasted(p)) {
                    paths.push(format!("join.{}", plan.rules[c].id()));
                }
            }
            let restore: Map<String, Value> = paths
                .into_iter()
                .map(|p| {
                    let old = json!(format!("$__old.{p}"));
                    (p, old)
                })
                .collect();
            if !restore.is_empty() {
                stages.push(json!({"$set": restore}));
            }
            stages.push(json!({"$unset": "__old"}));
        }
        ops::update_one(self.state_ns(table), json!({"_id": sid}))
            .pipeline(stages)
            .upsert()
            .build()
    }
}

/// `{<parent column>: value, ...}`, or a value matching nothing when a
/// column is NULL (SQL joins never match NULL; `$lookup` would).
fn join_value<'a>(
    values: impl Iterator<Item = (&'a String, Option<&'a Value>)>,
    sentinel: &str,
    key: &Value,
) -> Value {
    let mut out = Map::new();
    for (name, v) in values {
        match v {
            Some(v) if !v.is_null() => {
                out.insert(name.clone(), v.clone());
            }
            _ => return json!({sentinel: key}),
        }
    }
    Value::Object(out)
}

/// A collection rule's document written directly (no embedded children):
/// a replacement, or `$set`/`$unset` of the known fields when some columns
/// are unavailable (unchanged TOAST) so their stored values stay.
fn direct_write(
    ns: Namespace,
    rule: &plan::Rule,
    id: Value,
    doc: Row,
    toasted: &[&String],
) -> WriteOp {
    if toasted.is_empty() {
        return ops::replace_one(ns, json!({"_id": id}), Value::Object(doc))
            .upsert()
            .build();
    }
    let mut set = Map::new();
    let mut unset = Map::new();
    for f in &rule.fields {
        if toasted.contains(&&f.column) {
            continue;
        }
        let path = f.path.join(".");
        match lookup(&doc, &f.path) {
            Some(v) => {
                set.insert(path, v.clone());
            }
            None => {
                unset.insert(path, json!(""));
            }
        }
    }
    let mut b = ops::update_one(ns, json!({"_id": id}));
    if !set.is_empty() {
        b = b.set(Value::Object(set));
    }
    if !unset.is_empty() {
        b = b.operator("$unset", Value::Object(unset));
    }
    b.upsert().build()
}

fn lookup<'a>(doc: &'a Row, path: &[String]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    let v = doc.get(first)?;
    if rest.is_empty() {
        return Some(v);
    }
    lookup(v.as_object()?, rest)
}

#[cfg(test)]
mod tests;
