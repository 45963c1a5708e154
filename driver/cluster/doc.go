// Package cluster spawns zkv server processes on loopback and controls them: the driver's
// scenarios and the integration tests use it to start a cluster, find its leader, and kill,
// pause, terminate or restart single servers.
//
// Each server runs as
//
//	<Binary> -host 127.0.0.1 -port P -zookeeper h1:p1,h2:p2 -zookeeper_port p1 <Args...>
//
// on a port picked free at start (a listener on 127.0.0.1:0, closed just before the server
// binds it; a server that fails to start is retried on another port). A node keeps its port
// across Restart. Each server runs in its own process group, so a signal reaches whatever the
// binary starts as well; one goroutine per process, owned by the Cluster, reaps it with Wait.
//
// Each node's stdout and stderr are appended to LogDir/server-<i>.log (i counting from 1);
// every start and every exit writes a marker line beginning with "=== zkv cluster:" so a log
// read later shows where one process ends and its restart begins.
//
// Start returns once every server answers GET /healthz. Leader polls GET /v1/status until
// exactly one running node says it leads and every running (not paused) node names it.
// Close kills every process the cluster started and waits for them; it is idempotent.
package cluster
