package server_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/zkv-dev/zkv/kvstore"
	"github.com/zkv-dev/zkv/replication"
	"github.com/zkv-dev/zkv/server"
)

func hasValue(n *node, key, value string) bool {
	e, ok := n.store.Get(key)
	return ok && e.Value == value
}

// TestClusterReplicates runs three real servers (real kvstore, replication and HTTP) on an
// in-memory election: a write through a follower reaches every replica before its 200
// (ack all); after the leader stops the next one leads; a restarted server starts empty and
// sees later writes only; a server with SyncOnJoin copies the leader's store.
func TestClusterReplicates(t *testing.T) {
	c := newFakeCluster()
	a := startNode(t, c, "a")
	a.waitLeading(t)
	b := startNode(t, c, "b")
	b.waitRole(t, "follower") // registered before c, so that b is next in line below
	cc := startNode(t, c, "c")
	cc.waitRole(t, "follower")
	waitFor(t, "the leader to replicate to b and c", func() bool {
		body := string(do(t, http.MethodGet, a.url+"/metrics", "", "").body)
		return containsAll(body, `zkv_replication_replica_up{replica="`+b.addr+`"} 1`,
			`zkv_replication_replica_up{replica="`+cc.addr+`"} 1`)
	})
	b.waitReady(t)
	cc.waitReady(t)

	r := put(t, b.url, "k1", "v1")
	if r.code != 200 || r.json(t)["leader"] != a.addr {
		t.Fatalf("PUT through follower b: %d %s", r.code, r.body)
	}
	for _, n := range []*node{a, b, cc} {
		if !hasValue(n, "k1", "v1") {
			t.Errorf("%s lacks k1 after an ack-all 200", n.s.ID())
		}
	}
	if r := do(t, http.MethodGet, cc.url+"/v1/kv/k1", "", ""); r.json(t)["value"] != "v1" {
		t.Errorf("GET from c: %s", r.body)
	}

	// The leader stops: b is next in line.
	a.stop(t)
	b.waitLeading(t)
	if r := put(t, cc.url, "k2", "v2"); r.code != 200 || r.json(t)["leader"] != b.addr {
		t.Fatalf("PUT through c after failover: %d %s", r.code, r.body)
	}
	for _, n := range []*node{b, cc} {
		if !hasValue(n, "k1", "v1") || !hasValue(n, "k2", "v2") {
			t.Errorf("%s lacks k1 or k2 after failover", n.s.ID())
		}
	}

	// A restarted server starts empty and holds only later writes.
	a2 := startNode(t, c, "a")
	a2.waitRole(t, "follower")
	waitFor(t, "the new leader to replicate to a2", func() bool {
		body := string(do(t, http.MethodGet, b.url+"/metrics", "", "").body)
		return containsAll(body, `zkv_replication_replica_up{replica="`+a2.addr+`"} 1`)
	})
	if r := put(t, a2.url, "k3", "v3"); r.code != 200 {
		t.Fatalf("PUT through restarted a: %d %s", r.code, r.body)
	}
	if !hasValue(a2, "k3", "v3") {
		t.Error("restarted a lacks k3")
	}
	if r := do(t, http.MethodGet, a2.url+"/v1/kv/k1", "", ""); r.json(t)["found"] != false {
		t.Errorf("restarted a has k1 from before its restart: %s", r.body)
	}
	if r := do(t, http.MethodGet, a2.url+"/v1/kv/k1?consistency=leader", "", ""); r.json(t)["value"] != "v1" {
		t.Errorf("leader read through restarted a: %s", r.body)
	}

	// With SyncOnJoin a new server copies the leader's store before it is ready.
	d := startNode(t, c, "d", withConfig(func(cfg *server.Config) { cfg.SyncOnJoin = true }))
	waitFor(t, "d to be ready", func() bool { return do(t, http.MethodGet, d.url+"/readyz", "", "").code == 200 })
	for _, kv := range [][2]string{{"k1", "v1"}, {"k2", "v2"}, {"k3", "v3"}} {
		if !hasValue(d, kv[0], kv[1]) {
			t.Errorf("d (sync on join) lacks %s", kv[0])
		}
	}
	if b.store.Hash() != d.store.Hash() || b.store.Hash() != cc.store.Hash() {
		t.Error("stores of b, c and d differ")
	}
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// TestNewLeaderCatchesUp: the order of the election is not the order of the log. Under
// ack=majority the old leader's last write may sit on c but not on b, its successor. The
// new leader must take it from c before it leads, rather than overwrite c with a snapshot
// of its own, shorter store.
func TestNewLeaderCatchesUp(t *testing.T) {
	c := newFakeCluster()
	a := startNode(t, c, "a")
	a.waitLeading(t)
	b := startNode(t, c, "b")
	cc := startNode(t, c, "c")
	for _, n := range []*node{b, cc} {
		waitFor(t, n.s.ID()+" to be ready", func() bool { return do(t, http.MethodGet, n.url+"/readyz", "", "").code == 200 })
	}
	if r := put(t, a.url, "k1", "v1"); r.code != 200 {
		t.Fatalf("PUT k1: %d %s", r.code, r.body)
	}

	// a's next write reaches c only (as if b were slow), then a goes.
	st := do(t, http.MethodGet, a.url+"/v1/status", "", "").json(t)
	epoch := int64(st["epoch"].(float64))
	pos := do(t, http.MethodGet, cc.url+replication.PathPosition, "", "").json(t)
	last := uint64(pos["last_index"].(float64))
	lastEpoch := int64(pos["last_epoch"].(float64))
	body := appendBody(t, epoch, a.addr, last, kvstore.Entry{Key: "k2", Value: "v2", Version: 1, Index: last + 1, Epoch: epoch})
	body = strings.Replace(body, `"prev_epoch":0`, fmt.Sprintf(`"prev_epoch":%d`, lastEpoch), 1)
	if r := do(t, http.MethodPost, cc.url+replication.PathAppend, "application/json", body); r.code != 200 {
		t.Fatalf("append k2 to c only: %d %s", r.code, r.body)
	}
	if hasValue(b, "k2", "v2") {
		t.Fatal("b has k2 already: the test sets nothing up")
	}
	a.stop(t)
	b.waitLeading(t)

	waitFor(t, "b to hold k2, taken from c", func() bool { return hasValue(b, "k2", "v2") })
	if r := put(t, cc.url, "k3", "v3"); r.code != 200 || r.json(t)["leader"] != b.addr {
		t.Fatalf("PUT k3 through c: %d %s", r.code, r.body)
	}
	for _, n := range []*node{b, cc} {
		for _, kv := range [][2]string{{"k1", "v1"}, {"k2", "v2"}, {"k3", "v3"}} {
			if !hasValue(n, kv[0], kv[1]) {
				t.Errorf("%s lacks %s", n.s.ID(), kv[0])
			}
		}
	}
	if b.store.Hash() != cc.store.Hash() {
		t.Error("b and c differ after the catch-up")
	}
}

// TestInSyncSetFollowsMembers: complete followers join the leader's in-sync set (and are
// ready only then); when they leave, the leader drops them together and writes under ack
// all go on; a restarted (empty, partial) server is never in the set.
func TestInSyncSetFollowsMembers(t *testing.T) {
	c := newFakeCluster()
	fast := withConfig(func(cfg *server.Config) { cfg.ReplicaLagMax = 200 * time.Millisecond })
	a := startNode(t, c, "a", fast)
	a.waitLeading(t)
	b, cc := startNode(t, c, "b", fast), startNode(t, c, "c", fast)
	b.waitReady(t)
	cc.waitReady(t)
	if got := a.status(t).InSync; len(got) != 3 {
		t.Fatalf("in-sync set %v, want a, b and c", got)
	}
	if r := put(t, b.url, "k1", "v1"); r.code != 200 {
		t.Fatalf("PUT: %d %s", r.code, r.body)
	}
	b.stop(t)
	cc.stop(t)
	waitFor(t, "the leader to drop b and c", func() bool { return len(a.status(t).InSync) == 1 })
	if r := put(t, a.url, "k2", "v2"); r.code != 200 {
		t.Fatalf("PUT with the others gone: %d %s", r.code, r.body)
	}
	d := startNode(t, c, "d", fast) // joins a cluster with history: partial
	waitFor(t, "d to follow", func() bool { return d.status(t).Role == "follower" })
	if r := put(t, a.url, "k3", "v3"); r.code != 200 {
		t.Fatalf("PUT: %d %s", r.code, r.body)
	}
	waitFor(t, "d to apply k3", func() bool { return hasValue(d, "k3", "v3") })
	time.Sleep(300 * time.Millisecond) // several reviews of the set
	if got := a.status(t).InSync; len(got) != 1 {
		t.Fatalf("in-sync set %v: a partial server must stay out", got)
	}
	if hasValue(d, "k1", "v1") {
		t.Fatal("d holds a write from before it started")
	}
}

// TestMinInSyncFloor: with MinInSync 2 the leader does not shrink its in-sync set to itself
// when both followers stop: a write is then not acknowledged (504 not_replicated) rather
// than held by one server alone.
func TestMinInSyncFloor(t *testing.T) {
	c := newFakeCluster()
	opts := withConfig(func(cfg *server.Config) {
		cfg.ReplicaLagMax, cfg.MinInSync, cfg.WriteTimeout = 200*time.Millisecond, 2, time.Second
	})
	a := startNode(t, c, "a", opts)
	a.waitLeading(t)
	b, cc := startNode(t, c, "b", opts), startNode(t, c, "c", opts)
	b.waitReady(t)
	cc.waitReady(t)
	b.stop(t)
	cc.stop(t)
	waitFor(t, "the leader to drop one of them", func() bool { return len(a.status(t).InSync) == 2 })
	time.Sleep(500 * time.Millisecond) // several reviews: it must stop at 2
	if got := a.status(t).InSync; len(got) != 2 {
		t.Fatalf("in-sync set %v: below -min_insync 2", got)
	}
	r := put(t, a.url, "k", "v")
	if r.code != 504 || r.errCode(t) != server.CodeNotReplicated {
		t.Fatalf("PUT with one server in sync and a floor of 2: %d %s", r.code, r.body)
	}
}

// TestRestartedMemberLeavesInSyncSet: once a member's ID registers again as a new
// incarnation, the leader drops the old incarnation from the in-sync set at its next review,
// without waiting out -replica_lag_max (a minute here): what the old process held is gone,
// and a set padded with dead incarnations makes the next leader wait for answers that can
// never come (and lead uncleanly).
func TestRestartedMemberLeavesInSyncSet(t *testing.T) {
	c := newFakeCluster()
	slow := withConfig(func(cfg *server.Config) { cfg.ReplicaLagMax = time.Minute })
	a := startNode(t, c, "a", slow)
	a.waitLeading(t)
	b, cc := startNode(t, c, "b", slow), startNode(t, c, "c", slow)
	b.waitReady(t)
	cc.waitReady(t)
	before := a.status(t).InSync
	if len(before) != 3 {
		t.Fatalf("in-sync set %v, want a, b and c", before)
	}
	b.stop(t)
	b2 := startNode(t, c, "b", slow) // the same ID, a new incarnation
	waitFor(t, "b's new incarnation to follow", func() bool { return b2.status(t).Role == "follower" })
	waitFor(t, "the leader to drop b's old incarnation", func() bool {
		for _, m := range a.status(t).InSync {
			if strings.HasPrefix(m, "b/") && !strings.HasSuffix(m, "/"+b2.e.inc) {
				return false
			}
		}
		return true
	})
}

// TestGracefulLeaderLeavesInSyncSet: the successor of a leader that shut down leaves it out
// of its in-sync set at takeover (unregistered, and gone or leaving), so that its first
// writes under ack all do not wait for a process that has exited (here they would wait
// -replica_lag_max, a minute, for the review to drop it).
func TestGracefulLeaderLeavesInSyncSet(t *testing.T) {
	c := newFakeCluster()
	slow := withConfig(func(cfg *server.Config) { cfg.ReplicaLagMax = time.Minute })
	a := startNode(t, c, "a", slow)
	a.waitLeading(t)
	b, cc := startNode(t, c, "b", slow), startNode(t, c, "c", slow)
	b.waitReady(t)
	cc.waitReady(t)
	if got := a.status(t).InSync; len(got) != 3 {
		t.Fatalf("in-sync set %v, want a, b and c", got)
	}
	a.stop(t)
	b.waitLeading(t)
	for _, m := range b.status(t).InSync {
		if strings.HasPrefix(m, "a/") {
			t.Fatalf("the successor's in-sync set %v still names the leader that left", b.status(t).InSync)
		}
	}
	if r := put(t, cc.url, "k", "v"); r.code != 200 {
		t.Fatalf("the successor's first write: %d %s", r.code, r.body)
	}
}
