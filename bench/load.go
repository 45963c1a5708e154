package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/zkv-dev/zkv/driver/launcher"
)

// loadOptions are the flags of `bench load`.
type loadOptions struct {
	Clients        []int
	ValueSizes     []int
	SizeClients    int // client count of the cells at the value sizes after the first
	Duration       time.Duration
	Warmup         time.Duration
	Keys           int
	Systems        map[string]bool
	Scale          []int
	ScaleClients   int
	MemKeys        int
	MemTimeout     time.Duration
	Profile        time.Duration // leader CPU profile of one extra write cell; 0 for none
	ZooKeeper      []string
	ZKMode         string
	Tick           time.Duration
	SessionTimeout time.Duration
	ServerBin      string
	Report         string
	ImgDir         string
	Logs           string
	EtcdDataDir    string
	Command        string
	self           string // this program, for the ceiling's own process; "" serves it in-process
}

// loadCell is one measured cell.
type loadCell struct {
	System    string // zkv, etcd, redis, ceiling
	Op        string // what a request does, as the report names it
	Kind      string // write, read, mixed
	ValueSize int
	Clients   int
	Servers   int
	Result    LoopResult
	CPU       *cellCPU // over the measured window; nil when not read
	CPUErr    string   // why not
}

// loadRun is everything a load run produced.
type loadRun struct {
	Cells    []loadCell
	Skipped  []string // systems not run, and why
	Versions map[string]string
	Memory   *memoryResult
	Profile  *profileResult
	Notes    []string
}

type memoryResult struct {
	Keys      int
	ValueSize int
	Loaded    int
	Took      time.Duration
	Before    []int64 // RSS per server before loading
	After     []int64
	Err       string
}

func parseLoad(args []string, stderr io.Writer) (loadOptions, error) {
	o := loadOptions{Systems: map[string]bool{}}
	fs := flag.NewFlagSet("bench load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	clients := fs.String("clients", "1,16,64,256", "closed-loop client counts (swept at the first value size)")
	sizes := fs.String("values", "100,1000", "value sizes in bytes")
	fs.IntVar(&o.SizeClients, "size_clients", 64, "client count for the value sizes after the first")
	fs.DurationVar(&o.Duration, "duration", 5*time.Second, "measured time per cell")
	fs.DurationVar(&o.Warmup, "warmup", 500*time.Millisecond, "unmeasured warm-up per cell")
	fs.IntVar(&o.Keys, "keys", 10000, "key space (preloaded before reads)")
	systems := fs.String("systems", "ceiling,redis,etcd,zkv", "systems to run")
	scale := fs.String("scale", "3,5,7", "zkv server counts for the write-scaling cells (ack all)")
	fs.IntVar(&o.ScaleClients, "scale_clients", 64, "client count of the scaling cells")
	fs.IntVar(&o.MemKeys, "mem_keys", 1_000_000, "keys written to measure zkv's memory per key (0: skip)")
	fs.DurationVar(&o.MemTimeout, "mem_timeout", 4*time.Minute, "time limit of the memory load")
	fs.DurationVar(&o.Profile, "profile", 5*time.Second, "CPU profile of the leader (servers run with -pprof) over an extra PUT ack all cell at -size_clients; 0 to skip")
	zk := fs.String("zookeeper", "", "a ZooKeeper ensemble h:p,... to use instead of starting one")
	fs.StringVar(&o.ZKMode, "zk_mode", "auto", "how to get the local ZooKeeper: auto, docker, local")
	fs.DurationVar(&o.Tick, "tick", 200*time.Millisecond, "tickTime of the local ZooKeeper (ZooKeeper expires sessions once per tick: a short tick keeps crash failover close to the session timeout)")
	fs.DurationVar(&o.SessionTimeout, "session_timeout", 2*time.Second, "the servers' -session_timeout")
	fs.StringVar(&o.ServerBin, "server_bin", defaultServerBin(), "the zkv server binary")
	fs.StringVar(&o.Report, "report", "docs/benchmarks.md", "where the Markdown report goes; empty prints it")
	fs.StringVar(&o.ImgDir, "img", "docs/img", "where the plots go")
	fs.StringVar(&o.Logs, "logs", filepath.Join(os.TempDir(), "zkv-bench-load"), "where process logs go")
	fs.StringVar(&o.EtcdDataDir, "etcd_data", defaultEtcdData(), "parent of the etcd members' data (tmpfs by default)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	var err error
	if o.Clients, err = parseInts(*clients); err != nil {
		return o, err
	}
	if o.ValueSizes, err = parseInts(*sizes); err != nil {
		return o, err
	}
	if o.Scale, err = parseInts(*scale); err != nil && *scale != "" {
		return o, err
	}
	for _, s := range splitList(*systems) {
		switch s {
		case "zkv", "etcd", "redis", "ceiling":
			o.Systems[s] = true
		default:
			return o, fmt.Errorf("bench load: unknown system %q (zkv, etcd, redis, ceiling)", s)
		}
	}
	o.ZooKeeper = splitList(*zk)
	if len(o.Clients) == 0 || len(o.ValueSizes) == 0 || o.Duration <= 0 || o.Keys < 1 {
		return o, fmt.Errorf("bench load: need clients, value sizes, a duration and keys")
	}
	if exe, err := os.Executable(); err == nil {
		o.self = exe
	}
	o.Command = strings.TrimSpace("bin/bench load " + strings.Join(args, " "))
	return o, nil
}

func defaultEtcdData() string {
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		return "/dev/shm"
	}
	return os.TempDir()
}

// cellPlan is what one system runs at one value size: the client counts.
func (o loadOptions) clientsFor(sizeIndex int) []int {
	if sizeIndex == 0 {
		return o.Clients
	}
	return []int{o.SizeClients}
}

func (o loadOptions) maxClients() int {
	m := o.SizeClients
	for _, c := range o.Clients {
		m = max(m, c)
	}
	return max(m, o.ScaleClients)
}

type namedOp struct {
	Op, Kind string
	Fn       Op
}

// runOps runs every op at every client count of size index si; targets names the system's
// processes, asked before each cell.
func (o loadOptions) runOps(ctx context.Context, run *loadRun, bar *progress, system string, servers, si int, targets func(context.Context) cpuTargets, ops []namedOp) {
	for _, op := range ops {
		for _, c := range o.clientsFor(si) {
			if ctx.Err() != nil {
				return
			}
			label := fmt.Sprintf("%s %s %dB c=%d", system, op.Op, o.ValueSizes[si], c)
			bar.Label(label)
			cell := loadCell{System: system, Op: op.Op, Kind: op.Kind, ValueSize: o.ValueSizes[si], Clients: c, Servers: servers}
			run.Cells = append(run.Cells, o.measureCell(ctx, cell, op.Fn, targets))
			bar.Step(label)
		}
	}
}

// measureCell runs cell's closed loop with op and reads the CPU time of the processes targets
// names (and of this one) over the same window as the operations counted.
func (o loadOptions) measureCell(ctx context.Context, cell loadCell, op Op, targets func(context.Context) cpuTargets) loadCell {
	t := targets(ctx)
	m := &cpuMeter{t: t, hz: clockTicks(), procCPU: procCPU, procIO: procIO}
	cell.Result = runClosedLoop(ctx, cell.Clients, o.Warmup, o.Duration, op, m)
	cpu, err := m.result()
	if err != nil {
		cell.CPUErr = err.Error()
		return cell
	}
	if t.Leader != 0 && targets(ctx).Leader != t.Leader {
		// The leadership moved during the cell: whose share the leader's was is unknown.
		cpu.Leader, cpu.HasLeader = 0, false
	}
	cell.CPU = cpu
	return cell
}

// procTargets are the CPU targets of a system run as procs.
func procTargets(procs []*proc) func(context.Context) cpuTargets {
	return func(context.Context) cpuTargets {
		var t cpuTargets
		for _, p := range procs {
			t.Servers = append(t.Servers, p.cmd.Process.Pid)
		}
		return t
	}
}

// zkvTargets are a zkv cluster's servers, with the one the servers name leader, and zk, the
// local ZooKeeper's processes.
func zkvTargets(cl zkvCluster, zk []int) func(context.Context) cpuTargets {
	return func(ctx context.Context) cpuTargets {
		t := cpuTargets{ZooKeeper: zk}
		leader, _ := leaderOf(ctx, cl.Nodes()) // none named: no leader's share
		for _, n := range cl.Nodes() {
			t.Servers = append(t.Servers, n.PID())
			if leader != "" && n.Addr() == leader {
				t.Leader = n.PID()
			}
		}
		return t
	}
}

// cellCount is how many cells a full run has, for the progress bar.
func (o loadOptions) cellCount() int {
	perSize := func(ops int) int {
		n := 0
		for si := range o.ValueSizes {
			n += ops * len(o.clientsFor(si))
		}
		return n
	}
	n := 0
	if o.Systems["ceiling"] {
		n += perSize(1)
	}
	if o.Systems["redis"] {
		n += perSize(3)
	}
	if o.Systems["etcd"] {
		n += perSize(4)
	}
	if o.Systems["zkv"] {
		n += perSize(4) + 2*perSize(1)
		if o.Profile >= time.Second {
			n++
		}
		for _, s := range o.Scale {
			if s != 3 {
				n++
			}
		}
	}
	return n
}

func runLoad(ctx context.Context, o loadOptions, stderr io.Writer) (*loadRun, error) {
	run := &loadRun{Versions: map[string]string{}}
	keys := makeKeys(o.Keys)
	bar := newProgress(stderr, o.cellCount())
	defer bar.Done()
	conns := o.maxClients() + 8

	if o.Systems["ceiling"] {
		for si, size := range o.ValueSizes {
			c, err := startCeiling(ctx, o.self, o.Logs, size)
			if err != nil && o.self != "" {
				run.Notes = append(run.Notes, fmt.Sprintf("the ceiling server ran in-process: its own process did not start (%v)", err))
				c, err = startCeiling(ctx, "", o.Logs, size)
			}
			if err != nil {
				return run, err
			}
			hc := newHTTPClient(conns, 10*time.Second)
			targets := func(context.Context) cpuTargets { return cpuTargets{InProcess: true} }
			if c.proc != nil {
				targets = procTargets([]*proc{c.proc})
			}
			o.runOps(ctx, run, bar, "ceiling", 1, si, targets, []namedOp{{"GET fixed body", "read", getURL(hc, c.addr, keys)}})
			hc.CloseIdleConnections()
			c.close()
		}
	}
	if o.Systems["redis"] {
		if err := o.loadRedis(ctx, run, bar, keys, conns); err != nil {
			if !errors.Is(err, errNotInstalled) {
				return run, err
			}
			run.Skipped = append(run.Skipped, err.Error())
		}
	}
	if o.Systems["etcd"] {
		if err := o.loadEtcd(ctx, run, bar, keys); err != nil {
			if !errors.Is(err, errNotInstalled) {
				return run, err
			}
			run.Skipped = append(run.Skipped, err.Error())
		}
	}
	if o.Systems["zkv"] {
		if err := o.loadZkv(ctx, run, bar, keys, conns); err != nil {
			return run, err
		}
	}
	return run, ctx.Err()
}

func (o loadOptions) loadRedis(ctx context.Context, run *loadRun, bar *progress, keys []string, conns int) error {
	dir, err := os.MkdirTemp("", "zkv-bench-redis-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	g, err := startRedis(ctx, 2, conns, dir, o.Logs)
	if err != nil {
		return err
	}
	defer g.Close()
	run.Versions["redis"] = g.Version
	for si, size := range o.ValueSizes {
		value := makeValue(size)
		if err := preload(ctx, keys, 64, time.Minute, func(ctx context.Context, w int, k string) error { return g.set(ctx, k, value) }); err != nil {
			return err
		}
		// WAIT for the replicas once, so the replica reads find every key.
		if err := g.setWait(keys[:1], value)(ctx, 0, 0); err != nil {
			return err
		}
		write, read := g.setWait(keys, value), g.getReplica(keys)
		o.runOps(ctx, run, bar, "redis", 3, si, procTargets(g.procs), []namedOp{
			{"SET + WAIT 2", "write", write},
			{"GET from a replica", "read", read},
			{"90% GET replica / 10% SET+WAIT", "mixed", mixOp(read, write)},
		})
	}
	return nil
}

func (o loadOptions) loadEtcd(ctx context.Context, run *loadRun, bar *progress, keys []string) error {
	dir, err := os.MkdirTemp(o.EtcdDataDir, "zkv-bench-etcd-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	c, err := startEtcd(ctx, 3, dir, o.Logs)
	if err != nil {
		return err
	}
	defer c.Close()
	run.Versions["etcd"] = c.Version
	for si, size := range o.ValueSizes {
		value := makeValue(size)
		if err := preload(ctx, keys, 64, 2*time.Minute, func(ctx context.Context, w int, k string) error {
			_, err := c.client(w).Put(ctx, k, value)
			return err
		}); err != nil {
			return err
		}
		put, ser := c.put(keys, value), c.get(keys, true)
		o.runOps(ctx, run, bar, "etcd", 3, si, procTargets(c.procs), []namedOp{
			{"put", "write", put},
			{"get serializable", "read", ser},
			{"get linearizable", "read", c.get(keys, false)},
			{"90% get serializable / 10% put", "mixed", mixOp(ser, put)},
		})
	}
	return nil
}

// zkvCell starts a cluster of n servers with ack mode ack and calls f with its client.
func (o loadOptions) withZkv(ctx context.Context, zk []string, n int, ack string, conns int, f func(cl zkvCluster, z *zkvHTTP) error, extra ...string) error {
	cl, err := startZkvCluster(ctx, zkvClusterOptions{
		Binary: o.ServerBin, Servers: n, ZooKeeper: zk,
		LogDir: filepath.Join(o.Logs, fmt.Sprintf("zkv-%d-%s", n, ack)),
		// A cluster token the bench knows: /debug/pprof/ is behind it (and every cluster on
		// the shared ZooKeeper has the same, so their ACLs agree).
		Args: append([]string{"-ack", ack, "-session_timeout", o.SessionTimeout.String(), "-cluster_token", benchToken}, extra...),
	})
	if err != nil {
		return err
	}
	defer cl.Close()
	hc := newHTTPClient(8, 2*time.Second)
	defer hc.CloseIdleConnections()
	if _, err := waitStable(ctx, hc, cl.Nodes(), time.Minute); err != nil {
		return err
	}
	var addrs []string
	for _, nd := range cl.Nodes() {
		addrs = append(addrs, nd.Addr())
	}
	z := newZkvHTTP(addrs, conns)
	defer z.Close()
	return f(cl, z)
}

func (o loadOptions) loadZkv(ctx context.Context, run *loadRun, bar *progress, keys []string, conns int) error {
	zk := o.ZooKeeper
	var zkPIDs []int // a local ZooKeeper's, for its CPU time
	if len(zk) == 0 {
		z, err := launcher.Start(ctx, launcher.Options{Mode: launcher.Mode(o.ZKMode), TickTime: o.Tick,
			LogDir: filepath.Join(o.Logs, "zookeeper"), Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			return err
		}
		defer z.Close()
		zk = z.Servers()
		run.Versions["zookeeper"] = fmt.Sprintf("%s mode, tickTime %v", z.Mode(), o.Tick)
		if z.Mode() == launcher.ModeLocal {
			// The launcher starts java processes of ours and does not tell their PIDs.
			var err error
			if zkPIDs, err = childrenRunning(os.Getpid(), "QuorumPeerMain"); err != nil {
				run.Notes = append(run.Notes, fmt.Sprintf("ZooKeeper's CPU time was not read: %v", err))
			}
		}
	}
	for _, ack := range []string{"all", "majority", "leader"} {
		// The ack-all cluster serves /debug/pprof/ for the profiled cell; the handlers cost
		// nothing until a profile is asked for, after the measured cells.
		var extra []string
		profile := ack == "all" && o.Profile >= time.Second
		if profile {
			extra = append(extra, "-pprof")
		}
		err := o.withZkv(ctx, zk, 3, ack, conns, func(cl zkvCluster, z *zkvHTTP) error {
			for si, size := range o.ValueSizes {
				value := makeValue(size)
				write := z.put(keys, value)
				ops := []namedOp{{"PUT ack " + ack, "write", write}}
				if ack == "all" {
					if err := preload(ctx, keys, 64, 2*time.Minute, func(ctx context.Context, w int, k string) error { return z.putKey(ctx, w, k, value) }); err != nil {
						return err
					}
					local := z.get(keys, false)
					ops = append(ops,
						namedOp{"GET local", "read", local},
						namedOp{"GET ?consistency=leader", "read", z.get(keys, true)},
						namedOp{"90% GET local / 10% PUT ack all", "mixed", mixOp(local, write)})
				}
				o.runOps(ctx, run, bar, "zkv", 3, si, zkvTargets(cl, zkPIDs), ops)
			}
			if profile && ctx.Err() == nil {
				cell := loadCell{System: "zkv", Op: "PUT ack all", Kind: "write", ValueSize: o.ValueSizes[0], Clients: o.SizeClients, Servers: 3}
				run.Profile = o.profileCell(ctx, cl, cell, z.put(keys, makeValue(o.ValueSizes[0])), bar)
			}
			if ack == "leader" && o.MemKeys > 0 {
				run.Memory = o.measureMemory(ctx, cl, z, bar)
			}
			return nil
		}, extra...)
		if err != nil {
			return err
		}
	}
	for _, n := range o.Scale {
		if n == 3 {
			continue // measured above with the same op
		}
		err := o.withZkv(ctx, zk, n, "all", conns, func(cl zkvCluster, z *zkvHTTP) error {
			label := fmt.Sprintf("zkv %d servers PUT ack all", n)
			bar.Label(label)
			cell := loadCell{System: "zkv", Op: "PUT ack all", Kind: "write", ValueSize: o.ValueSizes[0], Clients: o.ScaleClients, Servers: n}
			run.Cells = append(run.Cells, o.measureCell(ctx, cell, z.put(keys, makeValue(o.ValueSizes[0])), zkvTargets(cl, zkPIDs)))
			bar.Step(label)
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// measureMemory writes MemKeys fresh keys with 100-byte values and reads every server's RSS from
// /proc before and after.
func (o loadOptions) measureMemory(ctx context.Context, cl zkvCluster, z *zkvHTTP, bar *progress) *memoryResult {
	m := &memoryResult{Keys: o.MemKeys, ValueSize: 100}
	for _, n := range cl.Nodes() {
		r, err := rssBytes(n.PID())
		if err != nil {
			m.Err = err.Error()
			return m
		}
		m.Before = append(m.Before, r)
	}
	bar.Label(fmt.Sprintf("zkv memory: writing %d keys", o.MemKeys))
	value := makeValue(100)
	keys := make([]string, o.MemKeys)
	for i := range keys {
		keys[i] = fmt.Sprintf("m%0*d", keyBytes-1, i)
	}
	start := time.Now()
	err := preload(ctx, keys, 64, o.MemTimeout, func(ctx context.Context, w int, k string) error { return z.putKey(ctx, w, k, value) })
	m.Took = time.Since(start)
	m.Loaded = o.MemKeys
	if err != nil {
		m.Err = err.Error()
		m.Loaded = 0
	}
	time.Sleep(time.Second) // let the followers apply the last batches
	for _, n := range cl.Nodes() {
		r, err := rssBytes(n.PID())
		if err != nil {
			m.Err = err.Error()
			return m
		}
		m.After = append(m.After, r)
	}
	return m
}

func mainLoad(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseLoad(args, stderr)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, err)
		}
		return flagExit(err)
	}
	start := time.Now()
	run, runErr := runLoad(ctx, o, stderr)
	if run == nil || (len(run.Cells) == 0 && runErr != nil) {
		fmt.Fprintln(stderr, "bench load:", runErr)
		return 1
	}
	if runErr != nil {
		run.Notes = append(run.Notes, "the run stopped early: "+runErr.Error())
	}
	var plots []string
	if o.Report != "" {
		plots, err = loadPlots(o, run, filepath.Dir(o.Report))
		if err != nil {
			fmt.Fprintln(stderr, "bench load:", err)
		}
	}
	md := loadMarkdown(o, run, start, time.Since(start), plots)
	if o.Report != "" {
		if err := writeFile(o.Report, md); err != nil {
			fmt.Fprintln(stderr, "bench load:", err)
			return 1
		}
		fmt.Fprintf(stderr, "wrote %s\n", o.Report)
	} else {
		fmt.Fprint(stdout, md)
	}
	if runErr != nil {
		fmt.Fprintln(stderr, "bench load: stopped early:", runErr)
		return 1
	}
	return 0
}
