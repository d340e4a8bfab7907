package smt

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestParseEventTombstonesBadInputAndSchemas(t *testing.T) {
	key := []byte(`{"schema": {"type": "struct"}, "payload": {"id": 7}}`)
	value := []byte(`{"schema": {"type": "struct", "fields": [{"field": "after", "fields": [
		{"field": "balance", "name": "org.apache.kafka.connect.data.Decimal", "parameters": {"scale": "3"}}]}]},
		"payload": {"op": "c", "after": {"id": 7, "balance": "AeI6"}, "source": {"table": "t"}}}`)
	e, err := ParseEvent(NewMessage("x", key, value))
	if err != nil {
		t.Fatal(err)
	}
	k, err := e.RequireKey()
	if err != nil || k["id"] != any(jsonNumber("7")) {
		t.Fatalf("key %v %v", k, err)
	}
	if e.Op != OpCreate || e.Table() != "t" {
		t.Fatalf("%+v", e)
	}
	if s, ok := e.Scale("after", "balance"); !ok || s != 3 {
		t.Fatalf("scale %d %v", s, ok)
	}
	d, err := Decimal("AeI6", 3)
	if err != nil || d[0].Value != "123.450" {
		t.Fatalf("%v %v", d, err)
	}
	if d, _ := Decimal("/zg=", 2); d[0].Value != "-2.00" {
		t.Fatalf("%v", d)
	}
	if e, err := ParseEvent(NewMessage("x", key, nil)); e != nil || err != nil {
		t.Fatal("a tombstone is no event and no error")
	}
	deep := strings.Repeat("[", 128) + strings.Repeat("]", 128)
	ok := strings.Repeat("[", 126) + strings.Repeat("]", 126)
	for _, bad := range []string{"{not json", "[1,2]", "{\"op\": \"c\xff\"}", deep, `{"op": "x"}`, `{"after": {}}`, `{} {}`} {
		_, err := ParseEvent(NewMessage("x", key, []byte(bad)))
		var se *Error
		if !errors.As(err, &se) || se.Kind != BadInput {
			t.Errorf("%.20q: %v", bad, err)
		}
	}
	if _, err := ParseEvent(NewMessage("x", key, []byte(`{"op":"c","x":`+ok+`}`))); err != nil {
		t.Errorf("127 levels parse: %v", err)
	}
}

type jsonNumber = json.Number

func TestBuildersDescribe(t *testing.T) {
	op := ReplaceOne("people", D{{"_id", 1}}, D{{"_id", 1}, {"name", "Ada <x>"}}).WithUpsert().In("db")
	got, err := op.Describe()
	want := `{"op":"replace-one","db":"db","coll":"people","filter":{"_id":1},"replacement":{"_id":1,"name":"Ada <x>"},"upsert":true}`
	if err != nil || got != want {
		t.Fatalf("\n got %s\nwant %s (%v)", got, want, err)
	}
	up := UpdateOne("c", JSON(`{"a":1}`), nil).WithPipeline(D{{"$set", D{{"b", 2}}}}).WithArrayFilters(map[string]any{"x.y": 1})
	got, _ = up.Describe()
	want = `{"op":"update-one","db":null,"coll":"c","filter":{"a":1},"pipeline":[{"$set":{"b":2}}],"upsert":false,"arrayFilters":[{"x.y":1}]}`
	if got != want {
		t.Fatalf("\n got %s\nwant %s", got, want)
	}
	if _, err := InsertOne("c", 5).Describe(); err == nil {
		t.Fatal("a number is not a document")
	}
}

type panics struct{}

func (panics) Transform(*Message) ([]WriteOp, error) { panic("boom") }

type fails struct{}

func (fails) Transform(*Message) ([]WriteOp, error) { return nil, errors.New("plain") }

func TestCallErrorsAndPanics(t *testing.T) {
	if _, err := Call(panics{}, NewMessage("x", nil, nil)); err == nil || err.Kind != Internal || !strings.Contains(err.Message, "boom") {
		t.Fatal(err)
	}
	if _, err := Call(fails{}, NewMessage("x", nil, nil)); err == nil || err.Kind != Internal {
		t.Fatal(err)
	}
}

func TestAfterDKeepsTheRecordsColumnOrder(t *testing.T) {
	for _, value := range []string{
		`{"op": "c", "after": {"z": 1, "a": {"y": [1, {"c": 2, "b": 3}], "x": null}, "m": "s"}}`,
		`{"schema": {}, "payload": {"op": "c", "after": {"z": 1, "a": {"y": [1, {"c": 2, "b": 3}], "x": null}, "m": "s"}}}`,
	} {
		e, err := ParseEvent(NewMessage("t", nil, []byte(value)))
		if err != nil {
			t.Fatal(err)
		}
		got, _ := marshal(e.AfterD())
		if string(got) != `{"z":1,"a":{"y":[1,{"c":2,"b":3}],"x":null},"m":"s"}` {
			t.Fatalf("%s", got)
		}
		if e.BeforeD() != nil {
			t.Fatal("no before image")
		}
	}
}
