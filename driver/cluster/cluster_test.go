package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/zkv-dev/zkv/driver/cluster"
)

var fakeBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "zkv-fakeserver-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fakeBin = filepath.Join(dir, "fakeserver")
	build := exec.Command("go", "build", "-o", fakeBin, "./testdata/fakeserver")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building the fake server:", err)
		_ = os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func start(t *testing.T, n int, args ...string) *cluster.Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := cluster.Start(ctx, cluster.Options{
		Binary:    fakeBin,
		Servers:   n,
		ZooKeeper: []string{"127.0.0.1:2999", "127.0.0.1:3000"},
		LogDir:    t.TempDir(),
		Args:      args,
		Env:       []string{"FAKE_DIR=" + t.TempDir()},
		Logger:    testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func readLog(t *testing.T, n *cluster.Node) string {
	t.Helper()
	b, err := os.ReadFile(n.LogPath())
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestStartLeaderKillRestart(t *testing.T) {
	c := start(t, 3, "-ack", "all")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	nodes := c.Nodes()
	if len(nodes) != 3 {
		t.Fatalf("%d nodes", len(nodes))
	}
	for i, n := range nodes {
		if n.ID() != i+1 || !n.Running() || n.LogPath() != filepath.Join(c.LogDir(), fmt.Sprintf("server-%d.log", i+1)) {
			t.Fatalf("node %d: id %d running %v log %s", i, n.ID(), n.Running(), n.LogPath())
		}
		if err := n.Client().Healthy(ctx); err != nil {
			t.Fatal(err)
		}
		log := readLog(t, n)
		want := fmt.Sprintf("host 127.0.0.1 port %s zookeeper 127.0.0.1:2999,127.0.0.1:3000 zookeeper_port 2999 ack \"all\"",
			strings.TrimPrefix(n.Addr(), "127.0.0.1:"))
		if !strings.Contains(log, want) || !strings.Contains(log, "=== zkv cluster: start node") {
			t.Fatalf("log of node %d lacks %q:\n%s", n.ID(), want, log)
		}
	}

	leader, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	addr := leader.Addr()
	if err := leader.Kill(); err != nil {
		t.Fatal(err)
	}
	if leader.Running() {
		t.Fatal("killed node still running")
	}
	if err := leader.Kill(); !errors.Is(err, cluster.ErrNotRunning) {
		t.Fatalf("second Kill = %v, want ErrNotRunning", err)
	}
	next, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if next == leader {
		t.Fatal("dead node still leads")
	}

	if err := leader.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if leader.Addr() != addr || !leader.Running() {
		t.Fatalf("restarted on %s (was %s), running %v", leader.Addr(), addr, leader.Running())
	}
	log := readLog(t, leader)
	if strings.Count(log, "fakeserver pid") != 2 || !strings.Contains(log, "=== zkv cluster: restart node") ||
		!strings.Contains(log, "exited at") || !strings.Contains(log, "signal: killed") {
		t.Fatalf("log after restart:\n%s", log)
	}
	if got, err := c.Leader(ctx); err != nil || got != leader {
		t.Fatalf("Leader after restart = %v, %v; want the lowest port again", got, err)
	}
	if c.NodeByAddr(addr) != leader || c.Node(leader.ID()) != leader || c.Node(0) != nil {
		t.Fatal("lookup by address or id")
	}
}

func TestTermPauseResume(t *testing.T) {
	c := start(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	a, b := c.Nodes()[0], c.Nodes()[1]

	if err := a.Pause(); err != nil {
		t.Fatal(err)
	}
	if !a.Paused() || !a.Running() {
		t.Fatal("paused node: want Paused and Running")
	}
	pctx, pcancel := context.WithTimeout(ctx, 200*time.Millisecond)
	err := a.Client().Healthy(pctx)
	pcancel()
	if err == nil {
		t.Fatal("paused node answered")
	}
	// Leader ignores the paused node: b agrees with itself about the leader it sees.
	if err := a.Resume(); err != nil {
		t.Fatal(err)
	}
	if err := a.Client().Healthy(ctx); err != nil {
		t.Fatal(err)
	}

	if err := b.Term(); err != nil {
		t.Fatalf("Term = %v, want a clean exit", err)
	}
	if b.Running() || !strings.Contains(readLog(t, b), "SIGTERM, bye") || !strings.Contains(readLog(t, b), "exit 0") {
		t.Fatalf("after Term: running %v, log:\n%s", b.Running(), readLog(t, b))
	}
	if err := b.Signal(os.Interrupt); !errors.Is(err, cluster.ErrNotRunning) {
		t.Fatalf("Signal to exited node = %v", err)
	}
	if err := b.Wait(ctx); err != nil {
		t.Fatalf("Wait = %v", err)
	}
}

func TestTermTimeout(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := cluster.Start(ctx, cluster.Options{
		Binary: fakeBin, Servers: 1, ZooKeeper: []string{"127.0.0.1:2181"},
		Args: []string{"-ignore_term"}, TermTimeout: 200 * time.Millisecond, Logger: testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	dir := c.LogDir()
	n := c.Nodes()[0]
	if err := n.Term(); err == nil || !strings.Contains(err.Error(), "ignored SIGTERM") {
		t.Fatalf("Term = %v", err)
	}
	if n.Running() {
		t.Fatal("still running")
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("temp log dir left behind: %v", err)
	}
	if err := n.Restart(ctx); !errors.Is(err, cluster.ErrClosed) {
		t.Fatalf("Restart after Close = %v", err)
	}
}

func TestStartFailure(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	logs := t.TempDir()
	_, err := cluster.Start(ctx, cluster.Options{
		Binary: fakeBin, Servers: 2, ZooKeeper: []string{"127.0.0.1:2181"}, LogDir: logs,
		Args: []string{"-fail_start"}, Logger: testLogger(t),
	})
	if !errors.Is(err, cluster.ErrStart) || !strings.Contains(err.Error(), "server-1.log") {
		t.Fatalf("err = %v, want ErrStart naming the log", err)
	}
	b, _ := os.ReadFile(filepath.Join(logs, "server-1.log"))
	if !strings.Contains(string(b), "failing as asked") || strings.Count(string(b), "=== zkv cluster: start") != 3 {
		t.Fatalf("log:\n%s", b)
	}
}

func TestOptionsValidation(t *testing.T) {
	ctx := context.Background()
	t.Setenv(cluster.EnvServerBin, "")
	for _, o := range []cluster.Options{
		{ZooKeeper: []string{"127.0.0.1:2181"}},
		{Binary: "/no/such/binary", ZooKeeper: []string{"127.0.0.1:2181"}},
		{Binary: fakeBin},
		{Binary: fakeBin, ZooKeeper: []string{"a:1,b:2"}},
		{Binary: fakeBin, ZooKeeper: []string{"a:1"}, Servers: -1},
	} {
		if _, err := cluster.Start(ctx, o); !errors.Is(err, cluster.ErrInvalidOptions) {
			t.Errorf("Start(%+v) = %v, want ErrInvalidOptions", o, err)
		}
	}
}

func TestLeaderTimesOut(t *testing.T) {
	c := start(t, 1)
	n := c.Nodes()[0]
	if err := n.Kill(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := c.Leader(ctx)
	if !errors.Is(err, cluster.ErrNoLeader) || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "no running node") {
		t.Fatalf("Leader = %v", err)
	}
}
