#!/usr/bin/env bash
# Runs the sample records through the transform with `smt test` and compares
# the results with test/expected.jsonl (as JSON: key order does not matter).
# `smt` must be on PATH (or set SMT).
set -euo pipefail
cd "$(dirname "$0")"
"${SMT:-smt}" test --transform {{name}}.wasm --input test/records.jsonl > test/out.jsonl || true
if ! command -v python3 >/dev/null; then
    diff -u test/expected.jsonl test/out.jsonl
    echo "ok: test/out.jsonl matches test/expected.jsonl"
    exit
fi
python3 - <<'PY'
import json, sys
def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]
expected, out = load("test/expected.jsonl"), load("test/out.jsonl")
for n, (e, o) in enumerate(zip(expected, out), 1):
    if e != o:
        sys.exit(f"line {n} differs:\n  expected {json.dumps(e, sort_keys=True)}\n  got      {json.dumps(o, sort_keys=True)}")
if len(expected) != len(out):
    sys.exit(f"{len(out)} result lines, {len(expected)} expected")
print("ok: test/out.jsonl matches test/expected.jsonl")
PY
