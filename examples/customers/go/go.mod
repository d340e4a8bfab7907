module customers

go 1.27.1

require smt v0.0.0

require go.bytecodealliance.org/pkg v0.4.0 // indirect

replace smt => ../../../guest-transforms/go

replace go.bytecodealliance.org/pkg => ../../../guest-transforms/go/wit-pkg
