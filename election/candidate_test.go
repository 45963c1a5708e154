package election

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zkv-dev/zkv/zk"
)

func TestSortChildrenNumericAndWrapped(t *testing.T) {
	names := []string{
		"server-2147483647", "server0000000010", "server-2147483648", "lock-1",
		"server2147483647", "server0000000009", "server", "serverx1", "server0000000100",
	}
	var got []string
	for _, k := range sortChildren(names) {
		got = append(got, k.name)
	}
	want := []string{
		"server0000000009", "server0000000010", "server0000000100", "server2147483647",
		"server-2147483648", "server-2147483647",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("order\n got %v\nwant %v", got, want)
	}
}

func TestConfigValidation(t *testing.T) {
	srv := newFakeServer()
	conn := srv.connect()
	for name, cfg := range map[string]Config{
		"no conn":          {Events: conn.events, ID: "a", Root: "/"},
		"no events":        {Conn: conn, ID: "a", Root: "/"},
		"no id":            {Conn: conn, Events: conn.events, Root: "/"},
		"no root":          {Conn: conn, Events: conn.events, ID: "a"},
		"nul root":         {Conn: conn, Events: conn.events, ID: "a", Root: "x\x00y"},
		"session and conn": {Session: &Session{conn: conn}, Conn: conn, Events: conn.events, ID: "a", Root: "/"},
		"zero session":     {Session: &Session{}, ID: "a", Root: "/"},
	} {
		if _, err := New(cfg); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: got %v, want ErrInvalidConfig", name, err)
		}
	}
}

func TestElectsSmallestAndDescribesLeader(t *testing.T) {
	srv := newFakeServer()
	ms := joinAll(t, srv, "a", "b", "c")
	waitLeader(t, ms[0], ms...)

	if got := srv.children("/election"); len(got) != 3 || got[0] != "server0000000000" {
		t.Fatalf("children %v", got)
	}
	lv := ms[0].c.View()
	for _, m := range ms[1:] {
		v := m.c.View()
		if v.Leader.ID != "a" || v.Leader.Address != "a:5000" || v.Leader.Meta["role"] != "test" {
			t.Errorf("%s sees leader %+v", m.c.cfg.ID, v.Leader)
		}
		if v.Epoch != lv.Epoch || v.Epoch == 0 {
			t.Errorf("%s epoch %d, leader's %d", m.c.cfg.ID, v.Epoch, lv.Epoch)
		}
		if !v.Connected || v.IsLeader {
			t.Errorf("%s view %+v", m.c.cfg.ID, v)
		}
	}
	if err := ms[0].c.CheckLeader(lv.Epoch); err != nil {
		t.Errorf("CheckLeader: %v", err)
	}
	if err := ms[0].c.CheckLeader(lv.Epoch + 1); !errors.Is(err, ErrNotLeader) {
		t.Errorf("CheckLeader other epoch: %v", err)
	}
	if err := ms[1].c.CheckLeader(lv.Epoch); !errors.Is(err, ErrNotLeader) {
		t.Errorf("follower CheckLeader: %v", err)
	}

	members, err := ms[2].c.Members(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range members {
		ids = append(ids, m.ID)
	}
	if !slices.Equal(ids, []string{"a", "b", "c"}) {
		t.Fatalf("members %v", ids)
	}

	// The node carries the JSON the contract names.
	data, _, _ := ms[0].conn.Get(lv.Self.Node)
	var d map[string]any
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"id", "address", "guid", "meta"} {
		if _, ok := d[k]; !ok {
			t.Errorf("node data %s lacks %q", data, k)
		}
	}
}

func TestRootCreatesParents(t *testing.T) {
	srv := newFakeServer()
	conn := srv.connect()
	defer conn.close()
	c, err := New(Config{Conn: conn, Events: conn.events, ID: "a", Root: "/apps/zkv", Logger: nil})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Campaign(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if got := c.View().Self.Node; got != "/apps/zkv/election/server0000000000" {
		t.Fatalf("node %q", got)
	}
}

// Watches: the leader holds one on its own node, each follower one on its predecessor, and a
// follower further down the line one more, on the leader's node, so that it learns of a new
// leader at once (no poll). A departure in the middle wakes only its successor; only the
// leader's departure wakes every follower, once each.
func TestWatchLayout(t *testing.T) {
	srv := newFakeServer()
	ms := joinAll(t, srv, "a", "b", "c", "d")
	waitLeader(t, ms[0], ms...)
	n := func(i int) string { return ms[i].c.View().Self.Node }
	nodes := []string{n(0), n(1), n(2), n(3)}

	want := map[string]int{nodes[0]: 4, nodes[1]: 1, nodes[2]: 1}
	waitFor(t, "watch layout", func() bool { return mapsEqual(srv.watchCounts(), want) })
	epoch := ms[0].c.View().Epoch

	if err := ms[0].c.Close(); err != nil {
		t.Fatal(err)
	}
	waitLeader(t, ms[1], ms[1:]...)
	if e := ms[1].c.View().Epoch; e <= epoch {
		t.Fatalf("epoch %d after %d", e, epoch)
	}
	// b on its own node, c on b (predecessor and leader: one watch), d on b and on c.
	want = map[string]int{nodes[1]: 3, nodes[2]: 1}
	waitFor(t, "watch layout after failover", func() bool { return mapsEqual(srv.watchCounts(), want) })
	if got := srv.children("/election"); len(got) != 3 {
		t.Fatalf("children after close %v", got)
	}
}

func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestMiddleLeavesRelinksChain(t *testing.T) {
	srv := newFakeServer()
	ms := joinAll(t, srv, "a", "b", "c")
	waitLeader(t, ms[0], ms...)
	lctx, ok := ms[0].c.Leading()
	if !ok {
		t.Fatal("a not leading")
	}
	epoch := ms[0].c.View().Epoch
	n0 := ms[0].c.View().Self.Node

	if err := ms[1].c.Resign(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "c to watch a", func() bool {
		// a's own watch, c's new one, and the one b set before it resigned:
		// ZooKeeper (3.8 with go-zookeeper) cannot remove a watch, it ends
		// when a changes.
		return mapsEqual(srv.watchCounts(), map[string]int{n0: 3})
	})
	if lctx.Err() != nil || !ms[0].c.IsLeader() || ms[0].c.View().Epoch != epoch {
		t.Fatal("leadership changed when a middle candidate left")
	}
	if v := ms[2].c.View(); v.Leader.Node != n0 || v.Epoch != epoch {
		t.Fatalf("c sees %+v", v)
	}
	if v := ms[1].c.View(); v.Self.Node != "" || v.IsLeader || v.Leader.Node != "" {
		t.Fatalf("resigned view %+v", v)
	}
}

func TestSequenceOverflowOrder(t *testing.T) {
	srv := newFakeServer()
	srv.setCounter("/election", 2147483646)
	ms := joinAll(t, srv, "a", "b", "c")
	if got := ms[2].c.View().Self.Node; got != "/election/server-2147483648" {
		t.Fatalf("wrapped node %q", got)
	}
	waitLeader(t, ms[0], ms...)
	ms[0].c.Close()
	waitLeader(t, ms[1], ms[1:]...)
	ms[1].c.Close()
	waitLeader(t, ms[2], ms[2])
}

func TestLostCreateReplyAdoptsAndDeletesOrphans(t *testing.T) {
	srv := newFakeServer()
	m := newMember(t, srv, "a")
	m.conn.loseCreateReply = true

	done := make(chan error, 1)
	go func() { done <- m.c.Join(ctxT(t)) }()
	waitFor(t, "the create to land", func() bool { return len(srv.children("/election")) == 1 })
	waitFor(t, "the candidate to see the disconnect", func() bool { return !m.c.View().Connected })

	// A second node with our guid (a late duplicate create) must go too.
	first := "/election/" + srv.children("/election")[0]
	data, _, _ := func() ([]byte, *zk.Stat, error) {
		srv.mu.Lock()
		defer srv.mu.Unlock()
		return srv.nodes[first].data, nil, nil
	}()
	srv.put("/election/server0000000001", data, m.conn.SessionID())

	m.conn.reconnect()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := m.c.View().Self.Node; got != first {
		t.Fatalf("adopted %q, want %q", got, first)
	}
	waitFor(t, "orphan deletion", func() bool { return len(srv.children("/election")) == 1 })
	if _, err := m.c.Campaign(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if n := len(srv.nodesWithData("/election", m.c.guid)); n != 1 {
		t.Fatalf("%d nodes with our guid", n)
	}
}

func TestStepDownOnDisconnectAndResumeSameSession(t *testing.T) {
	srv := newFakeServer()
	m := joinAll(t, srv, "a")[0]
	if _, err := m.c.Campaign(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	lctx, ok := m.c.Leading()
	if !ok {
		t.Fatal("not leading")
	}
	node := m.c.View().Self.Node
	obs := m.c.Observe(ctxT(t))

	m.conn.disconnect()
	if m.c.IsLeader() {
		t.Fatal("IsLeader true while disconnected")
	}
	select {
	case <-lctx.Done():
	case <-ctxT(t).Done():
		t.Fatal("leadership ctx not cancelled on disconnect")
	}
	for v := range obs {
		if !v.Connected && !v.IsLeader {
			break
		}
	}

	m.conn.reconnect()
	waitFor(t, "leading again", m.c.IsLeader)
	if got := m.c.View().Self.Node; got != node {
		t.Fatalf("node changed %q -> %q on a same-session reconnect", node, got)
	}
	if lctx2, _ := m.c.Leading(); lctx2.Err() != nil || lctx2 == lctx {
		t.Fatal("want a fresh live leadership ctx")
	}
}

func TestExpiryReRegistersWithNewNode(t *testing.T) {
	srv := newFakeServer()
	ms := joinAll(t, srv, "a", "b")
	waitLeader(t, ms[0], ms...)
	lctx, _ := ms[0].c.Leading()
	old := ms[0].c.View().Self.Node

	ms[0].conn.expire()
	waitLeader(t, ms[1], ms...)
	if lctx.Err() == nil {
		t.Fatal("old leadership ctx still live")
	}
	v := ms[0].c.View()
	if v.Self.Node == old || v.Self.Node == "" || v.Self.Seq <= ms[1].c.View().Self.Seq {
		t.Fatalf("after expiry self %+v (old %s)", v.Self, old)
	}
	if len(ms[0].log.grep("session replaced")) == 0 && len(ms[0].log.grep("expired")) == 0 {
		t.Error("no log line about the lost session")
	}
}

func TestNotWatchingRelists(t *testing.T) {
	srv := newFakeServer()
	ms := joinAll(t, srv, "a", "b")
	waitLeader(t, ms[0], ms...)
	n0 := ms[0].c.View().Self.Node
	waitFor(t, "b watching", func() bool { return srv.watchCounts()[n0] == 2 })
	ops := ms[1].conn.opCount()
	ms[1].conn.notWatching()
	waitFor(t, "b watching again", func() bool {
		return ms[1].conn.opCount() > ops && srv.watchCounts()[n0] == 2
	})
	// One watch again, not two: the event comes on the watch's channel and on Events.
	if err := ms[1].c.Refresh(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if got := srv.watchCounts()[n0]; got != 2 {
		t.Fatalf("%d watches on the leader's node, want 2 (its own, b's)", got)
	}
}

func TestEphemeralOwnerMismatchPreventsClaim(t *testing.T) {
	srv := newFakeServer()
	m := newMember(t, srv, "a")
	m.conn.stealOwner = true
	if _, err := m.c.Campaign(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	node := m.c.View().Self.Node
	if node == "/election/server0000000000" {
		t.Fatal("led on a node owned by another session")
	}
	if _, ok := srv.owner("/election/server0000000000"); ok {
		t.Fatal("the foreign-owned node of ours was not deleted")
	}
	if got := m.log.grep("became leader"); len(got) != 1 || !strings.Contains(got[0], node) {
		t.Fatalf("leadership claims: %v", got)
	}
}

func TestNodeDeletedByOperatorStepsDown(t *testing.T) {
	srv := newFakeServer()
	ms := joinAll(t, srv, "a", "b")
	waitLeader(t, ms[0], ms...)
	lctx, _ := ms[0].c.Leading()
	srv.remove(ms[0].c.View().Self.Node)
	waitLeader(t, ms[1], ms...)
	if lctx.Err() == nil {
		t.Fatal("leadership ctx still live")
	}
}

func TestObserveLatestWins(t *testing.T) {
	srv := newFakeServer()
	m := newMember(t, srv, "a")
	ctx, cancel := context.WithCancel(ctxT(t))
	obs := m.c.Observe(ctx)
	first := <-obs // the current view comes at once
	if first.Self.Node != "" {
		t.Fatalf("first view %+v", first)
	}
	// Several changes while nobody reads: join, lead, disconnect, reconnect.
	if _, err := m.c.Campaign(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	m.conn.disconnect()
	waitFor(t, "disconnected view", func() bool { return !m.c.View().Connected })
	m.conn.reconnect()
	waitFor(t, "leading again", m.c.IsLeader)

	got := <-obs
	if !got.equal(m.c.View()) {
		t.Fatalf("got %+v, want the latest %+v", got, m.c.View())
	}
	select {
	case v := <-obs:
		t.Fatalf("a second buffered view %+v", v)
	default:
	}
	cancel()
	for range obs { // closed once ctx ends
	}
}

func TestResignThenJoin(t *testing.T) {
	srv := newFakeServer()
	ms := joinAll(t, srv, "a", "b")
	waitLeader(t, ms[0], ms...)
	lctx, _ := ms[0].c.Leading()
	old := ms[0].c.View().Self.Node

	if err := ms[0].c.Resign(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if lctx.Err() == nil || ms[0].c.IsLeader() {
		t.Fatal("still leading after Resign")
	}
	waitLeader(t, ms[1], ms[1])
	if err := ms[0].c.Resign(ctxT(t)); err != nil {
		t.Fatalf("second Resign: %v", err)
	}

	if err := ms[0].c.Join(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	waitLeader(t, ms[1], ms...)
	if v := ms[0].c.View(); v.Self.Node == old || v.Self.Node == "" {
		t.Fatalf("rejoined as %+v", v.Self)
	}
}

func TestCampaignWaitsForTurn(t *testing.T) {
	srv := newFakeServer()
	ms := joinAll(t, srv, "a")
	b := newMember(t, srv, "b")
	done := make(chan error, 1)
	go func() { done <- func() error { _, err := b.c.Campaign(ctxT(t)); return err }() }()
	waitFor(t, "b registered", func() bool { return b.c.View().Self.Node != "" })
	select {
	case err := <-done:
		t.Fatalf("Campaign returned early: %v", err)
	default:
	}
	ms[0].c.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	// Campaign ends with ctx, and with Resign.
	c := newMember(t, srv, "c")
	ctx, cancel := context.WithCancel(ctxT(t))
	go func() { done <- func() error { _, err := c.c.Campaign(ctx); return err }() }()
	waitFor(t, "c registered", func() bool { return c.c.View().Self.Node != "" })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Campaign after cancel: %v", err)
	}
}

func TestCloseIdempotent(t *testing.T) {
	srv := newFakeServer()
	m := joinAll(t, srv, "a")[0]
	obs := m.c.Observe(context.Background())
	if err := m.c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if got := srv.children("/election"); len(got) != 0 {
		t.Fatalf("node left after Close: %v", got)
	}
	for range obs { // closed by Close
	}
	if err := m.c.Join(ctxT(t)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Join after Close: %v", err)
	}
	if _, ok := <-m.c.Observe(context.Background()); ok {
		t.Fatal("Observe after Close delivered a view")
	}
	if m.c.IsLeader() {
		t.Fatal("leader after Close")
	}
}

func TestSessionGone(t *testing.T) {
	srv := newFakeServer()
	conn := srv.connect()
	c, err := New(Config{Conn: conn, Events: conn.events, ID: "a", Root: "/"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	conn.close()
	waitFor(t, "disconnected view", func() bool { return !c.View().Connected })
	if err := c.Join(ctxT(t)); !errors.Is(err, ErrNoSession) {
		t.Fatalf("Join without session: %v", err)
	}
}

func TestJoinFailsOnPermanentError(t *testing.T) {
	srv := newFakeServer()
	m := newMember(t, srv, "a")
	m.conn.failCreate = zk.ErrNoAuth
	if err := m.c.Join(ctxT(t)); !errors.Is(err, zk.ErrNoAuth) {
		t.Fatalf("Join: %v", err)
	}
	if err := m.c.Join(ctxT(t)); err != nil {
		t.Fatalf("Join again: %v", err)
	}
}

// The leader alone watches the election's children, so it learns of a member that
// joins or leaves at once (View.Members); followers hold no children watch.
func TestLeaderTracksMembers(t *testing.T) {
	srv := newFakeServer()
	ms := joinAll(t, srv, "a", "b")
	waitLeader(t, ms[0], ms...)
	ids := func(v View) []string {
		var out []string
		for _, m := range v.Members {
			out = append(out, m.ID+"@"+m.Address)
		}
		return out
	}
	waitFor(t, "a to list a and b", func() bool {
		return slices.Equal(ids(ms[0].c.View()), []string{"a@a:5000", "b@b:5000"})
	})
	if got := srv.childWatchCounts(); !mapsEqual(got, map[string]int{"/election": 1}) {
		t.Fatalf("children watches %v, want one on /election (the leader's)", got)
	}
	if v := ms[1].c.View(); v.Members != nil {
		t.Fatalf("a follower's view lists members: %+v", v.Members)
	}

	c := newMember(t, srv, "c")
	if err := c.c.Join(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a to see c join", func() bool {
		return slices.Equal(ids(ms[0].c.View()), []string{"a@a:5000", "b@b:5000", "c@c:5000"})
	})
	if err := ms[1].c.Resign(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a to see b leave", func() bool {
		return slices.Equal(ids(ms[0].c.View()), []string{"a@a:5000", "c@c:5000"})
	})
	if got := srv.childWatchCounts(); !mapsEqual(got, map[string]int{"/election": 1}) {
		t.Fatalf("children watches %v after changes, want exactly one", got)
	}

	// The successor takes the watch over; the old leader's fired with its departure.
	if err := ms[0].c.Close(); err != nil {
		t.Fatal(err)
	}
	waitLeader(t, c, c)
	waitFor(t, "c to list only itself", func() bool {
		return slices.Equal(ids(c.c.View()), []string{"c@c:5000"})
	})
}

// Resign without a session does not wait for one: the node is deleted when the
// session returns (or vanishes with it), and Resign reports no error.
func TestResignWhileDisconnected(t *testing.T) {
	srv := newFakeServer()
	ms := joinAll(t, srv, "a", "b")
	waitLeader(t, ms[0], ms...)
	node := ms[0].c.View().Self.Node
	ms[0].conn.disconnect()
	waitFor(t, "a to step down", func() bool { return !ms[0].c.IsLeader() })
	if err := ms[0].c.Resign(ctxT(t)); err != nil {
		t.Fatalf("Resign without a session: %v", err)
	}
	if got := srv.children("/election"); len(got) != 2 {
		t.Fatalf("children while disconnected %v: the node cannot go yet", got)
	}
	ms[0].conn.reconnect()
	waitFor(t, "a's node to go once the session is back", func() bool {
		for _, k := range srv.children("/election") {
			if "/election/"+k == node {
				return false
			}
		}
		return true
	})
	waitLeader(t, ms[1], ms[1])
}

// lostCreate starts m's Join with its create's reply lost (the node lands, the connection
// drops), lets Join's ctx end as a caller's deadline would, and returns the doubted node.
func lostCreate(t *testing.T, srv *fakeServer, m member) string {
	t.Helper()
	m.conn.loseCreateReply = true
	ctx, cancel := context.WithCancel(ctxT(t))
	done := make(chan error, 1)
	go func() { done <- m.c.Join(ctx) }()
	waitFor(t, "the create to land", func() bool { return len(srv.nodesWithData("/election", m.c.guid)) == 1 })
	waitFor(t, "the candidate to see the disconnect", func() bool { return !m.c.View().Connected })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Join: %v", err)
	}
	return "/election/" + srv.nodesWithData("/election", m.c.guid)[0]
}

// Ghost leader: a create whose reply was lost leaves a node first in line; the caller gives
// up on Join and Resigns, as Join's doc says. When the same session returns, the doubted
// node must go, or nobody leads from it and the election stalls until that session ends.
func TestResignSettlesLostCreate(t *testing.T) {
	srv := newFakeServer()
	a := newMember(t, srv, "a")
	ghost := lostCreate(t, srv, a)
	b := joinAll(t, srv, "b")[0]
	if err := a.c.Resign(ctxT(t)); err != nil {
		t.Fatalf("Resign: %v", err)
	}
	a.conn.reconnect()
	waitLeader(t, b, b)
	if got := srv.nodesWithData("/election", a.c.guid); len(got) != 0 {
		t.Fatalf("nodes of the resigned candidate left: %v (the doubted one was %s)", got, ghost)
	}
}

// The same with Close while the session is away and the Session itself stays open: Close
// waits (at most a session timeout) for the session to delete the doubted node.
func TestCloseSettlesLostCreate(t *testing.T) {
	srv := newFakeServer()
	a := newMember(t, srv, "a")
	lostCreate(t, srv, a)
	b := joinAll(t, srv, "b")[0]
	closed := closeWhileAway(t, a)
	a.conn.reconnect()
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	waitLeader(t, b, b)
	if got := srv.nodesWithData("/election", a.c.guid); len(got) != 0 {
		t.Fatalf("nodes of the closed candidate left: %v", got)
	}
}

// A registered node is no different: Close without a session used to leave it behind for
// as long as the Session stayed open.
func TestCloseWhileDisconnectedDeletesNodeWhenSessionReturns(t *testing.T) {
	srv := newFakeServer()
	ms := joinAll(t, srv, "a", "b")
	waitLeader(t, ms[0], ms...)
	ms[0].conn.disconnect()
	waitFor(t, "a to step down", func() bool { return !ms[0].c.IsLeader() })
	closed := closeWhileAway(t, ms[0])
	ms[0].conn.reconnect()
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	waitLeader(t, ms[1], ms[1])
}

// closeWhileAway starts m's Close and returns once Close has begun its shutdown (its
// Observe channels are closed then), with the channel Close's result arrives on.
func closeWhileAway(t *testing.T, m member) <-chan error {
	t.Helper()
	obs := m.c.Observe(context.Background())
	closed := make(chan error, 1)
	go func() { closed <- m.c.Close() }()
	for range obs {
	}
	return closed
}

func memberIDs(ms []Member) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.ID)
	}
	return out
}

// Flapping: a member's node the leader may not read (digest ACLs rolling out) made every
// claim fail; the retry skipped the read and led, and every later join or leave stepped
// the leader down and up again. The claim rests on our own node alone now, and an
// unreadable member is left out of View.Members.
func TestUnreadableMemberDoesNotFlapLeader(t *testing.T) {
	srv := newFakeServer()
	ms := joinAll(t, srv, "a", "b")
	waitLeader(t, ms[0], ms...)
	lctx, _ := ms[0].c.Leading()
	srv.denyRead(ms[1].c.View().Self.Node, ms[0].conn)

	c := joinAll(t, srv, "c")[0]
	waitFor(t, "a to list c", func() bool {
		return slices.Equal(memberIDs(ms[0].c.View().Members), []string{"a", "c"})
	})
	if err := c.c.Resign(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a to see c leave", func() bool {
		return slices.Equal(memberIDs(ms[0].c.View().Members), []string{"a"})
	})
	if lctx.Err() != nil || !ms[0].c.IsLeader() {
		t.Fatal("a stepped down over a member it cannot read")
	}
	if got := ms[0].log.grep("became leader"); len(got) != 1 {
		t.Fatalf("a claimed leadership %d times: %v", len(got), got)
	}
}

// A follower whose predecessor's node it may not read still follows, with an exists-watch
// (which needs no READ permission), and takes over in turn.
func TestUnreadablePredecessorStillWatched(t *testing.T) {
	srv := newFakeServer()
	a, b := joinAll(t, srv, "a")[0], newMember(t, srv, "b")
	c := newMember(t, srv, "c")
	if err := b.c.Join(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	srv.denyRead(b.c.View().Self.Node, c.conn)
	if err := c.c.Join(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	waitLeader(t, a, a, b, c)
	if err := b.c.Resign(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if err := a.c.Resign(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	waitLeader(t, c, c)
}

// Liveness must not rest on a lossless Events channel: zk.Connect's own has 6 slots and
// drops what does not fit. A leader that stepped down on Disconnected and never hears
// HasSession used to stay first in line, not leading, forever.
func TestLostHasSessionDoesNotStallElection(t *testing.T) {
	srv := newFakeServer()
	ms := joinAll(t, srv, "a", "b")
	waitLeader(t, ms[0], ms...)
	ms[0].conn.disconnect()
	waitFor(t, "a to step down", func() bool { return !ms[0].c.View().Connected })
	ms[0].conn.loseEvents(true)
	ms[0].conn.reconnect()
	waitLeader(t, ms[0], ms...)
}

// The same for a candidate waiting to register: Join waits for a session and must not
// wait forever for an event that was lost.
func TestJoinWithoutSessionEvent(t *testing.T) {
	srv := newFakeServer()
	m := newMember(t, srv, "a")
	m.conn.disconnect()
	waitFor(t, "a to see the disconnect", func() bool { return !m.c.View().Connected })
	m.conn.loseEvents(true)
	done := make(chan error, 1)
	go func() { done <- m.c.Join(ctxT(t)) }()
	waitFor(t, "the loop to take the Join", func() bool { return len(m.log.grep("joining the election")) > 0 })
	m.conn.reconnect()
	if err := <-done; err != nil {
		t.Fatalf("Join: %v", err)
	}
}

// ZooKeeper's sequence counter is a signed 32-bit int: after 2147483647 comes
// -2147483648, and after -1 comes 0 again. Past that second wrap, ordering negative
// sequences after every non-negative one put the newest candidates first.
func TestSortChildrenSecondWrap(t *testing.T) {
	names := []string{"server0000000001", "server-000000001", "server0000000000", "server-000000002"}
	var got []string
	for _, k := range sortChildren(names) {
		got = append(got, k.name)
	}
	want := []string{"server-000000002", "server-000000001", "server0000000000", "server0000000001"}
	if !slices.Equal(got, want) {
		t.Fatalf("order\n got %v\nwant %v", got, want)
	}
}

func TestSequenceSecondWrapElection(t *testing.T) {
	srv := newFakeServer()
	srv.setCounter("/election", -2)
	ms := joinAll(t, srv, "a", "b", "c")
	if got := ms[2].c.View().Self.Node; got != "/election/server0000000000" {
		t.Fatalf("third node %q", got)
	}
	waitLeader(t, ms[0], ms...)
	ms[0].c.Close()
	waitLeader(t, ms[1], ms[1:]...)
	ms[1].c.Close()
	waitLeader(t, ms[2], ms[2])
}

// Refresh promises a View that reflects a fresh reading; when the reading fails it must
// say so rather than return nil over a stale View.
func TestRefreshReportsFailedRead(t *testing.T) {
	srv := newFakeServer()
	ms := joinAll(t, srv, "a", "b")
	waitLeader(t, ms[0], ms...)
	readErr := errors.New("fake: read refused")
	ms[1].conn.failReads(readErr)
	if err := ms[1].c.Refresh(ctxT(t)); !errors.Is(err, readErr) {
		t.Fatalf("Refresh with failing reads: %v, want %v", err, readErr)
	}
	ms[1].conn.failReads(nil)
	if err := ms[1].c.Refresh(ctxT(t)); err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	ms[1].conn.disconnect()
	if err := ms[1].c.Refresh(ctxT(t)); !errors.Is(err, zk.ErrConnectionClosed) {
		t.Fatalf("Refresh without a session: %v", err)
	}
	ms[1].conn.reconnect()
}

// IsLeader is false as soon as the session is in doubt, before the loop hears of it; the
// views Observe hands out must apply the same check, or a consumer acting on them leads
// where IsLeader would refuse.
func TestObserveAppliesSessionCheck(t *testing.T) {
	srv := newFakeServer()
	m := joinAll(t, srv, "a")[0]
	if _, err := m.c.Campaign(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	m.conn.silentDisconnect()
	if m.c.IsLeader() {
		t.Fatal("IsLeader true without a session")
	}
	if v := <-m.c.Observe(ctxT(t)); v.IsLeader {
		t.Fatalf("Observe without a session: %+v", v)
	}
	m.conn.reconnect()
	waitFor(t, "leading again", m.c.IsLeader)
}

// leaderAttr is a slog.Handler that asks the candidate whether it leads, as a handler
// adding a "leader" attribute to every line would. If the candidate logs while holding
// its lock, IsLeader cannot return: the probe gives up after a second and says so.
type leaderAttr struct {
	slog.Handler
	probe *leaderProbe
}

type leaderProbe struct {
	c     atomic.Pointer[Candidate]
	stuck atomic.Int32
}

func (h leaderAttr) Handle(ctx context.Context, r slog.Record) error {
	if c := h.probe.c.Load(); c != nil {
		done := make(chan bool, 1)
		go func() { done <- c.IsLeader() }()
		select {
		case leading := <-done:
			r.AddAttrs(slog.Bool("leader", leading))
		case <-time.After(time.Second):
			h.probe.stuck.Add(1) // the goroutine ends once the lock is free
		}
	}
	return h.Handler.Handle(ctx, r)
}

func (h leaderAttr) WithAttrs(as []slog.Attr) slog.Handler {
	return leaderAttr{h.Handler.WithAttrs(as), h.probe}
}

func (h leaderAttr) WithGroup(name string) slog.Handler {
	return leaderAttr{h.Handler.WithGroup(name), h.probe}
}

func TestLogHandlerMayCallIsLeader(t *testing.T) {
	srv := newFakeServer()
	conn := srv.connect()
	defer conn.close()
	base, _ := testLogger(t)
	probe := &leaderProbe{}
	c, err := New(Config{Conn: conn, Events: conn.events, ID: "a", Root: "/",
		Logger: slog.New(leaderAttr{base.Handler(), probe})})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	probe.c.Store(c)
	if _, err := c.Campaign(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if err := c.Resign(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if n := probe.stuck.Load(); n > 0 {
		t.Fatalf("%d log lines were written under the candidate's lock (IsLeader blocked)", n)
	}
}

// O(N²) polling: every follower not next in line re-read the leader every LeaderPoll, so
// an idle election of N cost ZooKeeper N reads a second, and with the poll off such a
// follower never learned of a new leader. It now follows the leader with a watch.
func TestFollowersWatchLeaderWithoutPolling(t *testing.T) {
	srv := newFakeServer()
	var ms []member
	for _, id := range []string{"a", "b", "c", "d"} {
		m := newMemberWith(t, srv, id, func(cfg *Config) { cfg.LeaderPoll = -1 })
		if err := m.c.Join(ctxT(t)); err != nil {
			t.Fatal(err)
		}
		ms = append(ms, m)
	}
	waitLeader(t, ms[0], ms...)
	if err := ms[0].c.Close(); err != nil {
		t.Fatal(err)
	}
	waitLeader(t, ms[1], ms[1:]...)
}

// An idle election costs ZooKeeper nothing on the followers' side, whatever their place.
func TestIdleFollowersDoNotPoll(t *testing.T) {
	srv := newFakeServer()
	ms := joinAll(t, srv, "a", "b", "c", "d", "e")
	waitLeader(t, ms[0], ms...)
	// Let the passes set off by joining (and by each session's first event) finish:
	// no call for 100ms.
	before := make([]int, len(ms))
	for settled := time.Now(); time.Since(settled) < 100*time.Millisecond; time.Sleep(5 * time.Millisecond) {
		for i, m := range ms[1:] {
			if n := m.conn.opCount(); n != before[i+1] {
				before[i+1], settled = n, time.Now()
			}
		}
	}
	time.Sleep(1500 * time.Millisecond) // longer than the old default LeaderPoll (1s)
	for i, m := range ms[1:] {
		if n := m.conn.opCount() - before[i+1]; n != 0 {
			t.Errorf("%s made %d ZooKeeper calls while nothing changed", m.c.cfg.ID, n)
		}
	}
}
