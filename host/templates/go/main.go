// {{name}}: Debezium change events to MongoDB writes.
package main

import "smt"

type app struct{}

func (app) Transform(msg *smt.Message) ([]smt.WriteOp, error) {
	// nil: a tombstone. Not JSON, nesting past 127 levels, not a Debezium
	// envelope: a bad-input error.
	event, err := smt.ParseEvent(msg)
	if event == nil || err != nil {
		return nil, err
	}
	collection := event.Table()
	if collection == "" {
		return nil, smt.BadInputf("no source.table")
	}
	key, err := event.RequireKey()
	if err != nil {
		return nil, err
	}
	filter := smt.D{{"_id", key}}
	switch event.Op {
	case smt.OpDelete:
		return []smt.WriteOp{smt.DeleteOne(collection, filter)}, nil
	case smt.OpCreate, smt.OpRead, smt.OpUpdate:
		if _, err := event.RequireAfter(); err != nil {
			return nil, err
		}
		// {_id: key, ...after}, the columns in the record's order.
		doc := append(smt.D{{"_id", key}}, event.AfterD()...)
		return []smt.WriteOp{smt.ReplaceOne(collection, filter, doc).WithUpsert()}, nil
	}
	return nil, smt.Unsupportedf("op %q is not handled", event.Op)
}

func init() {
	// config: the transform's configuration as JSON ("{}" when none).
	smt.Export(func(config string) (smt.Transform, error) { return app{}, nil })
}

func main() {}
