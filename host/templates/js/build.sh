#!/usr/bin/env bash
# Builds {{name}}.wasm from app.js with componentize-js, installed on first use
# into ${SMT_CACHE:-~/.cache/smt}/toolchains/node (an npm prefix).
set -euo pipefail
cd "$(dirname "$0")"
prefix="${SMT_CACHE:-$HOME/.cache/smt}/toolchains/node"
cjs="$prefix/node_modules/.bin/componentize-js"
if [[ ! -x "$cjs" ]]; then
    mkdir -p "$prefix"
    exec 9>"$prefix.lock"; flock 9        # shared with other projects' builds
    npm install --prefix "$prefix" --no-audit --no-fund --silent @bytecodealliance/componentize-js@0.23.0
    exec 9>&-
fi
# No wasi:http (-d http fetch-event): smt does not provide it.
"$cjs" app.js --wit wit -n transform -d http -d fetch-event -o {{name}}.wasm
