package bench

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// net/http keeps idle keep-alive connections' goroutines briefly after CloseIdleConnections.
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
	)
}
