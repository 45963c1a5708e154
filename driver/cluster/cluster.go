package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/zkv-dev/zkv/driver/client"
)

// Defaults of Options.
const (
	DefaultServers      = 3
	DefaultStartTimeout = 30 * time.Second
	DefaultTermTimeout  = 10 * time.Second
	DefaultPollInterval = 50 * time.Millisecond
	// EnvServerBin names the server binary when Options.Binary is empty.
	EnvServerBin = "ZKV_SERVER_BIN"
)

// Errors, wrapped with details; check them with errors.Is.
var (
	ErrInvalidOptions = errors.New("cluster: invalid options")
	ErrStart          = errors.New("cluster: server did not start")
	ErrNotRunning     = errors.New("cluster: node not running")
	ErrNoLeader       = errors.New("cluster: no agreed leader")
	ErrClosed         = errors.New("cluster: closed")
)

// Options configure Start.
type Options struct {
	Binary    string   // path to bin/server; default $ZKV_SERVER_BIN
	Servers   int      // default 3
	ZooKeeper []string // "h:p" list, passed as -zookeeper h1:p1,h2:p2 (and -zookeeper_port of the first)
	LogDir    string   // server-<i>.log per node; a temp dir, removed by Close, when empty
	Args      []string // extra flags for every server (e.g. -session_timeout 2s -ack all)
	Env       []string // added to the driver's environment
	Logger    *slog.Logger

	StartTimeout time.Duration // per server, until /healthz answers; default 30s
	TermTimeout  time.Duration // Term waits this long for an exit before SIGKILL; default 10s
	PollInterval time.Duration // of /healthz and /v1/status polls; default 50ms
}

func (o Options) withDefaults() (Options, error) {
	if o.Binary == "" {
		o.Binary = os.Getenv(EnvServerBin)
	}
	if o.Binary == "" {
		return o, fmt.Errorf("%w: no Binary and $%s is empty", ErrInvalidOptions, EnvServerBin)
	}
	if _, err := os.Stat(o.Binary); err != nil {
		return o, fmt.Errorf("%w: Binary: %w", ErrInvalidOptions, err)
	}
	if o.Servers == 0 {
		o.Servers = DefaultServers
	}
	if o.Servers < 1 {
		return o, fmt.Errorf("%w: Servers %d", ErrInvalidOptions, o.Servers)
	}
	if len(o.ZooKeeper) == 0 {
		return o, fmt.Errorf("%w: no ZooKeeper servers", ErrInvalidOptions)
	}
	for _, z := range o.ZooKeeper {
		if z == "" || strings.ContainsAny(z, ", ") {
			return o, fmt.Errorf("%w: ZooKeeper server %q is not host:port", ErrInvalidOptions, z)
		}
	}
	if o.StartTimeout <= 0 {
		o.StartTimeout = DefaultStartTimeout
	}
	if o.TermTimeout <= 0 {
		o.TermTimeout = DefaultTermTimeout
	}
	if o.PollInterval <= 0 {
		o.PollInterval = DefaultPollInterval
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o, nil
}

// zkArgs are the ZooKeeper flags of every server.
func (o Options) zkArgs() []string {
	port := "2181"
	if _, p, err := net.SplitHostPort(o.ZooKeeper[0]); err == nil {
		port = p
	}
	return []string{"-zookeeper", strings.Join(o.ZooKeeper, ","), "-zookeeper_port", port}
}

// Cluster is a set of server processes started by Start.
type Cluster struct {
	o       Options
	nodes   []*Node
	tempDir string // LogDir created here, removed by Close
	wg      sync.WaitGroup

	mu     sync.Mutex
	closed bool
	err    error
}

// Start starts o.Servers servers and returns once each answers /healthz. On failure it kills
// whatever it started.
func Start(ctx context.Context, o Options) (*Cluster, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	c := &Cluster{o: o}
	if o.LogDir == "" {
		dir, err := os.MkdirTemp("", "zkv-cluster-")
		if err != nil {
			return nil, fmt.Errorf("cluster: log dir: %w", err)
		}
		c.tempDir, c.o.LogDir = dir, dir
	} else if err := os.MkdirAll(o.LogDir, 0o755); err != nil {
		return nil, fmt.Errorf("cluster: log dir: %w", err)
	}
	for i := range o.Servers {
		c.nodes = append(c.nodes, &Node{c: c, id: i + 1, logPath: fmt.Sprintf("%s/server-%d.log", c.o.LogDir, i+1)})
	}
	// Start them together: the servers' elections overlap anyway and startup is faster.
	errs := make([]error, len(c.nodes))
	var wg sync.WaitGroup
	for i, n := range c.nodes {
		wg.Go(func() { errs[i] = n.startFresh(ctx) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		_ = c.Close()
		return nil, err
	}
	o.Logger.Info("cluster started", "servers", c.Addrs(), "log_dir", c.o.LogDir)
	return c, nil
}

// Nodes returns the nodes in start order.
func (c *Cluster) Nodes() []*Node { return append([]*Node(nil), c.nodes...) }

// Node returns the node with ID id (1-based), or nil.
func (c *Cluster) Node(id int) *Node {
	if id < 1 || id > len(c.nodes) {
		return nil
	}
	return c.nodes[id-1]
}

// NodeByAddr returns the node listening on addr, or nil.
func (c *Cluster) NodeByAddr(addr string) *Node {
	for _, n := range c.nodes {
		if n.Addr() == addr {
			return n
		}
	}
	return nil
}

// Addrs returns every node's address, running or not.
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		out[i] = n.Addr()
	}
	return out
}

// LogDir returns the directory of the servers' logs.
func (c *Cluster) LogDir() string { return c.o.LogDir }

// ZooKeeper returns the ZooKeeper servers the nodes were given.
func (c *Cluster) ZooKeeper() []string { return append([]string(nil), c.o.ZooKeeper...) }

// Leader polls /v1/status of every running, unpaused node until exactly one says it leads and
// every one names that node as leader. The error wraps ErrNoLeader and ctx's error, and says
// what the nodes last answered.
func (c *Cluster) Leader(ctx context.Context) (*Node, error) {
	t := time.NewTicker(c.o.PollInterval)
	defer t.Stop()
	for {
		n, why := c.agreedLeader(ctx)
		if n != nil {
			return n, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: %w; last: %s", ErrNoLeader, ctx.Err(), why)
		case <-t.C:
		}
	}
}

// agreedLeader asks every live node once; nil and the reason when they do not agree.
func (c *Cluster) agreedLeader(ctx context.Context) (*Node, string) {
	var live []*Node
	for _, n := range c.nodes {
		if n.Running() && !n.Paused() {
			live = append(live, n)
		}
	}
	if len(live) == 0 {
		return nil, "no running node"
	}
	sts := make([]client.Status, len(live))
	errs := make([]error, len(live))
	var wg sync.WaitGroup
	for i, n := range live {
		wg.Go(func() {
			sctx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			sts[i], errs[i] = n.Client().Status(sctx)
		})
	}
	wg.Wait()
	var leader *Node
	var views []string
	for i, n := range live {
		if errs[i] != nil {
			return nil, fmt.Sprintf("%s: %v", n.Addr(), errs[i])
		}
		views = append(views, fmt.Sprintf("%s=%s(leader %q)", n.Addr(), sts[i].Role, sts[i].Leader.Address))
		if sts[i].Role == client.RoleLeader {
			if leader != nil {
				return nil, "two leaders: " + strings.Join(views, " ")
			}
			leader = n
		}
	}
	if leader == nil {
		return nil, "no node leads: " + strings.Join(views, " ")
	}
	for i := range live {
		if sts[i].Leader.Address != leader.Addr() {
			return nil, "disagree: " + strings.Join(views, " ")
		}
	}
	return leader, ""
}

// Close kills every process the cluster started, waits for them, and removes LogDir when
// Start created it. Idempotent; later calls return the first call's result.
func (c *Cluster) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return c.err
	}
	c.closed = true
	c.mu.Unlock()
	var errs []error
	for _, n := range c.nodes {
		if err := n.kill(); err != nil && !errors.Is(err, ErrNotRunning) {
			errs = append(errs, err)
		}
	}
	c.wg.Wait()
	for _, n := range c.nodes {
		if n.client != nil {
			_ = n.client.Close()
		}
	}
	if c.tempDir != "" {
		if err := os.RemoveAll(c.tempDir); err != nil {
			errs = append(errs, err)
		}
	}
	err := errors.Join(errs...)
	c.mu.Lock()
	c.err = err
	c.mu.Unlock()
	return err
}

func (c *Cluster) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// handedOut holds the ports freePort has returned in this process: the kernel may return a
// port again for ":0" once its listener is closed, before the server that got it has bound
// it (two servers of one cluster were given the same port).
var (
	portMu    sync.Mutex
	handedOut = map[int]bool{}
)

// freePort returns a port that was free on 127.0.0.1 a moment ago and that it has not
// returned before.
func freePort() (int, error) {
	portMu.Lock()
	defer portMu.Unlock()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
		if !handedOut[port] {
			handedOut[port] = true
			return port, nil
		}
	}
	return 0, errors.New("cluster: no fresh free port")
}

// command builds the server's command line for port.
func (c *Cluster) command(port int) []string {
	args := []string{"-host", "127.0.0.1", "-port", strconv.Itoa(port)}
	args = append(args, c.o.zkArgs()...)
	return append(args, c.o.Args...)
}

// spawn starts one process; the caller holds n.mu.
func (c *Cluster) spawn(n *Node, port int, why string) (*proc, error) {
	args := c.command(port)
	f, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("cluster: node %d log: %w", n.id, err)
	}
	cmd := exec.Command(c.o.Binary, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), c.o.Env...)
	cmd.SysProcAttr = sysProcAttr()
	fmt.Fprintf(f, "=== zkv cluster: %s node %d at %s: %s %s\n", why, n.id,
		time.Now().Format(time.RFC3339Nano), c.o.Binary, strings.Join(args, " "))
	if err := cmd.Start(); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("%w: node %d: %w", ErrStart, n.id, err)
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	c.wg.Go(func() { // must not take n.mu: Kill waits for done while holding it
		err := cmd.Wait()
		p.err = err
		state := "exit 0"
		if err != nil {
			state = err.Error()
		}
		fmt.Fprintf(f, "=== zkv cluster: node %d (pid %d) exited at %s: %s\n", n.id, cmd.Process.Pid,
			time.Now().Format(time.RFC3339Nano), state)
		_ = f.Close()
		c.o.Logger.Info("server exited", "node", n.id, "addr", addr, "pid", cmd.Process.Pid, "state", state)
		close(p.done)
	})
	c.o.Logger.Info("server started", "node", n.id, "addr", addr, "pid", cmd.Process.Pid, "why", why)
	return p, nil
}
