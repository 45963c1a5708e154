// Package bench holds zkv's benchmarks, run as `bin/bench election` and `bin/bench load`
// (cmd/bench; `bin/driver bench ...` runs the same binary). It is a module of its own so that the
// driver does not link the comparison systems' clients, the plotting and the proxy.
//
// The election benchmark stops the leader of a 3-server cluster (SIGTERM: it resigns; SIGKILL:
// its ZooKeeper session has to expire) and measures, from the signal, the time until a survivor
// names a new leader, until the successor calls itself leader, and until a write is acknowledged
// through a survivor. It runs against a local ZooKeeper, against the same ZooKeeper behind an
// in-process toxiproxy that adds one-way latency and jitter (a simulated remote region), and
// against an ensemble the user names with -zookeeper.
//
// The load benchmark drives closed-loop clients against zkv and, with the same client loop,
// against etcd, Redis and a bare net/http server (the ceiling of one HTTP round trip), and writes
// throughput and latency per system and load, and the CPU time per operation of the system's
// processes and of the load generator over the same measured window (from /proc/<pid>/stat and
// getrusage), which a shared, noisy machine moves less than throughput.
//
// Both write a Markdown report and PNG/SVG plots. Every run is bounded in count and time and
// talks to 127.0.0.1 only, apart from a ZooKeeper ensemble the user names.
package bench
