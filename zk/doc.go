// Package zk is the ZooKeeper client every zkv module links: go-zookeeper/zk v1.0.4 forked,
// with its reconnect data race fixed and the session timeout the server granted exposed
// ([Conn.SessionTimeout]). See README.md for what changed from upstream.
package zk
