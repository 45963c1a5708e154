#!/usr/bin/env bash
# `make demo` runs this first: succeeds when the driver's launcher has a ZooKeeper to start
# (Debian's jars + java for local mode, or a docker engine with $ZK_IMAGE); otherwise installs
# Debian's zookeeper package when root on Debian; otherwise says what to install and exits 1.
# Cheap when a source is there: no network, no package manager.
set -euo pipefail

image="${ZK_IMAGE:-zkv/zookeeper:3.8}"
jar=/usr/share/java/zookeeper.jar

log() { printf '[ensure-zookeeper] %s\n' "$*"; }

have_java() { [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]] || command -v java >/dev/null; }
have_local() { [[ -r "$jar" ]] && have_java; }
have_docker() {
	command -v docker >/dev/null &&
		timeout 10 docker info >/dev/null 2>&1 &&
		docker image inspect "$image" >/dev/null 2>&1
}

if have_docker; then
	log "ZooKeeper: docker engine with image $image"
	exit 0
fi
if have_local; then
	log "ZooKeeper: Debian's jars ($jar) and $(command -v java || echo "$JAVA_HOME/bin/java")"
	exit 0
fi
if [[ $EUID -eq 0 && -r /etc/debian_version ]] && command -v apt-get >/dev/null; then
	log "no ZooKeeper found: installing Debian's zookeeper package"
	export DEBIAN_FRONTEND=noninteractive
	if ! apt-get install -y -qq --no-install-recommends zookeeper >/dev/null 2>&1; then
		apt-get update -qq
		apt-get install -y -qq --no-install-recommends zookeeper >/dev/null
	fi
	if have_local; then
		log "ZooKeeper: Debian's jars ($jar) and $(command -v java)"
		exit 0
	fi
	log "ERROR: zookeeper installed but $jar or java is still missing" >&2
	exit 1
fi
cat >&2 <<EOF
[ensure-zookeeper] ERROR: no ZooKeeper available for the demo. Install one of:
  - Debian's package (jars + JRE, used in local mode):   sudo apt-get install zookeeper
  - the docker image $image (needs docker.io and root):   sudo scripts/prepare.sh
  - or run the driver against a running ensemble:         bin/driver scenarios -zookeeper host:port
EOF
exit 1
