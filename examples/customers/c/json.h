// A small validating JSON parser for the C guest: the document becomes a flat
// array of tokens (like jsmn) that point into the input; nothing is copied.
// Strings keep their JSON escapes, so they can be copied into JSON output as
// they are. The input must be valid UTF-8; nesting is limited to 127 levels.
#ifndef CUSTOMERS_JSON_H
#define CUSTOMERS_JSON_H

#include <stdbool.h>
#include <stddef.h>

typedef enum { J_NULL, J_FALSE, J_TRUE, J_NUMBER, J_STRING, J_ARRAY, J_OBJECT } jtype;

typedef struct {
    jtype type;
    size_t start, end; // the token's bytes; for strings, between the quotes
    int next;          // the index of the token after this one's subtree
} jtok;

typedef struct {
    const char *text;
    jtok *tok;
    int count;
} jdoc;

// Parses `len` bytes; false (and no allocation kept) if they are not one JSON value.
bool json_parse(const char *text, size_t len, jdoc *doc);
void json_free(jdoc *doc);

// The value of `key` in the object at `obj`, or -1. Keys are compared as raw bytes.
int json_get(const jdoc *doc, int obj, const char *key);
// The number of members (objects) or elements (arrays) of the value at `i`.
int json_length(const jdoc *doc, int i);
// Whether the string token at `i` is exactly `s` (raw bytes).
bool json_is(const jdoc *doc, int i, const char *s);

#endif
