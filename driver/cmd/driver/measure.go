package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zkv-dev/zkv/driver/client"
	"github.com/zkv-dev/zkv/driver/cluster"
	"github.com/zkv-dev/zkv/driver/launcher"
)

// runMeasure measures the watch latency or the listing throughput, against -addrs or a
// local cluster it starts (ZooKeeper and -servers servers). It prints numbers, asserts
// nothing.
func runMeasure(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || (args[0] != "watch" && args[0] != "list") {
		fmt.Fprintln(stderr, "usage: driver measure watch|list [flags] (driver measure watch -h)")
		return 2
	}
	what := args[0]
	fs := flag.NewFlagSet("driver measure "+what, flag.ContinueOnError)
	fs.SetOutput(stderr)
	addrs := fs.String("addrs", "", "servers someone else started, h:p,h:p (the first writes; watch: the second watches); empty: start a local cluster")
	servers := fs.Int("servers", 3, "servers of the local cluster (list: 1 is enough, and loads faster)")
	serverBin := fs.String("server_bin", defaultServerBin(), "the zkv server binary")
	logs := fs.String("logs", "logs", "directory for the local cluster's logs")
	n := fs.Int("n", 1000, "watch: changes to time")
	watchOn := fs.String("watch_on", "follower", "watch: the server that watches, follower or leader")
	total := fs.Int("keys", 1_000_000, "list: keys to load")
	prefixKeys := fs.Int("prefix_keys", 1000, "list: keys under the listed prefix")
	conc := fs.Int("concurrency", 16, "list: concurrent loaders and listers")
	dur := fs.Duration("duration", 10*time.Second, "list: how long to list")
	timeout := fs.Duration("timeout", 30*time.Minute, "bound of the whole run")
	if err := fs.Parse(args[1:]); err != nil {
		return usageCode(err)
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	fail := func(err error) int { fmt.Fprintln(stderr, "driver measure:", err); return 1 }

	var targets []string
	leader := ""
	if *addrs != "" {
		hs, err := splitHosts(*addrs, 5000)
		if err != nil {
			return fail(err)
		}
		targets, leader = hs, hs[0]
	} else {
		runDir := filepath.Join(*logs, "measure-"+what+"-"+time.Now().Format("20060102-150405"))
		if err := os.MkdirAll(runDir, 0o755); err != nil {
			return fail(err)
		}
		logger := slog.New(slog.DiscardHandler)
		fmt.Fprintf(stdout, "starting ZooKeeper and %d servers (logs in %s)...\n", *servers, runDir)
		zk, err := launcher.Start(ctx, launcher.Options{Mode: launcher.ModeLocal, Nodes: 1, LogDir: runDir, Logger: logger})
		if err != nil {
			return fail(fmt.Errorf("ZooKeeper: %w", err))
		}
		defer func() { _ = zk.Close() }()
		c, err := cluster.Start(ctx, cluster.Options{Binary: *serverBin, Servers: *servers, ZooKeeper: zk.Servers(), LogDir: runDir,
			Args: []string{"-log_format", "json"}, Logger: logger})
		if err != nil {
			return fail(fmt.Errorf("servers: %w", err))
		}
		defer func() { _ = c.Close() }()
		ld, err := c.Leader(ctx)
		if err != nil {
			return fail(err)
		}
		leader = ld.Addr()
		targets = []string{leader}
		for _, a := range c.Addrs() {
			if a != leader {
				targets = append(targets, a)
			}
		}
		for _, a := range targets {
			if err := waitReady(ctx, a); err != nil {
				return fail(err)
			}
		}
	}
	if what == "watch" {
		watcher := leader
		if *watchOn == "follower" && len(targets) > 1 {
			watcher = targets[1]
		}
		return measureWatch(ctx, leader, watcher, *n, stdout, stderr)
	}
	return measureList(ctx, leader, *total, *prefixKeys, *conc, *dur, stdout, stderr)
}

func waitReady(ctx context.Context, addr string) error {
	c := client.New(addr, client.WithTimeout(2*time.Second))
	defer c.Close()
	for {
		if err := c.Ready(ctx); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready: %w", addr, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// measureWatch writes one key n times through the leader, one write at a time, while a
// watch on watcher follows it: for each write, the time from its acknowledgement (the PUT's
// answer) to the watch's answer carrying it; negative when the watch woke first (under ack
// all a replica applies a write before the leader answers).
func measureWatch(ctx context.Context, leader, watcher string, n int, stdout, stderr io.Writer) int {
	w := client.New(leader)
	defer w.Close()
	r := client.New(watcher)
	defer r.Close()
	key := fmt.Sprintf("measure/watch/%d", time.Now().UnixNano())
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type stamped struct {
		client.Change
		at time.Time
	}
	// A relay stamps each change as it arrives, so a change that lands before the PUT's
	// answer is timed then, not when the writer gets to it.
	changes := make(chan stamped, 16)
	go func() {
		defer close(changes)
		for ch := range r.Watch(wctx, key, client.WatchOptions{Wait: time.Minute}) {
			changes <- stamped{ch, time.Now()}
		}
	}()
	<-changes // the initial state: the key is absent
	afterAck := make([]time.Duration, 0, n)
	afterSend := make([]time.Duration, 0, n)
	for i := range n {
		want := strconv.Itoa(i)
		sent := time.Now()
		if _, err := w.Put(ctx, key, want); err != nil {
			fmt.Fprintln(stderr, "driver measure: put:", err)
			return 1
		}
		acked := time.Now()
		for {
			var ch stamped
			select {
			case ch = <-changes:
			case <-time.After(30 * time.Second):
				fmt.Fprintf(stderr, "driver measure: write %d not seen by the watch within 30s\n", i)
				return 1
			}
			if ch.Err != nil {
				fmt.Fprintln(stderr, "driver measure: watch:", ch.Err)
				continue
			}
			if ch.KV.Value == want {
				afterAck = append(afterAck, ch.at.Sub(acked))
				afterSend = append(afterSend, ch.at.Sub(sent))
				break
			}
		}
	}
	fmt.Fprintf(stdout, "watch latency over %d changes, writes through %s, watch on %s:\n", n, leader, watcher)
	early := 0
	for _, d := range afterAck {
		if d < 0 {
			early++
		}
	}
	fmt.Fprintf(stdout, "  write acknowledged -> watcher notified: %s\n", quantiles(afterAck))
	fmt.Fprintf(stdout, "  (negative: the watch answered before the PUT did, %d of %d)\n", early, len(afterAck))
	fmt.Fprintf(stdout, "  write sent         -> watcher notified: %s\n", quantiles(afterSend))
	return 0
}

func quantiles(ds []time.Duration) string {
	if len(ds) == 0 {
		return "no samples"
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	q := func(p float64) time.Duration { return s[min(len(s)-1, int(p*float64(len(s))))] }
	return fmt.Sprintf("p50 %v  p90 %v  p99 %v  max %v  (min %v)", q(0.50), q(0.90), q(0.99), s[len(s)-1], s[0])
}

// measureList loads total keys (prefixKeys of them under one prefix) through addr, then
// lists that prefix from conc goroutines for dur.
func measureList(ctx context.Context, addr string, total, prefixKeys, conc int, dur time.Duration, stdout, stderr io.Writer) int {
	c := client.New(addr)
	defer c.Close()
	prefix := fmt.Sprintf("measure/list/%d/", time.Now().UnixNano())
	var next atomic.Int64
	var failed atomic.Value
	start := time.Now()
	var wg sync.WaitGroup
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= total || ctx.Err() != nil || failed.Load() != nil {
					return
				}
				// The listed prefix's keys are spread over the load; the others surround it.
				var key string
				if stride := max(1, total/max(1, prefixKeys)); i%stride == 0 && i/stride < prefixKeys {
					key = fmt.Sprintf("%s%08d", prefix, i/stride)
				} else {
					key = fmt.Sprintf("measure/load/%08d", i)
				}
				if _, err := c.Put(ctx, key, "v"); err != nil {
					failed.Store(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		fmt.Fprintln(stderr, "driver measure: load:", err)
		return 1
	}
	fmt.Fprintf(stdout, "loaded %d keys in %v\n", total, time.Since(start).Round(time.Millisecond))
	lctx, cancel := context.WithTimeout(ctx, dur)
	defer cancel()
	var mu sync.Mutex
	var lat []time.Duration
	var listings, keys atomic.Int64
	start = time.Now()
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for lctx.Err() == nil {
				t := time.Now()
				p, err := c.List(lctx, client.ListOptions{Prefix: prefix, Limit: prefixKeys})
				if err != nil {
					if lctx.Err() == nil && !errors.Is(err, context.DeadlineExceeded) {
						failed.Store(err)
					}
					return
				}
				d := time.Since(t)
				listings.Add(1)
				keys.Add(int64(len(p.Entries)))
				mu.Lock()
				lat = append(lat, d)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	if err, _ := failed.Load().(error); err != nil && !strings.Contains(err.Error(), "context") {
		fmt.Fprintln(stderr, "driver measure: list:", err)
		return 1
	}
	fmt.Fprintf(stdout, "listing %d keys under one prefix out of %d, %d concurrent clients, %v on %s:\n",
		prefixKeys, total, conc, el.Round(time.Millisecond), addr)
	fmt.Fprintf(stdout, "  %.0f listings/s, %.0f keys/s; latency %s\n",
		float64(listings.Load())/el.Seconds(), float64(keys.Load())/el.Seconds(), quantiles(lat))
	return 0
}
