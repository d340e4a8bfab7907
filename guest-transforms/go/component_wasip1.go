//go:build wasip1

// The component side of the SDK (GOOS=wasip1 builds only): the exports
// `init` and `transform`, the conversion between the contract's types
// (the generated bindings in internal/wit) and the SDK's, and logging
// into the host.

package smt

import (
	"bytes"
	"fmt"
	"strings"

	witTypes "go.bytecodealliance.org/pkg/wit/types"
	"smt/internal/wit/exports/export_wit_world"
	_ "smt/internal/wit/exports/wit_exports" // the component's exports
	wlog "smt/internal/wit/imports/smt_transform_log"
	t "smt/internal/wit/imports/smt_transform_types"
)

// The instance's transform, made by init.
var instance Transform

func init() {
	logTo = func(level Level, message string) { wlog.Log(wlog.Level(level), message) }
	export_wit_world.InitHook = componentInit
	export_wit_world.TransformHook = componentTransform
}

func componentInit(config string) (res witTypes.Result[witTypes.Unit, string]) {
	// The arguments live in memory the next call reuses: copy what is kept.
	config = strings.Clone(config)
	if registered == nil {
		return witTypes.Err[witTypes.Unit]("no transform registered: call smt.Export from an init function of the main package")
	}
	defer func() {
		if r := recover(); r != nil {
			res = witTypes.Err[witTypes.Unit](fmt.Sprintf("init panicked: %v", r))
		}
	}()
	tr, err := registered(config)
	if err != nil {
		return witTypes.Err[witTypes.Unit](err.Error())
	}
	if tr == nil {
		return witTypes.Err[witTypes.Unit]("init returned no transform")
	}
	instance = tr
	return witTypes.Ok[witTypes.Unit, string](witTypes.Unit{})
}

// cloneOption copies an option<list<u8>>: nil for none, a non-nil slice
// (maybe empty) for some.
func cloneOption(o witTypes.Option[[]uint8]) []byte {
	if o.IsNone() {
		return nil
	}
	b := bytes.Clone(o.Some())
	if b == nil {
		b = []byte{}
	}
	return b
}

type transformResult = witTypes.Result[[]t.WriteOp, t.TransformError]

func fail(e *Error) transformResult {
	return witTypes.Err[[]t.WriteOp](t.TransformError{Kind: t.ErrorKind(e.Kind), Message: e.Message})
}

func componentTransform(in t.Message) transformResult {
	// Copy the message out of the argument memory (see wit-pkg's cabi_realloc).
	msg := &Message{
		Topic:     strings.Clone(in.Topic),
		Partition: in.Partition,
		Offset:    in.Offset,
		Key:       cloneOption(in.Key),
		Value:     cloneOption(in.Value),
	}
	if in.TimestampMs.IsSome() {
		msg.TimestampMs, msg.HasTimestamp = in.TimestampMs.Some(), true
	}
	if len(in.Headers) > 0 {
		msg.Headers = make([]Header, len(in.Headers))
		for i, h := range in.Headers {
			msg.Headers[i] = Header{Key: strings.Clone(h.Key), Value: cloneOption(h.Value)}
		}
	}
	if instance == nil {
		return fail(Internalf("transform called before a successful init"))
	}
	ops, err := Call(instance, msg)
	if err != nil {
		return fail(err)
	}
	out := make([]t.WriteOp, 0, len(ops))
	for i, op := range ops {
		w, e := lower(op)
		if e != nil {
			return fail(Internalf("operation %d (%s): %v", i, op.Kind, e))
		}
		out = append(out, w)
	}
	return witTypes.Ok[[]t.WriteOp, t.TransformError](out)
}

func document(d Doc) (t.Document, error) {
	if d == nil {
		return t.Document{}, fmt.Errorf("a document is missing")
	}
	text, raw, isBSON, err := DocumentJSON(d)
	if err != nil {
		return t.Document{}, err
	}
	if isBSON {
		return t.MakeDocumentBson(raw), nil
	}
	return t.MakeDocumentJson(text), nil
}

func documents(ds []Doc) ([]t.Document, error) {
	out := make([]t.Document, len(ds))
	for i, d := range ds {
		var err error
		if out[i], err = document(d); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func lower(op WriteOp) (t.WriteOp, error) {
	ns := t.Namespace{Collection: op.NS.Collection, Database: witTypes.None[string]()}
	if op.NS.Database != "" {
		ns.Database = witTypes.Some(op.NS.Database)
	}
	switch op.Kind {
	case OpInsertOne:
		d, err := document(op.Document)
		return t.MakeWriteOpInsertOne(t.InsertOne{Ns: ns, Document: d}), err
	case OpReplaceOne:
		f, err := document(op.Filter)
		if err != nil {
			return t.WriteOp{}, fmt.Errorf("filter: %w", err)
		}
		r, err := document(op.Replacement)
		return t.MakeWriteOpReplaceOne(t.ReplaceOne{Ns: ns, Filter: f, Replacement: r, Upsert: op.Upsert}), err
	case OpUpdateOne, OpUpdateMany:
		f, err := document(op.Filter)
		if err != nil {
			return t.WriteOp{}, fmt.Errorf("filter: %w", err)
		}
		var body t.UpdateBody
		if op.Update != nil {
			u, err := document(op.Update)
			if err != nil {
				return t.WriteOp{}, fmt.Errorf("update: %w", err)
			}
			body = t.MakeUpdateBodyOperators(u)
		} else {
			p, err := documents(op.Pipeline)
			if err != nil {
				return t.WriteOp{}, fmt.Errorf("pipeline: %w", err)
			}
			body = t.MakeUpdateBodyPipeline(p)
		}
		af, err := documents(op.ArrayFilters)
		if err != nil {
			return t.WriteOp{}, fmt.Errorf("array filters: %w", err)
		}
		u := t.Update{Ns: ns, Filter: f, Update: body, Upsert: op.Upsert, ArrayFilters: af}
		if op.Kind == OpUpdateOne {
			return t.MakeWriteOpUpdateOne(u), nil
		}
		return t.MakeWriteOpUpdateMany(u), nil
	case OpDeleteOne, OpDeleteMany:
		f, err := document(op.Filter)
		d := t.Delete{Ns: ns, Filter: f}
		if op.Kind == OpDeleteOne {
			return t.MakeWriteOpDeleteOne(d), err
		}
		return t.MakeWriteOpDeleteMany(d), err
	case OpAggregate:
		p, err := documents(op.Pipeline)
		return t.MakeWriteOpAggregate(t.Aggregate{Ns: ns, Pipeline: p}), err
	}
	return t.WriteOp{}, fmt.Errorf("unknown operation kind %d", op.Kind)
}
