#!/bin/sh
# build.sh [OUT.wasm] — builds this plugin into a raftkv module (default:
# max.wasm next to this script) with the Rust SDK's build script, which uses
# Debian's Rust toolchain (run scripts/deps.sh to install it).
set -eu
dir=$(cd "$(dirname "$0")" && pwd)
exec sh "$dir/../../plugins/sdk-rust/build.sh" "$dir" "${1:-$dir/max.wasm}"
