// The customers example (examples/customers/README.md) in C.
//
// `inventory.customers` change events to documents
// `{_id, name, email, balance: Decimal128, isVip}` in `customers`.
// Bindings: gen/transform.{c,h} (wit-bindgen c; scripts/regen-c-bindings).
// Build: see scripts/build-guests (clang-19 --target=wasm32-wasi, wasm-tools component new).

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "transform.h"

// `balance` is numeric(10,2): its scale when the record carries no schema.
#define BALANCE_SCALE 2
#define COLLECTION "customers"

// A growable output buffer; `ok` turns false when malloc fails.
typedef struct {
    char *p;
    size_t len, cap;
    bool ok;
} buf;

static void put(buf *b, const char *s, size_t n) {
    if (!b->ok) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = (b->len + n + 1) * 2;
        char *p = realloc(b->p, cap);
        if (!p) { b->ok = false; return; }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

static void puts_(buf *b, const char *s) { put(b, s, strlen(s)); }

// A token's raw bytes (strings without their quotes, escapes kept).
static void put_tok(buf *b, const jdoc *d, int i) {
    put(b, d->text + d->tok[i].start, d->tok[i].end - d->tok[i].start);
}

typedef struct {
    smt_transform_types_error_kind_t kind;
    const char *message;
} failure;

#define FAIL(k, m) ((failure){SMT_TRANSFORM_TYPES_ERROR_KIND_##k, (m)})
static const failure OK = {0, NULL};

// Kafka Connect's JSON converter with schemas: the payload (and the schema); without: the document.
static int unwrap(const jdoc *d, int i, int *schema) {
    int s = json_get(d, i, "schema"), p = json_get(d, i, "payload");
    if (s >= 0 && p >= 0 && json_length(d, i) == 2) {
        if (schema) *schema = s;
        return p;
    }
    if (schema) *schema = -1;
    return i;
}

// The schema of field `name` in the struct schema `s`, or -1.
static int field_schema(const jdoc *d, int s, const char *name) {
    int fields = json_get(d, s, "fields");
    if (fields < 0 || d->tok[fields].type != J_ARRAY) return -1;
    for (int f = fields + 1; f < d->tok[fields].next; f = d->tok[f].next)
        if (json_is(d, json_get(d, f, "field"), name)) return f;
    return -1;
}

static int b64_value(char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

// Connect Decimal: base64 of the unscaled big-endian two's-complement integer
// (up to 16 bytes here: numeric(38) and below).
static bool put_decimal(buf *b, const char *s, size_t n, int scale) {
    unsigned char bytes[16];
    size_t count = 0;
    if (n % 4 != 0) return false;
    for (size_t i = 0; i < n; i += 4) {
        int v[4], pad = 0;
        for (int k = 0; k < 4; k++) {
            v[k] = b64_value(s[i + k]);
            if (s[i + k] == '=' && i + 4 == n && k >= 2) { v[k] = 0; pad++; }
            else if (v[k] < 0 || pad) return false;
        }
        unsigned triple = (unsigned)v[0] << 18 | (unsigned)v[1] << 12 | (unsigned)v[2] << 6 | (unsigned)v[3];
        for (int k = 0; k < 3 - pad; k++) {
            if (count == sizeof bytes) return false;
            bytes[count++] = (unsigned char)(triple >> (16 - 8 * k));
        }
    }
    __int128 value = count && (bytes[0] & 0x80) ? -1 : 0;
    for (size_t i = 0; i < count; i++) value = value * 256 + bytes[i];
    unsigned __int128 mag = value < 0 ? -(unsigned __int128)value : (unsigned __int128)value;
    char digits[48];
    int len = 0;
    do {
        digits[len++] = (char)('0' + (int)(mag % 10));
        mag /= 10;
    } while (mag);
    while (len <= scale) digits[len++] = '0';
    puts_(b, "{\"$numberDecimal\":\"");
    if (value < 0) puts_(b, "-");
    for (int i = len - 1; i >= 0; i--) {
        put(b, &digits[i], 1);
        if (i == scale && scale > 0) puts_(b, ".");
    }
    puts_(b, "\"}");
    return true;
}

static bool is_integer(const jdoc *d, int i) {
    if (i < 0 || d->tok[i].type != J_NUMBER) return false;
    for (size_t k = d->tok[i].start; k < d->tok[i].end; k++)
        if (strchr(".eE", d->text[k])) return false;
    return true;
}

// The replacement document of a create, read or update.
static failure put_document(buf *b, const jdoc *d, int after, int schema, const jdoc *key, int id) {
    int first = json_get(d, after, "first_name"), last = json_get(d, after, "last_name");
    int email = json_get(d, after, "email"), balance = json_get(d, after, "balance");
    int vip = json_get(d, after, "vip");
    if (first < 0 || d->tok[first].type != J_STRING) return FAIL(BAD_INPUT, "'first_name' must be a string");
    if (last < 0 || d->tok[last].type != J_STRING) return FAIL(BAD_INPUT, "'last_name' must be a string");
    if (email < 0 || d->tok[email].type != J_STRING) return FAIL(BAD_INPUT, "'email' must be a string");
    if (vip < 0 || (d->tok[vip].type != J_TRUE && d->tok[vip].type != J_FALSE))
        return FAIL(BAD_INPUT, "'vip' must be a boolean");
    puts_(b, "{\"_id\":");
    put_tok(b, key, id);
    puts_(b, ",\"name\":\"");
    put_tok(b, d, first);
    puts_(b, " ");
    put_tok(b, d, last);
    puts_(b, "\",\"email\":\"");
    put_tok(b, d, email);
    puts_(b, "\",\"balance\":");
    if (balance < 0 || d->tok[balance].type == J_NULL) {
        puts_(b, "null");
    } else {
        int scale = BALANCE_SCALE;
        int param = json_get(d, json_get(d, field_schema(d, field_schema(d, schema, "after"), "balance"), "parameters"), "scale");
        if (param >= 0 && d->tok[param].type == J_STRING) scale = atoi(d->text + d->tok[param].start);
        if (d->tok[balance].type != J_STRING || scale < 0 || scale > 38 ||
            !put_decimal(b, d->text + d->tok[balance].start, d->tok[balance].end - d->tok[balance].start, scale))
            return FAIL(BAD_INPUT, "'balance' must be a decimal");
    }
    puts_(b, ",\"isVip\":");
    put_tok(b, d, vip);
    puts_(b, "}");
    return OK;
}

static void set_doc(smt_transform_types_document_t *doc, buf *b) {
    doc->tag = SMT_TRANSFORM_TYPES_DOCUMENT_JSON;
    doc->val.json = (transform_string_t){(uint8_t *)b->p, b->len};
    *b = (buf){NULL, 0, 0, true};
}

static failure map(transform_message_t *msg, transform_list_write_op_t *ret) {
    ret->ptr = NULL;
    ret->len = 0;
    if (!msg->value.is_some || msg->value.val.len == 0) return OK; // a tombstone
    jdoc v = {0}, k = {0};
    failure f = OK;
    buf filter = {NULL, 0, 0, true}, replacement = {NULL, 0, 0, true};
    if (!json_parse((const char *)msg->value.val.ptr, msg->value.val.len, &v)) return FAIL(BAD_INPUT, "the value is not JSON");
    if (msg->key.is_some && !json_parse((const char *)msg->key.val.ptr, msg->key.val.len, &k)) {
        f = FAIL(BAD_INPUT, "the key is not JSON");
        goto done;
    }
    int schema, value = unwrap(&v, 0, &schema);
    if (v.tok[value].type == J_NULL) goto done;
    if (v.tok[value].type != J_OBJECT) { f = FAIL(BAD_INPUT, "the value is not a Debezium envelope"); goto done; }
    int op = json_get(&v, value, "op");
    char code = 0;
    const char *codes = "rcudtm";
    if (op >= 0 && v.tok[op].type == J_STRING && v.tok[op].end - v.tok[op].start == 1) code = v.text[v.tok[op].start];
    if (!code || !strchr(codes, code)) { f = FAIL(BAD_INPUT, "unknown op"); goto done; }
    if (!json_is(&v, json_get(&v, json_get(&v, value, "source"), "table"), "customers")) {
        f = FAIL(UNSUPPORTED, "the table is not customers");
        goto done;
    }
    int id = k.tok ? json_get(&k, unwrap(&k, 0, NULL), "id") : -1;
    if (!is_integer(&k, id)) { f = FAIL(BAD_INPUT, "the key has no integer 'id'"); goto done; }
    puts_(&filter, "{\"_id\":");
    put_tok(&filter, &k, id);
    puts_(&filter, "}");
    if (code == 't' || code == 'm') { f = FAIL(UNSUPPORTED, "truncate and message events are not handled"); goto done; }
    if (code != 'd') {
        int after = json_get(&v, value, "after");
        if (after < 0 || v.tok[after].type != J_OBJECT) { f = FAIL(BAD_INPUT, "no 'after' image"); goto done; }
        f = put_document(&replacement, &v, after, schema, &k, id);
        if (f.message) goto done;
    }
    transform_write_op_t *out = calloc(1, sizeof *out);
    if (!out || !filter.ok || !replacement.ok) { free(out); f = FAIL(INTERNAL, "out of memory"); goto done; }
    if (code == 'd') {
        out->tag = SMT_TRANSFORM_TYPES_WRITE_OP_DELETE_ONE;
        transform_string_dup(&out->val.delete_one.ns.collection, COLLECTION);
        set_doc(&out->val.delete_one.filter, &filter);
    } else {
        out->tag = SMT_TRANSFORM_TYPES_WRITE_OP_REPLACE_ONE;
        transform_string_dup(&out->val.replace_one.ns.collection, COLLECTION);
        set_doc(&out->val.replace_one.filter, &filter);
        set_doc(&out->val.replace_one.replacement, &replacement);
        out->val.replace_one.upsert = true;
    }
    ret->ptr = out;
    ret->len = 1;
done:
    free(filter.p);
    free(replacement.p);
    json_free(&v);
    json_free(&k);
    return f;
}

bool exports_transform_init(transform_string_t *config, transform_string_t *err) {
    (void)err;
    transform_string_free(config);
    return true;
}

bool exports_transform_transform(transform_message_t *msg, transform_list_write_op_t *ret, transform_transform_error_t *err) {
    failure f = map(msg, ret);
    transform_message_free(msg);
    if (!f.message) return true;
    err->kind = f.kind;
    transform_string_dup(&err->message, f.message);
    return false;
}
