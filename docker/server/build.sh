#!/usr/bin/env bash
# Builds the zkv server image ($ZKV_IMAGE, default zkv/server:dev) with no registry: compiles a
# static bin/server on the host from the server module, then `docker build`s the Dockerfile beside
# this script FROM scratch with a build context holding only that Dockerfile and the binary.
#
# Environment:
#   ZKV_IMAGE  image to tag (default zkv/server:dev)
#   GO         go command (default go)
#   GOARCH     target architecture (default: the docker engine's)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
image="${ZKV_IMAGE:-zkv/server:dev}"
go="${GO:-go}"

log() { printf '[build-server] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

command -v docker >/dev/null || die "docker is missing: apt-get install docker.io"
command -v "$go" >/dev/null || die "go is missing (looked for '$go')"
docker info >/dev/null 2>&1 || die "the docker engine does not answer (scripts/prepare.sh starts one)"

arch="${GOARCH:-$(docker version --format '{{.Server.Arch}}' 2>/dev/null || "$go" env GOARCH)}"
version="$(git -C "$root" describe --always --dirty 2>/dev/null || echo dev)"

ctx="$(mktemp -d "${TMPDIR:-/tmp}/zkv-server-image.XXXXXX")"
trap 'rm -rf "$ctx"' EXIT

start=$SECONDS
log "go build (CGO_ENABLED=0 GOOS=linux GOARCH=$arch) server/cmd/server"
(cd "$root/server" && CGO_ENABLED=0 GOOS=linux GOARCH="$arch" \
	"$go" build -trimpath -ldflags '-s -w' -o "$ctx/server" ./cmd/server) ||
	die "go build failed"
cp "$here/Dockerfile" "$ctx/Dockerfile"

log "docker build -> $image"
# The legacy builder needs no buildx plugin; the Dockerfile has no RUN step, so no network either.
DOCKER_BUILDKIT=0 docker build --quiet --build-arg "VERSION=$version" \
	--label "org.opencontainers.image.revision=$version" -t "$image" "$ctx" >"$ctx/build.log" 2>&1 ||
	{ cat "$ctx/build.log" >&2; die "docker build failed"; }
log "built $image ($version) in $((SECONDS - start))s ($(docker image inspect --format '{{.Size}}' "$image" | awk '{printf "%.1f MB", $1 / 1e6}'))"
