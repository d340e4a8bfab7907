// Package export_wit_world is where the generated exports
// (../wit_exports, scripts/regen-go-bindings) call the transform. It is not
// generated: the SDK (package smt, component_wasip1.go) sets the hooks from
// its init, so the generated code and the SDK need not import each other.
package export_wit_world

import (
	witTypes "go.bytecodealliance.org/pkg/wit/types"
	"smt/internal/wit/imports/smt_transform_types"
)

// InitHook and TransformHook implement the component's two exports.
var (
	InitHook      func(config string) witTypes.Result[witTypes.Unit, string]
	TransformHook func(msg smt_transform_types.Message) witTypes.Result[[]smt_transform_types.WriteOp, smt_transform_types.TransformError]
)

func Init(config string) witTypes.Result[witTypes.Unit, string] {
	return InitHook(config)
}

func Transform(msg smt_transform_types.Message) witTypes.Result[[]smt_transform_types.WriteOp, smt_transform_types.TransformError] {
	return TransformHook(msg)
}
