// Package integration tests zkv on a real ZooKeeper (started by driver/launcher: docker with
// $ZK_IMAGE when available, else Debian's jars; $ZKV_ZK_MODE forces a mode) and real server
// processes ($ZKV_SERVER_BIN, built by make build): the election library on a three-node
// ensemble (election_test.go) and clusters of bin/server (cluster_test.go).
//
// Every test is bounded by context deadlines and listens on 127.0.0.1 only. Set ZKV_TEST_LOGS to
// a directory to keep the ZooKeeper and server logs of each test there.
package integration

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/zkv-dev/zkv/driver/launcher"
)

func TestMain(m *testing.M) {
	code := m.Run()
	closeShared()
	if code == 0 {
		if err := goleak.Find(
			// dockertest's Expire runs "docker stop -t <expiry>" in a goroutine of its own, which
			// returns once the container is removed.
			goleak.IgnoreAnyFunction("github.com/ory/dockertest/v3.(*Resource).Expire.func1"),
			// Keep-alive connections of HTTP clients (the compose test's, the driver client's)
			// that were not closed explicitly; they end with the idle timeout.
			goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
			goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// shared is one three-node ensemble for the election tests that do not stop ZooKeeper nodes;
// each of them works under a root of its own. It is started by the first test that asks and
// closed by TestMain.
var shared struct {
	once sync.Once
	z    *launcher.ZooKeeper
	err  error
}

// sharedEnsemble returns the shared three-node ensemble, starting it on first use.
func sharedEnsemble(ctx context.Context, t testing.TB) *launcher.ZooKeeper {
	t.Helper()
	shared.once.Do(func() {
		logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
		shared.z, shared.err = startZooKeeperFor(ctx, logDir(nil, "zookeeper"), 3, logger)
	})
	if shared.err != nil {
		skipOrFailZooKeeper(t, shared.err)
	}
	return shared.z
}

func closeShared() {
	if shared.z != nil {
		if err := shared.z.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "close shared zookeeper: %v\n", err)
		}
	}
}
