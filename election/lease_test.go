package election

import (
	"testing"
	"time"
)

// A leader that hears nothing from ZooKeeper (a paused process, a link gone silent) and
// has no Disconnected event yet must stop saying it leads before its session can expire and
// another candidate take over: IsLeader rests on a local lease, the session timeout less a
// margin, counted from the start of the last ZooKeeper round trip that worked.
func TestLeaseEndsLeadershipWithoutEvents(t *testing.T) {
	srv := newFakeServer()
	ms := joinAll(t, srv, "a", "b")
	a, b := ms[0], ms[1]
	waitLeader(t, a, ms...)
	lctx, _ := a.c.Leading()

	a.conn.pause()
	t.Cleanup(a.conn.resume) // before a's Close, which would wait on its paused calls
	paused := time.Now()
	deadline := paused.Add(waitLimit)
	for !b.c.IsLeader() {
		if a.c.IsLeader() && b.c.IsLeader() {
			t.Fatal("two leaders")
		}
		if time.Now().After(deadline) {
			t.Fatal("b never led")
		}
		time.Sleep(time.Millisecond)
	}
	if a.c.IsLeader() {
		t.Fatalf("a still says it leads %v after it last heard from ZooKeeper, and b leads", time.Since(paused))
	}
	select {
	case <-lctx.Done():
	case <-time.After(time.Second):
		t.Fatal("a's Leading ctx outlived its lease")
	}

	a.conn.resume()
	waitLeader(t, b, ms...)
	if v := a.c.View(); v.Self.Node == "" || v.Self.Seq <= b.c.View().Self.Seq {
		t.Fatalf("a after the pause: %+v", v.Self)
	}
}
