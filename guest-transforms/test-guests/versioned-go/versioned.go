// The versioned test guest (guest-transforms/test-guests/versioned) in Go,
// for the hot-swap test of a Go transform (tests/tests/hotswap.rs): every
// document says which version wrote it. Same config and documents as the
// Rust one:
//
//	config {"v": <int>, "collection": "<name>", "shape": "flat"|"nested", "fail_init": <bool>}
//	flat:   {"_id": key, "v": v, "tag": tag, "p": partition, "o": offset}
//	nested: {"_id": key, "stamp": {"v": v, "tag": tag}, "src": {"p": partition, "o": offset}}
//
// The tag is the last 8 bytes of tagMarker, which tests overwrite in the
// .wasm file to make distinct versions of one build (`tag_module`).
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"smt"
)

// An array literal, not a string: its bytes appear once, in the data segment.
var tagMarker = [24]byte{'S', 'M', 'T', '-', 'V', 'E', 'R', 'S', 'I', 'O', 'N', '-', 'T', 'A', 'G', ':',
	'0', '0', '0', '0', '0', '0', '0', '0'}

type versioned struct {
	v          int64
	collection string
	nested     bool
	tag        string
}

func (t *versioned) Transform(msg *smt.Message) ([]smt.WriteOp, error) {
	if msg.Key == nil {
		return nil, smt.BadInputf("a record without a key")
	}
	key := strings.ToValidUTF8(string(msg.Key), "\uFFFD")
	var doc smt.D
	if t.nested {
		doc = smt.D{{"_id", key}, {"stamp", smt.D{{"v", t.v}, {"tag", t.tag}}},
			{"src", smt.D{{"p", msg.Partition}, {"o", msg.Offset}}}}
	} else {
		doc = smt.D{{"_id", key}, {"v", t.v}, {"tag", t.tag}, {"p", msg.Partition}, {"o", msg.Offset}}
	}
	return []smt.WriteOp{smt.ReplaceOne(t.collection, smt.D{{"_id", key}}, doc).WithUpsert()}, nil
}

func newVersioned(config string) (smt.Transform, error) {
	var cfg struct {
		V          int64  `json:"v"`
		Collection string `json:"collection"`
		Shape      string `json:"shape"`
		FailInit   bool   `json:"fail_init"`
	}
	if err := json.Unmarshal([]byte(config), &cfg); err != nil {
		return nil, fmt.Errorf("versioned-go: config is not JSON: %w", err)
	}
	if cfg.FailInit {
		return nil, errors.New("init refused: fail_init is set")
	}
	t := &versioned{v: cfg.V, collection: cfg.Collection, tag: string(tagMarker[16:])}
	if t.collection == "" {
		t.collection = "versioned"
	}
	switch cfg.Shape {
	case "", "flat":
	case "nested":
		t.nested = true
	default:
		return nil, fmt.Errorf("versioned-go: unknown shape %q", cfg.Shape)
	}
	smt.Infof("versioned-go %s: v=%d shape=%s", t.tag, t.v, cfg.Shape)
	return t, nil
}

func init() { smt.Export(newVersioned) }

func main() {}
