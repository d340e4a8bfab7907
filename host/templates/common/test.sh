#!/usr/bin/env bash
# Runs the sample records through the transform with `smt test` and compares
# the operations with test/expected.jsonl. `smt` must be on PATH (or set SMT).
set -euo pipefail
cd "$(dirname "$0")"
"${SMT:-smt}" test --transform {{name}}.wasm --input test/records.jsonl > test/out.jsonl || true
diff -u test/expected.jsonl test/out.jsonl && echo "ok: test/out.jsonl matches test/expected.jsonl"
