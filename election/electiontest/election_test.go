package electiontest_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/zkv-dev/zkv/election"
	"github.com/zkv-dev/zkv/election/electiontest"
)

type member struct {
	name string
	conn *electiontest.Conn
	c    *election.Candidate
}

type tlog struct{ t *testing.T }

func (w tlog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func newMember(t *testing.T, srv *electiontest.Server, name string) *member {
	t.Helper()
	conn := srv.Connect()
	c, err := election.New(election.Config{Conn: conn, Events: conn.Events(), Root: "/", ID: name, Address: name + ":1",
		Logger: slog.New(slog.NewTextHandler(tlog{t}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	m := &member{name: name, conn: conn, c: c}
	t.Cleanup(func() {
		conn.Resume() // a paused session would keep Close waiting
		if err := c.Close(); err != nil {
			t.Errorf("close %s: %v", name, err)
		}
		conn.Close()
	})
	return m
}

func within(t *testing.T, d time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// agreedLeader waits until one of ms leads and every one of them that has a session
// names it.
func agreedLeader(t *testing.T, ms []*member) *member {
	t.Helper()
	var leader *member
	within(t, 10*time.Second, "one agreed leader", func() error {
		leader = nil
		for _, m := range ms {
			if m.c.IsLeader() {
				leader = m
			}
		}
		if leader == nil {
			return errors.New("nobody leads")
		}
		node := leader.c.View().Self.Node
		for _, m := range ms {
			if v := m.c.View(); v.Connected && v.Leader.Node != node {
				return fmt.Errorf("%s follows %q, not %s's %q", m.name, v.Leader.Node, leader.name, node)
			}
		}
		return nil
	})
	return leader
}

// The election keeps its guarantees under every fault the fake injects, checked by the
// Checker all along: each fault hits the leader of the moment.
func TestElectionUnderFaults(t *testing.T) {
	srv := electiontest.NewServer(electiontest.Options{SessionTimeout: 500 * time.Millisecond})
	var ms []*member
	for _, name := range []string{"a", "b", "c"} {
		m := newMember(t, srv, name)
		if err := m.c.Join(context.Background()); err != nil {
			t.Fatal(err)
		}
		ms = append(ms, m)
	}
	chk := electiontest.NewChecker()
	for _, m := range ms {
		chk.Add(m.name, m.c)
	}
	chk.Start(time.Millisecond)
	defer chk.Stop()

	others := func(l *member) []*member {
		var out []*member
		for _, m := range ms {
			if m != l {
				out = append(out, m)
			}
		}
		return out
	}
	faults := []struct {
		name   string
		inject func(l *member)
	}{
		{"partition past the session timeout", func(l *member) {
			l.conn.Partition()
			agreedLeader(t, others(l))
			l.conn.Heal()
		}},
		{"pause past the session timeout", func(l *member) {
			l.conn.Pause()
			agreedLeader(t, others(l))
			l.conn.Resume()
		}},
		{"expiry", func(l *member) { l.conn.Expire() }},
		{"short partition, events lost", func(l *member) {
			l.conn.DropEvents(true)
			l.conn.Partition()
			l.conn.Heal()
			l.conn.DropEvents(false)
		}},
		{"resign", func(l *member) {
			if err := l.c.Resign(context.Background()); err != nil {
				t.Fatal(err)
			}
			if err := l.c.Join(context.Background()); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, f := range faults {
		l := agreedLeader(t, ms)
		t.Logf("--- %s of the leader, %s", f.name, l.name)
		f.inject(l)
		agreedLeader(t, ms)
	}

	// A joiner whose create reply is lost and who gives up: its node must not stall the
	// election once its session is back.
	d := newMember(t, srv, "d")
	d.conn.LoseNextReply()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	if err := d.c.Join(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("join with a lost reply: %v", err)
	}
	cancel()
	if err := d.c.Resign(context.Background()); err != nil {
		t.Fatal(err)
	}
	d.conn.Heal()
	l := agreedLeader(t, ms)
	if err := l.c.Resign(context.Background()); err != nil {
		t.Fatal(err)
	}
	agreedLeader(t, others(l))

	if err := chk.Stop(); err != nil {
		t.Fatal(err)
	}
	// The sampler may miss a short leadership; it cannot miss them all.
	if n := len(chk.Leaderships()); n < 3 {
		t.Fatalf("only %d leaderships seen: %+v", n, chk.Leaderships())
	}
}
