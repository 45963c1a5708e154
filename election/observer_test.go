package election

import (
	"context"
	"errors"
	"testing"
)

func TestObserverFollowsWithoutJoining(t *testing.T) {
	srv := newFakeServer()
	conn := srv.connect()
	t.Cleanup(conn.close)
	logger, _ := testLogger(t)
	o, err := NewObserver(ObserverConfig{Conn: conn, Events: conn.events, Root: "/", Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = o.Close() })
	ctx, cancel := context.WithCancel(ctxT(t))
	views := o.Observe(ctx)
	waitFor(t, "a connected view with no leader (no election yet)", func() bool {
		v := o.View()
		return v.Connected && v.Leader.Node == ""
	})

	ms := joinAll(t, srv, "a", "b")
	waitLeader(t, ms[0], ms...)
	sees := func(m member) func() bool {
		return func() bool {
			v, want := o.View(), m.c.View()
			return v.Connected && v.Leader.ID == want.Self.ID && v.Leader.Node == want.Self.Node &&
				v.Leader.Address == want.Self.Address && v.Epoch == want.Epoch && !v.IsLeader && v.Self.Node == ""
		}
	}
	waitFor(t, "the observer to see a", sees(ms[0]))
	if got := srv.children("/election"); len(got) != 2 {
		t.Fatalf("election holds %v: the observer must not join", got)
	}

	if err := ms[0].c.Resign(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	waitLeader(t, ms[1], ms[1])
	waitFor(t, "the observer to see b after a resigned", sees(ms[1]))

	conn.disconnect()
	waitFor(t, "a disconnected view", func() bool { v := o.View(); return !v.Connected && v.Leader.Node == "" })
	conn.reconnect()
	waitFor(t, "the observer to see b again", sees(ms[1]))

	// The latest view is in the channel, and the channel closes with ctx.
	var last View
	cancel()
	for v := range views {
		last = v
	}
	if last.Leader.ID != "b" {
		t.Errorf("last view from Observe %+v, want b leading", last)
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := <-o.Observe(context.Background()); ok {
		t.Error("Observe after Close gave a view")
	}
}

func TestObserverConfigValidation(t *testing.T) {
	srv := newFakeServer()
	conn := srv.connect()
	t.Cleanup(conn.close)
	for _, cfg := range []ObserverConfig{{Events: conn.events, Root: "/"}, {Conn: conn, Root: "/"}, {Conn: conn, Events: conn.events}, {Conn: conn, Events: conn.events, Root: "a\x00b"}} {
		if _, err := NewObserver(cfg); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("NewObserver(%+v): %v, want ErrInvalidConfig", cfg, err)
		}
	}
}
