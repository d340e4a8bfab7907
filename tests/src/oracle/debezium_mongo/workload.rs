//! The default transform's workload: seeded random statements on the `fid`
//! schema of `tests/fixtures/default-oracle/schema.sql`.
//!
//! Like the mapper's generator it keeps a model of which keys exist (never
//! of the column values: the expected documents come from PostgreSQL), so
//! that every statement succeeds and the records Debezium writes per topic
//! are known in advance: an insert or an update is one record, a delete two
//! (the delete and its tombstone), a primary-key change three (delete,
//! tombstone, create), a truncate one, a snapshot read one per row.

use std::collections::{BTreeMap, BTreeSet};

use crate::oracle::mapper::timestamp;
use crate::oracle::rng::Rng;

/// The tables, in the order of every per-table array here.
pub const TABLES: [&str; 3] = ["docs", "lines", "events"];
const DOCS: usize = 0;
const LINES: usize = 1;
const EVENTS: usize = 2;

/// A generated workload on [`TABLES`].
pub type Workload = crate::oracle::workload::Workload<3>;

/// Which keys exist and how many records Debezium has been given.
#[derive(Clone, Debug, Default)]
struct Model {
    docs: BTreeSet<i32>,
    lines: BTreeSet<(String, i32)>,
    events: u64,
    records: [u64; 3],
}

impl Model {
    fn rows(&self) -> [u64; 3] {
        [self.docs.len() as u64, self.lines.len() as u64, self.events]
    }
}

struct Gen {
    rng: Rng,
    m: Model,
    /// Keys are drawn from `1..=range`, so they are reused after deletes and moves.
    doc_range: i32,
    line_range: i32,
    kinds: BTreeMap<&'static str, u64>,
}

const REGIONS: &[&str] = &["eu", "us", "ap", "o'sea"];
const WORDS: &[&str] = &[
    "lorem",
    "ipsum",
    "dolor",
    "sit",
    "amet",
    "toast",
    "chunk",
    "külön",
    "naïve",
    "✓",
    "don't",
    "quote\"d",
    "back\\slash",
];
const ACTORS: &[&str] = &["alice", "bob", "system"];
const ACTIONS: &[&str] = &["login", "logout", "export", "import"];

/// A SQL string literal (quotes doubled), or NULL.
fn text(v: Option<&str>) -> String {
    match v {
        None => "NULL".into(),
        Some(s) => format!("'{}'", s.replace('\'', "''")),
    }
}

fn or_null(v: Option<String>) -> String {
    v.unwrap_or_else(|| "NULL".into())
}

impl Gen {
    fn new(seed: u64, ops: usize) -> Gen {
        Gen {
            rng: Rng::new(seed),
            m: Model::default(),
            doc_range: (ops as i32 / 12).max(40),
            line_range: (ops as i32 / 30).max(20),
            kinds: BTreeMap::new(),
        }
    }

    fn count(&mut self, kind: &'static str) {
        *self.kinds.entry(kind).or_default() += 1;
    }

    /// `percent` of the time `None`, else `f()`.
    fn maybe<T>(&mut self, percent: u64, f: impl FnOnce(&mut Gen) -> T) -> Option<T> {
        if self.rng.chance(percent) {
            None
        } else {
            Some(f(self))
        }
    }

    fn words(&mut self, min_len: usize, max_len: usize) -> String {
        let target = self.rng.range(min_len as i64, max_len as i64) as usize;
        let mut s = String::with_capacity(target + 16);
        while s.len() < target {
            if !s.is_empty() {
                s.push(' ');
            }
            s.push_str(*self.rng.pick(WORDS));
        }
        s
    }

    /// 3–6 KB: stored out of line (`STORAGE EXTERNAL`).
    fn big_text(&mut self) -> String {
        let s = self.words(3000, 6000);
        text(Some(&s))
    }

    fn decimal(&mut self, max_scale: i64) -> String {
        let scale = self.rng.range(0, max_scale) as usize;
        let unscaled = self.rng.range(-1_000_000_000_000, 1_000_000_000_000);
        let digits = unscaled.unsigned_abs().to_string();
        let sign = if unscaled < 0 { "-" } else { "" };
        if scale == 0 {
            return format!("{sign}{digits}");
        }
        let digits = format!("{digits:0>width$}", width = scale + 1);
        let (int, frac) = digits.split_at(digits.len() - scale);
        format!("{sign}{int}.{frac}")
    }

    fn micros(&mut self) -> i64 {
        // 1930 .. 2100, sub-millisecond digits most of the time.
        let us = self
            .rng
            .range(-1_262_304_000_000_000, 4_102_444_800_000_000);
        if self.rng.chance(20) {
            us - us.rem_euclid(1000)
        } else {
            us
        }
    }

    fn timestamptz(&mut self) -> String {
        timestamp(self.micros())
    }

    fn timestamp_local(&mut self) -> String {
        // `timestamp(us)` is `'… +00'`: without the offset, a `timestamp` literal.
        let t = timestamp(self.micros());
        format!("{}'", t.trim_end_matches('\'').trim_end_matches("+00"))
    }

    fn date(&mut self) -> String {
        let days = self.rng.range(-25_000, 47_000);
        let t = timestamp(days * 86_400_000_000);
        format!("'{}'", &t[1..11])
    }

    fn time(&mut self) -> String {
        let us = self.rng.range(0, 86_400_000_000 - 1);
        let t = timestamp(us);
        format!("'{}'", &t[12..27])
    }

    fn json(&mut self) -> String {
        // No numbers: their BSON type is the value's (JSON is untyped), and
        // the expected documents print jsonb as plain JSON.
        let a = self.words(1, 12);
        let b = self.rng.chance(50);
        let v = match self.rng.below(3) {
            0 => format!(
                r#"{{"a": "{a}", "b": {b}, "c": null, "d": ["x", {{"y": "z"}}]}}"#,
                a = a.replace('\\', "").replace('"', "")
            ),
            1 => format!(
                r#"["{}", true, null]"#,
                a.replace('\\', "").replace('"', "")
            ),
            _ => r#"{}"#.into(),
        };
        text(Some(&v))
    }

    fn tags(&mut self) -> String {
        match self.rng.below(4) {
            0 => "'{}'::text[]".into(),
            _ => {
                let n = self.rng.range(1, 4);
                let items: Vec<String> = (0..n)
                    .map(|_| {
                        if self.rng.chance(15) {
                            "NULL".into()
                        } else {
                            let w = self.words(1, 10);
                            text(Some(&w))
                        }
                    })
                    .collect();
                format!("ARRAY[{}]::text[]", items.join(", "))
            }
        }
    }

    fn bytes(&mut self) -> String {
        let n = self.rng.range(0, 40);
        let hex: String = (0..n)
            .map(|_| format!("{:02x}", self.rng.below(256)))
            .collect();
        format!("'\\x{hex}'::bytea")
    }

    fn uuid(&mut self) -> String {
        let a = self.rng.next_u64();
        let b = self.rng.next_u64();
        let h = format!("{a:016x}{b:016x}");
        format!(
            "'{}-{}-{}-{}-{}'",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        )
    }

    fn big(&mut self) -> String {
        // Small and huge values in one column: one BSON type for both.
        if self.rng.chance(50) {
            self.rng.range(-1000, 1000).to_string()
        } else {
            (self.rng.next_u64() as i64).to_string()
        }
    }

    /// The non-key, non-TOASTed columns of `docs` with fresh values.
    fn doc_columns(&mut self) -> Vec<(&'static str, String)> {
        let title = self.maybe(10, |g| g.words(3, 30));
        let amount = self.maybe(10, |g| {
            let cents = g.rng.range(-99_999_999_999, 99_999_999_999);
            let sign = if cents < 0 { "-" } else { "" };
            format!("{sign}{}.{:02}", cents.abs() / 100, cents.abs() % 100)
        });
        let free = self.maybe(10, |g| g.decimal(8));
        let ratio = self.maybe(10, |g| {
            (g.rng.range(-8_000_000, 8_000_000) as f64 / 8.0).to_string()
        });
        let big = self.maybe(10, |g| g.big());
        let flag = self.maybe(10, |g| g.rng.chance(50).to_string());
        let day = self.maybe(10, |g| g.date());
        let updated_at = self.maybe(10, |g| g.timestamptz());
        let local_at = self.maybe(10, |g| g.timestamp_local());
        let t = self.maybe(10, |g| g.time());
        let meta = self.maybe(10, |g| g.json());
        let tags = self.maybe(10, |g| g.tags());
        let blob = self.maybe(10, |g| g.bytes());
        let uid = self.maybe(10, |g| g.uuid());
        vec![
            ("title", text(title.as_deref())),
            ("amount", or_null(amount)),
            ("free", or_null(free)),
            ("ratio", or_null(ratio)),
            ("big", or_null(big)),
            ("flag", or_null(flag)),
            ("day", or_null(day)),
            ("updated_at", or_null(updated_at)),
            ("local_at", or_null(local_at)),
            ("t", or_null(t)),
            ("meta", or_null(meta)),
            ("tags", or_null(tags)),
            ("blob", or_null(blob)),
            ("uid", or_null(uid)),
        ]
    }

    fn body(&mut self) -> String {
        if self.rng.chance(10) {
            "NULL".into()
        } else {
            self.big_text()
        }
    }

    fn set_clause(cols: &[(&'static str, String)]) -> String {
        cols.iter()
            .map(|(c, v)| format!("{c} = {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn pick_doc(&mut self) -> Option<i32> {
        let n = self.m.docs.len();
        if n == 0 {
            return None;
        }
        self.m
            .docs
            .iter()
            .nth(self.rng.below(n as u64) as usize)
            .copied()
    }

    fn free_doc(&mut self) -> Option<i32> {
        for _ in 0..20 {
            let id = self.rng.range(1, self.doc_range as i64) as i32;
            if !self.m.docs.contains(&id) {
                return Some(id);
            }
        }
        None
    }

    fn pick_line(&mut self) -> Option<(String, i32)> {
        let n = self.m.lines.len();
        if n == 0 {
            return None;
        }
        self.m
            .lines
            .iter()
            .nth(self.rng.below(n as u64) as usize)
            .cloned()
    }

    fn free_line(&mut self) -> Option<(String, i32)> {
        for _ in 0..20 {
            let k = (
                (*self.rng.pick(REGIONS)).to_owned(),
                self.rng.range(1, self.line_range as i64) as i32,
            );
            if !self.m.lines.contains(&k) {
                return Some(k);
            }
        }
        None
    }

    fn line_where(k: &(String, i32)) -> String {
        format!("region = {} AND n = {}", text(Some(&k.0)), k.1)
    }

    fn line_columns(&mut self) -> Vec<(&'static str, String)> {
        let qty = self.maybe(10, |g| g.rng.range(-32768, 32767).to_string());
        let price = self.maybe(10, |g| {
            (g.rng.range(-400_000, 400_000) as f64 / 4.0).to_string()
        });
        let at = self.maybe(10, |g| {
            let us = g.micros();
            let t = timestamp(us - us.rem_euclid(1000));
            format!("{}'", t.trim_end_matches('\'').trim_end_matches("+00"))
        });
        vec![
            ("qty", or_null(qty)),
            ("price", or_null(price)),
            ("at", or_null(at)),
        ]
    }

    fn event_row(&mut self) -> String {
        let actor = *self.rng.pick(ACTORS);
        let action = *self.rng.pick(ACTIONS);
        let at = self.timestamptz();
        let n = self.maybe(20, |g| g.rng.range(0, 5).to_string());
        format!(
            "{}, {}, {at}, {}",
            text(Some(actor)),
            text(Some(action)),
            or_null(n)
        )
    }

    /// A row of `events` by position in a fixed order: updates and deletes
    /// touch exactly one row, duplicates included.
    fn event_ctid(&mut self) -> String {
        let k = self.rng.below(self.m.events);
        format!(
            "(SELECT ctid FROM fid.events ORDER BY actor, action, at, n NULLS FIRST OFFSET {k} LIMIT 1)"
        )
    }

    /// One operation: its statement, with the model updated.
    fn op(&mut self) -> String {
        let r = self.rng.below(100);
        match r {
            0..=11 => match self.free_doc() {
                Some(id) => {
                    self.count("insert doc");
                    self.m.docs.insert(id);
                    self.m.records[DOCS] += 1;
                    let cols = self.doc_columns();
                    let body = self.body();
                    let (names, values): (Vec<&str>, Vec<String>) = cols.into_iter().unzip();
                    format!(
                        "INSERT INTO fid.docs (id, body, {}) VALUES ({id}, {body}, {});",
                        names.join(", "),
                        values.join(", ")
                    )
                }
                None => self.op_update_doc(),
            },
            12..=31 => self.op_update_doc(),
            32..=36 => match self.pick_doc() {
                Some(id) => {
                    self.count("update doc body");
                    self.m.records[DOCS] += 1;
                    let body = self.body();
                    format!("UPDATE fid.docs SET body = {body} WHERE id = {id};")
                }
                None => "SELECT 1;".into(),
            },
            37..=44 => match (self.pick_doc(), self.free_doc()) {
                (Some(old), Some(new)) => {
                    self.m.docs.remove(&old);
                    self.m.docs.insert(new);
                    self.m.records[DOCS] += 3;
                    let mut set = format!("id = {new}");
                    if self.rng.chance(25) {
                        self.count("doc key + body");
                        set.push_str(&format!(", body = {}", self.body()));
                    } else if self.rng.chance(50) {
                        self.count("doc key + title");
                        let title = self.words(3, 20);
                        set.push_str(&format!(", title = {}", text(Some(&title))));
                    } else {
                        self.count("doc key");
                    }
                    format!("UPDATE fid.docs SET {set} WHERE id = {old};")
                }
                _ => self.op_update_doc(),
            },
            45..=50 => match self.pick_doc() {
                Some(id) => {
                    self.count("delete doc");
                    self.m.docs.remove(&id);
                    self.m.records[DOCS] += 2;
                    format!("DELETE FROM fid.docs WHERE id = {id};")
                }
                None => "SELECT 1;".into(),
            },
            51..=59 => match self.free_line() {
                Some(k) => {
                    self.count("insert line");
                    self.m.lines.insert(k.clone());
                    self.m.records[LINES] += 1;
                    let cols = self.line_columns();
                    let notes = self.body();
                    let (names, values): (Vec<&str>, Vec<String>) = cols.into_iter().unzip();
                    format!(
                        "INSERT INTO fid.lines (region, n, notes, {}) VALUES ({}, {}, {notes}, {});",
                        names.join(", "),
                        text(Some(&k.0)),
                        k.1,
                        values.join(", ")
                    )
                }
                None => "SELECT 1;".into(),
            },
            60..=69 => match self.pick_line() {
                Some(k) => {
                    self.m.records[LINES] += 1;
                    if self.rng.chance(25) {
                        self.count("update line notes");
                        let notes = self.body();
                        format!(
                            "UPDATE fid.lines SET notes = {notes} WHERE {};",
                            Self::line_where(&k)
                        )
                    } else {
                        self.count("update line");
                        let cols = self.line_columns();
                        format!(
                            "UPDATE fid.lines SET {} WHERE {};",
                            Self::set_clause(&cols),
                            Self::line_where(&k)
                        )
                    }
                }
                None => "SELECT 1;".into(),
            },
            70..=74 => match (self.pick_line(), self.free_line()) {
                (Some(old), Some(new)) => {
                    self.count("line key");
                    self.m.lines.remove(&old);
                    self.m.lines.insert(new.clone());
                    self.m.records[LINES] += 3;
                    format!(
                        "UPDATE fid.lines SET region = {}, n = {} WHERE {};",
                        text(Some(&new.0)),
                        new.1,
                        Self::line_where(&old)
                    )
                }
                _ => "SELECT 1;".into(),
            },
            75..=78 => match self.pick_line() {
                Some(k) => {
                    self.count("delete line");
                    self.m.lines.remove(&k);
                    self.m.records[LINES] += 2;
                    format!("DELETE FROM fid.lines WHERE {};", Self::line_where(&k))
                }
                None => "SELECT 1;".into(),
            },
            79..=88 => {
                self.count("insert event");
                self.m.events += 1;
                self.m.records[EVENTS] += 1;
                format!(
                    "INSERT INTO fid.events (actor, action, at, n) VALUES ({});",
                    self.event_row()
                )
            }
            89..=93 if self.m.events > 0 => {
                self.count("update event");
                self.m.records[EVENTS] += 1;
                let action = *self.rng.pick(ACTIONS);
                let ctid = self.event_ctid();
                format!(
                    "UPDATE fid.events SET action = {}, n = {} WHERE ctid = {ctid};",
                    text(Some(action)),
                    self.rng.range(0, 5)
                )
            }
            94..=98 if self.m.events > 0 => {
                self.count("delete event");
                let ctid = self.event_ctid();
                self.m.events -= 1;
                self.m.records[EVENTS] += 2;
                format!("DELETE FROM fid.events WHERE ctid = {ctid};")
            }
            // Rare: a truncate empties the table.
            99 if self.rng.chance(30) => {
                self.count("truncate events");
                self.m.events = 0;
                self.m.records[EVENTS] += 1;
                "TRUNCATE fid.events;".into()
            }
            _ => self.op_update_doc(),
        }
    }

    /// An update of some of `docs`' columns, `body` left alone: the
    /// placeholder case.
    fn op_update_doc(&mut self) -> String {
        let Some(id) = self.pick_doc() else {
            return "SELECT 1;".into();
        };
        self.count("update doc");
        self.m.records[DOCS] += 1;
        let mut cols = self.doc_columns();
        let keep = self.rng.range(1, cols.len() as i64) as usize;
        let start = self.rng.below((cols.len() - keep + 1) as u64) as usize;
        cols = cols[start..start + keep].to_vec();
        format!(
            "UPDATE fid.docs SET {} WHERE id = {id};",
            Self::set_clause(&cols)
        )
    }

    /// `n` operations, some grouped in transactions (a tenth of those rolled back).
    fn statements(&mut self, n: usize, tx: &mut (u64, u64)) -> Vec<String> {
        let mut out = Vec::with_capacity(n);
        let mut done = 0;
        while done < n {
            if self.rng.chance(10) {
                let k = self.rng.range(2, 4) as usize;
                let rollback = self.rng.chance(10);
                let saved = (self.m.clone(), self.kinds.clone());
                let mut body = vec!["BEGIN;".to_owned()];
                for _ in 0..k {
                    body.push(self.op());
                }
                if rollback {
                    body.push("ROLLBACK;".into());
                    // Nothing of it happened; the kinds still count what was tried.
                    self.m = saved.0;
                    tx.1 += 1;
                } else {
                    body.push("COMMIT;".into());
                    tx.0 += 1;
                }
                out.push(body.join("\n"));
                done += k;
            } else {
                out.push(self.op());
                done += 1;
            }
        }
        out
    }
}

/// The workload of `seed`: `ops` operations, the first tenth before the connector exists.
pub fn generate(seed: u64, ops: usize) -> Workload {
    let mut g = Gen::new(seed, ops);
    let mut tx = (0, 0);
    let before = g.statements(ops / 10, &mut tx);
    let snapshot_records = g.m.rows();
    g.m.records = snapshot_records;
    let during = g.statements(ops - ops / 10, &mut tx);
    Workload {
        seed,
        tables: TABLES,
        before,
        during,
        records: g.m.records,
        snapshot_records,
        rows: g.m.rows(),
        kinds: g.kinds,
        transactions: tx,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_workload() {
        let a = generate(42, 500);
        let b = generate(42, 500);
        assert_eq!(a.during, b.during);
        assert_eq!(a.records, b.records);
        assert_ne!(generate(43, 500).during, a.during);
    }

    #[test]
    fn the_workload_has_every_kind_of_operation() {
        let w = generate(7, 3000);
        for kind in [
            "insert doc",
            "update doc",
            "update doc body",
            "doc key",
            "doc key + body",
            "doc key + title",
            "delete doc",
            "insert line",
            "update line",
            "update line notes",
            "line key",
            "delete line",
            "insert event",
            "update event",
            "delete event",
            "truncate events",
        ] {
            assert!(w.kinds.get(kind).copied().unwrap_or(0) > 0, "{kind}: {w:?}");
        }
        let all = w.during.join("\n");
        for needle in ["NULL", "o''sea", "'{}'::text[]", "::bytea", "ROLLBACK;"] {
            assert!(all.contains(needle), "{needle}");
        }
    }

    #[test]
    fn literals() {
        let mut g = Gen::new(1, 100);
        let d = g.date();
        assert_eq!(d.len(), 12, "{d}");
        let t = g.time();
        assert_eq!(t.len(), 17, "{t}");
        let l = g.timestamp_local();
        assert!(!l.contains("+00") && l.ends_with('\''), "{l}");
        assert_eq!(g.decimal(0).contains('.'), false);
    }
}
