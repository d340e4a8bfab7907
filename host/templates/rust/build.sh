#!/usr/bin/env bash
# Builds {{name}}.wasm (a wasm32-wasip2 component) with cargo.
set -euo pipefail
cd "$(dirname "$0")"
rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2
target="${CARGO_TARGET_DIR:-target}"
cargo build --release --target wasm32-wasip2 --target-dir "$target"
cp "$target/wasm32-wasip2/release/{{crate}}.wasm" {{name}}.wasm
echo "built {{name}}.wasm"
