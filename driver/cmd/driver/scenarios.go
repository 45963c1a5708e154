package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/zkv-dev/zkv/driver/cluster"
	"github.com/zkv-dev/zkv/driver/launcher"
	"github.com/zkv-dev/zkv/driver/scenarios"
)

type scenarioFlags struct {
	servers        int
	zookeeper      string
	zookeeperPort  int
	zkMode         string
	zkNodes        int
	zkTick         time.Duration
	logs           string
	graceful       bool
	addrs          string
	serverBin      string
	sessionTimeout time.Duration
	ack            string
	noColor        bool
	timeout        time.Duration
	electionWait   time.Duration
	json           bool
	ui             bool
}

func parseScenarioFlags(args []string, stderr io.Writer) (scenarioFlags, error) {
	var f scenarioFlags
	fs := flag.NewFlagSet("driver scenarios", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: driver scenarios [flags]\n\n"+
			"Starts ZooKeeper (or uses -zookeeper) and -servers zkv servers, runs the assignment's three\n"+
			"scenarios, prints each step and a summary, and exits 0 only if every check held.\n\nflags:\n")
		fs.PrintDefaults()
	}
	fs.IntVar(&f.servers, "servers", 3, "number of zkv servers to start")
	fs.StringVar(&f.zookeeper, "zookeeper", "", "an existing ZooKeeper ensemble, h1[:p1],h2[:p2]; empty: start one")
	fs.IntVar(&f.zookeeperPort, "zookeeper_port", 2181, "port of -zookeeper entries without one")
	fs.StringVar(&f.zkMode, "zk_mode", "auto", "where to start ZooKeeper when -zookeeper is empty: auto, docker or local")
	fs.IntVar(&f.zkNodes, "zk_nodes", 1, "ZooKeeper nodes to start (1 or 3)")
	fs.DurationVar(&f.zkTick, "zk_tick", 500*time.Millisecond, "tickTime of a started ZooKeeper (sessions may last 2..20 ticks)")
	fs.StringVar(&f.logs, "logs", "logs", "directory for this run's logs (a <run-id> directory is made inside)")
	fs.BoolVar(&f.graceful, "graceful", false, "stop the leader with SIGTERM instead of SIGKILL (kill -9)")
	fs.StringVar(&f.addrs, "addrs", "", "run against servers someone else started, h:p,h:p,... (kill and restart checks are skipped)")
	fs.StringVar(&f.serverBin, "server_bin", defaultServerBin(), "the zkv server binary")
	fs.DurationVar(&f.sessionTimeout, "session_timeout", 2*time.Second, "servers' ZooKeeper session timeout (-session_timeout)")
	fs.StringVar(&f.ack, "ack", "all", "servers' write acknowledgement: all, majority or leader (-ack)")
	fs.BoolVar(&f.noColor, "no_color", false, "no ANSI colour even on a terminal")
	fs.DurationVar(&f.timeout, "timeout", 5*time.Minute, "bound of the whole run")
	fs.DurationVar(&f.electionWait, "election_timeout", scenarios.DefaultElectionTimeout, "bound of each wait for an agreed leader")
	fs.BoolVar(&f.json, "json", false, "print the report of every check as one JSON document on stdout (the transcript goes to stderr)")
	fs.BoolVar(&f.ui, "ui", false, "print the address of each server's cluster page (/ui), and keep the cluster up after the checks until interrupted or -timeout")
	if err := fs.Parse(args); err != nil {
		return f, err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return f, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	return f, nil
}

// defaultServerBin: bin/server next to this binary, else $ZKV_SERVER_BIN, else bin/server.
func defaultServerBin() string {
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), "server")
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p
		}
	}
	if p := os.Getenv(cluster.EnvServerBin); p != "" {
		return p
	}
	return filepath.Join("bin", "server")
}

// splitHosts turns "h1:p1,h2" into host:port entries, defaultPort where none is given.
func splitHosts(list string, defaultPort int) ([]string, error) {
	var out []string
	for _, h := range strings.Split(list, ",") {
		h = strings.TrimSpace(h)
		if h == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(h); err != nil {
			h = net.JoinHostPort(h, strconv.Itoa(defaultPort))
		}
		out = append(out, h)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no addresses in %q", list)
	}
	return out, nil
}

// useColor: on a terminal, unless -no_color or $NO_COLOR.
func useColor(w io.Writer, noColor bool) bool {
	if noColor || os.Getenv("NO_COLOR") != "" || os.Getenv("TERM") == "dumb" {
		return false
	}
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func runScenarios(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f, err := parseScenarioFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()

	runDir := filepath.Join(f.logs, time.Now().Format("20060102-150405"))
	if err := os.MkdirAll(runDir, 0o755); err != nil {
		fmt.Fprintln(stderr, "driver scenarios:", err)
		return 1
	}
	logFile, err := os.OpenFile(filepath.Join(runDir, "driver.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		fmt.Fprintln(stderr, "driver scenarios:", err)
		return 1
	}
	defer func() { _ = logFile.Close() }()
	logger := slog.New(slog.NewTextHandler(logFile, &slog.HandlerOptions{Level: slog.LevelDebug}))
	logger.Info("driver scenarios", "args", args, "run_dir", runDir)

	// With -json, stdout carries the report alone and the transcript goes to stderr.
	transcript := stdout
	if f.json {
		transcript = stderr
	}
	res := scenariosIn(ctx, f, runDir, logger, transcript)
	fmt.Fprintf(transcript, "\nlogs: %s\n", runDir)
	if f.json {
		j := res.rep.JSON()
		j.OK = res.exit == 0
		j.Extra = map[string]any{"logs": runDir}
		if res.err != "" {
			j.Extra["error"] = res.err
		}
		fmt.Fprintln(stdout, string(marshal(j, true)))
	}
	logger.Info("done", "exit", res.exit)
	return res.exit
}

// scenariosResult is what a run of the scenarios gives: the report, the exit code, and the
// error that stopped it early, if any.
type scenariosResult struct {
	rep  scenarios.Report
	exit int
	err  string
}

func scenariosIn(ctx context.Context, f scenarioFlags, runDir string, logger *slog.Logger, stdout io.Writer) scenariosResult {
	cfg := scenarios.Config{Graceful: f.graceful, Out: stdout, Color: useColor(stdout, f.noColor), Logger: logger,
		ElectionTimeout: f.electionWait}
	fail := func(format string, a ...any) int {
		msg := fmt.Sprintf(format, a...)
		logger.Error(msg)
		fmt.Fprintln(stdout, "driver scenarios: "+msg)
		return 1
	}
	failed := func(format string, a ...any) scenariosResult {
		return scenariosResult{exit: fail(format, a...), err: fmt.Sprintf(format, a...)}
	}
	if f.addrs != "" {
		addrs, err := splitHosts(f.addrs, 5000)
		if err != nil {
			return failed("-addrs: %v", err)
		}
		cfg.Addrs = addrs
	} else {
		zo := launcher.Options{Mode: launcher.Mode(f.zkMode), Nodes: f.zkNodes, TickTime: f.zkTick, LogDir: runDir, Logger: logger}
		if f.zookeeper != "" {
			servers, err := splitHosts(f.zookeeper, f.zookeeperPort)
			if err != nil {
				return failed("-zookeeper: %v", err)
			}
			zo.Mode, zo.Servers = launcher.ModeExisting, servers
		}
		fmt.Fprintf(stdout, "starting ZooKeeper (%s)...\n", zo.Mode)
		zk, err := launcher.Start(ctx, zo)
		if err != nil {
			return failed("ZooKeeper: %v", err)
		}
		defer func() {
			if err := zk.Close(); err != nil {
				logger.Warn("stopping ZooKeeper", "error", err)
			}
		}()
		fmt.Fprintf(stdout, "ZooKeeper (%s mode) serves at %s\n", zk.Mode(), strings.Join(zk.Servers(), ","))
		fmt.Fprintf(stdout, "starting %d zkv servers (%s)...\n", f.servers, f.serverBin)
		c, err := cluster.Start(ctx, cluster.Options{
			Binary:    f.serverBin,
			Servers:   f.servers,
			ZooKeeper: zk.Servers(),
			LogDir:    runDir,
			// -log_writes: the logs show every write's trail (Debug otherwise).
			Args:   []string{"-session_timeout", f.sessionTimeout.String(), "-ack", f.ack, "-log_writes"},
			Logger: logger,
		})
		if err != nil {
			return failed("servers: %v", err)
		}
		defer func() {
			if err := c.Close(); err != nil {
				logger.Warn("stopping servers", "error", err)
			}
		}()
		cfg.Cluster = c
	}
	if f.ui {
		addrs := cfg.Addrs
		if cfg.Cluster != nil {
			addrs = cfg.Cluster.Addrs()
		}
		for _, a := range addrs {
			fmt.Fprintf(stdout, "cluster page: http://%s/ui\n", a)
		}
	}
	rep, err := scenarios.Run(ctx, cfg)
	res := scenariosResult{rep: rep}
	if err != nil {
		res.exit, res.err = fail("%v", err), err.Error()
	} else if !rep.OK() {
		res.exit = 1
	}
	if f.ui {
		fmt.Fprintf(stdout, "\nthe cluster stays up for its pages until interrupted (Ctrl-C) or -timeout %v\n", f.timeout)
		<-ctx.Done()
	}
	return res
}
