// Command server runs one zkv server: it joins the leader election in ZooKeeper and serves
// the REST API of docs/api.md. Every flag falls back to the environment variable
// ZKV_<FLAG IN UPPER CASE>; a flag given on the command line wins. ZKV_LOG_LEVEL (debug,
// info, warn, error) sets the log level; default info.
//
//	server -host 127.0.0.1 -port 5000 -zookeeper 127.0.0.1 -zookeeper_port 2181
//
// SIGTERM or SIGINT stops it gracefully (a leader resigns first) and it exits 0.
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
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/zkv-dev/zkv/server"
)

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stderr))
}

// options are the parsed flags.
type options struct {
	cfg        server.Config
	logFormat  string
	gcHeadroom int64
}

func run(args []string, getenv func(string) string, stderr io.Writer) int {
	opts, err := parseFlags(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "server:", err)
		return 2
	}
	logger, err := newLogger(opts.logFormat, getenv("ZKV_LOG_LEVEL"), stderr)
	if err != nil {
		fmt.Fprintln(stderr, "server:", err)
		return 2
	}
	cfg := opts.cfg
	cfg.Logger = logger
	logger.Info("starting zkv server",
		"id", cfg.ID, "host", cfg.Host, "port", cfg.Port, "zookeeper", strings.Join(cfg.ZooKeeper, ","),
		"session_timeout", cfg.SessionTimeout.String(), "ack", cfg.Ack, "max_key_bytes", cfg.MaxKeyBytes,
		"max_value_bytes", cfg.MaxValueBytes, "quota_bytes", cfg.QuotaBytes, "sync_on_join", cfg.SyncOnJoin, "log_format", opts.logFormat,
		"cluster_token_set", cfg.ClusterToken != "")

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if opts.gcHeadroom > 0 && getenv("GOGC") == "" {
		go server.TuneGC(ctx, uint64(opts.gcHeadroom), time.Second, logger)
	}
	octx, cancel := context.WithTimeout(ctx, 30*time.Second)
	srv, err := server.Open(octx, cfg)
	cancel()
	if err != nil {
		logger.Error("cannot start", "error", err)
		return 1
	}
	if err := srv.Run(ctx); err != nil {
		logger.Error("stopped with an error", "error", err)
		return 1
	}
	return 0
}

func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (options, error) {
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		host          = fs.String("host", server.DefaultHost, "address to listen on and publish")
		port          = fs.Int("port", server.DefaultPort, "port to listen on")
		zookeeper     = fs.String("zookeeper", "127.0.0.1", "ZooKeeper host, or a comma-separated ensemble h1:p1,h2:p2,h3")
		zookeeperPort = fs.Int("zookeeper_port", 2181, "ZooKeeper port for -zookeeper entries without one")
		id            = fs.String("id", "", "this server's name in the cluster (default host:port)")
		sessionTO     = fs.String("session_timeout", server.DefaultSessionTimeout.String(), "ZooKeeper session timeout asked for (a duration, or milliseconds)")
		token         = fs.String("cluster_token", "", "shared secret for server-to-server routes and znode ACLs (argv shows in ps: prefer -cluster_token_file or $ZKV_CLUSTER_TOKEN); without one, the servers share a random secret kept in ZooKeeper")
		tokenFile     = fs.String("cluster_token_file", "", "a file holding the cluster token (trailing white space ignored)")
		ack           = fs.String("ack", server.DefaultAck, "when a write is acknowledged: all, majority or leader")
		maxKey        = fs.Int("max_key_bytes", server.DefaultMaxKeyBytes, "longest key accepted")
		maxValue      = fs.Int("max_value_bytes", server.DefaultMaxValueBytes, "longest value accepted")
		quota         = fs.Int64("quota_bytes", server.DefaultQuotaBytes, "bytes of keys and values the store may hold; a write that would grow it past that gets 413 quota_exceeded (reads and deletes still work); 0: no quota")
		syncOnJoin    = fs.Bool("sync_on_join", false, "copy the leader's store before serving (default: a restarted server starts empty)")
		logFormat     = fs.String("log_format", "text", "log format: text or json")
		advertise     = fs.String("advertise", "", "host:port other servers reach this one at, registered in ZooKeeper (default host:port)")
		pprofOn       = fs.Bool("pprof", false, "serve CPU and heap profiles under /debug/pprof/")
		logWrites     = fs.Bool("log_writes", false, "log every write at Info (default: Debug, off the hot path)")
		lagMax        = fs.Duration("replica_lag_max", server.DefaultReplicaLagMax, "how long an in-sync replica may fail to catch up before writes stop waiting for it")
		minInSync     = fs.Int("min_insync", 1, "the smallest in-sync set, the leader included, the leader shrinks it to (Kafka's min.insync.replicas); with 2 a write is never acknowledged on one server alone")
		uncleanAfter  = fs.Duration("unclean_after", 0, "how long a new leader waits for in-sync members that are gone before it leads without them, losing what only they held (default 2 x session_timeout; negative: never)")
		maxWatchers   = fs.Int("max_watchers", server.DefaultMaxWatchers, "how many watches (GET ...?index=N) may wait on this server at once; past it a watch answers 503 too_many_watchers")
		tlsCert       = fs.String("tls_cert", "", "PEM certificate (chain) of this server, for clients and peers; with -tls_key turns on TLS (https) for the listener and for the requests to the other servers, which must all use TLS too")
		tlsKey        = fs.String("tls_key", "", "PEM private key of -tls_cert")
		tlsCA         = fs.String("tls_ca", "", "PEM CA certificates the peers' certificates are verified against (default: the system's roots); with it the internal routes also require a client certificate it signed")
		gcHeadroom    = fs.Int64("gc_headroom", server.DefaultGCHeadroom, "bytes the heap may grow past its live part before the next garbage collection: the GC percent follows the live heap (Go's default 100 while it is below this, down to 20), so a large store does not double the process's memory between collections; 0, or $GOGC set: Go's own GC settings")
		noFence       = fs.Bool("unsafe_disable_fencing", false, "TESTS ONLY: replicas accept writes from any epoch and sender (shows what fencing prevents)")
	)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: server [flags]\n\nEvery flag falls back to $ZKV_<FLAG IN UPPER CASE>.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return options{}, err
	}
	if fs.NArg() > 0 {
		return options{}, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || envErr != nil {
			return
		}
		name := "ZKV_" + strings.ToUpper(f.Name)
		if v := getenv(name); v != "" {
			if err := f.Value.Set(v); err != nil {
				envErr = fmt.Errorf("$%s=%q: %w", name, v, err)
			}
		}
	})
	if envErr != nil {
		return options{}, envErr
	}
	if *tokenFile != "" {
		if *token != "" {
			return options{}, fmt.Errorf("-cluster_token and -cluster_token_file are exclusive")
		}
		data, err := os.ReadFile(*tokenFile)
		if err != nil {
			return options{}, fmt.Errorf("-cluster_token_file: %w", err)
		}
		if *token = strings.TrimSpace(string(data)); *token == "" {
			return options{}, fmt.Errorf("-cluster_token_file %s is empty", *tokenFile)
		}
	}
	sto, err := parseTimeout(*sessionTO)
	if err != nil {
		return options{}, fmt.Errorf("-session_timeout: %w", err)
	}
	ens, err := ensemble(*zookeeper, *zookeeperPort)
	if err != nil {
		return options{}, err
	}
	if *logFormat != "text" && *logFormat != "json" {
		return options{}, fmt.Errorf("-log_format %q: want text or json", *logFormat)
	}
	if *maxKey < 1 || *maxValue < 1 {
		return options{}, fmt.Errorf("-max_key_bytes %d and -max_value_bytes %d must be positive", *maxKey, *maxValue)
	}
	if *quota < 0 {
		return options{}, fmt.Errorf("-quota_bytes %d must not be negative (0: no quota)", *quota)
	}
	quotaBytes := *quota
	if quotaBytes == 0 {
		quotaBytes = -1 // Config's "no quota"
	}
	if *port < 1 || *port > 65535 {
		return options{}, fmt.Errorf("-port %d out of range", *port)
	}
	cfg := server.Config{
		Host: *host, Port: *port, ID: *id, ZooKeeper: ens, SessionTimeout: sto, ClusterToken: *token,
		Ack: *ack, MaxKeyBytes: *maxKey, MaxValueBytes: *maxValue, SyncOnJoin: *syncOnJoin,
		Address: *advertise, UnsafeDisableFencing: *noFence, Pprof: *pprofOn, LogWrites: *logWrites,
		TLSCert: *tlsCert, TLSKey: *tlsKey, TLSCA: *tlsCA,
		ReplicaLagMax: *lagMax, UncleanAfter: *uncleanAfter, MinInSync: *minInSync, QuotaBytes: quotaBytes, MaxWatchers: *maxWatchers,
	}
	if *maxWatchers < 1 {
		return options{}, fmt.Errorf("-max_watchers %d must be at least 1", *maxWatchers)
	}
	if *minInSync < 1 {
		return options{}, fmt.Errorf("-min_insync %d must be at least 1", *minInSync)
	}
	if *lagMax <= 0 {
		return options{}, fmt.Errorf("-replica_lag_max %v must be positive", *lagMax)
	}
	if cfg.Address != "" {
		if _, p, err := net.SplitHostPort(cfg.Address); err != nil || p == "" {
			return options{}, fmt.Errorf("-advertise %q: want host:port", cfg.Address)
		}
	}
	if cfg.ID == "" {
		cfg.ID = net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port))
	}
	if err := cfg.Validate(); err != nil {
		return options{}, err
	}
	if *gcHeadroom < 0 {
		return options{}, fmt.Errorf("-gc_headroom %d must not be negative (0: Go's own GC settings)", *gcHeadroom)
	}
	return options{cfg: cfg, logFormat: *logFormat, gcHeadroom: *gcHeadroom}, nil
}

// parseTimeout takes a duration ("4s") or a number of milliseconds ("4000").
func parseTimeout(s string) (time.Duration, error) {
	if ms, err := strconv.Atoi(s); err == nil {
		s = strconv.Itoa(ms) + "ms"
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, err
	}
	if d <= 0 {
		return 0, fmt.Errorf("%v must be positive", d)
	}
	return d, nil
}

// ensemble splits "h1:p1,h2,h3:p3"; an entry without a port gets defPort.
func ensemble(list string, defPort int) ([]string, error) {
	if defPort < 1 || defPort > 65535 {
		return nil, fmt.Errorf("-zookeeper_port %d out of range", defPort)
	}
	var out []string
	for _, e := range strings.Split(list, ",") {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		if h, p, err := net.SplitHostPort(e); err == nil {
			if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 || h == "" {
				return nil, fmt.Errorf("-zookeeper entry %q: bad host or port", e)
			}
			out = append(out, e)
			continue
		}
		out = append(out, net.JoinHostPort(strings.Trim(e, "[]"), strconv.Itoa(defPort)))
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("-zookeeper %q names no server", list)
	}
	return out, nil
}

func newLogger(format, level string, w io.Writer) (*slog.Logger, error) {
	var lv slog.Level
	if level != "" {
		if err := lv.UnmarshalText([]byte(level)); err != nil {
			return nil, fmt.Errorf("$ZKV_LOG_LEVEL %q: %w", level, err)
		}
	}
	ho := &slog.HandlerOptions{Level: lv}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, ho)), nil
	}
	return slog.New(slog.NewTextHandler(w, ho)), nil
}
