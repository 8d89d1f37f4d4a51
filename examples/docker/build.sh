#!/bin/sh
# Builds the static raftkv binary and the FROM scratch image raftkv:latest
# (or $1). Run from anywhere inside the repository.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
image=${1:-raftkv:latest}
cd "$root"
CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o "$here/raftkv" ./cmd/raftkv
docker build -t "$image" "$here"
echo "built $image"
