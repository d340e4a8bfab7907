package main

import (
	"strings"
	"testing"

	"smt"
)

// Natively: go test (the SDK is plain Go outside wasip1).
func TestCreateIsAnUpsertAndBadJSONIsBadInput(t *testing.T) {
	msg := smt.NewMessage("dbz.inventory.customers", []byte(`{"id": 7}`),
		[]byte(`{"op": "c", "source": {"table": "customers"}, "after": {"id": 7, "name": "Ada"}}`))
	ops, err := smt.Call(app{}, msg)
	if err != nil || len(ops) != 1 {
		t.Fatal(ops, err)
	}
	got, _ := ops[0].Describe()
	if !strings.Contains(got, `"op":"replace-one"`) || !strings.Contains(got, `"upsert":true`) {
		t.Fatal(got)
	}
	if _, err := smt.Call(app{}, smt.NewMessage("t", []byte(`{"id": 7}`), []byte("{not json"))); err == nil || err.Kind != smt.BadInput {
		t.Fatal(err)
	}
}
