#!/usr/bin/env bash
# deps.sh — installs what the example plugins need beyond Go: a clang that
# targets wasm32 and lld's wasm-ld (examples/c-counter is written in C).
#
# Idempotent: it first checks that clang can link a wasm32 module, and only
# when it cannot runs
#     apt-get update && apt-get install -y --no-install-recommends clang lld
# which needs root on a Debian/Ubuntu machine. Safe to call from `make test`
# and CI on every run. Set CLANG to check a different compiler
# (default: clang). Exit status: 0 when the toolchain works, 1 otherwise.
set -euo pipefail

CLANG="${CLANG:-clang}"
PKGS=(clang lld)

# toolchain_ok: clang exists and compiles and links a wasm32 reactor module
# the way examples/c-counter/build.sh does (this needs wasm-ld from lld).
toolchain_ok() {
	if ! command -v "$CLANG" >/dev/null 2>&1; then
		LAST_ERROR="$CLANG: command not found"
		return 1
	fi
	local tmp
	tmp="$(mktemp -d)"
	printf 'int probe(void) { return 42; }\n' >"$tmp/probe.c"
	if "$CLANG" --target=wasm32 -nostdlib -O2 -Wl,--no-entry -Wl,--export=probe \
		-o "$tmp/probe.wasm" "$tmp/probe.c" >"$tmp/log" 2>&1; then
		rm -rf "$tmp"
		return 0
	fi
	LAST_ERROR="$(cat "$tmp/log")"
	rm -rf "$tmp"
	return 1
}

LAST_ERROR=""
if toolchain_ok; then
	echo "deps: $("$CLANG" --version | head -n1) with wasm-ld: ok, nothing to install"
	exit 0
fi

echo "deps: $CLANG cannot build wasm32 modules:" >&2
printf '%s\n' "$LAST_ERROR" | sed 's/^/deps:   /' >&2

if ! command -v apt-get >/dev/null 2>&1; then
	echo "deps: no apt-get here; install clang (with the wasm32 target) and lld (wasm-ld) with your package manager, then re-run" >&2
	exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "deps: installing ${PKGS[*]} needs root; run:" >&2
	echo "deps:   sudo bash $0" >&2
	echo "deps: or: sudo apt-get update && sudo apt-get install -y --no-install-recommends ${PKGS[*]}" >&2
	exit 1
fi

echo "deps: installing ${PKGS[*]} with apt-get"
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends "${PKGS[@]}"

if ! toolchain_ok; then
	echo "deps: installed ${PKGS[*]}, but $CLANG still cannot build a wasm32 module:" >&2
	printf '%s\n' "$LAST_ERROR" | sed 's/^/deps:   /' >&2
	exit 1
fi
echo "deps: $("$CLANG" --version | head -n1) with wasm-ld: ok"
