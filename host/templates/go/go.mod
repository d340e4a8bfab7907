module {{name}}

go 1.27.1

require smt v0.0.0

require go.bytecodealliance.org/pkg v0.4.0 // indirect

// The SDK (guest-transforms/go of the smt repository) and the bindings'
// runtime it vendors, by path: nothing is downloaded.
replace smt => {{sdk}}

replace go.bytecodealliance.org/pkg => {{sdk}}/wit-pkg
