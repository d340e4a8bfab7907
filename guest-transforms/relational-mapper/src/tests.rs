//! Every mapping rule on the real Debezium fixtures
//! (`tests/fixtures/debezium/schemas.jsonl`), with the exact operations.
//! The pipelines' behaviour against a server is proven by
//! `tests/tests/relational_mapper.rs` and the oracle test.

use super::*;
use serde_json::json;
use smt_guest::ops::describe;
use smt_guest::Transform;

fn fixtures() -> Vec<Message> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/debezium/schemas.jsonl"
    );
    std::fs::read_to_string(path)
        .expect("fixtures")
        .lines()
        .map(|line| {
            let r: Value = serde_json::from_str(line).expect("fixture line");
            Message {
                topic: r["topic"].as_str().unwrap().into(),
                partition: 0,
                offset: r["offset"].as_i64().unwrap(),
                timestamp_ms: None,
                key: r["key"].as_str().map(|s| s.as_bytes().to_vec()),
                value: r["value"].as_str().map(|s| s.as_bytes().to_vec()),
                headers: r["headers"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|h| smt_guest::Header {
                        key: h["key"].as_str().unwrap().into(),
                        value: h["value"].as_str().map(|v| v.as_bytes().to_vec()),
                    })
                    .collect(),
            }
        })
        .collect()
}

fn record(topic: &str, offset: i64) -> Message {
    fixtures()
        .into_iter()
        .find(|m| m.topic == topic && m.offset == offset)
        .unwrap_or_else(|| panic!("no fixture {topic}@{offset}"))
}

const CUSTOMERS: &str = "dbz.inventory.customers";
const ORDERS: &str = "dbz.inventory.orders";

fn tables() -> Value {
    json!({
        "inventory.customers": {"columns": ["id", "first_name", "last_name", "email", "balance", "vip", "created_at"]},
        "inventory.orders": {"columns": ["region", "order_id", "customer_id", "amount", "order_date", "status"]},
        "inventory.documents": {"columns": ["id", "title", "body"]},
        "inventory.all_types": {"columns": ["id", "c_numeric", "c_numeric_free", "c_timestamptz", "c_timestamp",
            "c_date", "c_time", "c_uuid", "c_jsonb", "c_json", "c_bytea", "c_int_array", "c_text_array", "c_bool",
            "c_real", "c_double", "c_smallint", "c_int", "c_bigint", "c_text", "c_varchar"]}
    })
}

fn mapper(rules: Value) -> Mapper {
    let config = json!({"tables": tables(), "rules": rules});
    Mapper::init(&config.to_string()).unwrap_or_else(|e| panic!("{e}"))
}

fn run(m: &Mapper, msg: &Message) -> Vec<Value> {
    m.transform(msg).unwrap().iter().map(describe).collect()
}

fn init_error(rules: Value) -> String {
    let config = json!({"tables": tables(), "rules": rules});
    match Mapper::init(&config.to_string()) {
        Ok(_) => panic!("the mapping was accepted"),
        Err(e) => e,
    }
}

/// What a state upsert writes when no later change wrote the row (the
/// third branch of its `$cond`): the `$literal` state document, merged with
/// the expressions over the stored row (`prev`, `__old`) when it has any.
fn written(op: &Value) -> &Value {
    assert_eq!(op["op"], json!("update-one"), "not a state write: {op}");
    &op["pipeline"][0]["$replaceWith"]["$cond"][2]
}

/// The `$literal` state document of a state upsert.
fn state_of(op: &Value) -> &Value {
    let w = written(op);
    match w.get("$literal") {
        Some(state) => state,
        None => &w["$mergeObjects"][0]["$literal"],
    }
}

/// Where a fixture record's state writes say they come from (`at`).
fn at(msg: &Message) -> Value {
    json!({"t": msg.topic, "p": msg.partition, "o": msg.offset})
}

/// The condition under which a change of `msg` leaves a state row alone: a
/// later change of its partition wrote it.
fn later_than(msg: &Message) -> Value {
    json!({"$and": [
        {"$eq": ["$at.t", {"$literal": msg.topic}]},
        {"$eq": ["$at.p", msg.partition]},
        {"$gt": ["$at.o", msg.offset]},
    ]})
}

fn date(ms: i64) -> Value {
    json!({"$date": {"$numberLong": ms.to_string()}})
}

const CREATED_AT_MS: i64 = 1704164645678; // 2024-01-02 03:04:05.678901+00 truncated

// ---- a table → its own collection ----

#[test]
fn collection_rule_writes_the_row_directly() {
    let m = mapper(json!([{"table": "inventory.customers", "collection": "people"}]));
    assert_eq!(
        run(&m, &record(CUSTOMERS, 0)),
        vec![json!({"op": "replace-one", "db": null, "coll": "people",
            "filter": {"_id": 1},
            "replacement": {"_id": 1, "id": 1, "first_name": "Sally", "last_name": "Thomas",
                "email": "sally.thomas@acme.com", "balance": {"$numberDecimal": "1234.50"}, "vip": true,
                "created_at": date(CREATED_AT_MS)},
            "upsert": true})]
    );
    // delete, then the tombstone
    assert_eq!(
        run(&m, &record(CUSTOMERS, 5)),
        vec![json!({"op": "delete-one", "db": null, "coll": "people", "filter": {"_id": 3}})]
    );
    assert_eq!(run(&m, &record(CUSTOMERS, 6)), Vec::<Value>::new());
}

#[test]
fn primary_key_change_moves_the_document() {
    let m = mapper(
        json!([{"table": "inventory.customers", "collection": "people", "include": ["id", "email"]}]),
    );
    // UPDATE … SET id = 102 WHERE id = 2: delete of 2 (after carrying it over), tombstone, create of 102
    let delete = run(&m, &record(CUSTOMERS, 7));
    assert_eq!(delete[0]["op"], json!("aggregate"));
    assert_eq!(
        delete[1],
        json!({"op": "delete-one", "db": null, "coll": "people", "filter": {"_id": 2}})
    );
    assert_eq!(
        run(&m, &record(CUSTOMERS, 9))[0]["replacement"],
        json!({"_id": 102, "id": 102, "email": "gbailey@foobar.com"})
    );
}

#[test]
fn id_modes() {
    let ids = |id: &str, topic: &str, offset: i64| {
        let table = if topic == ORDERS {
            "inventory.orders"
        } else {
            "inventory.customers"
        };
        let m = mapper(json!([{"table": table, "collection": "c", "id": id, "include": [] }]));
        run(&m, &record(topic, offset))[0]["replacement"]["_id"].clone()
    };
    assert_eq!(ids("primary-key", CUSTOMERS, 0), json!(1));
    // a composite key forces the key document
    assert_eq!(
        ids("primary-key", ORDERS, 0),
        json!({"region": "eu", "order_id": 1})
    );
    assert_eq!(ids("key-document", CUSTOMERS, 0), json!({"id": 1}));
    // object-id: SHA-256 of "<schema>.<table>\0<key JSON>", first 12 bytes, as documented
    let expected =
        hex::encode(&Sha256::digest(b"inventory.orders\0{\"region\":\"eu\",\"order_id\":1}")[..12]);
    assert_eq!(ids("object-id", ORDERS, 0), json!({"$oid": expected}));
    assert_eq!(
        ids("object-id", ORDERS, 3),
        ids("object-id", ORDERS, 0),
        "stable across events"
    );
}

#[test]
fn object_id_keeps_the_key_columns() {
    let m = mapper(
        json!([{"table": "inventory.orders", "collection": "orders", "id": "object-id",
        "include": ["region", "order_id", "status"]}]),
    );
    let doc = &run(&m, &record(ORDERS, 0))[0]["replacement"];
    assert_eq!(doc["region"], json!("eu"));
    assert_eq!(doc["order_id"], json!(1));
    assert!(doc["_id"]["$oid"].is_string());
}

// ---- fields: include, exclude, rename into paths, types, nulls ----

#[test]
fn include_exclude_and_rename_into_paths() {
    let m = mapper(json!([{"table": "inventory.customers", "collection": "c",
        "exclude": ["created_at", "vip"],
        "fields": {"first_name": {"to": "name.first"}, "last_name": {"to": "name.last"},
                   "email": {"to": "contact.email"}}}]));
    assert_eq!(
        run(&m, &record(CUSTOMERS, 0))[0]["replacement"],
        json!({"_id": 1, "id": 1, "name": {"first": "Sally", "last": "Thomas"},
               "contact": {"email": "sally.thomas@acme.com"}, "balance": {"$numberDecimal": "1234.50"}})
    );
    let m = mapper(
        json!([{"table": "inventory.customers", "collection": "c", "include": ["email", "vip"]}]),
    );
    assert_eq!(
        run(&m, &record(CUSTOMERS, 0))[0]["replacement"],
        json!({"_id": 1, "email": "sally.thomas@acme.com", "vip": true})
    );
}

#[test]
fn type_conversions() {
    let m = mapper(json!([{"table": "inventory.all_types", "collection": "t",
    "include": ["c_numeric", "c_timestamptz", "c_date", "c_bool", "c_int", "c_bigint", "c_text", "c_double", "c_smallint", "c_varchar"],
    "fields": {
        "c_numeric": {"type": "Double"},
        "c_timestamptz": {"type": "String"},
        "c_date": {"type": "date"},
        "c_bool": {"type": "Integer"},
        "c_int": {"type": "Long"},
        "c_bigint": {"type": "string"},
        "c_text": {"type": "Integer"},
        "c_double": {"type": "Decimal"},
        "c_smallint": {"type": "Boolean"},
        "c_varchar": {"type": "date"}
    }}]));
    assert_eq!(
        run(&m, &record("dbz.inventory.all_types", 0))[0]["replacement"],
        json!({"_id": 1,
            "c_numeric": 1234.5,
            "c_timestamptz": "2024-03-04T12:00:00.123Z",
            "c_date": date(1709510400000),
            "c_bool": 1,
            "c_int": {"$numberLong": "2147483647"},
            "c_bigint": "9223372036854775807",
            "c_text": null,           // 'héllo wörld ✓' is not an integer
            "c_double": {"$numberDecimal": "2.718281828459045"},
            "c_smallint": true,
            "c_varchar": null}) // 'short' is not a date
    );
}

#[test]
fn nulls_omitted_or_kept() {
    // customer 3 has a NULL balance
    let keep = mapper(
        json!([{"table": "inventory.customers", "collection": "c", "include": ["balance"]}]),
    );
    assert_eq!(
        run(&keep, &record(CUSTOMERS, 2))[0]["replacement"],
        json!({"_id": 3, "balance": null})
    );
    let omit = mapper(
        json!([{"table": "inventory.customers", "collection": "c", "include": ["balance"], "nulls": "omit"}]),
    );
    assert_eq!(
        run(&omit, &record(CUSTOMERS, 2))[0]["replacement"],
        json!({"_id": 3})
    );
    // the top-level default applies when a rule says nothing
    let config = json!({"tables": tables(), "nulls": "omit",
        "rules": [{"table": "inventory.customers", "collection": "c", "include": ["balance"]}]});
    let m = Mapper::init(&config.to_string()).unwrap();
    assert_eq!(
        run(&m, &record(CUSTOMERS, 2))[0]["replacement"],
        json!({"_id": 3})
    );
}

#[test]
fn unchanged_toast_columns_keep_their_stored_value() {
    let m = mapper(json!([{"table": "inventory.documents", "collection": "docs"}]));
    assert_eq!(
        run(&m, &record("dbz.inventory.documents", 2)),
        vec![
            json!({"op": "update-one", "db": null, "coll": "docs", "filter": {"_id": 2},
            "update": {"$set": {"id": 2, "title": "large, renamed"}}, "upsert": true})
        ]
    );
}

// ---- row filters ----

#[test]
fn filter_decides_whether_the_row_is_mapped() {
    let m = mapper(
        json!([{"table": "inventory.orders", "collection": "open_orders", "include": ["status"],
        "filter": [{"column": "status", "op": "in", "value": ["new", "paid"]},
                   {"column": "amount", "op": "gte", "value": 10}]}]),
    );
    // eu/1: new, 13.75 → mapped
    assert_eq!(run(&m, &record(ORDERS, 0))[0]["op"], json!("replace-one"));
    // us/1: new, 0.01 → not mapped: its document is removed (it may have been mapped before)
    assert_eq!(
        run(&m, &record(ORDERS, 1)),
        vec![
            json!({"op": "delete-one", "db": null, "coll": "open_orders",
            "filter": {"_id": {"region": "us", "order_id": 1}}})
        ]
    );
    // eu/1 shipped → no longer mapped
    assert_eq!(run(&m, &record(ORDERS, 3))[0]["op"], json!("delete-one"));
}

#[test]
fn filter_comparisons_follow_sql() {
    let m = mapper(
        json!([{"table": "inventory.customers", "collection": "c", "include": [],
        "filter": [{"column": "balance", "op": "ne", "value": 0}]}]),
    );
    assert_eq!(
        run(&m, &record(CUSTOMERS, 0))[0]["op"],
        json!("replace-one")
    ); // 1234.50
    assert_eq!(run(&m, &record(CUSTOMERS, 1))[0]["op"], json!("delete-one")); // 0.00 = 0
    assert_eq!(run(&m, &record(CUSTOMERS, 2))[0]["op"], json!("delete-one")); // NULL <> 0 is not true
    let m = mapper(
        json!([{"table": "inventory.customers", "collection": "c", "include": [],
        "filter": [{"column": "balance", "op": "is_null"}]}]),
    );
    assert_eq!(
        run(&m, &record(CUSTOMERS, 2))[0]["op"],
        json!("replace-one")
    );
}

// ---- embedding ----

fn embedded(kind: Value) -> Mapper {
    mapper(json!([
        {"name": "customers", "table": "inventory.customers", "collection": "customers", "include": ["id", "email"]},
        {"name": "orders", "table": "inventory.orders", "embed": kind,
         "include": ["region", "order_id", "amount", "status"],
         "filter": [{"column": "status", "op": "ne", "value": "cancelled"}]}
    ]))
}

fn array_embedding() -> Mapper {
    embedded(
        json!({"parent": "customers", "on": {"customer_id": "id"}, "kind": "array", "as": "orders",
        "sort": [{"column": "amount", "order": "desc"}], "limit": 2}),
    )
}

const STATE_CUSTOMERS: &str = "__smt_rm.v2.inventory.customers";
const STATE_ORDERS: &str = "__smt_rm.v2.inventory.orders";

#[test]
fn parent_change_writes_state_then_rebuilds_its_document() {
    let msg = record(CUSTOMERS, 0);
    let ops = run(&array_embedding(), &msg);
    assert_eq!(ops.len(), 2);
    // the row as it is now, unless a later change of the partition wrote it (a replay)
    assert_eq!(
        ops[0],
        json!({"op": "update-one", "db": null, "coll": STATE_CUSTOMERS,
            "filter": {"_id": 1},
            "pipeline": [{"$replaceWith": {"$cond": [later_than(&msg), "$$ROOT", {"$literal":
                {"_id": 1, "key": {"id": 1}, "on": {"r0": true},
                "doc": {"r0": {"_id": 1, "id": 1, "email": "sally.thomas@acme.com"}},
                "join": {"r1": {"id": 1}}, "fk": {}, "s": {}, "at": at(&msg)}}]}}],
            "upsert": true})
    );
    assert_eq!(
        ops[1],
        json!({"op": "aggregate", "db": null, "coll": STATE_CUSTOMERS, "pipeline": [
            {"$match": {"_id": 1, "on.r0": true}},
            // the simple form: one index probe per row, never a read of the whole state
            {"$lookup": {"from": STATE_ORDERS, "localField": "join.r1", "foreignField": "fk.r1", "as": "__r1"}},
            {"$set": {"__r1": {"$filter": {"input": "$__r1", "cond": {"$eq": ["$$this.on.r1", true]}}}}},
            {"$replaceWith": {"$let": {
                "vars": {"vr1": {"$map": {
                    "input": {"$slice": [{"$sortArray": {"input": "$__r1", "sortBy": {"s.r1.amount": -1, "key": 1}}}, 2]},
                    "as": "xr1",
                    "in": {"$ifNull": ["$$xr1.doc.r1", {}]}}}},
                "in": {"$let": {"vars": {"or0_0": {"$ifNull": ["$doc.r0", {}]}},
                    "in": {"$setField": {"field": "orders", "input": "$$or0_0", "value": "$$vr1"}}}}}}},
            {"$merge": {"into": "customers", "on": "_id", "whenMatched": "replace", "whenNotMatched": "insert"}}
        ]})
    );
}

#[test]
fn child_change_keeps_its_old_parents_and_rebuilds_up() {
    let msg = record(ORDERS, 0);
    let ops = run(&array_embedding(), &msg);
    assert_eq!(ops.len(), 3);
    let key_doc = json!({"region": "eu", "order_id": 1});
    // a composite key's state `_id` is the JSON text of its values
    let key = json!(r#"["eu",1]"#);
    let parents = json!({"$filter": {"input": {"$setUnion": [{"$ifNull": ["$prev.r1", []]}, ["$fk.r1"]]},
        "cond": {"$ne": ["$$this", null]}}});
    // `prev`: only the parents the row leaves, and no field when it leaves none
    let moved_from = json!({"$let": {"vars": {"left": {"r1": {"$setDifference": [parents, [{"$literal": {"id": 1}}]]}}},
        "in": {"$cond": [{"$or": [{"$gt": [{"$size": "$$left.r1"}, 0]}]}, {"prev": "$$left"}, {}]}}});
    assert_eq!(
        ops[0],
        json!({"op": "update-one", "db": null, "coll": STATE_ORDERS, "filter": {"_id": key},
            "pipeline": [{"$replaceWith": {"$cond": [later_than(&msg), "$$ROOT", {"$mergeObjects": [
                {"$literal": {"_id": key, "key": key_doc, "on": {"r1": true},
                    "doc": {"r1": {"region": "eu", "order_id": 1, "amount": {"$numberDecimal": "13.75"}, "status": "new"}},
                    "join": {}, "fk": {"r1": {"id": 1}}, "s": {"r1": {"amount": {"$numberDecimal": "13.75"}}},
                    "at": at(&msg)}},
                moved_from]}]}}],
            "upsert": true})
    );
    assert_eq!(ops[1]["op"], json!("aggregate"));
    assert_eq!(ops[1]["coll"], json!(STATE_ORDERS));
    assert_eq!(
        ops[1]["pipeline"].as_array().unwrap()[..8],
        [
            json!({"$match": {"_id": key}}),
            json!({"$project": {"_id": 0, "j": parents}}),
            json!({"$unwind": "$j"}),
            // each parent once: one probe per join value
            json!({"$group": {"_id": "$j"}}),
            json!({"$lookup": {"from": STATE_CUSTOMERS, "localField": "_id", "foreignField": "join.r1", "as": "p"}}),
            json!({"$unwind": "$p"}),
            json!({"$replaceWith": "$p"}),
            json!({"$match": {"on.r0": true}}),
        ]
    );
    // …then the root's rebuild, exactly as a parent change does it
    let root = run(&array_embedding(), &record(CUSTOMERS, 0))[1]["pipeline"].clone();
    let tail: Vec<Value> = ops[1]["pipeline"].as_array().unwrap()[8..].to_vec();
    assert_eq!(tail, root.as_array().unwrap()[1..].to_vec());
    assert_eq!(
        ops[2],
        json!({"op": "update-one", "db": null, "coll": STATE_ORDERS, "filter": {"_id": key, "prev": {"$exists": true}},
            "update": {"$unset": {"prev": ""}}, "upsert": false})
    );
}

#[test]
fn child_delete_marks_rebuilds_then_forgets() {
    let msg = record(ORDERS, 4);
    let ops = run(&array_embedding(), &msg);
    let key = json!(r#"["us",1]"#);
    assert_eq!(ops.len(), 3);
    // marked, unless a later change of the partition wrote the row (a replay)
    assert_eq!(ops[0]["op"], json!("update-one"));
    assert_eq!(ops[0]["filter"], json!({"_id": key}));
    let mark = &ops[0]["pipeline"][0]["$replaceWith"]["$cond"];
    assert_eq!(mark[0], later_than(&msg));
    assert_eq!(mark[1], json!("$$ROOT"));
    assert_eq!(mark[2]["$mergeObjects"][0], json!("$$ROOT"));
    let set = &mark[2]["$mergeObjects"][1];
    assert_eq!(set["on"], json!({"r1": false}));
    assert_eq!(set["gone"], json!(true));
    assert_eq!(set["at"], json!({"$literal": at(&msg)}));
    // `fk` and `prev` stay as stored: the climb starts from them
    assert!(
        set.get("prev").is_none() && set.get("fk").is_none(),
        "{set}"
    );
    assert_eq!(ops[1]["op"], json!("aggregate"));
    assert_eq!(ops[1]["pipeline"][0], json!({"$match": {"_id": key}}));
    // only a row the delete marked goes
    assert_eq!(
        ops[2],
        json!({"op": "delete-one", "db": null, "coll": STATE_ORDERS, "filter": {"_id": key, "gone": true}})
    );
}

#[test]
fn parent_delete_removes_its_document() {
    let ops = run(&array_embedding(), &record(CUSTOMERS, 5));
    assert_eq!(ops.len(), 3);
    assert_eq!(
        ops[1],
        json!({"op": "delete-one", "db": null, "coll": "customers", "filter": {"_id": 3}})
    );
    assert_eq!(
        ops[2],
        json!({"op": "delete-one", "db": null, "coll": STATE_CUSTOMERS, "filter": {"_id": 3, "gone": true}})
    );
}

#[test]
fn document_and_merge_embeddings() {
    let doc = embedded(
        json!({"parent": "customers", "on": {"customer_id": "id"}, "kind": "document",
        "as": "last.order", "sort": [{"column": "order_date", "order": "desc"}]}),
    );
    let p = run(&doc, &record(CUSTOMERS, 0))[1]["pipeline"].clone();
    let vars = &p[3]["$replaceWith"]["$let"]["vars"];
    assert_eq!(
        vars["vr1"]["$map"]["input"],
        json!({"$slice": [{"$sortArray": {"input": "$__r1", "sortBy": {"s.r1.order_date": -1, "key": 1}}}, 1]})
    );
    // the first row at last.order, or no last.order at all (`last` stays if it is there)
    let placed = &p[3]["$replaceWith"]["$let"]["in"]["$let"]["in"]["$cond"];
    assert_eq!(placed[0], json!({"$gt": [{"$size": "$$vr1"}, 0]}));
    assert_eq!(
        placed[1]["$setField"]["value"]["$let"]["in"],
        json!({"$setField": {"field": "order", "input": "$$or0_0_", "value": {"$arrayElemAt": ["$$vr1", 0]}}})
    );
    assert_eq!(
        placed[2]["$let"]["in"]["$cond"][1]["$setField"]["value"],
        json!({"$setField": {"field": "order", "input": "$$or0_0_", "value": "$$REMOVE"}})
    );
    let merge = embedded(
        json!({"parent": "customers", "on": {"customer_id": "id"}, "kind": "merge", "prefix": "order_"}),
    );
    let state = state_of(&run(&merge, &record(ORDERS, 0))[0]).clone();
    assert_eq!(
        state["doc"]["r1"],
        json!({"order_region": "eu", "order_order_id": 1, "order_amount": {"$numberDecimal": "13.75"}, "order_status": "new"})
    );
    let p = run(&merge, &record(CUSTOMERS, 0))[1]["pipeline"].clone();
    assert_eq!(
        p[3]["$replaceWith"]["$let"]["in"],
        json!({"$mergeObjects": [
            {"$ifNull": ["$doc.r0", {}]},
            {"$ifNull": [{"$arrayElemAt": ["$$vr1", 0]}, {}]},
            {"$ifNull": ["$doc.r0", {}]}]})
    );
}

#[test]
fn filtered_out_children_are_kept_but_marked() {
    let m = embedded(json!({"parent": "customers", "on": {"customer_id": "id"}, "as": "orders"}));
    let m2 = mapper(json!([
        {"name": "customers", "table": "inventory.customers", "collection": "customers"},
        {"table": "inventory.orders", "embed": {"parent": "customers", "on": {"customer_id": "id"}, "as": "orders"},
         "filter": [{"column": "status", "op": "eq", "value": "new"}]}
    ]));
    assert_eq!(
        state_of(&run(&m, &record(ORDERS, 3))[0])["on"],
        json!({"r1": true})
    );
    // eu/1 shipped: not mapped, but its state row stays so that it can come back
    assert_eq!(
        state_of(&run(&m2, &record(ORDERS, 3))[0])["on"],
        json!({"r1": false})
    );
}

#[test]
fn nested_embeddings_climb_to_the_root() {
    let m = mapper(json!([
        {"name": "customers", "table": "inventory.customers", "collection": "customers", "include": ["id"]},
        {"name": "orders", "table": "inventory.orders", "include": ["order_id"],
         "embed": {"parent": "customers", "on": {"customer_id": "id"}, "as": "orders"}},
        {"name": "docs", "table": "inventory.documents", "include": ["title"],
         "embed": {"parent": "orders", "on": {"id": "order_id"}, "as": "docs"}}
    ]));
    let ops = run(&m, &record("dbz.inventory.documents", 0));
    let p = ops[1]["pipeline"].as_array().unwrap();
    // documents → orders (current and previous parents), orders → customers (current parent only)
    assert_eq!(p[4]["$lookup"]["from"], json!(STATE_ORDERS));
    assert_eq!(p[4]["$lookup"]["foreignField"], json!("join.r2"));
    assert_eq!(
        p[7],
        json!({"$project": {"_id": 0, "j": {"$filter": {"input": ["$fk.r1"], "cond": {"$ne": ["$$this", null]}}}}})
    );
    assert_eq!(p[10]["$lookup"]["from"], json!(STATE_CUSTOMERS));
    assert_eq!(p[10]["$lookup"]["foreignField"], json!("join.r1"));
    // down again: the orders of the customer by one probe, then the documents
    // of all those orders by one probe with their join values
    let down = &p[14..];
    assert_eq!(
        down[0],
        json!({"$lookup": {"from": STATE_ORDERS, "localField": "join.r1", "foreignField": "fk.r1", "as": "__r1"}})
    );
    assert_eq!(
        down[2],
        json!({"$set": {"__kr2": {"$map": {"input": "$__r1", "in": "$$this.join.r2"}}}})
    );
    assert_eq!(
        down[3],
        json!({"$lookup": {"from": "__smt_rm.v2.inventory.documents", "localField": "__kr2", "foreignField": "fk.r2", "as": "__r2"}})
    );
    // …and each order takes its own documents from them
    let orders = &down[5]["$replaceWith"]["$let"]["vars"]["vr1"]["$map"];
    assert_eq!(
        orders["in"]["$let"]["vars"]["vr2"]["$map"]["input"]["$sortArray"]["input"],
        json!({"$filter": {"input": "$__r2", "as": "y", "cond": {"$eq": ["$$y.fk.r2", "$$xr1.join.r2"]}}})
    );
    // the orders rows carry the join values of their own children
    let state = state_of(&run(&m, &record(ORDERS, 0))[0]).clone();
    assert_eq!(state["join"], json!({"r2": {"order_id": 1}}));
    assert_eq!(state["fk"], json!({"r1": {"id": 1}}));
}

#[test]
fn null_join_columns_match_nothing() {
    let m = mapper(json!([
        {"name": "customers", "table": "inventory.customers", "collection": "customers"},
        {"table": "inventory.all_types", "embed": {"parent": "customers", "on": {"c_int": "id"}, "as": "x"}}
    ]));
    // all_types id 2 has every other column NULL
    let state = state_of(&run(&m, &record("dbz.inventory.all_types", 1))[0]).clone();
    assert_eq!(state["fk"]["r1"], json!({"__nofk": {"id": 2}}));
}

#[test]
fn truncate_of_a_child_rebuilds_every_root() {
    let m = mapper(json!([
        {"name": "customers", "table": "inventory.customers", "collection": "customers"},
        {"table": "inventory.documents", "embed": {"parent": "customers", "on": {"id": "id"}, "as": "docs"}}
    ]));
    let truncate = Message {
        topic: "dbz.inventory.documents".into(),
        partition: 0,
        offset: 9,
        timestamp_ms: None,
        key: None,
        value: Some(
            json!({"before": null, "after": null, "op": "t", "ts_ms": 1,
            "source": {"schema": "inventory", "table": "documents"}})
            .to_string()
            .into_bytes(),
        ),
        headers: vec![],
    };
    let ops = run(&m, &truncate);
    assert_eq!(
        ops[0],
        json!({"op": "delete-many", "db": null, "coll": "__smt_rm.v2.inventory.documents", "filter": {}})
    );
    assert_eq!(ops[1]["pipeline"][0], json!({"$match": {"on.r0": true}}));
}

#[test]
fn tables_outside_the_mapping_and_tombstones_write_nothing() {
    let m = array_embedding();
    assert!(run(&m, &record("dbz.inventory.products", 0)).is_empty());
    assert!(run(&m, &record(ORDERS, 5)).is_empty());
}

#[test]
fn a_table_without_a_key_is_unsupported() {
    let config = json!({"tables": {"inventory.audit_log": {"columns": ["actor", "action", "at"]}},
        "rules": [{"table": "inventory.audit_log", "collection": "audit"}]});
    let m = Mapper::init(&config.to_string()).unwrap();
    let err = m
        .transform(&record("dbz.inventory.audit_log", 0))
        .unwrap_err();
    assert_eq!(err.kind, smt_guest::ErrorKind::Unsupported);
    assert!(
        err.message
            .contains("inventory.audit_log has no primary key"),
        "{}",
        err.message
    );
}

// ---- mapping errors name their place ----

#[test]
fn mapping_errors_name_the_place() {
    let cases = [
        (json!([{"table": "inventory.nope", "collection": "c"}]), "rules[0].table: unknown table \"inventory.nope\""),
        (json!([{"table": "inventory.customers", "collection": "c", "include": ["emial"]}]),
            "rules[0].include: unknown column \"emial\" of inventory.customers"),
        (json!([{"table": "inventory.customers", "collection": "c", "fields": {"id": {"typ": "int"}}}]),
            "rules[0].fields.id.typ: unknown field `typ`"),
        (json!([{"table": "inventory.customers", "collection": "c", "fields": {"id": {"type": "money"}}}]),
            "rules[0].fields.id.type: unknown type \"money\""),
        (json!([{"table": "inventory.customers", "collection": "c", "rank": 1}]), "rules[0].rank: unknown field `rank`"),
        (json!([{"table": "inventory.customers"}]), "rules[0]: a rule has exactly one of \"collection\" and \"embed\""),
        (json!([{"table": "inventory.orders", "embed": {"parent": "custmers", "on": {"customer_id": "id"}, "as": "o"}}]),
            "rules[0].embed.parent: no rule named \"custmers\""),
        (json!([{"name": "c", "table": "inventory.customers", "collection": "c"},
                {"table": "inventory.orders", "embed": {"parent": "c", "on": {"customer_id": "idd"}, "as": "o"}}]),
            "rules[1].embed.on.\"customer_id\": unknown column \"idd\" of the parent's table inventory.customers"),
        (json!([{"name": "a", "table": "inventory.customers", "embed": {"parent": "b", "on": {"id": "customer_id"}, "as": "x"}},
                {"name": "b", "table": "inventory.orders", "embed": {"parent": "a", "on": {"customer_id": "id"}, "as": "y"}}]),
            "rules[0].embed.parent: embedding cycle a → b → a"),
        (json!([{"table": "inventory.customers", "collection": "c", "filter": [{"column": "vip", "op": "eq"}]}]),
            "rules[0].filter[0].value: required"),
        (json!([{"table": "inventory.customers", "collection": "c", "fields": {"email": {"to": "first_name"}}}]),
            "columns \"first_name\" and \"email\" both map to \"first_name\""),
        (json!([{"name": "c", "table": "inventory.customers", "collection": "c"},
                {"table": "inventory.orders", "embed": {"parent": "c", "on": {"customer_id": "id"}, "kind": "merge", "as": "o"}}]),
            "rules[1].embed.as: a merge embedding has no \"as\""),
    ];
    for (rules, needle) in cases {
        let err = init_error(rules.clone());
        assert!(
            err.contains(needle),
            "{rules}\n  error: {err}\n  wanted: {needle}"
        );
    }
    let err = match Mapper::init(
        r#"{"tables": {"x": {"columns": ["a"]}}, "rules": [{"table": "x", "collection": "c"}]}"#,
    ) {
        Err(e) => e,
        Ok(_) => panic!("accepted"),
    };
    assert!(err.contains("tables.\"x\": a table is named"), "{err}");
}

#[test]
fn the_oracle_mapping_and_the_docs_example_are_valid() {
    let oracle = include_str!("../../../tests/fixtures/relational/mapping.json");
    Mapper::init(oracle).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn unchanged_toast_columns_keep_their_stored_fragment_sort_and_join_values() {
    let m = mapper(json!([
        {"name": "customers", "table": "inventory.customers", "collection": "customers"},
        {"name": "docs", "table": "inventory.documents", "include": ["title", "body"],
         "embed": {"parent": "customers", "on": {"id": "id"}, "as": "docs", "sort": [{"column": "body"}]},
         "fields": {"body": {"to": "text.body"}}}
    ]));
    // documents 2: the title changes, the 9,600-character body is unavailable
    let ops = run(&m, &record("dbz.inventory.documents", 2));
    let stages = ops[0]["pipeline"].as_array().unwrap();
    // after the literal row and the parents it leaves (`prev`)
    assert!(written(&ops[0])["$mergeObjects"][1]["$let"].is_object());
    assert_eq!(
        written(&ops[0])["$mergeObjects"][2]["__old"],
        json!("$$ROOT")
    );
    // a row a later change wrote is kept: the restore puts its own values back
    assert_eq!(
        stages[0]["$replaceWith"]["$cond"][1],
        json!({"$mergeObjects": ["$$ROOT", {"__old": "$$ROOT"}]})
    );
    assert_eq!(
        stages[1],
        json!({"$set": {"doc.r1.text.body": "$__old.doc.r1.text.body", "s.r1.body": "$__old.s.r1.body"}})
    );
    assert_eq!(stages[2], json!({"$unset": "__old"}));
}

#[test]
fn a_primary_key_change_carries_the_row_over_to_its_new_key() {
    // UPDATE customers SET id = 102 WHERE id = 2: the delete of 2 names the new key
    let m = array_embedding();
    let msg = record(CUSTOMERS, 7);
    let ops = run(&m, &msg);
    // not a row a later change wrote (a replay: the old key lived again since)
    assert_eq!(
        ops[0],
        json!({"op": "aggregate", "db": null, "coll": STATE_CUSTOMERS, "pipeline": [
            {"$match": {"_id": 2}},
            {"$match": {"$expr": {"$not": [later_than(&msg)]}}},
            {"$project": {"_id": {"$literal": 102}, "key": {"$literal": {"id": 102}}, "doc": 1, "s": 1, "fk": 1, "join": 1,
                "at": {"$literal": at(&msg)}}},
            {"$merge": {"into": STATE_CUSTOMERS, "on": "_id", "whenMatched": "keepExisting", "whenNotMatched": "insert"}}
        ]})
    );
    // then the delete as usual
    assert_eq!(
        ops[1..],
        run(&m, &record(CUSTOMERS, 5))[..]
            .iter()
            .map(|op| {
                let text = op
                    .to_string()
                    .replace("{\"id\":3}", "{\"id\":2}")
                    .replace("\"_id\":3", "\"_id\":2")
                    // and its position (offset 7, not 5)
                    .replace("\"$at.o\",5]", "\"$at.o\",7]")
                    .replace("\"o\":5}", "\"o\":7}");
                serde_json::from_str::<Value>(&text).unwrap()
            })
            .collect::<Vec<_>>()[..]
    );
    // a direct collection rule copies the document
    let direct = mapper(
        json!([{"table": "inventory.customers", "collection": "people", "include": ["email"]}]),
    );
    assert_eq!(
        run(&direct, &record(CUSTOMERS, 7))[0],
        json!({"op": "aggregate", "db": null, "coll": "people", "pipeline": [
            {"$match": {"_id": 2}},
            {"$replaceWith": {"$mergeObjects": ["$$ROOT", {"_id": {"$literal": 102}}]}},
            {"$merge": {"into": "people", "on": "_id", "whenMatched": "keepExisting", "whenNotMatched": "insert"}}
        ]})
    );
}

// ---- batches: one rebuild per document per batch ----

fn run_batch(m: &Mapper, msgs: &[Message]) -> Vec<Vec<Value>> {
    m.transform_batch(msgs)
        .into_iter()
        .map(|r| r.unwrap().iter().map(describe).collect())
        .collect()
}

fn batch(topic: &str, offsets: &[i64]) -> Vec<Message> {
    offsets.iter().map(|&o| record(topic, o)).collect()
}

#[test]
fn a_batch_writes_every_state_row_then_rebuilds_each_parent_once() {
    // eu/1, us/1, eu/2, eu/1 again: four state writes, then one climb from the three rows
    let out = run_batch(&array_embedding(), &batch(ORDERS, &[0, 1, 2, 3]));
    assert_eq!(out.iter().map(Vec::len).collect::<Vec<_>>(), [1, 1, 1, 3]);
    for ops in &out {
        assert_eq!(ops[0]["op"], json!("update-one"), "{ops:?}");
        assert_eq!(ops[0]["coll"], json!(STATE_ORDERS));
    }
    let keys = json!([r#"["eu",1]"#, r#"["eu",2]"#, r#"["us",1]"#]);
    let last = &out[3];
    assert_eq!(last[1]["op"], json!("aggregate"));
    assert_eq!(
        last[1]["pipeline"][0],
        json!({"$match": {"_id": {"$in": keys}}})
    );
    assert_eq!(
        last[2],
        json!({"op": "update-many", "db": null, "coll": STATE_ORDERS, "filter": {"_id": {"$in": keys}, "prev": {"$exists": true}},
            "update": {"$unset": {"prev": ""}}, "upsert": false})
    );
}

#[test]
fn a_batch_rebuilds_roots_once_and_drops_deleted_rows_state_after_the_rebuilds() {
    // customers 1, 2, 3 read, 4 inserted, 1 updated, 3 deleted
    let out = run_batch(&array_embedding(), &batch(CUSTOMERS, &[0, 1, 2, 3, 4, 5]));
    let ops: Vec<&Value> = out.iter().flatten().collect();
    let kinds: Vec<&str> = ops.iter().map(|o| o["op"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "update-one",
            "update-one",
            "update-one",
            "update-one",
            "update-one",
            "update-one",
            "delete-one", // customer 3: state marked off, its document deleted
            "aggregate",
            "delete-one" // the rebuild of 1-4, then the state row of 3
        ]
    );
    let agg = ops[7];
    assert_eq!(
        agg["pipeline"][0],
        json!({"$match": {"_id": {"$in": [1, 2, 3, 4]}, "on.r0": true}})
    );
    assert_eq!(
        *ops[8],
        json!({"op": "delete-one", "db": null, "coll": STATE_CUSTOMERS, "filter": {"_id": 3, "gone": true}})
    );
    // everything deferred goes with the last record
    assert_eq!(out[5].len(), 4);
}

#[test]
fn a_row_deleted_then_written_again_in_one_batch_flushes_before_the_write() {
    // customer 3 deleted, then read again (as after a re-insert)
    let out = run_batch(&array_embedding(), &batch(CUSTOMERS, &[5, 2]));
    assert_eq!(out[0].len(), 2, "{:?}", out[0]); // marked off, document deleted
    let second: Vec<&str> = out[1].iter().map(|o| o["op"].as_str().unwrap()).collect();
    // the deleted row's state goes first, then the new row and its rebuild
    assert_eq!(second, ["delete-one", "update-one", "aggregate"]);
    assert_eq!(out[1][0]["coll"], json!(STATE_CUSTOMERS));
    assert_eq!(out[1][2]["pipeline"][0]["$match"]["_id"], json!(3));
}

#[test]
fn failed_records_of_a_batch_get_their_error_and_the_rest_their_operations() {
    let m = array_embedding();
    let mut msgs = batch(ORDERS, &[0, 2]);
    msgs.push(Message::new(ORDERS, Some(b"{}"), Some(b"not json")));
    let out = m.transform_batch(&msgs);
    assert!(out[2].is_err());
    // the deferred rebuild went with the last successful record
    assert_eq!(out[1].as_ref().unwrap().len(), 3);
}

#[test]
fn the_indexes_the_joins_need_are_named() {
    let m = array_embedding();
    assert_eq!(
        m.plan.join_indexes(),
        [
            (STATE_ORDERS.to_owned(), "fk.r1".to_owned()),
            (STATE_CUSTOMERS.to_owned(), "join.r1".to_owned())
        ]
    );
}

#[test]
fn state_ids_are_scalars_never_documents() {
    let row = |v: Value| v.as_object().unwrap().clone();
    assert_eq!(state_id(&row(json!({"id": 7}))), json!(7));
    assert_eq!(state_id(&row(json!({"code": "a.b"}))), json!("a.b"));
    assert_eq!(
        state_id(&row(json!({"id": {"$numberDecimal": "1.50"}}))),
        json!({"$numberDecimal": "1.50"})
    );
    // composite keys, and anything that is not one scalar: the values' JSON text in key order
    assert_eq!(
        state_id(&row(json!({"order_id": 3, "line_no": 1}))),
        json!("[3,1]")
    );
    assert_eq!(
        state_id(&row(json!({"line_no": 1, "order_id": 3}))),
        json!("[1,3]")
    );
    assert_eq!(state_id(&row(json!({"tags": [1, 2]}))), json!("[[1,2]]"));
    assert_eq!(
        state_id(&row(json!({"doc": {"a": 1}}))),
        json!(r#"[{"a":1}]"#)
    );
    assert_eq!(
        state_id(&row(json!({"region": "eu", "id": {"$numberLong": "5"}}))),
        json!(r#"["eu",{"$numberLong":"5"}]"#)
    );
}
