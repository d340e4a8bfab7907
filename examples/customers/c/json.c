#include "json.h"

#include <stdlib.h>
#include <string.h>

// Containers nested deeper than this are refused (serde_json's limit, so that
// every example implementation agrees).
#define MAX_DEPTH 127

typedef struct {
    const unsigned char *s;
    size_t len, pos;
    jtok *tok;
    int count, cap;
} parser;

static void skip_ws(parser *p) {
    while (p->pos < p->len && (p->s[p->pos] == ' ' || p->s[p->pos] == '\t' || p->s[p->pos] == '\n' || p->s[p->pos] == '\r'))
        p->pos++;
}

static int push(parser *p, jtype type, size_t start) {
    if (p->count == p->cap) {
        int cap = p->cap ? p->cap * 2 : 64;
        jtok *t = realloc(p->tok, (size_t)cap * sizeof(jtok));
        if (!t) return -1;
        p->tok = t;
        p->cap = cap;
    }
    p->tok[p->count] = (jtok){type, start, start, -1};
    return p->count++;
}

static bool literal(parser *p, const char *word) {
    size_t n = strlen(word);
    if (p->len - p->pos < n || memcmp(p->s + p->pos, word, n) != 0) return false;
    p->pos += n;
    return true;
}

static bool digits(parser *p) {
    size_t start = p->pos;
    while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9') p->pos++;
    return p->pos > start;
}

static bool number(parser *p) {
    if (p->s[p->pos] == '-') p->pos++;
    if (p->pos < p->len && p->s[p->pos] == '0') p->pos++;
    else if (!digits(p)) return false;
    if (p->pos < p->len && p->s[p->pos] == '.') {
        p->pos++;
        if (!digits(p)) return false;
    }
    if (p->pos < p->len && (p->s[p->pos] == 'e' || p->s[p->pos] == 'E')) {
        p->pos++;
        if (p->pos < p->len && (p->s[p->pos] == '+' || p->s[p->pos] == '-')) p->pos++;
        if (!digits(p)) return false;
    }
    return true;
}

static bool is_hex(unsigned char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

// After the opening quote; stops after the closing one.
static bool string(parser *p) {
    while (p->pos < p->len) {
        unsigned char c = p->s[p->pos++];
        if (c == '"') return true;
        if (c < 0x20) return false;
        if (c == '\\') {
            if (p->pos >= p->len) return false;
            c = p->s[p->pos++];
            if (c == 'u') {
                if (p->len - p->pos < 4) return false;
                for (int i = 0; i < 4; i++)
                    if (!is_hex(p->s[p->pos++])) return false;
            } else if (!strchr("\"\\/bfnrt", c)) {
                return false;
            }
        }
    }
    return false;
}

static bool value(parser *p, int depth) {
    skip_ws(p);
    if (p->pos >= p->len) return false;
    unsigned char c = p->s[p->pos];
    int t;
    switch (c) {
    case '{':
    case '[': {
        if (depth >= MAX_DEPTH) return false;
        t = push(p, c == '{' ? J_OBJECT : J_ARRAY, p->pos);
        if (t < 0) return false;
        p->pos++;
        skip_ws(p);
        char close = c == '{' ? '}' : ']';
        if (p->pos < p->len && p->s[p->pos] == close) {
            p->pos++;
        } else {
            for (;;) {
                if (c == '{') {
                    skip_ws(p);
                    if (p->pos >= p->len || p->s[p->pos] != '"') return false;
                    int k = push(p, J_STRING, ++p->pos);
                    if (k < 0 || !string(p)) return false;
                    p->tok[k].end = p->pos - 1;
                    p->tok[k].next = p->count;
                    skip_ws(p);
                    if (p->pos >= p->len || p->s[p->pos++] != ':') return false;
                }
                if (!value(p, depth + 1)) return false;
                skip_ws(p);
                if (p->pos >= p->len) return false;
                if (p->s[p->pos] == ',') { p->pos++; continue; }
                if (p->s[p->pos] == close) { p->pos++; break; }
                return false;
            }
        }
        break;
    }
    case '"':
        t = push(p, J_STRING, ++p->pos);
        if (t < 0 || !string(p)) return false;
        p->tok[t].end = p->pos - 1;
        p->tok[t].next = p->count;
        return true;
    case 't': case 'f': case 'n':
        t = push(p, c == 't' ? J_TRUE : c == 'f' ? J_FALSE : J_NULL, p->pos);
        if (t < 0 || !literal(p, c == 't' ? "true" : c == 'f' ? "false" : "null")) return false;
        break;
    default:
        t = push(p, J_NUMBER, p->pos);
        if (t < 0 || !number(p)) return false;
    }
    p->tok[t].end = p->pos;
    p->tok[t].next = p->count;
    return true;
}

static bool valid_utf8(const unsigned char *s, size_t len) {
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        int n = c < 0x80 ? 0 : (c & 0xE0) == 0xC0 ? 1 : (c & 0xF0) == 0xE0 ? 2 : (c & 0xF8) == 0xF0 ? 3 : -1;
        if (n < 0 || (n == 1 && c < 0xC2) || (n == 3 && c > 0xF4) || (n > 0 && len - i <= (size_t)n)) return false;
        unsigned cp = n == 0 ? c : c & (0x3F >> n);
        for (int k = 1; k <= n; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((n == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) || (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)))
            return false;
        i += (size_t)n + 1;
    }
    return true;
}

bool json_parse(const char *text, size_t len, jdoc *doc) {
    parser p = {(const unsigned char *)text, len, 0, NULL, 0, 0};
    bool ok = valid_utf8(p.s, len) && value(&p, 0);
    if (ok) {
        skip_ws(&p);
        ok = p.pos == len;
    }
    if (!ok) {
        free(p.tok);
        return false;
    }
    *doc = (jdoc){text, p.tok, p.count};
    return true;
}

void json_free(jdoc *doc) {
    free(doc->tok);
    doc->tok = NULL;
}

bool json_is(const jdoc *doc, int i, const char *s) {
    if (i < 0 || doc->tok[i].type != J_STRING) return false;
    size_t n = doc->tok[i].end - doc->tok[i].start;
    return strlen(s) == n && memcmp(doc->text + doc->tok[i].start, s, n) == 0;
}

int json_get(const jdoc *doc, int obj, const char *key) {
    if (obj < 0 || doc->tok[obj].type != J_OBJECT) return -1;
    for (int k = obj + 1; k < doc->tok[obj].next; k = doc->tok[k + 1].next)
        if (json_is(doc, k, key)) return k + 1;
    return -1;
}

int json_length(const jdoc *doc, int i) {
    if (i < 0) return 0;
    int n = 0;
    if (doc->tok[i].type == J_OBJECT)
        for (int k = i + 1; k < doc->tok[i].next; k = doc->tok[k + 1].next) n++;
    else if (doc->tok[i].type == J_ARRAY)
        for (int k = i + 1; k < doc->tok[i].next; k = doc->tok[k].next) n++;
    return n;
}
