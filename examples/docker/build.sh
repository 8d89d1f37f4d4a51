#!/bin/sh
# Builds the static raftkv binary and the FROM scratch image raftkv:latest
# (or $1), and makes the cluster's token, secrets/token, unless it exists:
# 32 random bytes in hex, which docker-compose.yml hands to every node as a
# secret (--token-file). Run from anywhere inside the repository.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
image=${1:-raftkv:latest}
cd "$root"
# The same version stamp as 'make build' (raftkv version, /v1/version).
CGO_ENABLED=0 go build -trimpath -ldflags="$(sh scripts/ldflags.sh -s -w)" -o "$here/raftkv" ./cmd/raftkv
chmod 755 "$here/raftkv" # the image's user (10001) runs it, whatever the umask
mkdir -p "$here/data"    # the image's empty /data, owned by its user (see Dockerfile)
docker build -t "$image" "$here"
echo "built $image"
if [ ! -s "$here/secrets/token" ]; then
	# The directory keeps other users of this machine out; the file itself
	# is readable because Compose bind-mounts it as is into the containers,
	# whose user (10001) does not own it.
	mkdir -p "$here/secrets"
	chmod 700 "$here/secrets"
	od -An -N32 -tx1 /dev/urandom | tr -d ' \n' >"$here/secrets/token.new"
	chmod 644 "$here/secrets/token.new"
	mv "$here/secrets/token.new" "$here/secrets/token"
	echo "wrote the cluster's token to $here/secrets/token"
fi
