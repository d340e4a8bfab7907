// The customers example (examples/customers/README.md) in Go, with the SDK
// in guest-transforms/go: `inventory.customers` change events to documents
// {_id, name, email, balance: Decimal128, isVip} in `customers`.
//
// Build: scripts/build-guests build go (GOOS=wasip1 go build -buildmode=c-shared,
// then wasm-tools component embed/new with the WASI reactor adapter).
package main

import "smt"

// balanceScale: `balance` is numeric(10,2), its scale when the record carries no schema.
const balanceScale = 2

const collection = "customers"

type customers struct{}

func (customers) Transform(msg *smt.Message) ([]smt.WriteOp, error) {
	// nil: a tombstone. Malformed JSON, nesting past 127 levels, not an
	// envelope, an unknown op: bad-input errors.
	event, err := smt.ParseEvent(msg)
	if event == nil || err != nil {
		return nil, err
	}
	if table := event.Table(); table != "customers" {
		return nil, smt.Unsupportedf("table %q is not customers", table)
	}
	key, _ := event.Key.(smt.Object)
	id, ok := smt.Int(key["id"])
	if !ok {
		return nil, smt.BadInputf("the key has no integer 'id'")
	}
	filter := smt.D{{"_id", id}}
	switch event.Op {
	case smt.OpDelete:
		return []smt.WriteOp{smt.DeleteOne(collection, filter)}, nil
	case smt.OpTruncate, smt.OpMessage:
		return nil, smt.Unsupportedf("op %q is not handled", event.Op)
	}
	after, err := event.RequireAfter()
	if err != nil {
		return nil, err
	}
	doc, err := document(id, after, event)
	if err != nil {
		return nil, err
	}
	return []smt.WriteOp{smt.ReplaceOne(collection, filter, doc).WithUpsert()}, nil
}

func document(id int64, after smt.Object, event *smt.Event) (smt.D, error) {
	first, err := smt.String(after, "first_name")
	if err != nil {
		return nil, err
	}
	last, err := smt.String(after, "last_name")
	if err != nil {
		return nil, err
	}
	email, err := smt.String(after, "email")
	if err != nil {
		return nil, err
	}
	var balance any // null when the column is
	if b := after["balance"]; b != nil {
		b64, ok := b.(string)
		if !ok {
			return nil, smt.BadInputf("'balance' must be a decimal")
		}
		scale, ok := event.Scale("after", "balance")
		if !ok {
			scale = balanceScale
		}
		if balance, err = smt.Decimal(b64, scale); err != nil {
			return nil, smt.BadInputf("'balance' must be a decimal")
		}
	}
	vip, err := smt.Bool(after, "vip")
	if err != nil {
		return nil, err
	}
	return smt.D{
		{"_id", id},
		{"name", first + " " + last},
		{"email", email},
		{"balance", balance},
		{"isVip", vip},
	}, nil
}

func init() {
	smt.Export(func(string) (smt.Transform, error) { return customers{}, nil })
}

func main() {}
