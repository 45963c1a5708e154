package bench

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/zkv-dev/zkv/driver/launcher"
)

// electionOptions are the flags of `bench election`.
type electionOptions struct {
	Runs           int
	Latencies      []time.Duration // one-way, simulated remote placements
	JitterFrac     float64
	Stops          []string
	ZooKeeper      string // a real ensemble; replaces the local and simulated placements
	ZooKeeperPort  int
	ZKMode         string
	Tick           time.Duration
	SessionTimeout time.Duration
	SyncOnJoin     bool
	Servers        int
	ServerBin      string
	Report         string
	ImgDir         string
	Logs           string
	Poll           time.Duration
	RunTimeout     time.Duration
	Command        string
}

// electionCell is the runs of one placement and stop.
type electionCell struct {
	Placement placement
	Stop      string
	Runs      []failover
	Failed    int
	Errors    []string
}

func parseElection(args []string, stderr io.Writer) (electionOptions, error) {
	o := electionOptions{}
	fs := flag.NewFlagSet("bench election", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&o.Runs, "runs", 30, "runs per placement and stop")
	lat := fs.String("latencies", "5,25,50", "one-way latencies (ms) of the simulated remote ZooKeeper placements; empty for none")
	fs.Float64Var(&o.JitterFrac, "jitter", 0.2, "jitter of the simulated placements, as a fraction of the latency")
	stops := fs.String("stops", "sigterm,sigkill", "how the leader is stopped: sigterm (resigns), sigkill (crash)")
	fs.StringVar(&o.ZooKeeper, "zookeeper", "", "a real ZooKeeper ensemble h:p,h:p to use instead of a local one (no simulated placements then)")
	fs.IntVar(&o.ZooKeeperPort, "zookeeper_port", 2181, "port for -zookeeper entries without one")
	fs.StringVar(&o.ZKMode, "zk_mode", "auto", "how to get the local ZooKeeper: auto, docker, local")
	fs.DurationVar(&o.Tick, "tick", 200*time.Millisecond, "tickTime of the local ZooKeeper (ZooKeeper expires sessions once per tick: a short tick keeps crash failover close to the session timeout)")
	fs.DurationVar(&o.SessionTimeout, "session_timeout", 2*time.Second, "the servers' -session_timeout")
	fs.BoolVar(&o.SyncOnJoin, "sync_on_join", true, "start the servers with -sync_on_join: every run restarts the stopped leader, and a restarted server that starts empty never rejoins the in-sync set, so without it the data would end up on one server and each failover would wait -unclean_after for it")
	fs.IntVar(&o.Servers, "servers", 3, "zkv servers")
	fs.StringVar(&o.ServerBin, "server_bin", defaultServerBin(), "the zkv server binary")
	fs.StringVar(&o.Report, "report", "docs/election-latency.md", "where the Markdown report goes; empty for none")
	fs.StringVar(&o.ImgDir, "img", "docs/img", "where the plots go")
	fs.StringVar(&o.Logs, "logs", filepath.Join(os.TempDir(), "zkv-bench-election"), "where process logs go")
	fs.DurationVar(&o.Poll, "poll", 5*time.Millisecond, "status poll interval after the stop")
	fs.DurationVar(&o.RunTimeout, "run_timeout", 0, "give up on one failover after this (default 3 x session timeout + 10s)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	var err error
	if o.Latencies, err = parseMillis(*lat); err != nil {
		return o, err
	}
	for _, s := range splitList(*stops) {
		if _, ok := stopSignals[strings.ToLower(s)]; !ok {
			return o, fmt.Errorf("bench election: unknown stop %q (sigterm, sigkill)", s)
		}
		o.Stops = append(o.Stops, strings.ToLower(s))
	}
	if o.Runs < 1 || o.Servers < 2 || len(o.Stops) == 0 {
		return o, fmt.Errorf("bench election: need -runs >= 1, -servers >= 2 and a stop")
	}
	if o.RunTimeout == 0 {
		o.RunTimeout = 3*o.SessionTimeout + 10*time.Second
	}
	o.Command = strings.TrimSpace("bin/bench election " + strings.Join(args, " "))
	return o, nil
}

// runElectionReport runs every cell; it also returns the description of the ZooKeeper used.
func runElectionReport(ctx context.Context, o electionOptions, stdout, stderr io.Writer) (cells []electionCell, zkInfo string, err error) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	var placements []placement
	var zkServers []string
	if o.ZooKeeper != "" {
		for _, s := range splitList(o.ZooKeeper) {
			if !strings.Contains(s, ":") {
				s = fmt.Sprintf("%s:%d", s, o.ZooKeeperPort)
			}
			zkServers = append(zkServers, s)
		}
		placements = []placement{{Name: "named " + strings.Join(zkServers, ","), Remote: true}}
		zkInfo = "the ensemble named with -zookeeper (its own tickTime)"
	} else {
		zk, err := launcher.Start(ctx, launcher.Options{Mode: launcher.Mode(o.ZKMode), TickTime: o.Tick, LogDir: filepath.Join(o.Logs, "zookeeper"), Logger: logger})
		if err != nil {
			return nil, "", err
		}
		defer zk.Close()
		zkServers = zk.Servers()
		zkInfo = fmt.Sprintf("one ZooKeeper node (%s mode), tickTime %v", zk.Mode(), o.Tick)
		placements = append(placements, placement{Name: "local"})
		for _, l := range o.Latencies {
			placements = append(placements, placement{Name: fmt.Sprintf("remote %v", l), Latency: l, Jitter: time.Duration(float64(l) * o.JitterFrac)})
		}
	}
	fmt.Fprintf(stderr, "election: %s; %d placements x %d stops x %d runs\n", zkInfo, len(placements), len(o.Stops), o.Runs)
	bar := newProgress(stderr, len(placements)*len(o.Stops)*o.Runs)
	defer bar.Done()
	hc := newHTTPClient(8, 2*time.Second)
	defer hc.CloseIdleConnections()

	for pi, pl := range placements {
		addrs := zkServers
		var lp *latencyProxy
		if pl.Latency > 0 {
			var err error
			if lp, err = newLatencyProxy(zkServers, pl.Latency, pl.Jitter); err != nil {
				return cells, zkInfo, err
			}
			addrs = lp.Addrs()
		}
		cl, err := startZkvCluster(ctx, zkvClusterOptions{
			Binary: o.ServerBin, Servers: o.Servers, ZooKeeper: addrs,
			LogDir: filepath.Join(o.Logs, fmt.Sprintf("placement-%d", pi)),
			Args:   []string{"-session_timeout", o.SessionTimeout.String(), fmt.Sprintf("-sync_on_join=%v", o.SyncOnJoin)},
		})
		if err != nil {
			if lp != nil {
				lp.Close()
			}
			return cells, zkInfo, err
		}
		for _, stop := range o.Stops {
			cell := electionCell{Placement: pl, Stop: stop}
			for r := range o.Runs {
				if ctx.Err() != nil {
					break
				}
				bar.Label(fmt.Sprintf("%s %s run %d", pl.Name, stop, r+1))
				f, err := oneElectionRun(ctx, cl, hc, stopSignals[stop], o)
				if err != nil {
					cell.Failed++
					cell.Errors = append(cell.Errors, err.Error())
				} else {
					cell.Runs = append(cell.Runs, f)
				}
				bar.Step(fmt.Sprintf("%s %s run %d", pl.Name, stop, r+1))
			}
			cells = append(cells, cell)
		}
		_ = cl.Close()
		if lp != nil {
			lp.Close()
		}
		if ctx.Err() != nil {
			return cells, zkInfo, ctx.Err()
		}
	}
	return cells, zkInfo, nil
}

// oneElectionRun waits for a stable cluster, stops its leader, measures, restarts it.
func oneElectionRun(ctx context.Context, cl zkvCluster, hc *http.Client, sig os.Signal, o electionOptions) (failover, error) {
	nodes := cl.Nodes()
	for _, n := range nodes {
		if !n.Running() {
			if err := n.Restart(ctx); err != nil {
				return failover{}, err
			}
		}
	}
	view, err := waitStable(ctx, hc, nodes, 30*time.Second+3*o.SessionTimeout)
	if err != nil {
		return failover{}, err
	}
	f, ferr := measureFailover(ctx, nodes, view, sig, o.Poll, o.RunTimeout)
	if err := view.Leader.Restart(ctx); err != nil {
		return f, err
	}
	return f, ferr
}

func defaultServerBin() string {
	if p := os.Getenv("ZKV_SERVER_BIN"); p != "" {
		return p
	}
	return "bin/server"
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func parseMillis(s string) ([]time.Duration, error) {
	var out []time.Duration
	for _, f := range splitList(s) {
		var ms float64
		if _, err := fmt.Sscanf(f, "%g", &ms); err != nil || ms <= 0 {
			return nil, fmt.Errorf("bench: %q is not a positive number of milliseconds", f)
		}
		out = append(out, time.Duration(ms*float64(time.Millisecond)))
	}
	return out, nil
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range splitList(s) {
		var n int
		if _, err := fmt.Sscanf(f, "%d", &n); err != nil || n < 1 {
			return nil, fmt.Errorf("bench: %q is not a positive integer", f)
		}
		out = append(out, n)
	}
	return out, nil
}
