// Package launcher gets a ZooKeeper for zkv's driver and integration tests: a single server or
// an ensemble, started in Docker, started from Debian's jars, or an existing one.
//
// Modes:
//
//   - docker: one container per node of the image in Options.Image (default $ZK_IMAGE, else
//     zookeeper:3.8), started with ory/dockertest on the host's network. Client and quorum
//     ports are picked free on 127.0.0.1 at run time and passed through the image's
//     environment (ZOO_SERVERS, ZOO_CFG_EXTRA), so nothing depends on a bridge network or fixed
//     ports. Containers are labelled zkv.launcher=1 and set to expire, so a crashed test run
//     does not leave them running for long.
//   - local: one java process per node running QuorumPeerMain with the jars of Debian's
//     zookeeper package (/usr/share/java) and a generated zoo.cfg in a temp directory; each
//     node runs in its own process group.
//   - existing: the ensemble in Options.Servers; Stop, Kill, Pause, Resume and Restart are
//     not supported there.
//   - auto (the default): existing when Servers are given, else docker when an engine answers
//     and the image is present locally, else local when java and the jars are there, else an
//     error (ErrNoZooKeeper) that says what to install.
//
// Start returns once every node serves: each node answers the "srvr" four-letter word with its
// mode, which a quorum member only does while a quorum serves. Each node's output goes to
// LogDir/zookeeper-<n>.log, n counting from 1 like ZooKeeper's server ids.
//
// Node indexes in the methods count from 0. Close stops and removes everything Start created;
// it is idempotent.
package launcher
