package smt

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// A document (a document, filter, replacement, update, pipeline stage or
// array filter) is any value that encoding/json turns into one JSON object
// of MongoDB Extended JSON v2: a D (keys in order), a map[string]any, a
// struct, a JSON (text sent as it is) or a BSON (raw BSON bytes, sent as
// they are). Extended JSON types are objects: {"$numberDecimal": "1.50"},
// {"$date": {"$numberLong": "0"}}, {"$oid": "..."}.
type Doc = any

// E is one field of a D.
type E struct {
	Key   string
	Value any
}

// D is a document whose fields keep their order: D{{"_id", 1}, {"name", "x"}}.
type D []E

// MarshalJSON writes the fields in order.
func (d D) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, e := range d {
		if i > 0 {
			b.WriteByte(',')
		}
		k, err := json.Marshal(e.Key)
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		v, err := marshal(e.Value)
		if err != nil {
			return nil, fmt.Errorf("field %q: %w", e.Key, err)
		}
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// JSON is a document as Extended JSON text, sent as it is.
type JSON string

// MarshalJSON returns the text itself.
func (j JSON) MarshalJSON() ([]byte, error) { return []byte(j), nil }

// BSON is a document as raw BSON bytes, sent as they are.
type BSON []byte

// marshal encodes a value as compact JSON without HTML escaping.
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(b.Bytes(), "\n"), nil
}

// DocumentJSON gives a document's Extended JSON text, or for a BSON the
// bytes and true.
func DocumentJSON(d Doc) (text string, bson []byte, isBSON bool, err error) {
	switch v := d.(type) {
	case BSON:
		return "", v, true, nil
	case JSON:
		return string(v), nil, false, nil
	}
	b, err := marshal(d)
	if err != nil {
		return "", nil, false, err
	}
	if len(b) == 0 || b[0] != '{' {
		return "", nil, false, fmt.Errorf("a document must be a JSON object, not %s", b)
	}
	return string(b), nil, false, nil
}

// OpKind is the kind of a write operation.
type OpKind uint8

const (
	OpInsertOne OpKind = iota
	OpReplaceOne
	OpUpdateOne
	OpUpdateMany
	OpDeleteOne
	OpDeleteMany
	OpAggregate
)

func (k OpKind) String() string {
	return [...]string{"insert-one", "replace-one", "update-one", "update-many", "delete-one", "delete-many", "aggregate"}[k]
}

// Namespace is where an operation writes; an empty Database is the
// pipeline's database.
type Namespace struct {
	Database   string
	Collection string
}

// WriteOp is one MongoDB write operation. Make them with the builders
// (InsertOne, ReplaceOne, UpdateOne, ...) and refine them with the methods
// (WithUpsert, In, WithPipeline, WithArrayFilters), which return a copy.
type WriteOp struct {
	Kind OpKind
	NS   Namespace
	// Document of insert-one.
	Document Doc
	// Filter of every operation but insert-one and aggregate.
	Filter Doc
	// Replacement of replace-one.
	Replacement Doc
	// Update of update-one/-many: an update document of operators; nil
	// when Pipeline is the update.
	Update Doc
	// Pipeline: the stages of an aggregation-pipeline update, or of an
	// aggregate (ending in $merge).
	Pipeline []Doc
	// Upsert of replace-one and update-one/-many.
	Upsert bool
	// ArrayFilters of update-one/-many.
	ArrayFilters []Doc
}

// InsertOne inserts document into collection.
func InsertOne(collection string, document Doc) WriteOp {
	return WriteOp{Kind: OpInsertOne, NS: Namespace{Collection: collection}, Document: document}
}

// ReplaceOne replaces the document matching filter (add .WithUpsert() to insert it when none does).
func ReplaceOne(collection string, filter, replacement Doc) WriteOp {
	return WriteOp{Kind: OpReplaceOne, NS: Namespace{Collection: collection}, Filter: filter, Replacement: replacement}
}

// UpdateOne applies an update document of operators ($set, $unset, ...) to the first match.
func UpdateOne(collection string, filter, update Doc) WriteOp {
	return WriteOp{Kind: OpUpdateOne, NS: Namespace{Collection: collection}, Filter: filter, Update: update}
}

// UpdateMany applies an update document of operators to every match.
func UpdateMany(collection string, filter, update Doc) WriteOp {
	return WriteOp{Kind: OpUpdateMany, NS: Namespace{Collection: collection}, Filter: filter, Update: update}
}

// DeleteOne deletes the first document matching filter.
func DeleteOne(collection string, filter Doc) WriteOp {
	return WriteOp{Kind: OpDeleteOne, NS: Namespace{Collection: collection}, Filter: filter}
}

// DeleteMany deletes every document matching filter.
func DeleteMany(collection string, filter Doc) WriteOp {
	return WriteOp{Kind: OpDeleteMany, NS: Namespace{Collection: collection}, Filter: filter}
}

// Aggregate runs a pipeline on collection for its writes: the last stage
// must be $merge (contract 0.2.0; see docs/writing-transforms.md).
func Aggregate(collection string, stages ...Doc) WriteOp {
	return WriteOp{Kind: OpAggregate, NS: Namespace{Collection: collection}, Pipeline: stages}
}

// WithUpsert sets upsert (replace-one, update-one/-many): insert when nothing matches.
func (op WriteOp) WithUpsert() WriteOp { op.Upsert = true; return op }

// In names the database (default: the pipeline's).
func (op WriteOp) In(database string) WriteOp { op.NS.Database = database; return op }

// WithPipeline makes an update-one/-many an aggregation-pipeline update.
func (op WriteOp) WithPipeline(stages ...Doc) WriteOp {
	op.Update, op.Pipeline = nil, stages
	return op
}

// WithArrayFilters sets the filters of $[<identifier>] in an update.
func (op WriteOp) WithArrayFilters(filters ...Doc) WriteOp {
	op.ArrayFilters = filters
	return op
}

// Describe shows an operation as one JSON object in the form `smt test`
// prints (op, db, coll, then document, filter, replacement, update or
// pipeline, upsert, arrayFilters), with the documents as written rather
// than canonical: for assertions in unit tests.
func (op WriteOp) Describe() (string, error) {
	var db any
	if op.NS.Database != "" {
		db = op.NS.Database
	}
	d := D{{"op", op.Kind.String()}, {"db", db}, {"coll", op.NS.Collection}}
	doc := func(x Doc) (any, error) {
		text, bson, isBSON, err := DocumentJSON(x)
		if err != nil {
			return nil, err
		}
		if isBSON {
			return D{{"$bson", bson}}, nil
		}
		return JSON(text), nil
	}
	docs := func(xs []Doc) (any, error) {
		out := make([]any, 0, len(xs))
		for _, x := range xs {
			v, err := doc(x)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	}
	add := func(k string, v any, err error) error {
		if err == nil {
			d = append(d, E{k, v})
		}
		return err
	}
	var err error
	switch op.Kind {
	case OpInsertOne:
		v, e := doc(op.Document)
		err = add("document", v, e)
	case OpReplaceOne:
		v, e := doc(op.Filter)
		if err = add("filter", v, e); err == nil {
			v, e = doc(op.Replacement)
			err = add("replacement", v, e)
		}
		d = append(d, E{"upsert", op.Upsert})
	case OpUpdateOne, OpUpdateMany:
		v, e := doc(op.Filter)
		if err = add("filter", v, e); err == nil {
			if op.Update != nil {
				v, e = doc(op.Update)
				err = add("update", v, e)
			} else {
				v, e = docs(op.Pipeline)
				err = add("pipeline", v, e)
			}
		}
		d = append(d, E{"upsert", op.Upsert})
		if err == nil && len(op.ArrayFilters) > 0 {
			v, e = docs(op.ArrayFilters)
			err = add("arrayFilters", v, e)
		}
	case OpDeleteOne, OpDeleteMany:
		v, e := doc(op.Filter)
		err = add("filter", v, e)
	case OpAggregate:
		v, e := docs(op.Pipeline)
		err = add("pipeline", v, e)
	}
	if err != nil {
		return "", err
	}
	b, err := marshal(d)
	return string(b), err
}
