package bench

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestRunClosedLoopCountsAndErrors(t *testing.T) {
	var calls atomic.Int64
	boom := errors.New("boom")
	res := RunClosedLoop(context.Background(), 4, 20*time.Millisecond, 100*time.Millisecond, func(ctx context.Context, w int, seq uint64) error {
		calls.Add(1)
		time.Sleep(time.Millisecond)
		if seq%5 == 4 {
			return boom
		}
		return nil
	})
	if res.Clients != 4 || res.Ops == 0 || res.Errors == 0 || !errors.Is(res.FirstErr, boom) {
		t.Fatalf("result %+v", res)
	}
	if res.Ops+res.Errors > uint64(calls.Load()) {
		t.Fatalf("counted %d+%d of %d calls", res.Ops, res.Errors, calls.Load())
	}
	if res.Latency.N != int(res.Ops) || res.Latency.Min < time.Millisecond || res.Throughput() <= 0 {
		t.Fatalf("latency %+v throughput %v", res.Latency, res.Throughput())
	}
}

func TestRunClosedLoopStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res := RunClosedLoop(ctx, 2, 0, time.Hour, func(ctx context.Context, w int, seq uint64) error { return ctx.Err() })
	if res.Ops != 0 {
		t.Fatalf("ops after cancel: %+v", res)
	}
}

func TestKeysAndValues(t *testing.T) {
	keys := makeKeys(1000)
	seen := map[string]bool{}
	for _, k := range keys {
		if len(k) != keyBytes || seen[k] {
			t.Fatalf("key %q", k)
		}
		seen[k] = true
	}
	if v := makeValue(1000); len(v) != 1000 {
		t.Fatalf("value length %d", len(v))
	}
	hits := map[string]int{}
	for seq := range uint64(10000) {
		hits[pickKey(keys[:10], 3, seq)]++
	}
	for k, n := range hits {
		if n < 800 || n > 1200 {
			t.Errorf("key %s picked %d of 10000 times", k, n)
		}
	}
	var reads, writes int
	mix := mixOp(func(context.Context, int, uint64) error { reads++; return nil }, func(context.Context, int, uint64) error { writes++; return nil })
	for seq := range uint64(100) {
		_ = mix(context.Background(), 0, seq)
	}
	if reads != 90 || writes != 10 {
		t.Fatalf("mix %d/%d", reads, writes)
	}
}

// A small run of the ceiling: the in-process server, the HTTP op, the loop.
func TestCeilingSmallRun(t *testing.T) {
	c, err := startCeiling(context.Background(), "", t.TempDir(), 100)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	hc := newHTTPClient(4, time.Second)
	defer hc.CloseIdleConnections()
	res := RunClosedLoop(context.Background(), 4, 0, 100*time.Millisecond, getURL(hc, c.addr, makeKeys(10)))
	if res.Ops == 0 || res.Errors != 0 {
		t.Fatalf("ceiling run %+v", res)
	}
}

// The load benchmark runs the ceiling as a child of its own binary (`bench ceiling-serve N`), as
// zkv's servers are processes of their own; the test binary stands in for bin/bench.
func TestCeilingChildProcess(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Skip(err)
	}
	t.Setenv(childEnv, "1")
	c, err := startCeiling(context.Background(), self, t.TempDir(), 10)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	hc := newHTTPClient(1, time.Second)
	defer hc.CloseIdleConnections()
	if err := do(context.Background(), hc, "GET", kvURL(c.addr, "k"), nil); err != nil {
		t.Fatal(err)
	}
}

func TestServeCeilingProcessProtocol(t *testing.T) {
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	done := make(chan int)
	go func() { done <- serveCeiling(context.Background(), []string{"10"}, inR, outW, io.Discard) }()
	line, err := bufio.NewReader(outR).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	hc := newHTTPClient(1, time.Second)
	if err := do(context.Background(), hc, "GET", kvURL(strings.TrimSpace(line), "k"), nil); err != nil {
		t.Fatal(err)
	}
	hc.CloseIdleConnections()
	inW.Close() // the parent went away
	if code := <-done; code != 0 {
		t.Fatalf("exit %d", code)
	}
}

// The toxiproxy adds the latency both ways: an echo round trip takes at least twice it.
func TestLatencyProxy(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = io.Copy(c, c)
	}()
	lp, err := newLatencyProxy([]string{l.Addr().String()}, 20*time.Millisecond, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer lp.Close()
	c, err := net.Dial("tcp", lp.Addrs()[0])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatal(err)
	}
	if rtt := time.Since(start); rtt < 40*time.Millisecond || string(buf) != "ping" {
		t.Fatalf("round trip %v %q: the latency was not added both ways", rtt, buf)
	}
}

func TestParseFlags(t *testing.T) {
	o, err := parseElection([]string{"-runs", "3", "-latencies", "5,25", "-stops", "SIGKILL"}, io.Discard)
	if err != nil || o.Runs != 3 || len(o.Latencies) != 2 || o.Latencies[1] != 25*time.Millisecond || o.Stops[0] != "sigkill" {
		t.Fatalf("election %+v %v", o, err)
	}
	if _, err := parseElection([]string{"-stops", "sighup"}, io.Discard); err == nil {
		t.Fatal("sighup accepted")
	}
	l, err := parseLoad([]string{"-clients", "1,8", "-systems", "ceiling,etcd", "-duration", "1s"}, io.Discard)
	if err != nil || len(l.Clients) != 2 || !l.Systems["etcd"] || l.Systems["zkv"] || l.Duration != time.Second {
		t.Fatalf("load %+v %v", l, err)
	}
	if _, err := parseLoad([]string{"-systems", "mysql"}, io.Discard); err == nil {
		t.Fatal("mysql accepted")
	}
	if code := Main(context.Background(), []string{"nope"}, io.Discard, io.Discard); code != 2 {
		t.Fatalf("unknown command exit %d", code)
	}
	if code := Main(context.Background(), []string{"load", "-h"}, io.Discard, io.Discard); code != 0 {
		t.Fatalf("-h exit %d", code)
	}
}

func fakeResult(ops uint64, p50 time.Duration) LoopResult {
	return LoopResult{Clients: 64, Elapsed: time.Second, Ops: ops, Ended: ops, Latency: Summary{N: int(ops), P50: p50, P99: 2 * p50}}
}

func TestLoadReport(t *testing.T) {
	dir := t.TempDir()
	o, err := parseLoad([]string{"-clients", "1,64", "-img", filepath.Join(dir, "img"), "-report", filepath.Join(dir, "benchmarks.md")}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	run := &loadRun{Versions: map[string]string{"etcd": "3.4.23"}, Skipped: []string{"redis-server not installed"}}
	for _, c := range []int{1, 64} {
		f := uint64(c)
		run.Cells = append(run.Cells,
			loadCell{System: "zkv", Op: "PUT ack all", Kind: "write", ValueSize: 100, Clients: c, Servers: 3, Result: fakeResult(300*f, time.Millisecond)},
			loadCell{System: "zkv", Op: "GET local", Kind: "read", ValueSize: 100, Clients: c, Servers: 3, Result: fakeResult(1000*f, time.Millisecond)},
			loadCell{System: "etcd", Op: "put", Kind: "write", ValueSize: 100, Clients: c, Servers: 3, Result: fakeResult(100*f, time.Millisecond)},
			loadCell{System: "etcd", Op: "get serializable", Kind: "read", ValueSize: 100, Clients: c, Servers: 3, Result: fakeResult(2000*f, time.Millisecond)},
			loadCell{System: "ceiling", Op: "GET fixed body", Kind: "read", ValueSize: 100, Clients: c, Servers: 1, Result: fakeResult(1500*f, time.Millisecond)},
		)
	}
	run.Cells = append(run.Cells, loadCell{System: "zkv", Op: "PUT ack all", Kind: "write", ValueSize: 100, Clients: 64, Servers: 5, Result: fakeResult(9000, time.Millisecond)})
	// CPU over 1 s windows: zkv PUT at 64 clients, 19200 ops/s, 1.92 s of servers (0.96 s the
	// leader's), 0.96 s of client, 0.192 s of ZooKeeper; etcd put, 6400 ops/s, 1.28 s + 0.32 s.
	for i, c := range run.Cells {
		switch {
		case c.System == "zkv" && c.Op == "PUT ack all" && c.Clients == 64 && c.Servers == 3:
			run.Cells[i].CPU = &cellCPU{Window: time.Second, Server: 1920 * time.Millisecond, Leader: 960 * time.Millisecond, HasLeader: true,
				Client: 960 * time.Millisecond, ZooKeeper: 192 * time.Millisecond, HasZooKeeper: true}
		case c.System == "etcd" && c.Op == "put" && c.Clients == 64:
			run.Cells[i].CPU = &cellCPU{Window: time.Second, Server: 1280 * time.Millisecond, Client: 320 * time.Millisecond}
		case c.System == "ceiling" && c.Clients == 64:
			run.Cells[i].CPU = &cellCPU{Window: time.Second, Client: 960 * time.Millisecond, InProcess: true}
		default:
			run.Cells[i].CPUErr = "bench: cpu time: no such process"
		}
	}
	run.Memory = &memoryResult{Keys: 1000, ValueSize: 100, Loaded: 1000, Before: []int64{1 << 20}, After: []int64{1<<20 + 300_000}}
	plots, err := loadPlots(o, run, dir)
	if err != nil || len(plots) != 4 {
		t.Fatalf("plots %v %v", plots, err)
	}
	for _, p := range plots {
		if st, err := os.Stat(filepath.Join(dir, p)); err != nil || st.Size() == 0 {
			t.Fatalf("plot %s: %v", p, err)
		}
	}
	md := loadMarkdown(o, run, time.Now(), time.Minute, plots)
	for _, want := range []string{
		"| zkv PUT ack all / etcd put | 19200 | 6400 | 3.00 | >= 1.5 | met |",
		"| zkv GET local / etcd get serializable | 64000 | 128000 | 0.50 | >= 1 | **missed** |",
		"| zkv GET local / HTTP ceiling | 64000 | 96000 | 0.67 | >= 0.9 | **missed** |",
		"| zkv PUT ack all / Redis SET + WAIT 2 | | | n/a |",
		"| zkv PUT ack all p99 / etcd put p99 | ",
		"| zkv PUT ack all total CPU per op / etcd put total CPU per op | 150 µs/op | 250 µs/op | 0.60 |  |  |",
		"## CPU per operation",
		"| zkv | PUT ack all | 100 | 64 | 3 | 100 | 50.0 | 50.0 | 150 | 10.0 | 3.07 |",
		"| etcd | put | 100 | 64 | 3 | 200 | - | 50.0 | 250 | - | 1.60 |",
		"| ceiling | GET fixed body | 100 | 64 | 1 | in client | - | 10.0 | 10.0 | - | 0.96 |",
		"| zkv | PUT ack all | 100 | 64 | 5 | not read: bench: cpu time: no such process | | | | | |",
		"| 5 | 9000 |",
		"| 1 | 1 | 1 | 300 |",
		"**Skipped:** redis-server not installed",
		"![load-writes.png](img/load-writes.png)",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q\n%s", want, md)
		}
	}
}

func TestElectionReport(t *testing.T) {
	dir := t.TempDir()
	o, err := parseElection([]string{"-runs", "3", "-img", filepath.Join(dir, "img"), "-report", filepath.Join(dir, "e.md")}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	mk := func(w ...float64) []failover {
		var out []failover
		for _, x := range ms(w...) {
			out = append(out, failover{Told: x / 2, Acting: x / 2, Write: x})
		}
		return out
	}
	cells := []electionCell{
		{Placement: placement{Name: "local"}, Stop: "sigterm", Runs: mk(20, 30, 40)},
		{Placement: placement{Name: "local"}, Stop: "sigkill", Runs: mk(2100, 2200, 2400)},
		{Placement: placement{Name: "remote 50ms", Latency: 50 * time.Millisecond}, Stop: "sigterm", Runs: mk(150, 200), Failed: 1, Errors: []string{"timeout"}},
		{Placement: placement{Name: "remote 50ms", Latency: 50 * time.Millisecond}, Stop: "sigkill"},
	}
	plots, err := electionPlots(o, cells, dir)
	if err != nil || len(plots) != 4 {
		t.Fatalf("plots %v %v", plots, err)
	}
	md := electionMarkdown(o, cells, "one ZooKeeper", time.Now(), time.Minute, plots)
	for _, want := range []string{
		"| local | sigterm | 3 | 0 | 20.0 | 30.0 | 40.0 | 40.0 |",
		"| local | sigterm | 3 | 0 | 10.0 | 15.0 | 20.0 | 20.0 |",
		"| graceful failover median < 100 ms | local | 30.0 | met |",
		"| graceful failover median < 100 ms | remote 50ms | 150 | **missed** |",
		"| crash failover median < session timeout + 250 ms = 2250 ms | local | 2200 | met |",
		"| remote 50ms | sigkill | 0 | 0 |",
		"simulates a ZooKeeper in a remote region",
		"- remote 50ms sigterm: timeout",
		"![election-sigterm.png](img/election-sigterm.png)",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q\n%s", want, md)
		}
	}
}
