//! The relational mapper's workload: seeded random statements on the `shop`
//! schema of `tests/fixtures/relational/schema.sql`.
//!
//! The workload generator keeps a model of which keys exist (never of the
//! column values: the expected documents come from PostgreSQL alone), so that
//! every statement succeeds and the number of records Debezium writes per
//! topic is known in advance: an insert is one record, an update one per row,
//! a delete two (the delete and its tombstone), a primary-key change three
//! (delete, tombstone, create), a snapshot read one per row.

use std::collections::{BTreeMap, BTreeSet};

use crate::oracle::rng::Rng;

/// The tables, in the order of every per-table array here.
pub const TABLES: [&str; 4] = ["customers", "addresses", "orders", "order_items"];
const CUSTOMERS: usize = 0;
const ADDRESSES: usize = 1;
const ORDERS: usize = 2;
const ITEMS: usize = 3;

/// A generated workload on [`TABLES`].
pub type Workload = crate::oracle::workload::Workload<4>;

/// Which keys exist, which existed, and how many records Debezium has been given.
#[derive(Clone, Debug, Default)]
struct Model {
    customers: BTreeSet<i32>,
    /// id -> customer_id
    addresses: BTreeMap<i32, Option<i32>>,
    /// id -> customer_id
    orders: BTreeMap<i32, Option<i32>>,
    /// (order_id, line_no)
    items: BTreeSet<(i32, i32)>,
    gone_customers: BTreeSet<i32>,
    gone_addresses: BTreeSet<i32>,
    gone_orders: BTreeSet<i32>,
    gone_items: BTreeSet<(i32, i32)>,
    events: [u64; 4],
}

impl Model {
    fn inserted(&mut self, t: usize) {
        self.events[t] += 1;
    }
    fn updated(&mut self, t: usize, rows: usize) {
        self.events[t] += rows as u64;
    }
    fn deleted(&mut self, t: usize, rows: usize) {
        self.events[t] += 2 * rows as u64;
    }
    fn key_changed(&mut self, t: usize, rows: usize) {
        self.events[t] += 3 * rows as u64;
    }
    fn rows(&self) -> [u64; 4] {
        [
            self.customers.len() as u64,
            self.addresses.len() as u64,
            self.orders.len() as u64,
            self.items.len() as u64,
        ]
    }
}

/// A column value generator.
type ValueGen = fn(&mut Gen) -> String;

/// The generator: the model, the random source and the key ranges.
struct Gen {
    rng: Rng,
    m: Model,
    /// Key ranges: ids are drawn from `1..=range`, so keys are reused.
    customers: i32,
    addresses: i32,
    orders: i32,
    lines: i32,
    /// The first ids of a range get most children (long arrays, `limit` at work).
    hot_customers: i32,
    hot_orders: i32,
    kinds: BTreeMap<&'static str, u64>,
}

/// A SQL literal: a quoted string (ASCII; quotes doubled) or NULL.
fn text(v: Option<&str>) -> String {
    match v {
        None => "NULL".into(),
        Some(s) => format!("'{}'", s.replace('\'', "''")),
    }
}

fn int(v: Option<i32>) -> String {
    v.map_or("NULL".into(), |v| v.to_string())
}

/// `cents` as a decimal literal with two digits after the point.
fn money(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    format!("{sign}{}.{:02}", cents.abs() / 100, cents.abs() % 100)
}

/// A `timestamptz` literal of `us` microseconds since the epoch, in UTC.
pub fn timestamp(us: i64) -> String {
    let secs = us.div_euclid(1_000_000);
    let frac = us.rem_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "'{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{frac:06}+00'",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

const NAMES: &[&str] = &[
    "Ann",
    "bob",
    "Cid",
    "Dee",
    "Eve",
    "Zoe",
    "o'Neil",
    "Sam \"S\"",
    "back\\slash",
    "a b",
];
const TIERS: &[Option<&str>] = &[Some("gold"), Some("silver"), Some("bronze"), None];
const KINDS: &[Option<&str>] = &[
    Some("home"),
    Some("work"),
    Some("billing"),
    Some("billing"),
    None,
];
/// Byte-wise order matters: upper case before `_` before lower case, so
/// Debezium's `__debezium_unavailable_value` would sort apart from a long
/// (TOASTed) city that starts with `long` ("aarau", "bern" sit between).
const CITIES: &[&str] = &[
    "Paris", "paris", "Bern", "bern", "Zug", "Aachen", "aarau", "ANTWERP", "New York", "Zurich",
    "", "Oslo", "oslo", "Z",
];
const STATUSES: &[Option<&str>] = &[
    Some("new"),
    Some("paid"),
    Some("shipped"),
    Some("cancelled"),
    None,
];
const NOTES: &[&str] = &[
    "leave at the door",
    "it's fragile",
    "\"gift\"",
    "back\\slash",
    "",
    "{\"json\": [1]}",
    "$notAnOperator",
];

impl Gen {
    fn new(seed: u64, ops: usize) -> Gen {
        let customers = (ops / 20).max(8) as i32;
        let addresses = (ops / 10).max(16) as i32;
        let orders = (ops / 10).max(16) as i32;
        Gen {
            rng: Rng::new(seed),
            m: Model::default(),
            customers,
            addresses,
            orders,
            lines: 12,
            hot_customers: (customers / 6).max(2),
            hot_orders: (orders / 6).max(2),
            kinds: BTreeMap::new(),
        }
    }

    // ---------------------------------------------------------- values

    /// Text too long to stay inline: PostgreSQL TOASTs it, and an update
    /// that does not change it reaches Debezium without it (default replica
    /// identity), as `__debezium_unavailable_value`.
    fn long_text(&mut self) -> String {
        const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ";
        let n = self.rng.range(3000, 6000) as usize;
        let s: String = (0..n).map(|_| *self.rng.pick(CHARS) as char).collect();
        text(Some(&format!("long {s}")))
    }
    fn name(&mut self) -> String {
        if self.rng.chance(3) {
            return self.long_text();
        }
        let n = *self.rng.pick(NAMES);
        text(Some(&format!("{n} {}", self.rng.below(1000))))
    }
    fn email(&mut self) -> String {
        if self.rng.chance(20) {
            return text(None);
        }
        text(Some(&format!("u{}@example.com", self.rng.below(500))))
    }
    fn tier(&mut self) -> String {
        text(*self.rng.pick(TIERS))
    }
    fn balance(&mut self) -> String {
        if self.rng.chance(20) {
            return "NULL".into();
        }
        match self.rng.below(4) {
            0 => money(0),
            1 => money(self.rng.range(-500_000, -1)),
            _ => money(self.rng.range(1, 9_999_999_999)),
        }
    }
    fn active(&mut self) -> String {
        (*self.rng.pick(&["true", "false", "NULL"])).into()
    }
    /// Any instant of 2020–2025: whole seconds, milliseconds or microseconds.
    fn created_at(&mut self) -> String {
        if self.rng.chance(15) {
            return "NULL".into();
        }
        let start = 1_577_836_800_i64; // 2020-01-01
        let secs = start + self.rng.below(6 * 365 * 86_400) as i64;
        let frac = match self.rng.below(3) {
            0 => 0,
            1 => self.rng.below(1000) as i64 * 1000,
            _ => self.rng.below(1_000_000) as i64,
        };
        timestamp(secs * 1_000_000 + frac)
    }
    /// Few distinct instants (ties), some apart by less than a millisecond.
    fn placed_at(&mut self) -> String {
        if self.rng.chance(15) {
            return "NULL".into();
        }
        let base = 1_709_251_200_i64 + 3600 * self.rng.below(24) as i64; // 2024-03-01
        let frac = *self
            .rng
            .pick(&[0, 0, 500_000, 123_000, 123_456, 123_457, 999_999]);
        timestamp(base * 1_000_000 + frac)
    }
    fn kind(&mut self) -> String {
        text(*self.rng.pick(KINDS))
    }
    fn city(&mut self) -> String {
        if self.rng.chance(10) {
            return text(None);
        }
        if self.rng.chance(2) {
            return self.long_text();
        }
        text(Some(*self.rng.pick(CITIES)))
    }
    fn zip(&mut self) -> String {
        if self.rng.chance(20) {
            return text(None);
        }
        text(Some(&format!("{:05}", self.rng.below(100_000))))
    }
    fn status(&mut self) -> String {
        text(*self.rng.pick(STATUSES))
    }
    fn total(&mut self) -> String {
        if self.rng.chance(15) {
            return "NULL".into();
        }
        money(self.rng.range(0, 99_999_999))
    }
    fn note(&mut self) -> String {
        if self.rng.chance(40) {
            return text(None);
        }
        if self.rng.chance(10) {
            return self.long_text();
        }
        text(Some(*self.rng.pick(NOTES)))
    }
    fn sku(&mut self) -> String {
        if self.rng.chance(15) {
            return text(None);
        }
        text(Some(&format!("SKU-{}", self.rng.below(50))))
    }
    fn qty(&mut self) -> String {
        if self.rng.chance(15) {
            return "NULL".into();
        }
        self.rng.range(-3, 100).to_string()
    }
    fn price(&mut self) -> String {
        if self.rng.chance(15) {
            return "NULL".into();
        }
        money(self.rng.range(0, 999_999))
    }

    // ---------------------------------------------------------- keys

    fn nth<T: Copy>(&mut self, mut set: impl ExactSizeIterator<Item = T>) -> Option<T> {
        let n = set.len();
        if n == 0 {
            return None;
        }
        let i = self.rng.below(n as u64) as usize;
        set.nth(i)
    }

    fn existing_customer(&mut self) -> Option<i32> {
        let set = self.m.customers.clone();
        self.nth(set.into_iter())
    }
    fn existing_address(&mut self) -> Option<i32> {
        let keys: Vec<i32> = self.m.addresses.keys().copied().collect();
        self.nth(keys.into_iter())
    }
    fn existing_order(&mut self) -> Option<i32> {
        let keys: Vec<i32> = self.m.orders.keys().copied().collect();
        self.nth(keys.into_iter())
    }
    fn existing_item(&mut self) -> Option<(i32, i32)> {
        let set = self.m.items.clone();
        self.nth(set.into_iter())
    }

    /// A customer id for a child: NULL, a hot one, an existing one or any in
    /// range (often a parent that does not exist yet).
    fn customer_ref(&mut self) -> Option<i32> {
        match self.rng.below(100) {
            0..=7 => None,
            8..=42 => Some(self.rng.range(1, self.hot_customers as i64) as i32),
            43..=79 => self
                .existing_customer()
                .or(Some(self.rng.range(1, self.customers as i64) as i32)),
            _ => Some(self.rng.range(1, self.customers as i64) as i32),
        }
    }

    fn order_ref(&mut self) -> i32 {
        match self.rng.below(100) {
            0..=34 => self.rng.range(1, self.hot_orders as i64) as i32,
            35..=79 => self
                .existing_order()
                .unwrap_or_else(|| self.rng.range(1, self.orders as i64) as i32),
            _ => self.rng.range(1, self.orders as i64) as i32,
        }
    }

    /// An unused key in `1..=range` (a few tries), preferring one that existed before.
    fn free(
        &mut self,
        range: i32,
        used: impl Fn(i32) -> bool,
        gone: &BTreeSet<i32>,
    ) -> Option<i32> {
        if !gone.is_empty() && self.rng.chance(25) {
            let gone: Vec<i32> = gone.iter().copied().filter(|k| !used(*k)).collect();
            if let Some(k) = self.nth(gone.into_iter()) {
                return Some(k);
            }
        }
        (0..8)
            .map(|_| self.rng.range(1, range as i64) as i32)
            .find(|k| !used(*k))
    }

    fn free_customer(&mut self) -> Option<i32> {
        let (used, gone) = (self.m.customers.clone(), self.m.gone_customers.clone());
        self.free(self.customers, |k| used.contains(&k), &gone)
    }
    fn free_address(&mut self) -> Option<i32> {
        let (used, gone) = (self.m.addresses.clone(), self.m.gone_addresses.clone());
        self.free(self.addresses, |k| used.contains_key(&k), &gone)
    }
    fn free_order(&mut self) -> Option<i32> {
        let (used, gone) = (self.m.orders.clone(), self.m.gone_orders.clone());
        self.free(self.orders, |k| used.contains_key(&k), &gone)
    }
    fn free_line(&mut self, order: i32) -> Option<i32> {
        (0..8)
            .map(|_| self.rng.range(1, self.lines as i64) as i32)
            .find(|l| !self.m.items.contains(&(order, *l)))
    }

    // ---------------------------------------------------------- operations

    fn insert_customer(&mut self) -> Option<Vec<String>> {
        let id = self.free_customer()?;
        let sql = format!(
            "INSERT INTO shop.customers VALUES ({id}, {}, {}, {}, {}, {}, {});",
            self.name(),
            self.email(),
            self.tier(),
            self.balance(),
            self.active(),
            self.created_at()
        );
        self.m.customers.insert(id);
        self.m.gone_customers.remove(&id);
        self.m.inserted(CUSTOMERS);
        Some(vec![sql])
    }

    fn insert_address(&mut self) -> Option<Vec<String>> {
        let id = self.free_address()?;
        let customer = self.customer_ref();
        let sql = format!(
            "INSERT INTO shop.addresses VALUES ({id}, {}, {}, {}, {});",
            int(customer),
            self.kind(),
            self.city(),
            self.zip()
        );
        self.m.addresses.insert(id, customer);
        self.m.gone_addresses.remove(&id);
        self.m.inserted(ADDRESSES);
        Some(vec![sql])
    }

    fn insert_order(&mut self) -> Option<Vec<String>> {
        let id = self.free_order()?;
        let customer = self.customer_ref();
        let sql = format!(
            "INSERT INTO shop.orders VALUES ({id}, {}, {}, {}, {}, {});",
            int(customer),
            self.status(),
            self.total(),
            self.placed_at(),
            self.note()
        );
        self.m.orders.insert(id, customer);
        self.m.gone_orders.remove(&id);
        self.m.inserted(ORDERS);
        Some(vec![sql])
    }

    fn insert_item(&mut self) -> Option<Vec<String>> {
        let key = if !self.m.gone_items.is_empty() && self.rng.chance(15) {
            let gone: Vec<(i32, i32)> = self.m.gone_items.iter().copied().collect();
            self.nth(gone.into_iter())?
        } else {
            let order = self.order_ref();
            (order, self.free_line(order)?)
        };
        if self.m.items.contains(&key) {
            return None;
        }
        let sql = format!(
            "INSERT INTO shop.order_items VALUES ({}, {}, {}, {}, {});",
            key.0,
            key.1,
            self.sku(),
            self.qty(),
            self.price()
        );
        self.m.items.insert(key);
        self.m.gone_items.remove(&key);
        self.m.inserted(ITEMS);
        Some(vec![sql])
    }

    /// `SET a = …, b = …` from 1–3 of `columns` (name, value generator).
    fn sets(&mut self, columns: &[(&str, ValueGen)]) -> Vec<String> {
        let n = self.rng.range(1, 3.min(columns.len() as i64)) as usize;
        let mut chosen: Vec<usize> = Vec::new();
        while chosen.len() < n {
            let i = self.rng.below(columns.len() as u64) as usize;
            if !chosen.contains(&i) {
                chosen.push(i);
            }
        }
        chosen
            .into_iter()
            .map(|i| format!("{} = {}", columns[i].0, (columns[i].1)(self)))
            .collect()
    }

    fn update_customer(&mut self) -> Option<Vec<String>> {
        let id = self.existing_customer()?;
        let sets = self.sets(&[
            ("name", Gen::name),
            ("email", Gen::email),
            ("tier", Gen::tier),
            ("balance", Gen::balance),
            ("active", Gen::active),
            ("created_at", Gen::created_at),
        ]);
        self.m.updated(CUSTOMERS, 1);
        Some(vec![format!(
            "UPDATE shop.customers SET {} WHERE id = {id};",
            sets.join(", ")
        )])
    }

    fn update_address(&mut self) -> Option<Vec<String>> {
        let id = self.existing_address()?;
        let mut sets = self.sets(&[("kind", Gen::kind), ("city", Gen::city), ("zip", Gen::zip)]);
        if self.rng.chance(30) {
            let c = self.customer_ref();
            sets.push(format!("customer_id = {}", int(c)));
            self.m.addresses.insert(id, c);
            *self.kinds.entry("move address").or_default() += 1;
        }
        self.m.updated(ADDRESSES, 1);
        Some(vec![format!(
            "UPDATE shop.addresses SET {} WHERE id = {id};",
            sets.join(", ")
        )])
    }

    fn update_order(&mut self) -> Option<Vec<String>> {
        let id = self.existing_order()?;
        let mut sets = self.sets(&[
            ("status", Gen::status),
            ("total", Gen::total),
            ("placed_at", Gen::placed_at),
            ("note", Gen::note),
        ]);
        if self.rng.chance(25) {
            let c = self.customer_ref();
            sets.push(format!("customer_id = {}", int(c)));
            self.m.orders.insert(id, c);
            *self.kinds.entry("move order").or_default() += 1;
        }
        self.m.updated(ORDERS, 1);
        Some(vec![format!(
            "UPDATE shop.orders SET {} WHERE id = {id};",
            sets.join(", ")
        )])
    }

    fn update_item(&mut self) -> Option<Vec<String>> {
        let (o, l) = self.existing_item()?;
        let sets = self.sets(&[("sku", Gen::sku), ("qty", Gen::qty), ("price", Gen::price)]);
        self.m.updated(ITEMS, 1);
        Some(vec![format!(
            "UPDATE shop.order_items SET {} WHERE order_id = {o} AND line_no = {l};",
            sets.join(", ")
        )])
    }

    /// Moves an item to another order and/or line: a primary-key change.
    fn move_item(&mut self) -> Option<Vec<String>> {
        let (o, l) = self.existing_item()?;
        let order = if self.rng.chance(70) {
            self.order_ref()
        } else {
            o
        };
        let line = self.free_line(order)?;
        if (order, line) == (o, l) {
            return None;
        }
        let extra = if self.rng.chance(30) {
            format!(", qty = {}", self.qty())
        } else {
            String::new()
        };
        self.m.items.remove(&(o, l));
        self.m.gone_items.insert((o, l));
        self.m.items.insert((order, line));
        self.m.gone_items.remove(&(order, line));
        self.m.key_changed(ITEMS, 1);
        Some(vec![format!(
            "UPDATE shop.order_items SET order_id = {order}, line_no = {line}{extra} \
             WHERE order_id = {o} AND line_no = {l};"
        )])
    }

    /// customers.id changes; half the time its children follow in the same transaction.
    fn customer_key(&mut self) -> Option<Vec<String>> {
        let old = self.existing_customer()?;
        let new = self.free_customer()?;
        let mut out = vec![format!(
            "UPDATE shop.customers SET id = {new} WHERE id = {old};"
        )];
        self.m.customers.remove(&old);
        self.m.gone_customers.insert(old);
        self.m.customers.insert(new);
        self.m.gone_customers.remove(&new);
        self.m.key_changed(CUSTOMERS, 1);
        if self.rng.chance(50) {
            *self
                .kinds
                .entry("customer key (children follow)")
                .or_default() += 1;
            let moved: Vec<i32> = self
                .m
                .addresses
                .iter()
                .filter(|(_, c)| **c == Some(old))
                .map(|(a, _)| *a)
                .collect();
            for a in &moved {
                self.m.addresses.insert(*a, Some(new));
            }
            self.m.updated(ADDRESSES, moved.len());
            out.push(format!(
                "UPDATE shop.addresses SET customer_id = {new} WHERE customer_id = {old};"
            ));
            let moved: Vec<i32> = self
                .m
                .orders
                .iter()
                .filter(|(_, c)| **c == Some(old))
                .map(|(o, _)| *o)
                .collect();
            for o in &moved {
                self.m.orders.insert(*o, Some(new));
            }
            self.m.updated(ORDERS, moved.len());
            out.push(format!(
                "UPDATE shop.orders SET customer_id = {new} WHERE customer_id = {old};"
            ));
        }
        Some(out)
    }

    fn address_key(&mut self) -> Option<Vec<String>> {
        let old = self.existing_address()?;
        let new = self.free_address()?;
        let c = self.m.addresses.remove(&old).unwrap();
        self.m.gone_addresses.insert(old);
        self.m.addresses.insert(new, c);
        self.m.gone_addresses.remove(&new);
        self.m.key_changed(ADDRESSES, 1);
        Some(vec![format!(
            "UPDATE shop.addresses SET id = {new} WHERE id = {old};"
        )])
    }

    /// orders.id changes; half the time its items follow (a key change of each).
    fn order_key(&mut self) -> Option<Vec<String>> {
        let old = self.existing_order()?;
        let new = self.free_order()?;
        let extra = if self.rng.chance(30) {
            format!(", status = {}", self.status())
        } else {
            String::new()
        };
        let mut out = vec![format!(
            "UPDATE shop.orders SET id = {new}{extra} WHERE id = {old};"
        )];
        let c = self.m.orders.remove(&old).unwrap();
        self.m.gone_orders.insert(old);
        self.m.orders.insert(new, c);
        self.m.gone_orders.remove(&new);
        self.m.key_changed(ORDERS, 1);
        let clash = self.m.items.iter().any(|(o, _)| *o == new);
        if !clash && self.rng.chance(50) {
            *self.kinds.entry("order key (items follow)").or_default() += 1;
            let lines: Vec<i32> = self
                .m
                .items
                .iter()
                .filter(|(o, _)| *o == old)
                .map(|(_, l)| *l)
                .collect();
            for l in &lines {
                self.m.items.remove(&(old, *l));
                self.m.gone_items.insert((old, *l));
                self.m.items.insert((new, *l));
                self.m.gone_items.remove(&(new, *l));
            }
            self.m.key_changed(ITEMS, lines.len());
            out.push(format!(
                "UPDATE shop.order_items SET order_id = {new} WHERE order_id = {old};"
            ));
        }
        Some(out)
    }

    /// Deletes a customer (children stay, or go in the same transaction).
    fn delete_customer(&mut self) -> Option<Vec<String>> {
        // Prefer customers with children.
        let with_children: Vec<i32> = self
            .m
            .addresses
            .values()
            .chain(self.m.orders.values())
            .flatten()
            .copied()
            .filter(|c| self.m.customers.contains(c))
            .collect();
        let id = if !with_children.is_empty() && self.rng.chance(70) {
            *self.rng.pick(&with_children)
        } else {
            self.existing_customer()?
        };
        self.m.customers.remove(&id);
        self.m.gone_customers.insert(id);
        self.m.deleted(CUSTOMERS, 1);
        let mut out = vec![format!("DELETE FROM shop.customers WHERE id = {id};")];
        if self.rng.chance(25) {
            *self
                .kinds
                .entry("delete customer with addresses")
                .or_default() += 1;
            let gone: Vec<i32> = self
                .m
                .addresses
                .iter()
                .filter(|(_, c)| **c == Some(id))
                .map(|(a, _)| *a)
                .collect();
            for a in &gone {
                self.m.addresses.remove(a);
                self.m.gone_addresses.insert(*a);
            }
            self.m.deleted(ADDRESSES, gone.len());
            out.push(format!(
                "DELETE FROM shop.addresses WHERE customer_id = {id};"
            ));
        }
        Some(out)
    }

    fn delete_address(&mut self) -> Option<Vec<String>> {
        let id = self.existing_address()?;
        self.m.addresses.remove(&id);
        self.m.gone_addresses.insert(id);
        self.m.deleted(ADDRESSES, 1);
        Some(vec![format!("DELETE FROM shop.addresses WHERE id = {id};")])
    }

    /// Deletes an order, its items often left behind (they wait for a new order with that id).
    fn delete_order(&mut self) -> Option<Vec<String>> {
        let with_items: Vec<i32> = self
            .m
            .items
            .iter()
            .map(|(o, _)| *o)
            .filter(|o| self.m.orders.contains_key(o))
            .collect();
        let id = if !with_items.is_empty() && self.rng.chance(70) {
            *self.rng.pick(&with_items)
        } else {
            self.existing_order()?
        };
        self.m.orders.remove(&id);
        self.m.gone_orders.insert(id);
        self.m.deleted(ORDERS, 1);
        let mut out = vec![format!("DELETE FROM shop.orders WHERE id = {id};")];
        if self.rng.chance(30) {
            *self.kinds.entry("delete order with items").or_default() += 1;
            out.push(self.delete_items_of(id));
        }
        Some(out)
    }

    fn delete_items_of(&mut self, order: i32) -> String {
        let lines: Vec<i32> = self
            .m
            .items
            .iter()
            .filter(|(o, _)| *o == order)
            .map(|(_, l)| *l)
            .collect();
        for l in &lines {
            self.m.items.remove(&(order, *l));
            self.m.gone_items.insert((order, *l));
        }
        self.m.deleted(ITEMS, lines.len());
        format!("DELETE FROM shop.order_items WHERE order_id = {order};")
    }

    fn delete_item(&mut self) -> Option<Vec<String>> {
        let (o, l) = self.existing_item()?;
        self.m.items.remove(&(o, l));
        self.m.gone_items.insert((o, l));
        self.m.deleted(ITEMS, 1);
        Some(vec![format!(
            "DELETE FROM shop.order_items WHERE order_id = {o} AND line_no = {l};"
        )])
    }

    /// One statement changing every order of a customer.
    fn bulk_orders(&mut self) -> Option<Vec<String>> {
        let c = self.existing_customer()?;
        let n = self.m.orders.values().filter(|v| **v == Some(c)).count();
        self.m.updated(ORDERS, n);
        let status = self.status();
        Some(vec![format!(
            "UPDATE shop.orders SET status = {status} WHERE customer_id = {c};"
        )])
    }

    /// One statement changing every item of an order, or deleting them.
    fn bulk_items(&mut self) -> Option<Vec<String>> {
        let (o, _) = self.existing_item()?;
        if self.rng.chance(25) {
            return Some(vec![self.delete_items_of(o)]);
        }
        let n = self.m.items.iter().filter(|(x, _)| *x == o).count();
        self.m.updated(ITEMS, n);
        let price = self.price();
        Some(vec![format!(
            "UPDATE shop.order_items SET price = {price}, qty = coalesce(qty, 0) + 1 WHERE order_id = {o};"
        )])
    }

    /// One operation (its statements), or None when it does not apply now.
    fn op(&mut self) -> (&'static str, Option<Vec<String>>) {
        type Op = fn(&mut Gen) -> Option<Vec<String>>;
        const OPS: &[(&str, u64, Op)] = &[
            ("insert customer", 8, Gen::insert_customer),
            ("insert address", 9, Gen::insert_address),
            ("insert order", 9, Gen::insert_order),
            ("insert item", 12, Gen::insert_item),
            ("update customer", 8, Gen::update_customer),
            ("update address", 8, Gen::update_address),
            ("update order", 9, Gen::update_order),
            ("update item", 8, Gen::update_item),
            ("move item (key)", 3, Gen::move_item),
            ("customer key", 2, Gen::customer_key),
            ("address key", 2, Gen::address_key),
            ("order key", 2, Gen::order_key),
            ("delete customer", 3, Gen::delete_customer),
            ("delete address", 3, Gen::delete_address),
            ("delete order", 3, Gen::delete_order),
            ("delete item", 4, Gen::delete_item),
            ("bulk orders", 2, Gen::bulk_orders),
            ("bulk items", 2, Gen::bulk_items),
        ];
        let total: u64 = OPS.iter().map(|o| o.1).sum();
        let mut x = self.rng.below(total);
        for (name, w, f) in OPS {
            if x < *w {
                return (name, f(self));
            }
            x -= w;
        }
        unreachable!()
    }

    /// `n` operations; some grouped in transactions, a few of them rolled back.
    fn statements(&mut self, n: usize, tx: &mut (u64, u64)) -> Vec<String> {
        let mut out = Vec::new();
        let mut done = 0;
        while done < n {
            if self.rng.chance(15) {
                let k = self.rng.range(2, 5) as usize;
                let saved = self.m.clone();
                out.push("BEGIN;".to_owned());
                for _ in 0..k {
                    out.extend(self.one());
                }
                done += k;
                if self.rng.chance(10) {
                    self.m = saved;
                    out.push("ROLLBACK;".to_owned());
                    tx.1 += 1;
                } else {
                    out.push("COMMIT;".to_owned());
                    tx.0 += 1;
                }
            } else {
                let stmts = self.one();
                if stmts.len() > 1 {
                    out.push("BEGIN;".to_owned());
                    out.extend(stmts);
                    out.push("COMMIT;".to_owned());
                    tx.0 += 1;
                } else {
                    out.extend(stmts);
                }
                done += 1;
            }
        }
        out
    }

    /// One operation that applies now (inserts always do while keys are free).
    fn one(&mut self) -> Vec<String> {
        for _ in 0..50 {
            let (name, stmts) = self.op();
            if let Some(s) = stmts {
                *self.kinds.entry(name).or_default() += 1;
                return s;
            }
        }
        panic!("no operation applies: every key range is full and nothing exists?");
    }
}

/// The workload of `seed`: `ops` operations, the first tenth before the connector exists.
pub fn generate(seed: u64, ops: usize) -> Workload {
    let mut g = Gen::new(seed, ops);
    let mut tx = (0, 0);
    let before = g.statements(ops / 10, &mut tx);
    let snapshot_records = g.m.rows();
    g.m.events = snapshot_records;
    let during = g.statements(ops - ops / 10, &mut tx);
    Workload {
        seed,
        tables: TABLES,
        before,
        during,
        records: g.m.events,
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
        assert_eq!(a.before, b.before);
        assert_eq!(a.during, b.during);
        assert_eq!(a.records, b.records);
        assert_ne!(generate(43, 500).during, a.during);
    }

    #[test]
    fn the_workload_has_every_kind_of_operation() {
        let w = generate(7, 3000);
        for kind in [
            "insert customer",
            "insert item",
            "update address",
            "move item (key)",
            "customer key",
            "customer key (children follow)",
            "address key",
            "order key",
            "order key (items follow)",
            "delete customer",
            "delete order",
            "delete order with items",
            "bulk items",
            "move order",
        ] {
            assert!(w.kinds.get(kind).copied().unwrap_or(0) > 0, "{kind}: {w:?}");
        }
        assert!(
            w.transactions.0 > 10 && w.transactions.1 > 0,
            "{:?}",
            w.transactions
        );
        let all = w.during.join("\n");
        for needle in ["NULL", "'billing'", "'cancelled'", ".123456+00", "o''Neil"] {
            assert!(all.contains(needle), "{needle}");
        }
    }

    #[test]
    fn timestamps_are_utc_literals() {
        assert_eq!(timestamp(0), "'1970-01-01 00:00:00.000000+00'");
        assert_eq!(
            timestamp(1_704_164_645_678_901),
            "'2024-01-02 03:04:05.678901+00'"
        );
        assert_eq!(
            timestamp(951_782_400_000_000),
            "'2000-02-29 00:00:00.000000+00'"
        );
        assert_eq!(money(-5), "-0.05");
        assert_eq!(money(123_450), "1234.50");
    }
}
