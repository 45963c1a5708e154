package launcher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Mode says where the ZooKeeper comes from.
type Mode string

// The modes; see the package documentation.
const (
	ModeAuto     Mode = "auto"
	ModeDocker   Mode = "docker"
	ModeLocal    Mode = "local"
	ModeExisting Mode = "existing"
)

// Options configure Start. The zero value starts one node in the first mode that is available.
type Options struct {
	Mode     Mode          // "" or auto: Servers given -> existing; else docker engine + image -> docker; else local jars
	Nodes    int           // 1 (default) or 3 (an ensemble); any odd count up to 7 works
	Image    string        // docker image; default $ZK_IMAGE, else "zookeeper:3.8"
	TickTime time.Duration // default 2s; tests pass 200-500ms
	Servers  []string      // existing ensemble "h:p" (Mode existing)
	LogDir   string        // where each node's log goes (zookeeper-<n>.log); temp dir when empty
	Logger   *slog.Logger  // discard when nil
}

// Defaults.
const (
	DefaultImage    = "zookeeper:3.8"
	DefaultTickTime = 2 * time.Second
)

// Errors, wrapped with details; check them with errors.Is.
var (
	ErrInvalidOptions = errors.New("launcher: invalid options")
	ErrNoZooKeeper    = errors.New("launcher: no ZooKeeper available")
	ErrUnavailable    = errors.New("launcher: mode unavailable")
	ErrUnsupported    = errors.New("launcher: not supported in this mode")
	ErrNoSuchNode     = errors.New("launcher: no such node")
	ErrClosed         = errors.New("launcher: closed")
)

// withDefaults returns o with its defaults filled in, or an error wrapping ErrInvalidOptions.
func (o Options) withDefaults() (Options, error) {
	if o.Mode == "" {
		o.Mode = ModeAuto
	}
	switch o.Mode {
	case ModeAuto, ModeDocker, ModeLocal, ModeExisting:
	default:
		return o, fmt.Errorf("%w: unknown mode %q (auto, docker, local, existing)", ErrInvalidOptions, o.Mode)
	}
	if o.Mode == ModeExisting && len(o.Servers) == 0 {
		return o, fmt.Errorf("%w: mode existing needs Servers", ErrInvalidOptions)
	}
	for _, s := range o.Servers {
		if s == "" || strings.ContainsAny(s, ", ") {
			return o, fmt.Errorf("%w: server %q is not host:port", ErrInvalidOptions, s)
		}
	}
	if o.Nodes == 0 {
		o.Nodes = 1
	}
	if len(o.Servers) == 0 && (o.Nodes < 1 || o.Nodes > 7 || o.Nodes%2 == 0) {
		return o, fmt.Errorf("%w: Nodes %d (want 1 or 3; an odd count up to 7)", ErrInvalidOptions, o.Nodes)
	}
	if o.Image == "" {
		o.Image = os.Getenv("ZK_IMAGE")
	}
	if o.Image == "" {
		o.Image = DefaultImage
	}
	if o.TickTime == 0 {
		o.TickTime = DefaultTickTime
	}
	if o.TickTime < 10*time.Millisecond || o.TickTime%time.Millisecond != 0 {
		return o, fmt.Errorf("%w: TickTime %v (whole milliseconds, at least 10ms)", ErrInvalidOptions, o.TickTime)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o, nil
}

// nodeState is what the launcher last did to a node.
type nodeState int

const (
	running nodeState = iota
	paused
	stopped
)

// process is one node's lifecycle in a mode that starts nodes (docker, local).
type process interface {
	start(ctx context.Context) error // start (again) a stopped node with the same ports and data
	stop(ctx context.Context) error  // SIGTERM, SIGKILL when ctx ends first; returns once it exited
	kill(ctx context.Context) error  // SIGKILL; returns once it exited
	pause(ctx context.Context) error
	resume(ctx context.Context) error
	remove() error // stop and remove everything; idempotent
	// wipe kills the node (starting it first if needed) and deletes its data, snapshots and
	// transaction logs, keeping its identity (myid): a disk loss. It does not start it again.
	wipe(ctx context.Context) error
	// running returns an error wrapping errGaveUp when the node exited by itself.
	running(ctx context.Context) error
}

type nodeHandle struct {
	mu    sync.Mutex // serialises operations on this node
	addr  string
	proc  process
	state atomic.Int32 // a nodeState; read by other nodes' Restart without mu
}

func (n *nodeHandle) is(s nodeState) bool { return nodeState(n.state.Load()) == s }
func (n *nodeHandle) set(s nodeState)     { n.state.Store(int32(s)) }

// ZooKeeper is a running ZooKeeper, started by Start.
type ZooKeeper struct {
	mode    Mode
	servers []string
	nodes   []*nodeHandle // empty in mode existing
	logger  *slog.Logger
	cleanup func() error // mode-wide teardown after the nodes are removed

	mu     sync.Mutex
	closed bool
	err    error
}

// Start starts (or finds) a ZooKeeper as o says and returns once every node serves.
// On failure everything already started is removed again.
func Start(ctx context.Context, o Options) (*ZooKeeper, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	mode, err := selectMode(ctx, o, systemProbes)
	if err != nil {
		return nil, err
	}
	o.Mode = mode
	o.Logger = o.Logger.With("zookeeper", string(mode))
	var z *ZooKeeper
	switch mode {
	case ModeExisting:
		z = &ZooKeeper{mode: mode, servers: append([]string(nil), o.Servers...), logger: o.Logger}
	case ModeDocker:
		z, err = startDocker(ctx, o)
	case ModeLocal:
		z, err = startLocal(ctx, o)
	}
	if err != nil {
		return nil, err
	}
	began := time.Now()
	for i, s := range z.servers {
		if err := poll(ctx, "wait for "+s+" to serve", func(ctx context.Context) error {
			if i < len(z.nodes) {
				if err := z.nodes[i].proc.running(ctx); err != nil {
					return err
				}
			}
			_, err := serving(ctx, s)
			return err
		}); err != nil {
			_ = z.Close()
			return nil, err
		}
	}
	o.Logger.Info("zookeeper serving", "servers", z.servers, "waited", time.Since(began).Round(time.Millisecond))
	return z, nil
}

// Servers returns the client address of each node, "127.0.0.1:port".
func (z *ZooKeeper) Servers() []string { return append([]string(nil), z.servers...) }

// Mode returns the mode Start chose.
func (z *ZooKeeper) Mode() Mode { return z.mode }

// Stop stops node gracefully (SIGTERM; SIGKILL if ctx ends first).
func (z *ZooKeeper) Stop(ctx context.Context, node int) error {
	return z.do(ctx, node, "stop", func(n *nodeHandle) error {
		if n.is(stopped) {
			return nil
		}
		if err := n.proc.stop(ctx); err != nil {
			return err
		}
		n.set(stopped)
		return nil
	})
}

// Kill kills node with SIGKILL, as a crash would.
func (z *ZooKeeper) Kill(ctx context.Context, node int) error {
	return z.do(ctx, node, "kill", func(n *nodeHandle) error {
		if n.is(stopped) {
			return nil
		}
		if err := n.proc.kill(ctx); err != nil {
			return err
		}
		n.set(stopped)
		return nil
	})
}

// Pause freezes node (SIGSTOP, docker pause): it keeps its connections but answers nothing.
func (z *ZooKeeper) Pause(ctx context.Context, node int) error {
	return z.do(ctx, node, "pause", func(n *nodeHandle) error {
		if n.is(paused) {
			return nil
		}
		if n.is(stopped) {
			return fmt.Errorf("launcher: node %d is stopped", node)
		}
		if err := n.proc.pause(ctx); err != nil {
			return err
		}
		n.set(paused)
		return nil
	})
}

// Resume thaws a paused node.
func (z *ZooKeeper) Resume(ctx context.Context, node int) error {
	return z.do(ctx, node, "resume", func(n *nodeHandle) error {
		if !n.is(paused) {
			return nil
		}
		if err := n.proc.resume(ctx); err != nil {
			return err
		}
		n.set(running)
		return nil
	})
}

// Restart starts node again with the same ports and data, stopping it first if it runs. It
// returns once the node answers, and once it serves when enough nodes run to form a quorum.
func (z *ZooKeeper) Restart(ctx context.Context, node int) error {
	return z.do(ctx, node, "restart", func(n *nodeHandle) error {
		if n.is(paused) {
			if err := n.proc.resume(ctx); err != nil {
				return err
			}
			n.set(running)
		}
		if n.is(running) {
			if err := n.proc.stop(ctx); err != nil {
				return err
			}
			n.set(stopped)
		}
		if err := n.proc.start(ctx); err != nil {
			return err
		}
		n.set(running)
		if !z.quorumRunning(n) {
			return poll(ctx, "wait for "+n.addr+" to answer", func(ctx context.Context) error {
				if err := n.proc.running(ctx); err != nil {
					return err
				}
				return alive(ctx, n.addr)
			})
		}
		return poll(ctx, "wait for "+n.addr+" to serve", func(ctx context.Context) error {
			if err := n.proc.running(ctx); err != nil {
				return err
			}
			_, err := serving(ctx, n.addr)
			return err
		})
	})
}

// Wipe makes the whole ensemble lose its data, as if every node's disk were lost at once:
// each node is killed, its snapshots and transaction logs are deleted (its identity stays),
// and every node is started again, empty. It returns once every node serves. Clients that
// had sessions find an ensemble that knows nothing of them, their znodes or their zxids.
func (z *ZooKeeper) Wipe(ctx context.Context) error {
	if z.mode == ModeExisting {
		return fmt.Errorf("%w: wipe (mode existing)", ErrUnsupported)
	}
	for i := range z.nodes {
		if err := z.do(ctx, i, "wipe", func(n *nodeHandle) error {
			if n.is(paused) {
				if err := n.proc.resume(ctx); err != nil {
					return err
				}
			}
			if err := n.proc.wipe(ctx); err != nil {
				return err
			}
			n.set(stopped)
			return nil
		}); err != nil {
			return err
		}
	}
	for i := range z.nodes {
		if err := z.do(ctx, i, "start", func(n *nodeHandle) error {
			if err := n.proc.start(ctx); err != nil {
				return err
			}
			n.set(running)
			return nil
		}); err != nil {
			return err
		}
	}
	for _, n := range z.nodes {
		if err := poll(ctx, "wait for "+n.addr+" to serve", func(ctx context.Context) error {
			if err := n.proc.running(ctx); err != nil {
				return err
			}
			_, err := serving(ctx, n.addr)
			return err
		}); err != nil {
			return err
		}
	}
	return nil
}

// quorumRunning reports whether a majority of nodes runs, counting self.
func (z *ZooKeeper) quorumRunning(self *nodeHandle) bool {
	up := 0
	for _, n := range z.nodes {
		if n == self {
			up++
			continue
		}
		if n.is(running) {
			up++
		}
	}
	return up > len(z.nodes)/2
}

func (z *ZooKeeper) do(ctx context.Context, i int, op string, f func(*nodeHandle) error) error {
	if z.mode == ModeExisting {
		return fmt.Errorf("%w: %s (mode existing)", ErrUnsupported, op)
	}
	if i < 0 || i >= len(z.nodes) {
		return fmt.Errorf("%w: %d (have %d)", ErrNoSuchNode, i, len(z.nodes))
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	z.mu.Lock()
	closed := z.closed
	z.mu.Unlock()
	if closed {
		return ErrClosed
	}
	n := z.nodes[i]
	n.mu.Lock()
	defer n.mu.Unlock()
	z.logger.Info("zookeeper node", "op", op, "node", i, "addr", n.addr)
	if err := f(n); err != nil {
		return fmt.Errorf("launcher: %s node %d: %w", op, i, err)
	}
	return nil
}

// Children lists the children of path (e.g. /election) through a fresh session.
func (z *ZooKeeper) Children(ctx context.Context, path string) ([]string, error) {
	return children(ctx, z.servers, path, z.logger)
}

// Delete deletes the znode at path, whatever its version, if it exists (e.g. a record a
// previous cluster left on a shared ensemble).
func (z *ZooKeeper) Delete(ctx context.Context, path string) error {
	return deleteNode(ctx, z.servers, path, z.logger)
}

// Close stops and removes everything Start created (nothing in mode existing). It is
// idempotent: later calls return the first call's result.
func (z *ZooKeeper) Close() error {
	z.mu.Lock()
	defer z.mu.Unlock()
	if z.closed {
		return z.err
	}
	z.closed = true
	var errs []error
	for _, n := range z.nodes {
		n.mu.Lock()
		errs = append(errs, n.proc.remove())
		n.set(stopped)
		n.mu.Unlock()
	}
	if z.cleanup != nil {
		errs = append(errs, z.cleanup())
	}
	z.err = errors.Join(errs...)
	return z.err
}
