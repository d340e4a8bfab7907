//! Primary-key changes without losing unchanged values.
//!
//! Debezium writes a key change as two records: the delete of the old key
//! (header `__debezium.newkey`) and the create of the new key (header
//! `__debezium.oldkey`) whose `after` carries the TOAST placeholder for every
//! unchanged out-of-line column. Their keys differ, so on a topic with
//! several partitions they can be written in either order, and a later
//! change of the new key can even overtake the delete. The old document is
//! the only copy of the unchanged values, so it is moved, not dropped.
//!
//! The two halves meet in a side collection (`__smt_moves.<collection>`)
//! through two entries per change, one per half, so that the halves, which
//! run concurrently on different partitions, never write the same document
//! (two concurrent inserts of one `_id` fail with a duplicate key):
//! `_id: {from: <old>, to: <new>, lsn: <the change's log position>, half:
//! "delete" | "create"}` (both halves carry the same `source.lsn`):
//!
//! - the delete stashes the old document in its entry (`doc`; the first
//!   stash wins, so a replay cannot replace it with what the old key holds
//!   by then), then deletes it from the collection;
//! - the create writes its columns as usual, then its own entry (a mark);
//! - each half then runs the *fill*: when the delete's entry exists and
//!   finds the create's mark (`$lookup`), the stashed document is merged
//!   under the new key's document, whose own fields win (`$mergeObjects:
//!   ["$$new", "$$ROOT"]`); a new key's document that no longer exists
//!   (deleted meanwhile) is not recreated (`whenNotMatched: "discard"`).
//!
//! Whichever half writes its entry second runs its fill after it and finds
//! both, whatever the order. The entries stay: a crash can replay the create
//! half after an earlier delete of the new key, and only the stash can then
//! restore the unchanged values (`seen_at`, the change's time, lets users
//! prune old entries with a TTL index).

use serde_json::{json, Map, Value};
use smt_guest::{ops, Namespace, WriteOp};

/// The header on the delete half (and its tombstone): the new key.
pub(crate) const NEW_KEY_HEADER: &str = "__debezium.newkey";
/// The header on the create half: the old key.
pub(crate) const OLD_KEY_HEADER: &str = "__debezium.oldkey";
/// Prefix of the side collection where the halves meet.
pub(crate) const MOVES_PREFIX: &str = "__smt_moves.";

/// How a row's document is found: by `_id` (wrapped and scalar ids) or by
/// its key columns (object-id mode, where `_id` is the server's ObjectId).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Ident {
    Id(Value),
    Columns(Map<String, Value>),
}

impl Ident {
    /// The filter that finds the row's document.
    pub(crate) fn filter(&self) -> Value {
        match self {
            Ident::Id(id) => json!({ "_id": id }),
            Ident::Columns(cols) => Value::Object(cols.clone()),
        }
    }

    /// The identity as one value, for the side collection's `_id`.
    fn value(&self) -> Value {
        match self {
            Ident::Id(id) => id.clone(),
            Ident::Columns(cols) => Value::Object(cols.clone()),
        }
    }
}

/// One primary-key change of a document in `ns`.
pub(crate) struct KeyMove<'a> {
    pub ns: &'a Namespace,
    pub from: Ident,
    pub to: Ident,
    /// `source.lsn` of the change (the same in both halves), when the
    /// connector writes one: tells apart two changes between the same keys.
    pub lsn: Option<i64>,
    /// `source.ts_ms` of the change, as `seen_at`.
    pub ts_ms: Option<i64>,
}

impl KeyMove<'_> {
    fn moves_ns(&self) -> Namespace {
        Namespace {
            database: self.ns.database.clone(),
            collection: format!("{MOVES_PREFIX}{}", self.ns.collection),
        }
    }

    /// The `_id` of one half's entry.
    fn entry_id(&self, half: &str) -> Value {
        let mut id = Map::new();
        id.insert("from".into(), self.from.value());
        id.insert("to".into(), self.to.value());
        if let Some(lsn) = self.lsn {
            id.insert("lsn".into(), json!({"$numberLong": lsn.to_string()}));
        }
        id.insert("half".into(), Value::String(half.to_owned()));
        Value::Object(id)
    }

    fn seen_at(&self) -> Option<Value> {
        self.ts_ms
            .map(|ms| json!({"$date": {"$numberLong": ms.to_string()}}))
    }

    /// The delete half: stash the old document (the first stash wins), fill,
    /// then delete the old document.
    pub(crate) fn delete_half(&self) -> Vec<WriteOp> {
        let moves = self.moves_ns();
        let mut entry = Map::new();
        entry.insert("_id".into(), json!({"$literal": self.entry_id("delete")}));
        entry.insert("doc".into(), json!("$$ROOT"));
        entry.insert(
            "create".into(),
            json!({"$literal": self.entry_id("create")}),
        );
        if let Some(at) = self.seen_at() {
            entry.insert("seen_at".into(), json!({"$literal": at}));
        }
        let stash = ops::aggregate(
            self.ns.clone(),
            vec![
                json!({"$match": self.from.filter()}),
                json!({"$replaceWith": Value::Object(entry)}),
                json!({"$merge": {
                    "into": moves.collection,
                    "on": "_id",
                    "whenMatched": [{"$replaceWith": {"$mergeObjects": ["$$new", "$$ROOT"]}}],
                    "whenNotMatched": "insert"
                }}),
            ],
        );
        let mut out = vec![stash, self.fill()];
        out.extend(self.push_downstream());
        out.push(ops::delete_one(self.ns.clone(), self.from.filter()));
        out
    }

    /// A delete half written late: the new key may have changed again
    /// meanwhile (B → C → …), its later changes stashed and filled without
    /// the values this change moves. Push them down that chain — every later
    /// change whose old key is this one's new key, transitively
    /// (`$graphLookup`) — into those changes' stashes and into their new
    /// keys' documents, as fills (what is already there wins). Needs the log
    /// position, which orders the changes.
    fn push_downstream(&self) -> Vec<WriteOp> {
        let Some(lsn) = self.lsn else {
            return Vec::new();
        };
        let moves = self.moves_ns();
        // A change found by key alone may belong to another life of its old
        // key: B freed (moved on or deleted) and taken again by another
        // change X → B before B → C. Its values come from X, not from here.
        // So a change joins the chain only when the last change into its old
        // key before it is this one or one that joined: the key's life it
        // moves is the one this change started. Joining is transitive, so
        // the candidates are decided in log order (`$reduce`), each against
        // the ones that joined before it — one left out also leaves out
        // what only it leads to.
        let into_from = |e: &str| format!("$$e.{e}");
        let incoming = json!({"$max": {"$map": {
            "input": {"$filter": {"input": "$into_from", "as": "e", "cond": {"$and": [
                {"$eq": [into_from("_id.half"), "create"]},
                {"$lt": [into_from("_id.lsn"), "$next._id.lsn"]}
            ]}}},
            "as": "e",
            "in": into_from("_id.lsn")
        }}});
        let lives = json!({"$concatArrays": [
            {"$cond": [{"$eq": ["$_id.to", "$$this._id.from"]}, ["$_id.lsn"], []]},
            {"$map": {
                "input": {"$filter": {"input": "$$value", "as": "c",
                                      "cond": {"$eq": ["$$c._id.to", "$$this._id.from"]}}},
                "as": "c",
                "in": "$$c._id.lsn"
            }}
        ]});
        // What a joining change receives: the values of the life it moves,
        // i.e. its predecessor's stash with everything pushed into that (the
        // pusher's own stash when it is the predecessor), not the pusher's
        // alone — a change between them may hold newer values (an update
        // of the middle key) that the pusher's older ones must not shadow.
        // (`$$pred.doc` on an array is not traversed by the local server:
        // take the element first.)
        let upstream = json!({"$let": {
            "vars": {"pred": {"$arrayElemAt": [{"$filter": {"input": "$$value", "as": "c", "cond": {"$and": [
                {"$eq": ["$$c._id.to", "$$this._id.from"]},
                {"$eq": ["$$c._id.lsn", "$$this.incoming"]}
            ]}}}, 0]}},
            "in": {"$ifNull": ["$$pred.doc", "$doc"]}
        }});
        let chain = || {
            vec![
                json!({"$match": {"_id": self.entry_id("delete")}}),
                json!({"$graphLookup": {
                    "from": moves.collection,
                    "startWith": "$_id.to",
                    "connectFromField": "_id.to",
                    "connectToField": "_id.from",
                    "as": "next",
                    "restrictSearchWithMatch": {
                        "_id.half": "delete",
                        "_id.lsn": {"$gt": {"$numberLong": lsn.to_string()}}
                    }
                }}),
                json!({"$unwind": "$next"}),
                json!({"$lookup": {"from": moves.collection, "localField": "next._id.from",
                                   "foreignField": "_id.to", "as": "into_from"}}),
                json!({"$set": {"next.incoming": incoming.clone()}}),
                json!({"$sort": {"next._id.lsn": 1}}),
                json!({"$group": {"_id": "$_id", "doc": {"$first": "$doc"},
                                  "candidates": {"$push": "$next"}}}),
                json!({"$set": {"joined": {"$reduce": {
                    "input": "$candidates",
                    "initialValue": [],
                    "in": {"$cond": [
                        {"$in": ["$$this.incoming", lives.clone()]},
                        {"$concatArrays": ["$$value", [{"$mergeObjects": [
                            "$$this",
                            {"doc": {"$mergeObjects": [upstream.clone(), "$$this.doc"]}}
                        ]}]]},
                        "$$value"
                    ]}
                }}}}),
                json!({"$unwind": "$joined"}),
                json!({"$project": {"_id": 1, "doc": 1, "next": "$joined"}}),
            ]
        };
        let mut into_stashes = chain();
        into_stashes.push(json!({"$replaceWith": {"_id": "$next._id", "doc": "$next.doc"}}));
        into_stashes.push(json!({"$merge": {
            "into": moves.collection,
            "on": "_id",
            "whenMatched": "merge",
            "whenNotMatched": "discard"
        }}));
        let mut into_documents = chain();
        // Only once the change's create half was written: until then the
        // new key's document is an earlier life of that key, and the create
        // half's own fill brings the values from the stash pushed above.
        into_documents.push(
            json!({"$lookup": {"from": moves.collection, "localField": "next.create",
                               "foreignField": "_id", "as": "created"}}),
        );
        into_documents.push(json!({"$match": {"created": {"$ne": []}}}));
        // Not into a later life of a chain's new key (as in the fill).
        into_documents.push(
            json!({"$lookup": {"from": moves.collection, "localField": "next._id.to",
                                               "foreignField": "_id.from", "as": "moved_on"}}),
        );
        into_documents.push(
            json!({"$lookup": {"from": moves.collection, "localField": "next._id.to",
                                               "foreignField": "_id.to", "as": "came_back"}}),
        );
        let later = |list: &str, half: &str| {
            json!({"$anyElementTrue": [{"$map": {"input": list, "as": "e", "in": {"$and": [
                {"$eq": ["$$e._id.half", half]},
                {"$gt": ["$$e._id.lsn", "$next._id.lsn"]}
            ]}}}]})
        };
        into_documents.push(json!({"$match": {"$expr": {"$not": [{"$or": [
            later("$moved_on", "delete"),
            later("$came_back", "create")
        ]}]}}}));
        let on = match &self.to {
            Ident::Id(_) => {
                into_documents.push(json!({"$replaceWith": {
                    "$mergeObjects": ["$next.doc", {"_id": "$next._id.to"}]
                }}));
                json!("_id")
            }
            Ident::Columns(cols) => {
                into_documents.push(json!({"$replaceWith": {
                    "$mergeObjects": ["$next.doc", "$next._id.to"]
                }}));
                into_documents.push(json!({"$unset": "_id"}));
                Value::Array(cols.keys().map(|k| Value::String(k.clone())).collect())
            }
        };
        into_documents.push(json!({"$merge": {
            "into": self.ns.collection,
            "on": on,
            "whenMatched": [{"$replaceWith": {"$mergeObjects": ["$$new", "$$ROOT"]}}],
            "whenNotMatched": "discard"
        }}));
        vec![
            ops::aggregate(moves.clone(), into_stashes),
            ops::aggregate(moves, into_documents),
        ]
    }

    /// The create half, after the create's own write: mark, then fill.
    pub(crate) fn create_half(&self) -> Vec<WriteOp> {
        let mut set = Map::new();
        set.insert("seen".into(), Value::Bool(true));
        if let Some(at) = self.seen_at() {
            set.insert("seen_at".into(), at);
        }
        let mark = ops::update_one(self.moves_ns(), json!({"_id": self.entry_id("create")}))
            .set(Value::Object(set))
            .upsert()
            .build();
        vec![mark, self.fill()]
    }

    /// Merges the stashed document under the new key's document, once both
    /// halves were seen; nothing when the new key's document is gone.
    fn fill(&self) -> WriteOp {
        let moves = self.moves_ns();
        let mut stages = vec![
            json!({"$match": {"_id": self.entry_id("delete")}}),
            json!({"$lookup": {"from": moves.collection, "localField": "create",
                               "foreignField": "_id", "as": "created"}}),
            json!({"$match": {"created": {"$ne": []}}}),
        ];
        if let Some(lsn) = self.lsn {
            // Not into a later life of the new key: once it moved on (a later
            // change from it) or came back (a later change into it), its
            // document is not this change's; the push covers the move on.
            let later = json!({"$numberLong": lsn.to_string()});
            stages.push(
                json!({"$lookup": {"from": moves.collection, "localField": "_id.to",
                                           "foreignField": "_id.from", "as": "moved_on"}}),
            );
            stages.push(
                json!({"$lookup": {"from": moves.collection, "localField": "_id.to",
                                           "foreignField": "_id.to", "as": "came_back"}}),
            );
            stages.push(json!({"$match": {
                "moved_on": {"$not": {"$elemMatch": {"_id.half": "delete", "_id.lsn": {"$gt": later}}}},
                "came_back": {"$not": {"$elemMatch": {"_id.half": "create", "_id.lsn": {"$gt": later}}}}
            }}));
        }
        let on = match &self.to {
            Ident::Id(to) => {
                stages.push(json!({"$replaceWith": {
                    "$mergeObjects": ["$doc", {"_id": {"$literal": to}}]
                }}));
                json!("_id")
            }
            Ident::Columns(cols) => {
                // The target keeps its own ObjectId: `$$new` has none.
                stages.push(json!({"$replaceWith": {
                    "$mergeObjects": ["$doc", {"$literal": cols}]
                }}));
                stages.push(json!({"$unset": "_id"}));
                Value::Array(cols.keys().map(|k| Value::String(k.clone())).collect())
            }
        };
        stages.push(json!({"$merge": {
            "into": self.ns.collection,
            "on": on,
            "whenMatched": [{"$replaceWith": {"$mergeObjects": ["$$new", "$$ROOT"]}}],
            "whenNotMatched": "discard"
        }}));
        ops::aggregate(moves, stages)
    }
}
