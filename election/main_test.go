package election

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// logSink sends log lines to t.Log and keeps them for assertions.
type logSink struct {
	t     testing.TB
	mu    sync.Mutex
	lines []string
	done  bool
}

func (s *logSink) Write(p []byte) (int, error) {
	line := strings.TrimRight(string(p), "\n")
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lines = append(s.lines, line)
	if !s.done {
		s.t.Log(line)
	}
	return len(p), nil
}

func (s *logSink) grep(substr string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, l := range s.lines {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return out
}

func testLogger(t testing.TB) (*slog.Logger, *logSink) {
	sink := &logSink{t: t}
	t.Cleanup(func() {
		sink.mu.Lock()
		sink.done = true
		sink.mu.Unlock()
	})
	return slog.New(slog.NewTextHandler(sink, &slog.HandlerOptions{Level: slog.LevelDebug})), sink
}

const waitLimit = 5 * time.Second

// waitFor polls cond until it holds or the limit passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	waitWithin(t, waitLimit, what, cond)
}

// waitWithin is waitFor with its own limit, for waits that span a ZooKeeper
// session expiry (which the server may stretch to 2 x its tickTime).
func waitWithin(t testing.TB, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	t.Cleanup(cancel)
	return ctx
}

type member struct {
	c    *Candidate
	conn *fakeConn
	log  *logSink
}

// newMember connects a fake session and makes a candidate on it; cleanup
// closes both.
func newMember(t testing.TB, srv *fakeServer, id string) member {
	t.Helper()
	return newMemberWith(t, srv, id, nil)
}

// newMemberWith is newMember with edit applied to the Config.
func newMemberWith(t testing.TB, srv *fakeServer, id string, edit func(*Config)) member {
	t.Helper()
	conn := srv.connect()
	logger, sink := testLogger(t)
	cfg := Config{Conn: conn, Events: conn.events, Root: "/", ID: id, Address: id + ":5000",
		Meta: map[string]string{"role": "test"}, Logger: logger}
	if edit != nil {
		edit(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("close %s: %v", id, err)
		}
		conn.close()
	})
	return member{c: c, conn: conn, log: sink}
}

func joinAll(t testing.TB, srv *fakeServer, ids ...string) []member {
	t.Helper()
	var ms []member
	for _, id := range ids {
		m := newMember(t, srv, id)
		if err := m.c.Join(ctxT(t)); err != nil {
			t.Fatalf("join %s: %v", id, err)
		}
		ms = append(ms, m)
	}
	return ms
}

// waitLeader waits until every candidate agrees that want leads.
func waitLeader(t testing.TB, want member, all ...member) {
	t.Helper()
	waitFor(t, want.c.cfg.ID+" to lead", func() bool {
		if !want.c.IsLeader() {
			return false
		}
		node := want.c.View().Self.Node
		for _, m := range all {
			v := m.c.View()
			if v.Leader.Node != node || (m.c != want.c && v.IsLeader) {
				return false
			}
		}
		return true
	})
}
