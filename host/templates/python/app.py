"""{{name}}: Debezium change events to MongoDB writes."""

import json

import wit_world
from componentize_py_types import Err
from wit_world.imports import types as t


def bad_input(message):
    return Err(t.TransformError(t.ErrorKind.BAD_INPUT, message))


def unwrap(doc):
    """Kafka Connect's JSON converter with schemas: the payload; without: the document."""
    if isinstance(doc, dict) and doc.keys() == {"schema", "payload"}:
        return doc["payload"]
    return doc


def doc(value):
    return t.Document_Json(json.dumps(value))


class WitWorld(wit_world.WitWorld):
    def init(self, config: str) -> None:
        pass

    def transform(self, msg: t.Message) -> list:
        if not msg.value:
            return []  # a tombstone
        try:
            value = unwrap(json.loads(msg.value))
            key = unwrap(json.loads(msg.key)) if msg.key else None
        except (ValueError, RecursionError) as e:
            raise bad_input(f"not JSON: {e}")
        if not isinstance(value, dict) or not isinstance(value.get("op"), str):
            raise bad_input("not a Debezium change event")
        table = (value.get("source") or {}).get("table")
        if not isinstance(table, str) or not isinstance(key, dict):
            raise bad_input("no source.table or no key")
        ns = t.Namespace(database=None, collection=table)
        op, f = value["op"], doc({"_id": key})
        if op == "d":
            return [t.WriteOp_DeleteOne(t.Delete(ns, f))]
        if op in ("c", "r", "u"):
            after = value.get("after")
            if not isinstance(after, dict):
                raise bad_input("no 'after' image")
            return [t.WriteOp_ReplaceOne(t.ReplaceOne(ns, f, doc({"_id": key, **after}), True))]
        raise Err(t.TransformError(t.ErrorKind.UNSUPPORTED, f"op {op!r} is not handled"))
