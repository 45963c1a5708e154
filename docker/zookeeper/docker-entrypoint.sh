#!/bin/bash
# Entrypoint of zkv/zookeeper: the official zookeeper image's environment contract on Debian's jars.
# Generates /conf/zoo.cfg unless one is mounted, writes /data/myid, then execs ZooKeeper in the
# foreground (PID 1), logging to stdout.
set -euo pipefail

: "${ZOO_CONF_DIR:=/conf}" "${ZOO_DATA_DIR:=/data}" "${ZOO_DATA_LOG_DIR:=/datalog}"
: "${ZOO_TICK_TIME:=2000}" "${ZOO_INIT_LIMIT:=5}" "${ZOO_SYNC_LIMIT:=2}"
: "${ZOO_AUTOPURGE_PURGEINTERVAL:=0}" "${ZOO_AUTOPURGE_SNAPRETAINCOUNT:=3}"
: "${ZOO_MAX_CLIENT_CNXNS:=60}" "${ZOO_STANDALONE_ENABLED:=true}" "${ZOO_ADMINSERVER_ENABLED:=true}"

mkdir -p "$ZOO_CONF_DIR" "$ZOO_DATA_DIR" "$ZOO_DATA_LOG_DIR"

config="$ZOO_CONF_DIR/zoo.cfg"
if [[ ! -f "$config" ]]; then
	{
		echo "dataDir=$ZOO_DATA_DIR"
		echo "dataLogDir=$ZOO_DATA_LOG_DIR"
		echo "tickTime=$ZOO_TICK_TIME"
		echo "initLimit=$ZOO_INIT_LIMIT"
		echo "syncLimit=$ZOO_SYNC_LIMIT"
		echo "autopurge.snapRetainCount=$ZOO_AUTOPURGE_SNAPRETAINCOUNT"
		echo "autopurge.purgeInterval=$ZOO_AUTOPURGE_PURGEINTERVAL"
		echo "maxClientCnxns=$ZOO_MAX_CLIENT_CNXNS"
		echo "standaloneEnabled=$ZOO_STANDALONE_ENABLED"
		echo "admin.enableServer=$ZOO_ADMINSERVER_ENABLED"
		for server in ${ZOO_SERVERS:-server.1=localhost:2888:3888;2181}; do
			echo "$server"
		done
		if [[ -n "${ZOO_4LW_COMMANDS_WHITELIST:-}" ]]; then
			echo "4lw.commands.whitelist=$ZOO_4LW_COMMANDS_WHITELIST"
		fi
		for entry in ${ZOO_CFG_EXTRA:-}; do
			echo "$entry"
		done
	} >"$config"
fi

if [[ ! -f "$ZOO_DATA_DIR/myid" ]]; then
	echo "${ZOO_MY_ID:-1}" >"$ZOO_DATA_DIR/myid"
fi

# The official image's default command; anything else runs as given (e.g. `bash`).
if [[ $# -eq 0 || ("$1" == zkServer.sh && "${2:-start-foreground}" == start-foreground) ]]; then
	classpath="$ZOO_CONF_DIR:/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar"
	# shellcheck disable=SC2086 # JVMFLAGS / SERVER_JVMFLAGS are word lists, as in zkServer.sh
	exec java \
		-Dzookeeper.log.dir=/tmp \
		-Dorg.slf4j.simpleLogger.logFile=System.out \
		-Dorg.slf4j.simpleLogger.showDateTime=true \
		-Dorg.slf4j.simpleLogger.dateTimeFormat=yyyy-MM-dd\'T\'HH:mm:ss.SSS \
		-XX:+UseSerialGC -Xss512k ${JVMFLAGS:-} ${SERVER_JVMFLAGS:-} \
		-cp "$classpath" org.apache.zookeeper.server.quorum.QuorumPeerMain "$config"
fi
exec "$@"
