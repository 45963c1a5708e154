#!/usr/bin/env bash
# Builds the ZooKeeper 3.8 image ($ZK_IMAGE, default zkv/zookeeper:3.8) from Debian's packages,
# without any registry: debootstrap a minimal bookworm with a headless JRE and libzookeeper-java,
# `docker import` it as a base image, then `docker build` the Dockerfile beside this script on it.
#
# The rootfs tarball is cached under docker/zookeeper/.build/ (gitignored), so a rebuild after
# `docker rmi` takes seconds. Needs root (debootstrap), debootstrap and a docker engine.
#
# Environment:
#   ZK_IMAGE          image to tag (default zkv/zookeeper:3.8)
#   ZK_DEBIAN_SUITE   Debian suite (default bookworm)
#   ZK_DEBIAN_MIRROR  apt mirror (default: the one this machine's apt sources use for the suite)
#   ZK_REBUILD_ROOTFS set to 1 to ignore the cached rootfs tarball
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
image="${ZK_IMAGE:-zkv/zookeeper:3.8}"
suite="${ZK_DEBIAN_SUITE:-bookworm}"
build_dir="$here/.build"
# Debian's zookeeper package depends on default-jre (a full desktop JRE); the server needs only
# the jars, which live in libzookeeper-java, and a headless JRE.
packages="openjdk-17-jre-headless,libzookeeper-java"
rootfs_tar="$build_dir/rootfs-$suite-$(printf '%s' "$packages" | sha256sum | cut -c1-12).tar"
base_image="zkv/zookeeper-base:$suite"

log() { printf '[build-zookeeper] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# mirror prints the apt mirror this machine uses for $suite: deb822 sources first, then one-line.
mirror() {
	if [[ -n "${ZK_DEBIAN_MIRROR:-}" ]]; then
		echo "$ZK_DEBIAN_MIRROR"
		return
	fi
	local f found=""
	shopt -s nullglob
	for f in /etc/apt/sources.list.d/*.sources; do
		found="$(awk -v suite="$suite" '
			BEGIN { RS = ""; FS = "\n" }
			{
				uris = ""; suites = ""; types = ""
				for (i = 1; i <= NF; i++) {
					if ($i ~ /^URIs:/)   { uris = $i;   sub(/^URIs:[ \t]*/, "", uris) }
					if ($i ~ /^Suites:/) { suites = $i; sub(/^Suites:[ \t]*/, "", suites) }
					if ($i ~ /^Types:/)  { types = $i }
				}
				if (types !~ /(^|[ \t])deb([ \t]|$)/) next
				n = split(suites, s, /[ \t]+/)
				for (j = 1; j <= n; j++) if (s[j] == suite) { split(uris, u, /[ \t]+/); print u[1]; exit }
			}' "$f")"
		[[ -n "$found" ]] && break
	done
	if [[ -z "$found" ]]; then
		for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
			[[ -r "$f" ]] || continue
			found="$(awk -v suite="$suite" '
				$1 == "deb" {
					i = 2
					if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
					if ($(i + 1) == suite) { print $i; exit }
				}' "$f")"
			[[ -n "$found" ]] && break
		done
	fi
	echo "${found:-http://deb.debian.org/debian}"
}

build_rootfs() {
	[[ $EUID -eq 0 ]] || die "debootstrap needs root; run as root or build $rootfs_tar elsewhere"
	command -v debootstrap >/dev/null || die "debootstrap is missing: apt-get install debootstrap"
	local m root
	m="$(mirror)"
	mkdir -p "$build_dir"
	root="$(mktemp -d "$build_dir/rootfs.XXXXXX")"
	# shellcheck disable=SC2064 # expand now: the trap must remove this very directory
	trap "rm -rf '$root'" EXIT
	log "debootstrap --variant=minbase $suite from $m (packages: $packages)"
	debootstrap --variant=minbase --include="$packages" "$suite" "$root" "$m" >"$build_dir/debootstrap.log" 2>&1 ||
		{ tail -n 30 "$build_dir/debootstrap.log" >&2; die "debootstrap failed (log: $build_dir/debootstrap.log)"; }
	log "trimming the rootfs"
	chroot "$root" apt-get clean
	rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/var/cache/debconf/*-old \
		"$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
		"$root"/usr/share/locale/* "$root"/var/log/* "$root"/tmp/* \
		"$root"/usr/share/java/zookeeper-contrib-* "$root"/usr/share/java/zookeeper-it*.jar
	# The container uses the host's network; these files are bind-mounted by docker anyway.
	: >"$root/etc/hostname"
	: >"$root/etc/resolv.conf"
	tar --numeric-owner -C "$root" -cf "$rootfs_tar.tmp" .
	mv "$rootfs_tar.tmp" "$rootfs_tar"
	rm -rf "$root"
	trap - EXIT
}

command -v docker >/dev/null || die "docker is missing: apt-get install docker.io"
docker info >/dev/null 2>&1 || die "the docker engine does not answer (scripts/prepare.sh starts one)"

start=$SECONDS
if [[ "${ZK_REBUILD_ROOTFS:-0}" == 1 || ! -s "$rootfs_tar" ]]; then
	build_rootfs
else
	log "using cached rootfs $rootfs_tar"
fi
mkdir -p "$build_dir"
log "docker import -> $base_image"
docker import --message "debootstrap $suite minbase + $packages" "$rootfs_tar" "$base_image" >/dev/null
log "docker build -> $image"
# The legacy builder needs no buildx plugin; the Dockerfile has no RUN step, so no network either.
DOCKER_BUILDKIT=0 docker build --quiet --network host --build-arg "BASE=$base_image" -t "$image" "$here" \
	>"$build_dir/docker-build.log" 2>&1 || { cat "$build_dir/docker-build.log" >&2; die "docker build failed"; }
log "built $image in $((SECONDS - start))s ($(docker image inspect --format '{{.Size}}' "$image" | awk '{printf "%d MB", $1 / 1e6}'))"
