package bench

import (
	"context"
	"os"
	"testing"

	"go.uber.org/goleak"
)

// childEnv makes the test binary stand in for bin/bench in a child process (the ceiling server
// runs as one), the way os/exec's own tests run their helpers.
const childEnv = "ZKV_BENCH_TEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		os.Exit(Main(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
	}
	goleak.VerifyTestMain(m,
		// net/http keeps idle keep-alive connections' goroutines briefly after CloseIdleConnections.
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
	)
}
