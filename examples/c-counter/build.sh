#!/bin/sh
# build.sh [OUT.wasm] — compiles src/counter.c into a raftkv plugin module
# (default: counter.wasm next to this script). Needs clang with the wasm32
# target and wasm-ld from lld: run scripts/deps.sh to install them.
# Set CLANG to use another compiler.
set -eu
dir=$(cd "$(dirname "$0")" && pwd)
out=${1:-"$dir/counter.wasm"}
CLANG=${CLANG:-clang}
if ! command -v "$CLANG" >/dev/null 2>&1; then
	echo "build.sh: $CLANG not found: run scripts/deps.sh to install clang and lld" >&2
	exit 1
fi
# -nostdlib -ffreestanding: no libc; counter.c brings memcpy and memset.
# --no-entry: a reactor, no main. Exports and imports are declared in the
# source (export_name, import_module/import_name); wasm-ld exports the memory.
exec "$CLANG" --target=wasm32 -std=c11 -O2 -Wall -Wextra -Werror \
	-ffreestanding -nostdlib \
	-Wl,--no-entry -Wl,--strip-all -Wl,-z,stack-size=65536 \
	-o "$out" "$dir/src/counter.c"
