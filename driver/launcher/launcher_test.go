package launcher

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// dockertest's Expire runs "docker stop -t <expiry>" in a goroutine of its own, which
		// returns once Close removed the container.
		goleak.IgnoreAnyFunction("github.com/ory/dockertest/v3.(*Resource).Expire.func1"),
	)
}

// testLogger sends the launcher's log to t.Log.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func TestOptionsDefaults(t *testing.T) {
	t.Setenv("ZK_IMAGE", "")
	o, err := Options{}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if o.Mode != ModeAuto || o.Nodes != 1 || o.Image != DefaultImage || o.TickTime != DefaultTickTime || o.Logger == nil {
		t.Fatalf("defaults: %+v", o)
	}
	t.Setenv("ZK_IMAGE", "zkv/zookeeper:3.8")
	if o, _ := (Options{}).withDefaults(); o.Image != "zkv/zookeeper:3.8" {
		t.Fatalf("image from $ZK_IMAGE: %q", o.Image)
	}
}

func TestOptionsInvalid(t *testing.T) {
	for name, o := range map[string]Options{
		"mode":          {Mode: "podman"},
		"two nodes":     {Nodes: 2},
		"negative":      {Nodes: -1},
		"too many":      {Nodes: 9},
		"existing":      {Mode: ModeExisting},
		"server list":   {Servers: []string{"a:1,b:2"}},
		"tick":          {TickTime: time.Millisecond},
		"tick fraction": {TickTime: 1500 * time.Microsecond},
	} {
		if _, err := o.withDefaults(); !errors.Is(err, ErrInvalidOptions) {
			t.Errorf("%s: %v, want ErrInvalidOptions", name, err)
		}
	}
}

func TestEnsembleConfig(t *testing.T) {
	e, err := newEnsemble(3, 250*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, m := range e.Members {
		for _, p := range []int{m.ClientPort, m.QuorumPort, m.ElectionPort} {
			if p <= 0 || seen[p] {
				t.Fatalf("port %d zero or repeated in %+v", p, e.Members)
			}
			seen[p] = true
		}
	}
	m := e.Members[1]
	cfg := e.zooCfg(1, "/d")
	for _, want := range []string{
		"tickTime=250\n", "dataDir=/d\n", "clientPortAddress=127.0.0.1\n",
		"admin.enableServer=false\n", "4lw.commands.whitelist=*\n",
		"clientPort=" + itoa(m.ClientPort) + "\n",
		"server.2=127.0.0.1:" + itoa(m.QuorumPort) + ":" + itoa(m.ElectionPort) + ";127.0.0.1:" + itoa(m.ClientPort) + "\n",
	} {
		if !strings.Contains(cfg, want) {
			t.Errorf("zoo.cfg lacks %q:\n%s", want, cfg)
		}
	}
	if n := strings.Count(cfg, "server."); n != 3 {
		t.Errorf("zoo.cfg has %d server lines:\n%s", n, cfg)
	}
	env := strings.Join(e.dockerEnv(1), "\n")
	for _, want := range []string{
		"ZOO_MY_ID=2\n", "ZOO_TICK_TIME=250\n", "ZOO_ADMINSERVER_ENABLED=false\n",
		"ZOO_4LW_COMMANDS_WHITELIST=*\n",
		"ZOO_CFG_EXTRA=clientPort=" + itoa(m.ClientPort) + " clientPortAddress=127.0.0.1\n",
		"ZOO_SERVERS=" + strings.Join(e.serverLines(), " ") + "\n",
	} {
		if !strings.Contains(env, want) {
			t.Errorf("docker env lacks %q:\n%s", want, env)
		}
	}
	if got := e.servers(); len(got) != 3 || got[1] != m.clientAddr() {
		t.Errorf("servers %v", got)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

func TestSplitImage(t *testing.T) {
	for in, want := range map[string][2]string{
		"zookeeper:3.8":            {"zookeeper", "3.8"},
		"zkv/zookeeper:3.8":        {"zkv/zookeeper", "3.8"},
		"zookeeper":                {"zookeeper", "latest"},
		"localhost:5000/zk":        {"localhost:5000/zk", "latest"},
		"localhost:5000/zk:3.8.4":  {"localhost:5000/zk", "3.8.4"},
		"registry/library/zk:tag1": {"registry/library/zk", "tag1"},
	} {
		if r, tag := splitImage(in); r != want[0] || tag != want[1] {
			t.Errorf("splitImage(%q) = %q, %q; want %q", in, r, tag, want)
		}
	}
}

func TestSelectMode(t *testing.T) {
	ok := func() error { return nil }
	missing := func() error { return errors.New("java: missing") }
	dockerOK := func(context.Context, string) error { return nil }
	dockerMissing := func(context.Context, string) error { return errors.New("engine does not answer") }
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		o       Options
		p       probes
		want    Mode
		wantErr error
	}{
		{"servers win", Options{Mode: ModeAuto, Servers: []string{"h:1"}}, probes{dockerOK, ok}, ModeExisting, nil},
		{"docker first", Options{Mode: ModeAuto}, probes{dockerOK, ok}, ModeDocker, nil},
		{"local next", Options{Mode: ModeAuto}, probes{dockerMissing, ok}, ModeLocal, nil},
		{"nothing", Options{Mode: ModeAuto}, probes{dockerMissing, missing}, "", ErrNoZooKeeper},
		{"explicit docker", Options{Mode: ModeDocker}, probes{dockerOK, missing}, ModeDocker, nil},
		{"explicit docker missing", Options{Mode: ModeDocker}, probes{dockerMissing, ok}, "", ErrUnavailable},
		{"explicit local missing", Options{Mode: ModeLocal}, probes{dockerOK, missing}, "", ErrUnavailable},
		{"explicit local", Options{Mode: ModeLocal}, probes{dockerOK, ok}, ModeLocal, nil},
		{"explicit existing", Options{Mode: ModeExisting, Servers: []string{"h:1"}}, probes{dockerMissing, missing}, ModeExisting, nil},
	} {
		got, err := selectMode(ctx, tc.o, tc.p)
		if got != tc.want || !errors.Is(err, tc.wantErr) {
			t.Errorf("%s: got %q, %v; want %q, %v", tc.name, got, err, tc.want, tc.wantErr)
		}
	}
	_, err := selectMode(ctx, Options{Mode: ModeAuto}, probes{dockerMissing, missing})
	for _, want := range []string{"apt-get install zookeeper", "scripts/prepare.sh", "engine does not answer", "java: missing"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

// fakeServer answers four-letter words like a ZooKeeper node; answer may change over time.
type fakeServer struct {
	ln     net.Listener
	mu     sync.Mutex
	answer map[string]string
	wg     sync.WaitGroup
}

func newFakeServer(t *testing.T, answer map[string]string) *fakeServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeServer{ln: ln, answer: answer}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			buf := make([]byte, 4)
			_ = c.SetDeadline(time.Now().Add(time.Second))
			if _, err := io.ReadFull(c, buf); err == nil {
				f.mu.Lock()
				_, _ = io.WriteString(c, f.answer[string(buf)])
				f.mu.Unlock()
			}
			_ = c.Close()
		}
	}()
	t.Cleanup(func() { _ = ln.Close(); f.wg.Wait() })
	return f
}

func (f *fakeServer) set(word, answer string) {
	f.mu.Lock()
	f.answer[word] = answer
	f.mu.Unlock()
}

func (f *fakeServer) addr() string { return f.ln.Addr().String() }

func TestServingProbe(t *testing.T) {
	ctx := context.Background()
	f := newFakeServer(t, map[string]string{
		"srvr": "Zookeeper version: 3.8.0\nLatency min/avg/max: 0/0.0/0\nMode: follower\nNode count: 5\n",
		"ruok": "imok",
	})
	if mode, err := serving(ctx, f.addr()); err != nil || mode != "follower" {
		t.Fatalf("serving: %q, %v", mode, err)
	}
	if err := alive(ctx, f.addr()); err != nil {
		t.Fatal(err)
	}
	f.set("srvr", "This ZooKeeper instance is not currently serving requests\n")
	if _, err := serving(ctx, f.addr()); err == nil {
		t.Fatal("a node without quorum counted as serving")
	}
	f.set("ruok", "")
	if err := alive(ctx, f.addr()); err == nil {
		t.Fatal("empty ruok answer counted as alive")
	}
}

func TestStartExisting(t *testing.T) {
	f := newFakeServer(t, map[string]string{"srvr": "This ZooKeeper instance is not currently serving requests\n"})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Becomes ready only later: Start must wait for it, not just for a TCP answer.
	time.AfterFunc(300*time.Millisecond, func() { f.set("srvr", "Mode: standalone\n") })
	began := time.Now()
	z, err := Start(ctx, Options{Servers: []string{f.addr()}, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = z.Close() }()
	if time.Since(began) < 250*time.Millisecond {
		t.Errorf("Start returned before the server served")
	}
	if z.Mode() != ModeExisting || len(z.Servers()) != 1 || z.Servers()[0] != f.addr() {
		t.Fatalf("mode %q servers %v", z.Mode(), z.Servers())
	}
	if err := z.Kill(ctx, 0); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("Kill in mode existing: %v", err)
	}
	if err := z.Close(); err != nil {
		t.Fatal(err)
	}
	if err := z.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestStartExistingTimesOut(t *testing.T) {
	f := newFakeServer(t, map[string]string{"srvr": "not serving\n"})
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, err := Start(ctx, Options{Mode: ModeExisting, Servers: []string{f.addr()}})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Start on a server that never serves: %v", err)
	}
}

// A node whose process exits at once fails Start at once, naming its log, instead of waiting
// for the deadline.
func TestLocalExitFailsFast(t *testing.T) {
	home, jars, logs := t.TempDir(), t.TempDir(), t.TempDir()
	if err := os.MkdirAll(filepath.Join(home, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	java := "#!/bin/sh\necho 'Error: no such class' >&2\nexit 3\n"
	if err := os.WriteFile(filepath.Join(home, "bin", "java"), []byte(java), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, j := range requiredJars {
		if err := os.WriteFile(filepath.Join(jars, j), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("JAVA_HOME", home)
	old := jarDir
	jarDir = jars
	t.Cleanup(func() { jarDir = old })

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	began := time.Now()
	z, err := Start(ctx, Options{Mode: ModeLocal, Nodes: 3, TickTime: 200 * time.Millisecond, LogDir: logs, Logger: testLogger(t)})
	if err == nil {
		_ = z.Close()
		t.Fatal("Start succeeded with a java that exits")
	}
	if !errors.Is(err, errGaveUp) || !strings.Contains(err.Error(), "exited with 3") {
		t.Fatalf("error %v; want the exit named", err)
	}
	if d := time.Since(began); d > 10*time.Second {
		t.Fatalf("Start took %v to notice", d)
	}
	b, _ := os.ReadFile(filepath.Join(logs, "zookeeper-1.log"))
	if !strings.Contains(string(b), "no such class") {
		t.Fatalf("node log %q lacks java's output", b)
	}
}
