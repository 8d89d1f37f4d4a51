#!/bin/sh
# ldflags.sh — prints the -ldflags value that stamps raftkv's version, commit
# and build time into the binary (package internal/buildinfo). Used by the
# Makefile, examples/docker/build.sh, examples/cluster/start.sh and the
# end-to-end tests, so every build says the same thing.
#
#   go build -ldflags "$(sh scripts/ldflags.sh)" ./cmd/raftkv
#
# VERSION overrides the version (default: git describe --tags --always
# --dirty; nothing outside a git checkout, where the binary falls back to
# the Go toolchain's build information). Extra arguments are appended
# (e.g. -s -w).
set -eu
cd "$(dirname "$0")/.."
pkg=github.com/raftkv/raftkv/internal/buildinfo
version=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || true)}
commit=$(git rev-parse HEAD 2>/dev/null || true)
if [ -n "$commit" ] && [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
	commit=$commit-dirty
fi
now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
flags="-X $pkg.buildTime=$now"
[ -n "$version" ] && flags="$flags -X $pkg.version=$version"
[ -n "$commit" ] && flags="$flags -X $pkg.commit=$commit"
[ $# -gt 0 ] && flags="$flags $*"
echo "$flags"
