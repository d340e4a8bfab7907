"""Produces the same Debezium-shaped change events to a topic in one format, framed by Confluent's
own serializers against the schema registry: `json` (the JSON converter with schemas.enable=true,
no registry), `avro` (AvroSerializer), `json-schema` (JSONSerializer), `protobuf` (ProtobufSerializer)
or `json-no-null-lists` (`json` with Protobuf's semantics: a repeated field is never null).

Usage: produce.py BROKERS REGISTRY_URL FORMAT TOPIC      prints the number of records produced
"""
import base64
import decimal
import faulthandler
import json
import os
import sys
import time

from confluent_kafka import Producer
from confluent_kafka.serialization import MessageField, SerializationContext

brokers, registry, fmt, topic = sys.argv[1:5]
NS = topic
T0 = time.monotonic()

# Nothing waits forever: the caller kills this process at its deadline; shortly before, the stacks of
# every thread go to stderr (where it stood), and each step is announced before it is taken.
faulthandler.dump_traceback_later(int(os.environ.get("SMT_PRODUCE_TRACEBACK_AFTER_S", "110")), exit=True)


def step(what):
    print("produce.py [%5.1fs] %s" % (time.monotonic() - T0, what), file=sys.stderr, flush=True)


# every registry request: 10 s at most, 2 retries (the client's default is no timeout at all)
REGISTRY_CONF = {"url": registry, "timeout": 10, "max.retries": 2, "retries.wait.ms": 200,
                 "retries.max.wait.ms": 2000}
# Subjects named {topic}-key / {topic}-value directly. The default strategy of confluent-kafka 2.16,
# ASSOCIATED, first asks GET /associations/resources/-/{topic}, an API Apicurio does not have; the
# 404 it then answers from its no-route path is now and then logged but never written to a kept-alive
# connection (about 1 in 400 on Apicurio 3.3.3), and the client waited forever: the hang this script
# had (docs/schema-registry.md).
SERIALIZER_CONF = {"subject.name.strategy.type": "TOPIC"}

ROWS = {
    1: {"id": 1, "name": "Sally", "balance": "1234.50", "created_at": "2024-01-02T03:04:05.678901Z", "day": 19724,
        "score": 2.718281828459045, "tags": ["a", "b c"]},
    2: {"id": 2, "name": "George", "balance": None, "created_at": "1970-01-01T00:00:00Z", "day": None,
        "score": None, "tags": None},
    3: {"id": 3, "name": "Edward", "balance": "0.01", "created_at": "2024-03-04T12:00:00Z", "day": 0,
        "score": -1.5, "tags": []},
}


def changed(row, **kw):
    r = dict(row)
    r.update(kw)
    return r


SOURCE = {"version": "3.6.3.Final", "connector": "postgresql", "name": "t", "db": "postgres", "schema": "inv",
          "table": "customers"}
EVENTS = [  # (key id, op, before, after); op None: tombstone
    (1, "r", None, ROWS[1]),
    (2, "c", None, ROWS[2]),
    (3, "c", None, ROWS[3]),
    (1, "u", None, changed(ROWS[1], name="Sally T.", balance="-0.01", tags=["x"])),
    (2, "u", None, changed(ROWS[2], name="__debezium_unavailable_value", score=2.5)),
    (3, "d", ROWS[3], None),
    (3, None, None, None),
]


def unscaled(text):
    if text is None:
        return None
    n = int(decimal.Decimal(text).scaleb(2))
    length = max(1, (n + (n < 0)).bit_length() // 8 + 1)
    return n.to_bytes(length, "big", signed=True)


# ------------------------------------------------------------------ Connect schema (JSON converter)
def cfield(t, field, optional=False, **kw):
    d = {"type": t, "optional": optional}
    d.update(kw)
    d["field"] = field
    return d


VALUE_FIELDS = [
    cfield("int32", "id"),
    cfield("string", "name"),
    cfield("bytes", "balance", True, name="org.apache.kafka.connect.data.Decimal", version=1,
           parameters={"scale": "2", "connect.decimal.precision": "10"}),
    cfield("string", "created_at", name="io.debezium.time.ZonedTimestamp", version=1),
    cfield("int32", "day", True, name="io.debezium.time.Date", version=1),
    cfield("double", "score", True),
    {"type": "array", "items": {"type": "string", "optional": False}, "optional": True, "field": "tags"},
]
SOURCE_FIELDS = [cfield("string", k) for k in SOURCE]
CONNECT_VALUE = {"type": "struct", "fields": [
    {"type": "struct", "fields": VALUE_FIELDS, "optional": True, "name": NS + ".Value", "field": "before"},
    {"type": "struct", "fields": VALUE_FIELDS, "optional": True, "name": NS + ".Value", "field": "after"},
    {"type": "struct", "fields": SOURCE_FIELDS, "optional": False, "name": "io.debezium.connector.postgresql.Source",
     "field": "source"},
    cfield("string", "op"),
    cfield("int64", "ts_ms", True),
], "optional": False, "name": NS + ".Envelope", "version": 2}
CONNECT_KEY = {"type": "struct", "fields": [cfield("int32", "id")], "optional": False, "name": NS + ".Key"}


def json_row(r):
    if r is None:
        return None
    out = dict(r)
    b = unscaled(r["balance"])
    out["balance"] = base64.b64encode(b).decode() if b is not None else None
    return out


# ------------------------------------------------------------------ Avro (as Apicurio's converter writes it)
AVRO_VALUE_FIELDS = [
    {"name": "id", "type": "int"},
    {"name": "name", "type": "string"},
    {"name": "balance", "type": ["null", {"type": "bytes", "scale": 2, "precision": 10, "connect.version": 1,
                                          "connect.parameters": {"scale": "2", "connect.decimal.precision": "10"},
                                          "connect.name": "org.apache.kafka.connect.data.Decimal",
                                          "logicalType": "decimal"}], "default": None},
    {"name": "created_at", "type": {"type": "string", "connect.version": 1,
                                    "connect.name": "io.debezium.time.ZonedTimestamp"}},
    {"name": "day", "type": ["null", {"type": "int", "connect.version": 1, "connect.name": "io.debezium.time.Date"}],
     "default": None},
    {"name": "score", "type": ["null", "double"], "default": None},
    {"name": "tags", "type": ["null", {"type": "array", "items": "string"}], "default": None},
]
AVRO_VALUE = {"type": "record", "name": "Envelope", "namespace": NS, "fields": [
    {"name": "before", "type": ["null", {"type": "record", "name": "Value", "fields": AVRO_VALUE_FIELDS,
                                         "connect.name": NS + ".Value"}], "default": None},
    {"name": "after", "type": ["null", "Value"], "default": None},
    {"name": "source", "type": {"type": "record", "name": "Source", "namespace": "io.debezium.connector.postgresql",
                                "fields": [{"name": k, "type": "string"} for k in SOURCE],
                                "connect.name": "io.debezium.connector.postgresql.Source"}},
    {"name": "op", "type": "string"},
    {"name": "ts_ms", "type": ["null", "long"], "default": None},
], "connect.version": 2, "connect.name": NS + ".Envelope"}
AVRO_KEY = {"type": "record", "name": "Key", "namespace": NS, "fields": [{"name": "id", "type": "int"}],
            "connect.name": NS + ".Key"}


def avro_row(r):
    if r is None:
        return None
    out = dict(r)
    out["balance"] = decimal.Decimal(r["balance"]) if r["balance"] is not None else None
    return out


# ------------------------------------------------------------------ JSON Schema (Confluent's annotations)
def opt(s, index):
    return {"oneOf": [{"type": "null"}, s], "connect.index": index}


def idx(s, index):
    s = dict(s)
    s["connect.index"] = index
    return s


JS_VALUE = {"type": "object", "title": NS + ".Value", "properties": {
    "id": idx({"type": "integer", "connect.type": "int32"}, 0),
    "name": idx({"type": "string"}, 1),
    "balance": opt({"type": "string", "connect.type": "bytes", "connect.name": "org.apache.kafka.connect.data.Decimal",
                    "connect.version": 1, "connect.parameters": {"scale": "2", "connect.decimal.precision": "10"}}, 2),
    "created_at": idx({"type": "string", "connect.name": "io.debezium.time.ZonedTimestamp", "connect.version": 1}, 3),
    "day": opt({"type": "integer", "connect.type": "int32", "connect.name": "io.debezium.time.Date",
                "connect.version": 1}, 4),
    "score": opt({"type": "number", "connect.type": "float64"}, 5),
    "tags": opt({"type": "array", "items": {"type": "string"}}, 6),
}, "required": ["id", "name", "created_at"]}
JS_ENVELOPE = {"type": "object", "title": NS + ".Envelope", "connect.version": 2, "properties": {
    "before": opt(JS_VALUE, 0),
    "after": opt(JS_VALUE, 1),
    "source": idx({"type": "object", "title": "io.debezium.connector.postgresql.Source",
                   "properties": {k: idx({"type": "string"}, i) for i, k in enumerate(SOURCE)},
                   "required": list(SOURCE)}, 2),
    "op": idx({"type": "string"}, 3),
    "ts_ms": opt({"type": "integer", "connect.type": "int64"}, 4),
}, "required": ["source", "op"]}
JS_KEY = {"type": "object", "title": NS + ".Key",
          "properties": {"id": {"type": "integer", "connect.type": "int32", "connect.index": 0}}, "required": ["id"]}


# ------------------------------------------------------------------ Protobuf (as Confluent's ProtobufConverter writes it)
# One file, so the key's message is not the first one: its records carry a real message index.
# Decimal as confluent.type.Decimal with precision/scale in (confluent.field_meta).params, Debezium's
# semantic types named through the same params (connect.name / connect.version), nullable scalars as
# proto3 `optional`. A repeated field has no null in Protobuf: None lists go out empty.
PROTO_PKG = ".".join("".join(c if c.isalnum() else "_" for c in part) for part in NS.split("."))


def proto_messages():
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
    from confluent_kafka.schema_registry.confluent import meta_pb2  # noqa: F401 (registers the option)
    from confluent_kafka.schema_registry.confluent.type import decimal_pb2

    F = descriptor_pb2.FieldDescriptorProto
    fd = descriptor_pb2.FileDescriptorProto(
        name=PROTO_PKG.replace(".", "/") + "/envelope.proto", package=PROTO_PKG, syntax="proto3",
        dependency=["confluent/meta.proto", "confluent/type/decimal.proto"])

    def message(name):
        return fd.message_type.add(name=name)

    def field(m, name, number, t, type_name=None, optional=False, repeated=False, params=None):
        f = m.field.add(name=name, number=number, type=t,
                        label=F.LABEL_REPEATED if repeated else F.LABEL_OPTIONAL)
        if type_name:
            f.type_name = type_name
        if optional:  # proto3 `optional`: presence through a synthetic oneof
            f.proto3_optional = True
            f.oneof_index = len(m.oneof_decl)
            m.oneof_decl.add(name="_" + name)
        if params:
            meta = descriptor_pb2.FieldOptions()
            meta.Extensions[meta_pb2.field_meta].params.update(params)
            f.options.CopyFrom(meta)

    env = message("Envelope")
    field(env, "before", 1, F.TYPE_MESSAGE, "." + PROTO_PKG + ".Value")
    field(env, "after", 2, F.TYPE_MESSAGE, "." + PROTO_PKG + ".Value")
    field(env, "source", 3, F.TYPE_MESSAGE, "." + PROTO_PKG + ".Source")
    field(env, "op", 4, F.TYPE_STRING)
    field(env, "ts_ms", 5, F.TYPE_INT64, optional=True)
    val = message("Value")
    field(val, "id", 1, F.TYPE_INT32)
    field(val, "name", 2, F.TYPE_STRING)
    field(val, "balance", 3, F.TYPE_MESSAGE, ".confluent.type.Decimal", params={"precision": "10", "scale": "2"})
    field(val, "created_at", 4, F.TYPE_STRING,
          params={"connect.name": "io.debezium.time.ZonedTimestamp", "connect.version": "1"})
    field(val, "day", 5, F.TYPE_INT32, optional=True,
          params={"connect.name": "io.debezium.time.Date", "connect.version": "1"})
    field(val, "score", 6, F.TYPE_DOUBLE, optional=True)
    field(val, "tags", 7, F.TYPE_STRING, repeated=True)
    src = message("Source")
    for i, k in enumerate(SOURCE):
        field(src, k, i + 1, F.TYPE_STRING)
    key = message("Key")
    field(key, "id", 1, F.TYPE_INT32)

    pool = descriptor_pool.Default()
    pool.Add(fd)
    get = lambda n: message_factory.GetMessageClass(pool.FindMessageTypeByName(PROTO_PKG + "." + n))  # noqa: E731
    return get("Envelope"), get("Value"), get("Key"), decimal_pb2.Decimal


def proto_value(Envelope, Value, Decimal, e):
    def row(r):
        if r is None:
            return None
        v = Value(id=r["id"], name=r["name"], created_at=r["created_at"], tags=r["tags"] or [])
        b = unscaled(r["balance"])
        if b is not None:
            v.balance.CopyFrom(Decimal(value=b, precision=10, scale=2))
        for k in ("day", "score"):
            if r[k] is not None:
                setattr(v, k, r[k])
        return v
    m = Envelope(op=e["op"], ts_ms=e["ts_ms"])
    for k, v in e["source"].items():
        setattr(m.source, k, v)
    for k in ("before", "after"):
        if e[k] is not None:
            getattr(m, k).CopyFrom(row(e[k]))
    return m


def envelope(op, before, after, row):
    return {"before": row(before), "after": row(after), "source": SOURCE, "op": op, "ts_ms": 1700000000000}


p = Producer({"bootstrap.servers": brokers, "message.timeout.ms": 30000, "socket.timeout.ms": 10000})
if fmt in ("json", "json-no-null-lists"):
    if fmt == "json-no-null-lists":
        json_row_plain = json_row

        def json_row(r):
            r = json_row_plain(r)
            if r is not None and r["tags"] is None:
                r["tags"] = []
            return r

    def key_bytes(k):
        return json.dumps({"schema": CONNECT_KEY, "payload": {"id": k}}).encode()

    def value_bytes(op, b, a):
        return json.dumps({"schema": CONNECT_VALUE, "payload": envelope(op, b, a, json_row)}).encode()
else:
    from confluent_kafka.schema_registry import SchemaRegistryClient
    sr = SchemaRegistryClient(REGISTRY_CONF)
    if fmt == "avro":
        from confluent_kafka.schema_registry.avro import AvroSerializer
        ks = AvroSerializer(sr, json.dumps(AVRO_KEY), conf=SERIALIZER_CONF)
        vs = AvroSerializer(sr, json.dumps(AVRO_VALUE), conf=SERIALIZER_CONF)
        row = avro_row
        key_obj, value_obj = (lambda k: {"id": k}), (lambda e: e)
    elif fmt == "json-schema":
        from confluent_kafka.schema_registry.json_schema import JSONSerializer
        ks = JSONSerializer(json.dumps(JS_KEY), sr, conf=SERIALIZER_CONF)
        vs = JSONSerializer(json.dumps(JS_ENVELOPE), sr, conf=SERIALIZER_CONF)
        row = json_row
        key_obj, value_obj = (lambda k: {"id": k}), (lambda e: e)
    elif fmt == "protobuf":
        from confluent_kafka.schema_registry.protobuf import ProtobufSerializer
        PEnvelope, PValue, PKey, PDecimal = proto_messages()
        ks = ProtobufSerializer(PKey, sr, conf=SERIALIZER_CONF)
        vs = ProtobufSerializer(PEnvelope, sr, conf=SERIALIZER_CONF)
        row = lambda r: r  # noqa: E731
        key_obj = lambda k: PKey(id=k)  # noqa: E731
        value_obj = lambda e: proto_value(PEnvelope, PValue, PDecimal, e)  # noqa: E731
    else:
        raise SystemExit("unknown format " + fmt)

    def key_bytes(k):
        step("serializing a key (the first registers %s-key at %s)" % (topic, registry))
        return ks(key_obj(k), SerializationContext(topic, MessageField.KEY))

    def value_bytes(op, b, a):
        step("serializing a value (the first registers %s-value at %s)" % (topic, registry))
        return vs(value_obj(envelope(op, b, a, row)), SerializationContext(topic, MessageField.VALUE))

step("producing %d records to %s at %s" % (len(EVENTS), topic, brokers))
n = 0
for k, op, before, after in EVENTS:
    value = None if op is None else value_bytes(op, before, after)
    p.produce(topic, key=key_bytes(k), value=value, partition=0)
    n += 1
step("waiting for Kafka to acknowledge the records (flush, 60 s at most)")
left = p.flush(60)
if left:
    raise SystemExit("%d records not delivered" % left)
step("done")
print(n)
