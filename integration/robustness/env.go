package robustness

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/zkv-dev/zkv/driver/launcher"
)

// Env is what the end-to-end tests share: one ZooKeeper ensemble (three nodes, tickTime 200ms, so
// sessions of 0.4-4s), the server binary, a log directory, and the results for the report.
type Env struct {
	Binary   string
	LogDir   string
	Features Features // of Binary

	once    sync.Once
	zk      *launcher.ZooKeeper
	zkErr   error
	mu      sync.Mutex
	results []*Result
}

// NewEnv reads $ZKV_SERVER_BIN and $ZKV_ROBUSTNESS_LOGS (a directory kept after the run; a temp
// directory otherwise).
func NewEnv() (*Env, error) {
	e := &Env{Binary: os.Getenv("ZKV_SERVER_BIN"), LogDir: os.Getenv("ZKV_ROBUSTNESS_LOGS")}
	if e.Binary != "" {
		e.Features = ProbeFeatures(e.Binary)
	}
	if e.LogDir == "" {
		d, err := os.MkdirTemp("", "zkv-robustness-")
		if err != nil {
			return nil, err
		}
		e.LogDir = d
	}
	return e, os.MkdirAll(e.LogDir, 0o755)
}

// ZooKeeper starts the ensemble on first use.
func (e *Env) ZooKeeper(t testing.TB) *launcher.ZooKeeper {
	e.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		e.zk, e.zkErr = launcher.Start(ctx, launcher.Options{Nodes: 3, TickTime: 200 * time.Millisecond, LogDir: filepath.Join(e.LogDir, "zookeeper")})
	})
	if e.zkErr != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("ZooKeeper: %v", e.zkErr)
		}
		t.Skipf("no ZooKeeper: %v", e.zkErr)
	}
	return e.zk
}

// Cluster starts a cluster for t on the shared ZooKeeper, closed with the test; it skips the
// test without a server binary.
func (e *Env) Cluster(t testing.TB, cfg Config) *Cluster {
	t.Helper()
	if e.Binary == "" {
		t.Skip("ZKV_SERVER_BIN is not set (make build)")
	}
	if _, err := os.Stat(e.Binary); err != nil {
		t.Skipf("no server binary: %v", err)
	}
	zk := e.ZooKeeper(t)
	dir := filepath.Join(e.LogDir, sanitize(t.Name()))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := StartCluster(ctx, zk, e.Binary, dir, cfg)
	if err != nil {
		t.Fatalf("start cluster (logs in %s): %v", dir, err)
	}
	t.Cleanup(c.Close)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server logs: %s", dir)
		}
	})
	return c
}

func sanitize(name string) string {
	b := []byte(name)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			b[i] = '_'
		}
	}
	return string(b)
}

// Record keeps a result for the report.
func (e *Env) Record(r *Result) {
	e.mu.Lock()
	e.results = append(e.results, r)
	e.mu.Unlock()
}

// Results returns the recorded results in order.
func (e *Env) Results() []*Result {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]*Result(nil), e.results...)
}

// Close stops the ensemble.
func (e *Env) Close() {
	if e.zk != nil {
		_ = e.zk.Close()
	}
}
