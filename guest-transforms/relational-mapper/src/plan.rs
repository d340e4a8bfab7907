//! The checked mapping: names resolved to indexes, every column a rule names
//! checked against its table, embedding cycles refused. Every error names
//! its place in the mapping file.

use crate::config::{self, CondOp, EmbedKind, IdMode, Nulls, Order, Type};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};

#[derive(Debug)]
pub struct Plan {
    pub database: Option<String>,
    pub state_prefix: String,
    pub tables: Vec<Table>,
    pub rules: Vec<Rule>,
    by_table: HashMap<String, usize>,
}

#[derive(Debug)]
pub struct Table {
    /// `"<schema>.<table>"`.
    pub name: String,
    pub columns: Vec<String>,
    /// Indexes of the rules built from this table, in rule order.
    pub rules: Vec<usize>,
    /// Indexes of the embedding rules whose parent rule is built from this table.
    pub child_rules: Vec<usize>,
}

impl Table {
    /// Whether rows of this table are kept in a state collection: they are
    /// embedded somewhere, or something is embedded in them.
    pub fn needs_state(&self, plan: &Plan) -> bool {
        !self.child_rules.is_empty() || self.has_embeds(plan)
    }

    /// Whether some rule embeds this table's rows in a parent.
    pub fn has_embeds(&self, plan: &Plan) -> bool {
        self.rules.iter().any(|&r| plan.rules[r].embed().is_some())
    }
}

/// The format of the state documents, part of the state collections' names:
/// a build never reads state another format wrote (format 2: a scalar `_id`,
/// see [`crate::state_id`]; format 1, the key document as `_id`, had no mark).
const STATE_FORMAT: &str = "v2.";

#[derive(Debug)]
pub struct Rule {
    pub index: usize,
    pub name: String,
    pub table: usize,
    pub target: Target,
    /// Selected columns, in table order, each with its target path and type.
    pub fields: Vec<FieldPlan>,
    pub nulls: Nulls,
    pub filter: Vec<Condition>,
    /// Embedding rules whose parent is this rule, in rule order.
    pub children: Vec<usize>,
}

impl Rule {
    /// The rule's key inside state documents (`on.r3`, `doc.r3`, ...).
    pub fn id(&self) -> String {
        format!("r{}", self.index)
    }

    pub fn embed(&self) -> Option<&Embed> {
        match &self.target {
            Target::Embed(e) => Some(e),
            Target::Collection { .. } => None,
        }
    }
}

#[derive(Debug)]
pub enum Target {
    Collection { collection: String, id: IdMode },
    Embed(Embed),
}

#[derive(Debug)]
pub struct Embed {
    pub parent: usize,
    /// (child column, parent column).
    pub on: Vec<(String, String)>,
    pub kind: EmbedKind,
    /// Dotted path split into segments; empty for `merge`.
    pub as_path: String,
    pub prefix: String,
    pub sort: Vec<(String, Order)>,
    pub limit: Option<u32>,
}

#[derive(Debug)]
pub struct FieldPlan {
    pub column: String,
    pub path: Vec<String>,
    pub ty: Option<Type>,
}

#[derive(Debug)]
pub struct Condition {
    pub column: String,
    pub op: CondOp,
    pub value: Value,
}

impl Plan {
    /// The index of a source table, `"<schema>.<table>"`.
    pub fn table_index(&self, name: &str) -> Option<usize> {
        self.by_table.get(name).copied()
    }

    /// The root (collection) rule above an embedding rule, and the chain of
    /// rules from `rule` up to it (both ends included).
    pub fn chain_to_root(&self, rule: usize) -> Vec<usize> {
        let mut chain = vec![rule];
        let mut at = rule;
        while let Some(e) = self.rules[at].embed() {
            at = e.parent;
            chain.push(at);
        }
        chain
    }

    /// The indexes the rebuilds' joins use, as (state collection, field):
    /// per embedding rule, `fk.<rule>` on its table's state (a parent's
    /// children) and `join.<rule>` on its parent's table's (a child's parents).
    pub fn join_indexes(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for r in &self.rules {
            if let Some(e) = r.embed() {
                out.push((self.state_collection(r.table), format!("fk.{}", r.id())));
                let parent_table = self.rules[e.parent].table;
                out.push((
                    self.state_collection(parent_table),
                    format!("join.{}", r.id()),
                ));
            }
        }
        out
    }

    /// The state collection of a table: `<prefix>v2.<schema>.<table>`.
    pub fn state_collection(&self, table: usize) -> String {
        format!(
            "{}{STATE_FORMAT}{}",
            self.state_prefix, self.tables[table].name
        )
    }
}

pub fn build(text: &str) -> Result<Plan, String> {
    let mapping = config::parse(text)?;
    if mapping.tables.is_empty() {
        return Err("mapping: tables: at least one table is needed".into());
    }
    if mapping.rules.is_empty() {
        return Err("mapping: rules: at least one rule is needed".into());
    }
    if mapping.state_prefix.is_empty() || mapping.state_prefix.starts_with('$') {
        return Err("mapping: state_prefix: must be non-empty and not start with '$'".into());
    }
    let mut tables = Vec::new();
    let mut by_table = HashMap::new();
    for (name, value) in &mapping.tables {
        let t = config::parse_table(name, value)?;
        let place = format!("tables.{name:?}");
        if name.split('.').count() != 2 || name.split('.').any(str::is_empty) {
            return Err(format!(
                "mapping: {place}: a table is named \"<schema>.<table>\""
            ));
        }
        if t.columns.is_empty() {
            return Err(format!("mapping: {place}.columns: no columns"));
        }
        let mut seen = HashSet::new();
        for c in &t.columns {
            if !seen.insert(c) {
                return Err(format!("mapping: {place}.columns: {c:?} is listed twice"));
            }
        }
        by_table.insert(name.clone(), tables.len());
        tables.push(Table {
            name: name.clone(),
            columns: t.columns,
            rules: Vec::new(),
            child_rules: Vec::new(),
        });
    }

    // Names first: embeddings may name rules written after them.
    let mut names: HashMap<String, usize> = HashMap::new();
    for (i, r) in mapping.rules.iter().enumerate() {
        let name = rule_name(r);
        if let Some(prev) = names.insert(name.clone(), i) {
            return Err(format!(
                "mapping: rules[{i}].name: {name:?} is already the name of rules[{prev}]"
            ));
        }
    }

    let mut rules = Vec::new();
    for (i, r) in mapping.rules.iter().enumerate() {
        let place = format!("rules[{i}]");
        let table = *by_table.get(&r.table).ok_or_else(|| {
            format!(
                "mapping: {place}.table: unknown table {:?} (tables: {})",
                r.table,
                mapping
                    .tables
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?;
        let columns = &tables[table].columns;
        let check_column = |field: &str, c: &str| -> Result<(), String> {
            if columns.iter().any(|x| x == c) {
                Ok(())
            } else {
                Err(format!(
                    "mapping: {place}.{field}: unknown column {c:?} of {} (columns: {})",
                    r.table,
                    columns.join(", ")
                ))
            }
        };
        let target = match (&r.collection, &r.embed) {
            (Some(_), Some(_)) | (None, None) => {
                return Err(format!(
                    "mapping: {place}: a rule has exactly one of \"collection\" and \"embed\""
                ))
            }
            (Some(collection), None) => {
                check_name(&format!("{place}.collection"), collection)?;
                Target::Collection {
                    collection: collection.clone(),
                    id: r.id.unwrap_or(IdMode::PrimaryKey),
                }
            }
            (None, Some(e)) => {
                if r.id.is_some() {
                    return Err(format!(
                        "mapping: {place}.id: only collection rules have an _id"
                    ));
                }
                let parent = *names.get(&e.parent).ok_or_else(|| {
                    format!(
                        "mapping: {place}.embed.parent: no rule named {:?}",
                        e.parent
                    )
                })?;
                let parent_table = by_table[&mapping.rules[parent].table];
                let parent_columns = &tables[parent_table].columns;
                if e.on.is_empty() {
                    return Err(format!("mapping: {place}.embed.on: no columns"));
                }
                let mut on = Vec::new();
                for (child, p) in &e.on {
                    check_column(&format!("embed.on.{child:?}"), child)?;
                    let Value::String(p) = p else {
                        return Err(format!(
                            "mapping: {place}.embed.on.{child:?}: expected the parent's column name"
                        ));
                    };
                    if !parent_columns.iter().any(|x| x == p) {
                        return Err(format!(
                            "mapping: {place}.embed.on.{child:?}: unknown column {p:?} of the parent's table {} (columns: {})",
                            mapping.rules[parent].table,
                            parent_columns.join(", ")
                        ));
                    }
                    on.push((child.clone(), p.clone()));
                }
                let as_path = match (e.kind, &e.as_path) {
                    (EmbedKind::Merge, Some(_)) => {
                        return Err(format!(
                            "mapping: {place}.embed.as: a merge embedding has no \"as\" (it merges into the parent; see \"prefix\")"
                        ))
                    }
                    (EmbedKind::Merge, None) => String::new(),
                    (_, None) => {
                        return Err(format!(
                            "mapping: {place}.embed.as: required for kind \"array\" and \"document\""
                        ))
                    }
                    (_, Some(p)) => {
                        split_path(&format!("{place}.embed.as"), p)?;
                        p.clone()
                    }
                };
                if e.prefix.is_some() && e.kind != EmbedKind::Merge {
                    return Err(format!(
                        "mapping: {place}.embed.prefix: only for kind \"merge\""
                    ));
                }
                if let Some(limit) = e.limit {
                    if e.kind != EmbedKind::Array {
                        return Err(format!(
                            "mapping: {place}.embed.limit: only for kind \"array\""
                        ));
                    }
                    if limit == 0 {
                        return Err(format!("mapping: {place}.embed.limit: must be at least 1"));
                    }
                }
                let mut sort = Vec::new();
                for (k, s) in e.sort.iter().enumerate() {
                    check_column(&format!("embed.sort[{k}].column"), &s.column)?;
                    sort.push((s.column.clone(), s.order));
                }
                Target::Embed(Embed {
                    parent,
                    on,
                    kind: e.kind,
                    as_path,
                    prefix: e.prefix.clone().unwrap_or_default(),
                    sort,
                    limit: e.limit,
                })
            }
        };

        if let Some(include) = &r.include {
            for c in include {
                check_column("include", c)?;
            }
        }
        for c in &r.exclude {
            check_column("exclude", c)?;
        }
        for c in r.fields.keys() {
            check_column(&format!("fields.{c:?}"), c)?;
        }
        let mut fields = Vec::new();
        let mut paths: BTreeMap<String, &str> = BTreeMap::new();
        for c in columns {
            let selected =
                r.include.as_ref().is_none_or(|inc| inc.contains(c)) && !r.exclude.contains(c);
            if !selected {
                continue;
            }
            let spec = r.fields.get(c);
            let to = spec.and_then(|f| f.to.as_deref()).unwrap_or(c);
            let mut path = split_path(&format!("{place}.fields.{c:?}.to"), to)?;
            if let Target::Embed(e) = &target {
                if e.kind == EmbedKind::Merge {
                    path[0] = format!("{}{}", e.prefix, path[0]);
                }
            }
            if path == ["_id"] {
                return Err(format!(
                    "mapping: {place}.fields.{c:?}.to: \"_id\" is set by the rule's \"id\""
                ));
            }
            if let Some(other) = paths.insert(path.join("."), c) {
                return Err(format!(
                    "mapping: {place}.fields: columns {other:?} and {c:?} both map to {:?}",
                    path.join(".")
                ));
            }
            fields.push(FieldPlan {
                column: c.clone(),
                path,
                ty: spec.and_then(|f| f.ty),
            });
        }
        // Prefix clashes between paths (`a` and `a.b`) would silently overwrite.
        for p in paths.keys() {
            if let Some((q, _)) = paths.range(format!("{p}.")..).next() {
                if q.starts_with(&format!("{p}.")) {
                    return Err(format!(
                        "mapping: {place}.fields: {p:?} and {q:?} overlap (one is inside the other)"
                    ));
                }
            }
        }

        let mut filter = Vec::new();
        for (k, c) in r.filter.iter().enumerate() {
            check_column(&format!("filter[{k}].column"), &c.column)?;
            let value = match (c.op, &c.value) {
                (CondOp::IsNull | CondOp::IsNotNull, None) => Value::Null,
                (CondOp::IsNull | CondOp::IsNotNull, Some(_)) => {
                    return Err(format!(
                        "mapping: {place}.filter[{k}].value: {:?} takes no value",
                        c.op
                    ))
                }
                (CondOp::In | CondOp::NotIn, Some(v @ Value::Array(_))) => v.clone(),
                (CondOp::In | CondOp::NotIn, _) => {
                    return Err(format!(
                        "mapping: {place}.filter[{k}].value: \"in\"/\"not_in\" take a list"
                    ))
                }
                (_, Some(Value::Null)) | (_, None) => {
                    return Err(format!(
                        "mapping: {place}.filter[{k}].value: required (use is_null / is_not_null for NULL)"
                    ))
                }
                (_, Some(v)) => v.clone(),
            };
            filter.push(Condition {
                column: c.column.clone(),
                op: c.op,
                value,
            });
        }

        rules.push(Rule {
            index: i,
            name: rule_name(r),
            table,
            target,
            fields,
            nulls: r.nulls.unwrap_or(mapping.nulls),
            filter,
            children: Vec::new(),
        });
    }

    // Cycles: follow parents; a chain longer than the number of rules loops.
    for start in 0..rules.len() {
        let mut seen = vec![start];
        let mut at = start;
        while let Some(e) = rules[at].embed() {
            at = e.parent;
            if seen.contains(&at) {
                let names: Vec<_> = seen
                    .iter()
                    .skip_while(|&&r| r != at)
                    .map(|&r| rules[r].name.as_str())
                    .chain([rules[at].name.as_str()])
                    .collect();
                return Err(format!(
                    "mapping: rules[{start}].embed.parent: embedding cycle {}",
                    names.join(" → ")
                ));
            }
            seen.push(at);
        }
    }

    for i in 0..rules.len() {
        tables[rules[i].table].rules.push(i);
        if let Some(parent) = rules[i].embed().map(|e| e.parent) {
            rules[parent].children.push(i);
            let parent_table = rules[parent].table;
            tables[parent_table].child_rules.push(i);
        }
    }

    Ok(Plan {
        database: mapping.database,
        state_prefix: mapping.state_prefix,
        tables,
        rules,
        by_table,
    })
}

fn rule_name(r: &config::Rule) -> String {
    if let Some(n) = &r.name {
        return n.clone();
    }
    if let Some(c) = &r.collection {
        return c.clone();
    }
    let Some(e) = r.embed.as_ref() else {
        // Refused below: a rule has a collection or an embedding.
        return r.table.clone();
    };
    let parent = &e.parent;
    match (&e.as_path, &e.prefix) {
        (Some(a), _) => format!("{parent}.{a}"),
        (None, Some(p)) => format!("{parent}.{p}"),
        (None, None) => format!("{parent}.{}", r.table),
    }
}

fn check_name(place: &str, name: &str) -> Result<(), String> {
    if name.is_empty() || name.starts_with('$') || name.contains('\0') {
        return Err(format!(
            "mapping: {place}: {name:?} is not a valid collection name"
        ));
    }
    Ok(())
}

fn split_path(place: &str, path: &str) -> Result<Vec<String>, String> {
    let parts: Vec<String> = path.split('.').map(str::to_owned).collect();
    if parts.iter().any(|p| p.is_empty() || p.starts_with('$')) {
        return Err(format!(
            "mapping: {place}: {path:?} is not a field path (dot-separated names, none empty or starting with '$')"
        ));
    }
    Ok(parts)
}
