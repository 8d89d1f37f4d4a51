#!/usr/bin/env bash
# deps.sh — installs what the example plugins need beyond Go, one function
# per toolchain (each checks first and installs only what is missing):
#   - deps_c: a clang that targets wasm32 and lld's wasm-ld
#     (examples/c-counter is written in C);
#   - deps_rust: Debian's Rust toolchain with the wasm32 standard library
#     (plugins/sdk-rust and examples/rust-max);
#   - deps_chromium: Debian's chromium, the headless browser the /ui status
#     page's test drives (host/httpapi/ui_test.go, with chromedp);
#   - deps_docker: docker-compose, where a Docker engine runs (make
#     test-docker);
#   - deps_iptables: iptables, with which the fault suite (make chaos,
#     test/chaos) cuts the network between nodes.
#
# Idempotent: nothing is installed when everything already works.
# Installing runs apt-get (apt-get update first, once), which needs root on a
# Debian/Ubuntu machine. Safe to call from `make test` and CI on every run.
# Exit status: 0 when every toolchain works, 1 otherwise.
set -euo pipefail

APT_UPDATED=""

# apt_install PKG...: installs packages with apt-get, or explains what to
# run when that is impossible here (no apt-get, not root). Returns 1 then.
apt_install() {
	if ! command -v apt-get >/dev/null 2>&1; then
		echo "deps: no apt-get here; install $* with your package manager, then re-run" >&2
		return 1
	fi
	if [ "$(id -u)" -ne 0 ]; then
		echo "deps: installing $* needs root; run:" >&2
		echo "deps:   sudo bash $0" >&2
		echo "deps: or: sudo apt-get update && sudo apt-get install -y --no-install-recommends $*" >&2
		return 1
	fi
	echo "deps: installing $* with apt-get"
	export DEBIAN_FRONTEND=noninteractive
	if [ -z "$APT_UPDATED" ]; then
		apt-get update
		APT_UPDATED=1
	fi
	apt-get install -y --no-install-recommends "$@"
}

# ---- C: clang and lld (examples/c-counter) ----------------------------------
# Set CLANG to check a different compiler (default: clang).

CLANG="${CLANG:-clang}"
C_PKGS=(clang lld)

# c_toolchain_ok: clang exists and compiles and links a wasm32 reactor module
# the way examples/c-counter/build.sh does (this needs wasm-ld from lld).
c_toolchain_ok() {
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

deps_c() {
	LAST_ERROR=""
	if c_toolchain_ok; then
		echo "deps: $("$CLANG" --version | head -n1) with wasm-ld: ok, nothing to install"
		return 0
	fi
	echo "deps: $CLANG cannot build wasm32 modules:" >&2
	printf '%s\n' "$LAST_ERROR" | sed 's/^/deps:   /' >&2
	apt_install "${C_PKGS[@]}" || return 1
	if ! c_toolchain_ok; then
		echo "deps: installed ${C_PKGS[*]}, but $CLANG still cannot build a wasm32 module:" >&2
		printf '%s\n' "$LAST_ERROR" | sed 's/^/deps:   /' >&2
		return 1
	fi
	echo "deps: $("$CLANG" --version | head -n1) with wasm-ld: ok"
}

# ---- Rust: Debian's rustc and cargo for wasm32 (plugins/sdk-rust) -----------
# The Rust plugins build with Debian's toolchain, by path (/usr/bin/cargo,
# /usr/bin/rustc), never a rustup toolchain that may come first in PATH:
# packages rustc, cargo and libstd-rust-dev-wasm32 (the standard library for
# wasm32-unknown-unknown and wasm32-wasi), and the lld that rustc's rust-lld
# links to (lld-14 on Debian 12), which links wasm modules. No crates
# registry is needed: the SDK has no dependencies.

RUST_PKGS=(rustc cargo libstd-rust-dev-wasm32)

# rust_toolchain_ok: /usr/bin/cargo exists and /usr/bin/rustc compiles and
# links a wasm32-unknown-unknown cdylib, as plugins/sdk-rust/build.sh does.
rust_toolchain_ok() {
	if [ ! -x /usr/bin/cargo ] || [ ! -x /usr/bin/rustc ]; then
		LAST_ERROR="/usr/bin/cargo or /usr/bin/rustc: not found"
		return 1
	fi
	local tmp
	tmp="$(mktemp -d)"
	printf '#[no_mangle]\npub extern "C" fn probe() -> i32 { 42 }\n' >"$tmp/probe.rs"
	if /usr/bin/rustc --edition 2021 --crate-type cdylib --target wasm32-unknown-unknown -O \
		-o "$tmp/probe.wasm" "$tmp/probe.rs" >"$tmp/log" 2>&1; then
		rm -rf "$tmp"
		return 0
	fi
	LAST_ERROR="$(cat "$tmp/log")"
	rm -rf "$tmp"
	return 1
}

deps_rust() {
	LAST_ERROR=""
	if rust_toolchain_ok; then
		echo "deps: $(/usr/bin/rustc --version), $(/usr/bin/cargo --version) for wasm32-unknown-unknown: ok, nothing to install"
		return 0
	fi
	echo "deps: Debian's Rust toolchain cannot build wasm32 modules:" >&2
	printf '%s\n' "$LAST_ERROR" | sed 's/^/deps:   /' >&2
	apt_install "${RUST_PKGS[@]}" || return 1
	# rust-lld is a symlink to the versioned lld Debian builds rustc with
	# (lld-14 on Debian 12); install that one.
	local lld
	lld="$(readlink /usr/bin/rust-lld || true)"
	if [ -n "$lld" ] && ! command -v "$lld" >/dev/null 2>&1; then
		apt_install "$lld" || return 1
	fi
	if ! rust_toolchain_ok; then
		echo "deps: installed ${RUST_PKGS[*]} $lld, but /usr/bin/rustc still cannot build a wasm32 module:" >&2
		printf '%s\n' "$LAST_ERROR" | sed 's/^/deps:   /' >&2
		return 1
	fi
	echo "deps: $(/usr/bin/rustc --version), $(/usr/bin/cargo --version) for wasm32-unknown-unknown: ok"
}

# ---- end Rust ----------------------------------------------------------------

# ---- Chromium: the /ui page's browser test (host/httpapi/ui_test.go) ---------
# The test finds the browser on PATH as chromium (CHROMIUM overrides it).

deps_chromium() {
	local browser="${CHROMIUM:-chromium}"
	if command -v "$browser" >/dev/null 2>&1; then
		echo "deps: $("$browser" --version 2>/dev/null | head -n1): ok, nothing to install"
		return 0
	fi
	echo "deps: no $browser on PATH" >&2
	apt_install chromium || return 1
	if ! command -v "$browser" >/dev/null 2>&1; then
		echo "deps: installed chromium, but $browser is not on PATH" >&2
		return 1
	fi
	echo "deps: $("$browser" --version 2>/dev/null | head -n1): ok"
}

# ---- end Chromium ------------------------------------------------------------

# ---- Docker Compose: make test-docker (cmd/raftkv/docker*_test.go) -----------
# Only where a Docker engine runs: then docker-compose (Debian's package) is
# installed if missing. Without Docker, nothing is needed (make test does
# not use it) and nothing is installed.

deps_docker() {
	if ! command -v docker >/dev/null 2>&1 || ! docker info >/dev/null 2>&1; then
		echo "deps: no Docker engine here: make test-docker cannot run (nothing to install for make test)"
		return 0
	fi
	if command -v docker-compose >/dev/null 2>&1; then
		echo "deps: $(docker-compose version --short 2>/dev/null | head -n1 | sed 's/^/docker-compose /'): ok, nothing to install"
		return 0
	fi
	apt_install docker-compose || return 1
	echo "deps: $(docker-compose version --short 2>/dev/null | head -n1 | sed 's/^/docker-compose /'): ok"
}

# ---- end Docker Compose ------------------------------------------------------

# ---- iptables: make chaos (test/chaos partitions nodes with it) ------------
# The suite runs as root (CI does); a run without iptables fails, it does not
# skip its partitions.

deps_iptables() {
	if command -v iptables >/dev/null 2>&1; then
		echo "deps: $(iptables -V 2>/dev/null | head -n1): ok, nothing to install"
		return 0
	fi
	apt_install iptables || return 1
	echo "deps: $(iptables -V 2>/dev/null | head -n1): ok"
}

# ---- end iptables ------------------------------------------------------------

status=0
deps_c || status=1
deps_rust || status=1
deps_chromium || status=1
deps_docker || status=1
deps_iptables || status=1
exit "$status"
