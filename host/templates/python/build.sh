#!/usr/bin/env bash
# Builds {{name}}.wasm from app.py with componentize-py, installed on first use
# into ${SMT_CACHE:-~/.cache/smt}/toolchains/python (a venv).
set -euo pipefail
cd "$(dirname "$0")"
venv="${SMT_CACHE:-$HOME/.cache/smt}/toolchains/python"
if [[ ! -x "$venv/bin/componentize-py" ]]; then
    mkdir -p "$(dirname "$venv")"
    exec 9>"$venv.lock"; flock 9          # shared with other projects' builds
    [[ -x "$venv/bin/pip" ]] || python3 -m venv "$venv"
    "$venv/bin/pip" install -q componentize-py==0.25.1
    exec 9>&-
fi
"$venv/bin/componentize-py" -d wit -w transform componentize app -o {{name}}.wasm
