package smt

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MaxDepth is the deepest JSON nesting ParseJSON accepts (serde_json's
// limit, which every customers example keeps): deeper input is bad-input.
const MaxDepth = 127

// Op is a Debezium operation code.
type Op string

const (
	OpCreate   Op = "c"
	OpRead     Op = "r" // a snapshot read
	OpUpdate   Op = "u"
	OpDelete   Op = "d"
	OpTruncate Op = "t"
	OpMessage  Op = "m"
)

// Object is a decoded JSON object. Numbers are json.Number, so integers stay
// exact and are written back as they came.
type Object = map[string]any

// Event is a Debezium change event: the envelope of a record's value and
// its decoded key, both without the JSON converter's schema wrapper.
type Event struct {
	Op Op
	// Before and After are the row images; nil when absent or null.
	Before, After Object
	// Source is the source block (connector, db, schema, table, ...).
	Source Object
	// Key is the record's key decoded (nil without a key); usually an
	// object of the primary-key columns.
	Key any
	// Schema is the value's Connect schema when the converter sent schemas
	// (schemas.enable=true), else nil; KeySchema the key's.
	Schema, KeySchema Object

	// The value as received, for the ordered views (AfterD, BeforeD).
	value []byte
}

// ParseEvent reads a record as a Debezium change event. It returns nil and
// no error for a tombstone (no value, or a JSON null). A value or key that
// is not UTF-8 JSON, is nested deeper than MaxDepth, or is not an envelope
// with a known op is a bad-input error.
func ParseEvent(msg *Message) (*Event, error) {
	if len(msg.Value) == 0 {
		return nil, nil
	}
	value, schema, err := parseWrapped(msg.Value, "value")
	if err != nil {
		return nil, err
	}
	var key any
	var keySchema Object
	if len(msg.Key) > 0 {
		if key, keySchema, err = parseWrapped(msg.Key, "key"); err != nil {
			return nil, err
		}
	}
	if value == nil {
		return nil, nil
	}
	env, ok := value.(Object)
	if !ok {
		return nil, BadInputf("the value is not a Debezium envelope")
	}
	op, _ := env["op"].(string)
	switch Op(op) {
	case OpCreate, OpRead, OpUpdate, OpDelete, OpTruncate, OpMessage:
	default:
		if env["op"] == nil {
			return nil, BadInputf("no 'op': not a Debezium change event")
		}
		return nil, BadInputf("unknown op %v", env["op"])
	}
	before, _ := env["before"].(Object)
	after, _ := env["after"].(Object)
	source, _ := env["source"].(Object)
	return &Event{Op: Op(op), Before: before, After: after, Source: source,
		Key: key, Schema: schema, KeySchema: keySchema, value: msg.Value}, nil
}

// parseWrapped parses JSON and removes the JSON converter's schema wrapper
// ({"schema", "payload"}, exactly these two keys).
func parseWrapped(data []byte, what string) (any, Object, error) {
	v, err := ParseJSON(data)
	if err != nil {
		return nil, nil, BadInputf("the %s: %v", what, err.(*Error).Message)
	}
	if o, ok := v.(Object); ok && len(o) == 2 {
		payload, hasPayload := o["payload"]
		schema, hasSchema := o["schema"]
		if hasPayload && hasSchema {
			s, _ := schema.(Object)
			return payload, s, nil
		}
	}
	return v, nil, nil
}

// ParseJSON decodes JSON text with numbers as json.Number. Text that is not
// UTF-8, not JSON, or nested deeper than MaxDepth is a bad-input error.
func ParseJSON(data []byte) (any, error) {
	if !utf8.Valid(data) {
		return nil, BadInputf("not UTF-8")
	}
	if tooDeep(data) {
		return nil, BadInputf("JSON nested deeper than %d levels", MaxDepth)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, BadInputf("not JSON: %v", err)
	}
	if dec.More() {
		return nil, BadInputf("not JSON: text after the value")
	}
	return v, nil
}

// tooDeep scans for brackets outside strings.
func tooDeep(data []byte) bool {
	if bytes.Count(data, []byte("["))+bytes.Count(data, []byte("{")) <= MaxDepth {
		return false
	}
	depth, inString, escaped := 0, false, false
	for _, c := range data {
		switch {
		case inString:
			if escaped {
				escaped = false
			} else if c == '\\' {
				escaped = true
			} else if c == '"' {
				inString = false
			}
		case c == '"':
			inString = true
		case c == '[' || c == '{':
			depth++
			if depth > MaxDepth {
				return true
			}
		case c == ']' || c == '}':
			depth--
		}
	}
	return false
}

// Table is source.table ("" when absent).
func (e *Event) Table() string {
	t, _ := e.Source["table"].(string)
	return t
}

// RequireKey is the key as an object; no key, or one that is not an
// object, is a bad-input error.
func (e *Event) RequireKey() (Object, error) {
	k, ok := e.Key.(Object)
	if !ok {
		return nil, BadInputf("the record has no key object")
	}
	return k, nil
}

// RequireAfter is the after image; its absence is a bad-input error.
func (e *Event) RequireAfter() (Object, error) {
	if e.After == nil {
		return nil, BadInputf("no 'after' image")
	}
	return e.After, nil
}

// RequireBefore is the before image; its absence is a bad-input error.
func (e *Event) RequireBefore() (Object, error) {
	if e.Before == nil {
		return nil, BadInputf("no 'before' image")
	}
	return e.Before, nil
}

// FieldSchema is the Connect schema of a field of the value ("after",
// "balance"), nil without schemas or when the path is not in it.
func (e *Event) FieldSchema(path ...string) Object {
	s := e.Schema
	for _, name := range path {
		fields, _ := s["fields"].([]any)
		s = nil
		for _, f := range fields {
			if fo, ok := f.(Object); ok && fo["field"] == name {
				s = fo
				break
			}
		}
		if s == nil {
			return nil
		}
	}
	return s
}

// Scale is the scale of a Connect Decimal field of the value (its schema's
// parameters.scale), and false without schemas.
func (e *Event) Scale(path ...string) (int, bool) {
	params, _ := e.FieldSchema(path...)["parameters"].(Object)
	s, ok := params["scale"].(string)
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	return n, err == nil
}

// Decimal converts a Connect Decimal (the base64 of the unscaled big-endian
// two's-complement integer) to Decimal128 Extended JSON,
// {"$numberDecimal": "1234.50"}. Text that is not base64 is bad-input.
func Decimal(b64 string, scale int) (D, error) {
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, BadInputf("not base64: %q", b64)
	}
	n := new(big.Int).SetBytes(raw)
	if len(raw) > 0 && raw[0]&0x80 != 0 {
		n.Sub(n, new(big.Int).Lsh(big.NewInt(1), uint(8*len(raw))))
	}
	digits := new(big.Int).Abs(n).String()
	if scale > 0 {
		if len(digits) < scale+1 {
			digits = strings.Repeat("0", scale+1-len(digits)) + digits
		}
		digits = digits[:len(digits)-scale] + "." + digits[len(digits)-scale:]
	} else if scale < 0 {
		digits += strings.Repeat("0", -scale)
	}
	if n.Sign() < 0 {
		digits = "-" + digits
	}
	return D{{"$numberDecimal", digits}}, nil
}

// String is row[field] as a string; anything else is a bad-input error.
func String(row Object, field string) (string, error) {
	s, ok := row[field].(string)
	if !ok {
		return "", BadInputf("'%s' must be a string", field)
	}
	return s, nil
}

// Bool is row[field] as a bool; anything else is a bad-input error.
func Bool(row Object, field string) (bool, error) {
	b, ok := row[field].(bool)
	if !ok {
		return false, BadInputf("'%s' must be a boolean", field)
	}
	return b, nil
}

// Int is v as an int64 when it is a JSON integer (no fraction or exponent)
// in range.
func Int(v any) (int64, bool) {
	n, ok := v.(json.Number)
	if !ok || strings.ContainsAny(string(n), ".eE") {
		return 0, false
	}
	i, err := strconv.ParseInt(string(n), 10, 64)
	return i, err == nil
}

// AfterD is the after image with its columns in the order of the record
// (After is a map: Go maps have no order, and encoding/json writes them
// sorted by key). nil when there is no after image.
func (e *Event) AfterD() D { return e.image("after") }

// BeforeD is the before image in the order of the record; nil when there is none.
func (e *Event) BeforeD() D { return e.image("before") }

func (e *Event) image(name string) D {
	v, err := ParseOrderedJSON(e.value)
	if err != nil {
		return nil
	}
	env, _ := v.(D)
	if p, ok := env.Get("payload"); ok && len(env) == 2 {
		if _, hasSchema := env.Get("schema"); hasSchema {
			env, _ = p.(D)
		}
	}
	img, _ := env.Get(name)
	d, _ := img.(D)
	return d
}

// Get is the value of the first field named key.
func (d D) Get(key string) (any, bool) {
	for _, e := range d {
		if e.Key == key {
			return e.Value, true
		}
	}
	return nil, false
}

// ParseOrderedJSON is ParseJSON with objects as D (fields in their order)
// instead of maps.
func ParseOrderedJSON(data []byte) (any, error) {
	if _, err := ParseJSON(data); err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	return orderedValue(dec)
}

func orderedValue(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch tok {
	case json.Delim('{'):
		d := D{}
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				return nil, err
			}
			v, err := orderedValue(dec)
			if err != nil {
				return nil, err
			}
			d = append(d, E{k.(string), v})
		}
		_, err := dec.Token() // }
		return d, err
	case json.Delim('['):
		a := []any{}
		for dec.More() {
			v, err := orderedValue(dec)
			if err != nil {
				return nil, err
			}
			a = append(a, v)
		}
		_, err := dec.Token() // ]
		return a, err
	}
	return tok, nil
}
