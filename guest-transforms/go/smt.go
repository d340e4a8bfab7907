// Package smt is the Go SDK for smt transforms: a transform turns one Kafka
// record into the MongoDB writes that apply it (the contract is
// wit/transform.wit, world smt:transform/transform@0.2.0).
//
// A transform is a type with a Transform method, registered once with
// Export from the main package's init:
//
//	type App struct{}
//
//	func (App) Transform(msg *smt.Message) ([]smt.WriteOp, error) { ... }
//
//	func init() { smt.Export(func(config string) (smt.Transform, error) { return App{}, nil }) }
//	func main() {}
//
// Built for wasip1 (GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared),
// the package also holds the component's exports; natively it is plain Go,
// so a transform's unit tests run with go test.
package smt

import (
	"errors"
	"fmt"
)

// Header is a Kafka record header; Value is nil for a null header.
type Header struct {
	Key   string
	Value []byte
}

// Message is one Kafka record, as consumed.
type Message struct {
	Topic     string
	Partition int32
	Offset    int64
	// TimestampMs is the record's timestamp (milliseconds since the Unix
	// epoch); HasTimestamp is false when the broker gave none.
	TimestampMs  int64
	HasTimestamp bool
	// Key is nil when the record has no key.
	Key []byte
	// Value is nil for a tombstone (a null value).
	Value   []byte
	Headers []Header
}

// NewMessage makes a message for tests: partition 0, offset 0, no headers.
// A nil value is a tombstone.
func NewMessage(topic string, key, value []byte) *Message {
	return &Message{Topic: topic, Key: key, Value: value}
}

// Transform maps one record to the write operations that apply it. An empty
// result writes nothing (filters the record). Return an *Error (BadInput,
// Unsupported, Internal) for a record that cannot be mapped; any other error
// is an internal error, and a panic is recovered into one.
type Transform interface {
	Transform(msg *Message) ([]WriteOp, error)
}

// Init creates the transform of one instance from its configuration (JSON
// text, "{}" when none is configured). An error rejects the configuration.
type Init func(config string) (Transform, error)

var registered Init

// Export registers the transform's constructor; call it once, from an init
// function of the main package.
func Export(init Init) {
	if registered != nil {
		panic("smt.Export called twice")
	}
	registered = init
}

// ErrorKind says what the host does with a record that failed (the route's
// on-error policy applies to all three).
type ErrorKind uint8

const (
	// BadInput: the record cannot be mapped (malformed, missing fields).
	BadInput ErrorKind = iota
	// Unsupported: well formed, but not handled by this transform.
	Unsupported
	// Internal: a bug or an unexpected state in the transform.
	Internal
)

func (k ErrorKind) String() string {
	switch k {
	case BadInput:
		return "bad-input"
	case Unsupported:
		return "unsupported"
	default:
		return "internal"
	}
}

// Error is a transform error with its kind.
type Error struct {
	Kind    ErrorKind
	Message string
}

func (e *Error) Error() string { return e.Kind.String() + ": " + e.Message }

// BadInputf is a bad-input error: the record cannot be mapped.
func BadInputf(format string, args ...any) *Error {
	return &Error{BadInput, fmt.Sprintf(format, args...)}
}

// Unsupportedf is an unsupported error: well formed, but not handled.
func Unsupportedf(format string, args ...any) *Error {
	return &Error{Unsupported, fmt.Sprintf(format, args...)}
}

// Internalf is an internal error: a bug.
func Internalf(format string, args ...any) *Error {
	return &Error{Internal, fmt.Sprintf(format, args...)}
}

// AsError gives err as the contract's error: an *Error anywhere in its
// chain keeps its kind, anything else is internal.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		if e.Kind > Internal {
			return &Error{Internal, e.Message}
		}
		return e
	}
	return &Error{Internal, err.Error()}
}

// Call runs t on msg as the component does: a panic becomes an internal
// error, an error its *Error. For tests of the glue and of transforms.
func Call(t Transform, msg *Message) (ops []WriteOp, err *Error) {
	defer func() {
		if r := recover(); r != nil {
			ops, err = nil, Internalf("panic: %v", r)
		}
	}()
	ops, e := t.Transform(msg)
	if e != nil {
		return nil, AsError(e)
	}
	return ops, nil
}
