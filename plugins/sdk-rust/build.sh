#!/bin/sh
# build.sh CRATE_DIR OUT.wasm — builds a raftkv plugin crate written with
# this SDK (a cdylib) into a wasm module, with Debian's Rust toolchain:
# /usr/bin/cargo and /usr/bin/rustc with the wasm32-unknown-unknown standard
# library (Debian packages rustc, cargo, libstd-rust-dev-wasm32 and lld-14;
# scripts/deps.sh installs them). The Debian toolchain is chosen explicitly,
# so that a rustup toolchain earlier in PATH is not used; set CARGO (and
# RUSTC) to use another toolchain that has the wasm32-unknown-unknown target.
#
# The build is offline (the SDK has no dependencies) and release-optimised
# with the crate's [profile.release]; the module records no path of this
# machine. Build output goes to CRATE_DIR/target unless CARGO_TARGET_DIR is set.
set -eu
if [ $# -ne 2 ]; then
	echo "usage: build.sh CRATE_DIR OUT.wasm" >&2
	exit 2
fi
crate=$(cd "$1" && pwd)
out=$2
if [ -z "${CARGO:-}" ]; then
	CARGO=/usr/bin/cargo
	RUSTC=${RUSTC:-/usr/bin/rustc}
fi
if ! command -v "$CARGO" >/dev/null 2>&1; then
	echo "build.sh: $CARGO not found: run scripts/deps.sh (as root) to install Debian's rustc, cargo, libstd-rust-dev-wasm32 and lld-14" >&2
	exit 1
fi
if [ -n "${RUSTC:-}" ]; then
	export RUSTC
fi
# The library file cargo writes: the package name with '-' as '_'.
lib=$(sed -n 's/^name *= *"\([^"]*\)".*/\1/p' "$crate/Cargo.toml" | head -n 1 | tr - _)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$crate/target}"
# Paths of the machine in panic locations become relative to /.
export RUSTFLAGS="--remap-path-prefix=$crate=. --remap-path-prefix=$(cd "$(dirname "$0")" && pwd)=raftkv-sdk"
"$CARGO" build --offline --release --target wasm32-unknown-unknown --manifest-path "$crate/Cargo.toml"
cp "$CARGO_TARGET_DIR/wasm32-unknown-unknown/release/$lib.wasm" "$out"
