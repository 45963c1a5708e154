package integration

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zkv-dev/zkv/driver/launcher"
)

// zkTick is the ZooKeeper tickTime of every ensemble these tests start. ZooKeeper clamps a
// session timeout to 2..20 ticks, so 250ms allows 500ms..5s: short enough for sessions to expire
// within seconds, long enough for a 3-node ensemble to keep its quorum on a loaded 2-core machine.
const zkTick = 250 * time.Millisecond

// zkMode is the launcher mode: $ZKV_ZK_MODE (auto, docker, local, existing), default auto
// (docker with $ZK_IMAGE when the engine and the image are there, else Debian's jars).
func zkMode() launcher.Mode {
	if m := os.Getenv("ZKV_ZK_MODE"); m != "" {
		return launcher.Mode(m)
	}
	return launcher.ModeAuto
}

// startZooKeeper starts a ZooKeeper of nodes nodes for t, closed when t ends. Without any way to
// get one it skips, unless CI=true or ZKV_REQUIRE_ZK=1, where that is a failure.
func startZooKeeper(ctx context.Context, t testing.TB, nodes int) *launcher.ZooKeeper {
	t.Helper()
	z, err := startZooKeeperFor(ctx, logDir(t, "zookeeper"), nodes, testLogger(t))
	if err != nil {
		skipOrFailZooKeeper(t, err)
	}
	t.Cleanup(func() {
		if err := z.Close(); err != nil {
			t.Errorf("close zookeeper: %v", err)
		}
	})
	return z
}

func startZooKeeperFor(ctx context.Context, dir string, nodes int, logger *slog.Logger) (*launcher.ZooKeeper, error) {
	o := launcher.Options{
		Mode:     zkMode(),
		Nodes:    nodes,
		TickTime: zkTick,
		LogDir:   dir,
		Logger:   logger,
	}
	if s := os.Getenv("ZKV_ZK_SERVERS"); s != "" && o.Mode == launcher.ModeExisting {
		o.Servers = strings.Split(s, ",")
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	began := time.Now()
	z, err := launcher.Start(ctx, o)
	if err != nil {
		return nil, err
	}
	logger.Info("zookeeper started", "mode", z.Mode(), "nodes", nodes, "servers", z.Servers(), "took", time.Since(began).Round(time.Millisecond))
	return z, nil
}

func skipOrFailZooKeeper(t testing.TB, err error) {
	t.Helper()
	missing := errors.Is(err, launcher.ErrNoZooKeeper) || errors.Is(err, launcher.ErrUnavailable)
	if missing && os.Getenv("CI") != "true" && os.Getenv("ZKV_REQUIRE_ZK") != "1" {
		t.Skipf("no ZooKeeper to test against (run scripts/prepare.sh, or set ZKV_ZK_MODE): %v", err)
	}
	t.Fatalf("start zookeeper: %v", err)
}

// needsNodeControl skips t in mode existing, which cannot stop, kill or restart nodes.
func needsNodeControl(t testing.TB, z *launcher.ZooKeeper) {
	t.Helper()
	if z.Mode() == launcher.ModeExisting {
		t.Skip("mode existing: the test stops ZooKeeper nodes, which only docker and local modes can")
	}
}

// serverBinary returns $ZKV_SERVER_BIN (make build puts bin/server there), skipping t without it.
func serverBinary(t testing.TB) string {
	t.Helper()
	bin := os.Getenv("ZKV_SERVER_BIN")
	if bin == "" {
		if _, err := os.Stat("../bin/server"); err == nil {
			bin, _ = filepath.Abs("../bin/server")
		}
	}
	if bin == "" {
		t.Skip("ZKV_SERVER_BIN is not set and ../bin/server is missing: run `make build` (make test-integration sets it)")
	}
	if _, err := os.Stat(bin); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("server binary: %v", err)
		}
		t.Skipf("server binary %s missing (run `make build`): %v", bin, err)
	}
	return bin
}

// logDir is where a test's processes write their logs: $ZKV_TEST_LOGS/<test>/<what> when set
// (kept for reading after the run), else a directory of t's own, removed when t ends. Without t
// (the shared ensemble) it is "": the launcher's temporary directory.
func logDir(t testing.TB, what string) string {
	base := os.Getenv("ZKV_TEST_LOGS")
	name := "shared"
	if t != nil {
		name = strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())
	}
	switch {
	case base != "":
		dir := filepath.Join(base, name, what)
		_ = os.MkdirAll(dir, 0o755)
		return dir
	case t != nil:
		dir := filepath.Join(t.TempDir(), what)
		_ = os.MkdirAll(dir, 0o755)
		return dir
	}
	return ""
}

// tailLogs writes the last lines of every *.log file in dir to t.Log, for a failed test.
func tailLogs(t testing.TB, dir string, lines int) {
	files, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		all := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		if len(all) > lines {
			all = all[len(all)-lines:]
		}
		t.Logf("--- last %d lines of %s:\n%s", len(all), f, strings.Join(all, "\n"))
	}
}

// testLogger sends slog records to t.Log until t ends; records after that are dropped, since a
// background goroutine may still log while it is being stopped.
func testLogger(t testing.TB) *slog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(w.stop)
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type testWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (w *testWriter) stop() {
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
}

// eventually calls check every 20ms until it returns nil or limit (or ctx) ends, then fails t
// with the last error.
func eventually(ctx context.Context, t testing.TB, limit time.Duration, what string, check func(context.Context) error) {
	t.Helper()
	if err := waitFor(ctx, limit, check); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// waitFor is eventually's error-returning core.
func waitFor(ctx context.Context, limit time.Duration, check func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		err := check(ctx)
		if err == nil {
			return nil
		}
		// A check cut short by the deadline says less than the one before it.
		if last == nil || ctx.Err() == nil {
			last = err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not within %v: %w", limit, last)
		case <-tick.C:
		}
	}
}

// zkRole asks a ZooKeeper node its role ("leader", "follower", "standalone") with the srvr
// four-letter word.
func zkRole(ctx context.Context, addr string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	if _, err := io.WriteString(conn, "srvr"); err != nil {
		return "", err
	}
	sc := bufio.NewScanner(conn)
	for sc.Scan() {
		if mode, ok := strings.CutPrefix(sc.Text(), "Mode: "); ok {
			return strings.TrimSpace(mode), nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	return "", fmt.Errorf("%s: no mode in the srvr answer (no quorum?)", addr)
}

// blackholeProxy forwards TCP connections from a loopback port to upstream until Blackhole is
// called; from then on nothing passes in either direction (bytes in flight are held, not
// dropped, and new connections are accepted but get nothing) until Heal. It stands for a
// network partition between a client and a ZooKeeper node: the client hears nothing and
// disconnects after its receive timeout, and the server expires its session.
type blackholeProxy struct {
	ln       net.Listener
	upstream string

	mu      sync.Mutex
	cond    *sync.Cond
	holding bool
	closed  bool
	conns   map[net.Conn]struct{}
	wg      sync.WaitGroup
}

func newBlackholeProxy(t testing.TB, upstream string) *blackholeProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("proxy listen: %v", err)
	}
	p := &blackholeProxy{ln: ln, upstream: upstream, conns: map[net.Conn]struct{}{}}
	p.cond = sync.NewCond(&p.mu)
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.Close)
	return p
}

// Addr is the proxy's "127.0.0.1:port".
func (p *blackholeProxy) Addr() string { return p.ln.Addr().String() }

// Blackhole stops all traffic through the proxy.
func (p *blackholeProxy) Blackhole() {
	p.mu.Lock()
	p.holding = true
	p.mu.Unlock()
}

// Heal lets traffic pass again; what was held is delivered first.
func (p *blackholeProxy) Heal() {
	p.mu.Lock()
	p.holding = false
	p.cond.Broadcast()
	p.mu.Unlock()
}

// Close stops listening, closes every connection and waits for the proxy's goroutines.
func (p *blackholeProxy) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	_ = p.ln.Close()
	for c := range p.conns {
		_ = c.Close()
	}
	p.cond.Broadcast()
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *blackholeProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		_ = c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *blackholeProxy) accept() {
	defer p.wg.Done()
	for {
		down, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.track(down) {
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			up, err := net.DialTimeout("tcp", p.upstream, 2*time.Second)
			if err != nil || !p.track(up) {
				_ = down.Close()
				return
			}
			var pair sync.WaitGroup
			pair.Add(2)
			go func() { defer pair.Done(); p.pipe(up, down) }()
			go func() { defer pair.Done(); p.pipe(down, up) }()
			pair.Wait()
			p.mu.Lock()
			delete(p.conns, up)
			delete(p.conns, down)
			p.mu.Unlock()
		}()
	}
}

// pipe copies src to dst, holding each chunk while the proxy blackholes. Either side ending
// closes both.
func (p *blackholeProxy) pipe(dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			for p.holding && !p.closed {
				p.cond.Wait()
			}
			closed := p.closed
			p.mu.Unlock()
			if closed {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
