package bench

import (
	"context"
	"sync"
	"testing"
	"time"
)

// fakeMeter records the window's edges as the loop reports them.
type fakeMeter struct {
	mu     sync.Mutex
	calls  []string
	opened chan struct{}
}

func (m *fakeMeter) begin() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls = append(m.calls, "begin")
	close(m.opened)
}

func (m *fakeMeter) end() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls = append(m.calls, "end")
}

// An operation begun in the warm-up and ended in the window counts in Ended, not in Ops: the
// first one waits for the window to open.
func TestRunClosedLoopWindow(t *testing.T) {
	m := &fakeMeter{opened: make(chan struct{})}
	res := runClosedLoop(context.Background(), 1, 20*time.Millisecond, 200*time.Millisecond, func(ctx context.Context, w int, seq uint64) error {
		if seq == 0 {
			select {
			case <-m.opened:
			case <-ctx.Done():
			}
			return nil
		}
		time.Sleep(time.Millisecond)
		return nil
	}, m)
	if len(m.calls) != 2 || m.calls[0] != "begin" || m.calls[1] != "end" {
		t.Fatalf("meter calls %v", m.calls)
	}
	if res.Ops == 0 || res.Ended != res.Ops+1 {
		t.Fatalf("ops %d, ended %d: want ended = ops + the one begun in the warm-up", res.Ops, res.Ended)
	}
}

func TestRunClosedLoopWindowNeverOpens(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	m := &fakeMeter{opened: make(chan struct{})}
	runClosedLoop(ctx, 2, time.Hour, time.Hour, func(ctx context.Context, w int, seq uint64) error { return ctx.Err() }, m)
	if len(m.calls) != 0 {
		t.Fatalf("meter calls %v for a window that never opened", m.calls)
	}
}
