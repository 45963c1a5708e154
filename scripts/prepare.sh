#!/usr/bin/env bash
# Prepares a machine for zkv's tests and demo; used by `make test` (make prepare) and .ci/run.
# Idempotent and cheap when everything is there:
#   1. installs the Debian packages that are missing (root only; `apt-get update` only then);
#   2. starts `dockerd --bridge=none --iptables=false` in the background when no docker engine
#      answers (containers use the host's network only) and waits for it;
#   3. builds the ZooKeeper image $ZK_IMAGE from Debian's packages when the engine lacks it
#      (docker/zookeeper/build.sh; no registry is reachable).
#
# Environment:
#   ZK_IMAGE             image to ensure (default zkv/zookeeper:3.8)
#   ZKV_DOCKERD_LOG      dockerd's log when this script starts it (default /var/log/zkv-dockerd.log)
#   ZKV_DOCKERD_PIDFILE  where the pid of a dockerd this script started is written, so the caller
#                        can stop it (.ci/run does); default /run/zkv-dockerd.pid
#   ZKV_DOCKER_WAIT      seconds to wait for a started dockerd (default 60)
#   ZKV_DOCKERD_ARGS     extra dockerd arguments (e.g. -H unix:///tmp/d.sock --data-root /tmp/d
#                        with DOCKER_HOST=unix:///tmp/d.sock, to run beside another engine)
#   ZKV_SKIP_DOCKER=1    skip steps 2 and 3 (the launcher then uses Debian's jars: local mode)
#   ZKV_REQUIRE_DOCKER=1 fail when docker is not usable (default: warn and rely on local mode
#                        when Debian's jars and java are there)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
image="${ZK_IMAGE:-zkv/zookeeper:3.8}"
dockerd_log="${ZKV_DOCKERD_LOG:-/var/log/zkv-dockerd.log}"
dockerd_pidfile="${ZKV_DOCKERD_PIDFILE:-/run/zkv-dockerd.pid}"
docker_wait="${ZKV_DOCKER_WAIT:-60}"

log() { printf '[prepare] %s\n' "$*"; }
die() {
	printf '[prepare] ERROR: %s\n' "$*" >&2
	exit 1
}
is_root() { [[ $EUID -eq 0 ]]; }

# What the tests and the image build need. zookeeper brings the jars and a JRE (local mode and
# the demo's fallback); gcc and libc6-dev are for `go test -race` (cgo); chromium is the headless
# browser of the cluster page's test (integration/ui_test.go, which fails without it under CI=true).
packages=(docker.io docker-compose debootstrap zookeeper ca-certificates make git gcc libc6-dev chromium)
[[ "${ZKV_SKIP_DOCKER:-0}" == 1 ]] && packages=(zookeeper ca-certificates make git gcc libc6-dev chromium)

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

step_packages() {
	if ! command -v dpkg-query >/dev/null; then
		log "not a Debian system: skipping package installation (needs: ${packages[*]})"
		return
	fi
	local missing=() p
	for p in "${packages[@]}"; do
		installed "$p" || missing+=("$p")
	done
	if [[ ${#missing[@]} -eq 0 ]]; then
		log "packages: all present (${packages[*]})"
		return
	fi
	if ! is_root; then
		log "WARNING: missing packages ${missing[*]}; not root, so not installing them (sudo apt-get install ${missing[*]})"
		return
	fi
	local t=$SECONDS
	log "packages: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	# docker.io's scripts would start the stock dockerd, which creates a bridge (docker0) on a
	# private range; we run dockerd without one below. A policy-rc.d denying service starts
	# keeps the install from starting anything; it is removed again if it was ours.
	local policy=/usr/sbin/policy-rc.d ours=0
	if [[ ! -e $policy ]]; then
		printf '#!/bin/sh\n# zkv prepare.sh: no service starts during its apt-get install\nexit 101\n' >"$policy"
		chmod 755 "$policy"
		ours=1
	fi
	local rc=0
	local apt_log
	apt_log="$(mktemp /tmp/zkv-prepare-apt.XXXXXX)"
	{ apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$apt_log" 2>&1 || rc=$?
	[[ $ours == 1 ]] && rm -f "$policy"
	if [[ $rc != 0 ]]; then
		tail -n 30 "$apt_log" >&2
		die "apt-get install ${missing[*]} failed (exit $rc; log: $apt_log)"
	fi
	rm -f "$apt_log"
	log "packages: installed in $((SECONDS - t))s"
}

docker_answers() { timeout 10 docker info >/dev/null 2>&1; }

step_dockerd() {
	command -v docker >/dev/null || die "docker CLI missing (apt-get install docker.io), or set ZKV_SKIP_DOCKER=1"
	if docker_answers; then
		log "docker: engine answers"
		return
	fi
	is_root || die "no docker engine answers and only root can start one (sudo $0, or start dockerd yourself)"
	command -v dockerd >/dev/null || die "dockerd missing: apt-get install docker.io"
	local t=$SECONDS
	log "docker: starting dockerd --bridge=none --iptables=false (log: $dockerd_log)"
	mkdir -p "$(dirname "$dockerd_log")" "$(dirname "$dockerd_pidfile")"
	# setsid: dockerd must outlive this script and not get the terminal's signals.
	# shellcheck disable=SC2086 # ZKV_DOCKERD_ARGS is a word list
	setsid dockerd --bridge=none --iptables=false --ip-masq=false ${ZKV_DOCKERD_ARGS:-} \
		>>"$dockerd_log" 2>&1 </dev/null &
	local pid=$!
	echo "$pid" >"$dockerd_pidfile"
	local deadline=$((SECONDS + docker_wait))
	until docker_answers; do
		if ! kill -0 "$pid" 2>/dev/null; then
			tail -n 20 "$dockerd_log" >&2 || true
			rm -f "$dockerd_pidfile"
			die "dockerd exited at start (log: $dockerd_log)"
		fi
		if ((SECONDS >= deadline)); then
			tail -n 20 "$dockerd_log" >&2 || true
			die "dockerd did not answer within ${docker_wait}s (pid $pid, log: $dockerd_log)"
		fi
		sleep 0.5
	done
	log "docker: dockerd (pid $pid) answers after $((SECONDS - t))s"
}

step_image() {
	if docker image inspect "$image" >/dev/null 2>&1; then
		log "image: $image present"
		return
	fi
	is_root || die "image $image is missing and building it needs root (sudo $root/docker/zookeeper/build.sh)"
	local t=$SECONDS
	log "image: building $image from Debian packages (docker/zookeeper/build.sh)"
	ZK_IMAGE="$image" "$root/docker/zookeeper/build.sh" || die "building $image failed"
	log "image: $image built in $((SECONDS - t))s"
}

start=$SECONDS
step_packages
if [[ "${ZKV_SKIP_DOCKER:-0}" == 1 ]]; then
	log "docker: skipped (ZKV_SKIP_DOCKER=1)"
else
	# Without docker the launcher falls back to Debian's jars (local mode), so a docker failure
	# only fails this script when that fallback is missing too, or ZKV_REQUIRE_DOCKER=1 (CI).
	if ! (step_dockerd && step_image); then
		if [[ "${ZKV_REQUIRE_DOCKER:-0}" == 1 ]]; then
			die "docker is required (ZKV_REQUIRE_DOCKER=1) but not usable; see above"
		fi
		if [[ -r /usr/share/java/zookeeper.jar ]] && command -v java >/dev/null; then
			log "WARNING: docker not usable (see above); tests and demo use Debian's jars (local mode)"
		else
			die "neither docker nor Debian's zookeeper jars are usable: run as root, or apt-get install zookeeper"
		fi
	fi
fi
command -v go >/dev/null || [[ -x /usr/local/go/bin/go ]] || die "go is missing: install Go 1.26 (https://go.dev/dl) into /usr/local/go"
log "ready in $((SECONDS - start))s"
