package bench

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"syscall"
	"time"
)

// zkvNode is one zkv server process of a benchmark cluster.
type zkvNode interface {
	Addr() string
	Signal(sig os.Signal) error
	Restart(ctx context.Context) error
	Running() bool
	PID() int // 0 when unknown
}

// zkvCluster is the benchmark's view of a running zkv cluster.
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

// startZkvCluster starts the servers and returns once each answers /healthz.
func startZkvCluster(ctx context.Context, o zkvClusterOptions) (zkvCluster, error) {
	return startZkvProcs(ctx, o)
}

// zkvProcs spawns bin/server processes itself.
type zkvProcs struct {
	o     zkvClusterOptions
	nodes []*zkvProc
}

type zkvProc struct {
	c    *zkvProcs
	i    int
	addr string
	args []string
	p    *proc
	runs int
}

func startZkvProcs(ctx context.Context, o zkvClusterOptions) (*zkvProcs, error) {
	if o.Servers == 0 {
		o.Servers = 3
	}
	if _, err := os.Stat(o.Binary); err != nil {
		return nil, fmt.Errorf("bench: zkv server binary: %w (run make build)", err)
	}
	ports, err := freePorts(o.Servers)
	if err != nil {
		return nil, err
	}
	c := &zkvProcs{o: o}
	for i, port := range ports {
		args := append([]string{"-host", "127.0.0.1", "-port", fmt.Sprint(port),
			"-zookeeper", strings.Join(o.ZooKeeper, ","), "-id", fmt.Sprintf("server-%d", i+1)}, o.Args...)
		n := &zkvProc{c: c, i: i, addr: hostPort(port), args: args}
		c.nodes = append(c.nodes, n)
		if err := n.start(); err != nil {
			c.Close()
			return nil, err
		}
	}
	for _, n := range c.nodes {
		if err := n.waitHealthy(ctx); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

func (c *zkvProcs) Nodes() []zkvNode {
	out := make([]zkvNode, len(c.nodes))
	for i, n := range c.nodes {
		out[i] = n
	}
	return out
}

func (c *zkvProcs) Close() error {
	for _, n := range c.nodes {
		if n.p != nil {
			n.p.stop(5 * time.Second)
		}
	}
	return nil
}

func (n *zkvProc) start() error {
	n.runs++
	p, err := startProc(fmt.Sprintf("server-%d.%d", n.i+1, n.runs), n.c.o.LogDir, n.c.o.Binary, n.args...)
	if err != nil {
		return err
	}
	n.p = p
	return nil
}

func (n *zkvProc) waitHealthy(ctx context.Context) error {
	hc := &http.Client{Timeout: time.Second}
	return waitFor(ctx, 30*time.Second, "zkv "+n.addr+" healthy", func(ctx context.Context) error {
		return do(ctx, hc, http.MethodGet, "http://"+n.addr+"/healthz", nil)
	}, n.p)
}

func (n *zkvProc) Addr() string { return n.addr }

func (n *zkvProc) PID() int {
	if n.p == nil {
		return 0
	}
	return n.p.pid()
}

func (n *zkvProc) Running() bool { return n.p != nil && !n.p.exited() }

func (n *zkvProc) Signal(sig os.Signal) error {
	if !n.Running() {
		return errors.New("bench: server not running")
	}
	return n.p.cmd.Process.Signal(sig)
}

// Restart starts the server again with the same address and flags, after the old process
// exited (it is killed if it has not within 10s).
func (n *zkvProc) Restart(ctx context.Context) error {
	if n.p != nil {
		select {
		case <-n.p.done:
		case <-time.After(10 * time.Second):
			_ = n.p.cmd.Process.Signal(syscall.SIGKILL)
			<-n.p.done
		}
		n.p.stop(0)
	}
	if err := n.start(); err != nil {
		return err
	}
	return n.waitHealthy(ctx)
}
