package bench

import (
	"context"
	"os"
	"time"

	"github.com/zkv-dev/zkv/driver/cluster"
)

// zkvNode is one zkv server process of a benchmark cluster.
type zkvNode interface {
	Addr() string
	Signal(sig os.Signal) error
	Restart(ctx context.Context) error // after the current process exited (killed if not within 10s)
	Running() bool
	PID() int // 0 when not running
}

// zkvCluster is the benchmark's view of a running zkv cluster: the part of driver/cluster it
// uses, so the measuring code can be tried on fakes.
type zkvCluster interface {
	Nodes() []zkvNode
	Close() error
}

type zkvClusterOptions struct {
	Binary    string   // bin/server
	Servers   int      // default 3
	ZooKeeper []string // "h:p"
	LogDir    string
	Args      []string // extra flags for every server
}

// startZkvCluster starts the servers with driver/cluster and returns once each answers /healthz.
func startZkvCluster(ctx context.Context, o zkvClusterOptions) (zkvCluster, error) {
	c, err := cluster.Start(ctx, cluster.Options{
		Binary: o.Binary, Servers: o.Servers, ZooKeeper: o.ZooKeeper, LogDir: o.LogDir, Args: o.Args,
	})
	if err != nil {
		return nil, err
	}
	return clusterAdapter{c}, nil
}

type clusterAdapter struct{ c *cluster.Cluster }

func (a clusterAdapter) Close() error { return a.c.Close() }

func (a clusterAdapter) Nodes() []zkvNode {
	var out []zkvNode
	for _, n := range a.c.Nodes() {
		out = append(out, nodeAdapter{n})
	}
	return out
}

type nodeAdapter struct{ n *cluster.Node }

func (a nodeAdapter) Addr() string               { return a.n.Addr() }
func (a nodeAdapter) Signal(sig os.Signal) error { return a.n.Signal(sig) }
func (a nodeAdapter) Running() bool              { return a.n.Running() }
func (a nodeAdapter) PID() int                   { return a.n.Pid() }

// Restart lets a server that was sent SIGTERM finish its graceful exit before starting it
// again (cluster's Restart kills a running process at once).
func (a nodeAdapter) Restart(ctx context.Context) error {
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	// The error says how it exited, or that it still runs after 10s: Restart kills it then.
	_ = a.n.Wait(wctx)
	return a.n.Restart(ctx)
}
