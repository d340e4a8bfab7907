"""The customers example (examples/customers/README.md) in Python.

`inventory.customers` change events to documents
`{_id, name, email, balance: Decimal128, isVip}` in `customers`.
Build: componentize-py -d ../../../wit -w transform componentize customers -o customers.wasm
"""

import base64
import json
import re

import wit_world
from componentize_py_types import Err
from wit_world.imports import types as t

# `balance` is numeric(10,2): its scale when the record carries no schema.
BALANCE_SCALE = 2
NS = t.Namespace(database=None, collection="customers")
MAX_DEPTH = 127  # as serde_json (the Rust implementation): all four agree
JSON_NESTING = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def fail(kind, message):
    return Err(t.TransformError(kind, message))


def bad_input(message):
    return fail(t.ErrorKind.BAD_INPUT, message)


def unwrap(doc):
    """Kafka Connect's JSON converter with schemas: (payload, schema); without: (doc, None)."""
    if isinstance(doc, dict) and doc.keys() == {"schema", "payload"}:
        return doc["payload"], doc["schema"]
    return doc, None


def too_deep(data):
    """CPython's JSON parser recurses once per nesting level and, in Wasm, runs
    out of stack (a trap, not an exception) before its recursion limit: refuse
    deeply nested documents before parsing them."""
    if data.count(b"[") + data.count(b"{") <= MAX_DEPTH:
        return False
    depth = 0
    for m in JSON_NESTING.finditer(data):
        c = m.group()[0]
        if c in b"[{":
            depth += 1
            if depth > MAX_DEPTH:
                return True
        elif c in b"]}":
            depth -= 1
    return False


def field_schema(schema, *path):
    for name in path:
        fields = (schema or {}).get("fields") or []
        schema = next((f for f in fields if f.get("field") == name), None)
    return schema


def decimal(b64, scale):
    """Connect Decimal: base64 of the unscaled big-endian two's-complement integer."""
    n = int.from_bytes(base64.b64decode(b64, validate=True), "big", signed=True)
    digits = str(abs(n)).rjust(scale + 1, "0")
    text = digits[:-scale] + "." + digits[-scale:] if scale > 0 else digits
    return {"$numberDecimal": ("-" if n < 0 else "") + text}


def text(row, field):
    value = row.get(field)
    if not isinstance(value, str):
        raise bad_input(f"'{field}' must be a string")
    return value


def to_document(_id, after, schema):
    balance = after.get("balance")
    if balance is not None:
        scale_param = ((field_schema(schema, "after", "balance") or {}).get("parameters") or {}).get("scale")
        try:
            balance = decimal(balance, int(scale_param) if scale_param else BALANCE_SCALE)
        except (TypeError, ValueError):
            raise bad_input("'balance' must be a decimal")
    vip = after.get("vip")
    if not isinstance(vip, bool):
        raise bad_input("'vip' must be a boolean")
    return {
        "_id": _id,
        "name": f"{text(after, 'first_name')} {text(after, 'last_name')}",
        "email": text(after, "email"),
        "balance": balance,
        "isVip": vip,
    }


def doc(value):
    return t.Document_Json(json.dumps(value, separators=(",", ":")))


class WitWorld(wit_world.WitWorld):
    def init(self, config: str) -> None:
        pass

    def transform(self, msg: t.Message) -> list:
        if not msg.value:
            return []  # a tombstone
        if too_deep(msg.value) or (msg.key and too_deep(msg.key)):
            raise bad_input(f"JSON nested deeper than {MAX_DEPTH} levels")
        try:
            value, schema = unwrap(json.loads(msg.value))
            key, _ = unwrap(json.loads(msg.key)) if msg.key else (None, None)
        except ValueError as e:
            raise bad_input(f"not JSON: {e}")
        if value is None:
            return []
        if not isinstance(value, dict):
            raise bad_input("the value is not a Debezium envelope")
        op = value.get("op")
        if op not in ("r", "c", "u", "d", "t", "m"):
            raise bad_input(f"unknown op {op!r}")
        table = (value.get("source") or {}).get("table")
        if table != "customers":
            raise fail(t.ErrorKind.UNSUPPORTED, f"table {table!r} is not customers")
        _id = key.get("id") if isinstance(key, dict) else None
        if not isinstance(_id, int) or isinstance(_id, bool):
            raise bad_input("the key has no integer 'id'")
        if op == "d":
            return [t.WriteOp_DeleteOne(t.Delete(NS, doc({"_id": _id})))]
        if op in ("t", "m"):
            raise fail(t.ErrorKind.UNSUPPORTED, f"op {op!r} is not handled")
        after = value.get("after")
        if not isinstance(after, dict):
            raise bad_input("no 'after' image")
        replacement = to_document(_id, after, schema)
        return [t.WriteOp_ReplaceOne(t.ReplaceOne(NS, doc({"_id": _id}), doc(replacement), True))]
