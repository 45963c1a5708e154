// Command bench runs zkv's benchmarks: leader-election latency (local, simulated remote or a named
// ZooKeeper) and load beside etcd, Redis and a bare HTTP server. "bench -h" lists the commands;
// `make bench-election` and `make bench-load` regenerate docs/election-latency.md and
// docs/benchmarks.md with it.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/zkv-dev/zkv/bench"
)

func main() {
	// The first signal cancels the run so the benchmark stops the processes it started (servers,
	// ZooKeeper, etcd, Redis) before exiting.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := bench.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
