module versioned

go 1.27.1

require smt v0.0.0

require go.bytecodealliance.org/pkg v0.4.0 // indirect

replace smt => ../../go

replace go.bytecodealliance.org/pkg => ../../go/wit-pkg
