package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/zkv-dev/zkv/kvstore"
	"github.com/zkv-dev/zkv/replication"
	"github.com/zkv-dev/zkv/server"
)

func appendBody(t *testing.T, epoch int64, leader string, prev uint64, entries ...kvstore.Entry) string {
	t.Helper()
	if entries == nil {
		entries = []kvstore.Entry{}
	}
	// The stub leader commits everything it sends.
	b, err := json.Marshal(replication.AppendRequest{Epoch: epoch, Leader: leader, PrevIndex: prev, Entries: entries,
		Commit: prev + uint64(len(entries))})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// followerOfStub starts a server "f" that follows a stub leader (which records what reaches
// it) in a fake cluster.
func followerOfStub(t *testing.T, opts ...nodeOpt) (*fakeCluster, *stubLeader, *node) {
	t.Helper()
	c := newFakeCluster()
	stub := newStubLeader(t)
	le := c.remote("leader", stub.addr())
	t.Cleanup(func() { le.Close() })
	n := startNode(t, c, "f", opts...)
	n.waitRole(t, "follower")
	return c, stub, n
}

func TestInternalRoutesToken(t *testing.T) {
	c, stub, n := followerOfStub(t, withConfig(func(cfg *server.Config) { cfg.ClusterToken = "s3cret" }))
	epoch := c.epochNow()
	body := appendBody(t, epoch, stub.addr(), 0, kvstore.Entry{Key: "k", Value: "v", Version: 1, Index: 1, Epoch: epoch})

	for _, auth := range []string{"", "Bearer wrong", "Bearer s3cret2", "Basic s3cret", "s3cret"} {
		r := do(t, http.MethodPost, n.url+replication.PathAppend, "application/json", body, "Authorization", auth)
		if r.code != 401 || r.errCode(t) != server.CodeUnauthorized {
			t.Errorf("append with Authorization %q: %d %s", auth, r.code, r.body)
		}
		if r := do(t, http.MethodGet, n.url+replication.PathSnapshot, "", "", "Authorization", auth); r.code != 401 {
			t.Errorf("GET snapshot with Authorization %q: %d", auth, r.code)
		}
	}
	if n.store.Len() != 0 {
		t.Fatal("an unauthorized append was applied")
	}
	r := do(t, http.MethodPost, n.url+replication.PathAppend, "application/json", body, "Authorization", "Bearer s3cret")
	if r.code != 200 {
		t.Fatalf("authorized append: %d %s", r.code, r.body)
	}
	if e, ok := n.store.Get("k"); !ok || e.Value != "v" {
		t.Fatalf("authorized append not applied: %+v", e)
	}
	r = do(t, http.MethodGet, n.url+replication.PathSnapshot, "", "", "Authorization", "Bearer s3cret")
	var snap kvstore.Snapshot
	if err := json.Unmarshal(r.body, &snap); err != nil || r.code != 200 || snap.Index != 1 || len(snap.Entries) != 1 {
		t.Fatalf("GET snapshot: %d %s", r.code, r.body)
	}
}

func TestInternalRoutesWithoutToken(t *testing.T) {
	c, stub, n := followerOfStub(t)
	epoch := c.epochNow()
	body := appendBody(t, epoch, stub.addr(), 0, kvstore.Entry{Key: "k", Value: "v", Version: 1, Index: 1, Epoch: epoch})
	if r := do(t, http.MethodPost, n.url+replication.PathAppend, "application/json", body); r.code != 200 {
		t.Fatalf("append: %d %s", r.code, r.body)
	}
	if r := do(t, http.MethodPost, n.url+replication.PathAppend, "text/plain", body); r.code != 415 {
		t.Fatalf("append as text/plain: %d %s", r.code, r.body)
	}
	if r := do(t, http.MethodPost, n.url+replication.PathAppend, "application/json", `{"epoch":"x"}`); r.code != 400 {
		t.Fatalf("malformed append: %d %s", r.code, r.body)
	}
}

// TestAppendFencing: an append from an older epoch is refused with 412 and one from a
// sender that is not this view's leader with 403; neither changes anything.
func TestAppendFencing(t *testing.T) {
	c, stub, n := followerOfStub(t)
	epoch := c.epochNow()
	entry := func(i uint64, ep int64) kvstore.Entry {
		return kvstore.Entry{Key: fmt.Sprint("k", i), Value: "v", Version: 1, Index: i, Epoch: ep}
	}
	ok := appendBody(t, epoch, stub.addr(), 0, entry(1, epoch))
	if r := do(t, http.MethodPost, n.url+replication.PathAppend, "application/json", ok); r.code != 200 {
		t.Fatalf("append from the leader: %d %s", r.code, r.body)
	}

	old := appendBody(t, epoch-1, stub.addr(), 1, entry(2, epoch-1))
	r := do(t, http.MethodPost, n.url+replication.PathAppend, "application/json", old)
	if r.code != http.StatusPreconditionFailed {
		t.Fatalf("append from an older epoch: %d %s", r.code, r.body)
	}
	var er replication.ErrorResponse
	if err := json.Unmarshal(r.body, &er); err != nil || er.Error.Code != replication.CodeStaleEpoch || er.Epoch != epoch {
		t.Fatalf("412 body %s", r.body)
	}

	impostor := appendBody(t, epoch, "127.0.0.1:1", 1, entry(2, epoch))
	if r := do(t, http.MethodPost, n.url+replication.PathAppend, "application/json", impostor); r.code != http.StatusForbidden {
		t.Fatalf("append from a non-leader: %d %s", r.code, r.body)
	}
	snapReq, _ := json.Marshal(replication.SnapshotRequest{Epoch: epoch - 1, Leader: stub.addr(),
		Snapshot: kvstore.Snapshot{Index: 9, Epoch: epoch - 1, Entries: []kvstore.Entry{entry(9, epoch-1)}}})
	if r := do(t, http.MethodPost, n.url+replication.PathSnapshot, "application/json", string(snapReq)); r.code != http.StatusPreconditionFailed {
		t.Fatalf("snapshot from an older epoch: %d %s", r.code, r.body)
	}
	if idx, _ := n.store.Last(); idx != 1 || n.store.Len() != 1 {
		t.Fatalf("refused appends changed the store: index %d, %d keys", idx, n.store.Len())
	}
}

// TestGracefulShutdown: a leader that is told to stop answers the write in flight, then
// resigns (a successor leads at once) and stops serving.
func TestGracefulShutdown(t *testing.T) {
	c := newFakeCluster()
	gate := make(chan struct{})
	repls := &fakeRepls{}
	n := startNode(t, c, "a", withRepls(repls))
	n.waitLeading(t)
	b := c.remote("b", "127.0.0.1:1")
	defer b.Close()
	r0 := repls.last()
	r0.mu.Lock()
	r0.gate = gate
	r0.mu.Unlock()

	got := make(chan answer, 1)
	go func() { got <- put(t, n.url, "k", "v") }()
	waitFor(t, "the write to be in flight", func() bool {
		r0.mu.Lock()
		defer r0.mu.Unlock()
		return len(keyed(r0.entries)) == 1
	})
	stopped := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		stopped <- n.s.Shutdown(ctx)
	}()
	select {
	case err := <-stopped:
		t.Fatalf("Shutdown returned with a write in flight: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	if j, rs := n.e.counts(); rs != 0 || j != 1 {
		t.Fatalf("resigned before the write in flight finished (joins %d, resigns %d)", j, rs)
	}
	close(gate)
	if a := <-got; a.code != 200 {
		t.Fatalf("in-flight write: %d %s", a.code, a.body)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if _, rs := n.e.counts(); rs != 1 {
		t.Fatal("the leader did not resign")
	}
	if v := b.View(); !v.IsLeader {
		t.Fatalf("the successor does not lead: %+v", v)
	}
	if _, err := testClient.Get(n.url + "/healthz"); err == nil {
		t.Fatal("still serving after Shutdown")
	}
	if err := n.s.Shutdown(context.Background()); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
}

// A follower is ready only once its leader replicates to it; until then it says hello to
// the leader, so that writes are not acknowledged without it.
func TestFollowerReadyOnceInLeadersStream(t *testing.T) {
	c, stub, n := followerOfStub(t)

	if r := do(t, http.MethodGet, n.url+"/readyz", "", ""); r.code != 503 {
		t.Fatalf("readyz before any append: %d %s", r.code, r.body)
	}
	waitFor(t, "a hello at the leader", func() bool {
		for _, r := range stub.requests() {
			if r.method == http.MethodPost && r.uri == "/internal/v1/hello" && strings.Contains(r.body, n.addr) {
				return true
			}
		}
		return false
	})
	body := appendBody(t, c.epochNow(), stub.addr(), 0)
	if r := do(t, http.MethodPost, n.url+replication.PathAppend, "application/json", body); r.code != 200 {
		t.Fatalf("empty append: %d %s", r.code, r.body)
	}
	// In the stream but not yet counted in the in-sync set: a write acknowledged under ack
	// all could still miss this complete replica, so it is not ready.
	if r := do(t, http.MethodGet, n.url+"/readyz", "", ""); r.code != 503 {
		t.Fatalf("readyz before the leader counts it in sync: %d %s", r.code, r.body)
	}
	inSync := strings.Replace(body, `"leader":`, `"in_sync":true,"leader":`, 1)
	if r := do(t, http.MethodPost, n.url+replication.PathAppend, "application/json", inSync); r.code != 200 {
		t.Fatalf("append that counts it in sync: %d %s", r.code, r.body)
	}
	if r := do(t, http.MethodGet, n.url+"/readyz", "", ""); r.code != 200 {
		t.Fatalf("readyz once the leader counts it in sync: %d %s", r.code, r.body)
	}
}

// The leader answers a hello by re-reading its members at once; a follower refuses it.
func TestHelloReachesOnlyTheLeader(t *testing.T) {
	_, _, n := followerOfStub(t)
	r := do(t, http.MethodPost, n.url+"/internal/v1/hello", "application/json", `{"id":"x","address":"127.0.0.1:1"}`)
	if r.code != 503 || r.errCode(t) != server.CodeNotLeader {
		t.Fatalf("hello to a follower: %d %s", r.code, r.body)
	}
}

// A new leader's position query raises the fence, but only to an epoch the follower has
// seen in ZooKeeper: a query naming an epoch no leader holds gets 409 unknown_epoch and
// leaves the fence alone (the real leader's appends still go through); once a newer leader
// exists, its query raises the fence and the deposed leader's appends are refused.
func TestPositionQueryRaisesFence(t *testing.T) {
	c, stub, n := followerOfStub(t)
	epoch := c.epochNow()
	r := do(t, http.MethodGet, n.url+replication.PathPosition+fmt.Sprintf("?epoch=%d", epoch+10), "", "")
	if r.code != 409 || r.errCode(t) != server.CodeUnknownEpoch {
		t.Fatalf("position with an epoch nobody holds: %d %s", r.code, r.body)
	}
	body := appendBody(t, epoch, stub.addr(), 0, kvstore.Entry{Key: "k", Value: "v", Version: 1, Index: 1, Epoch: epoch})
	if r := do(t, http.MethodPost, n.url+replication.PathAppend, "application/json", body); r.code != 200 {
		t.Fatalf("the leader's append after a refused position query: %d %s", r.code, r.body)
	}

	// A newer leader: the stub's node goes, the next in line leads with a newer epoch.
	stub2 := newStubLeader(t)
	le2 := c.remote("leader2", stub2.addr())
	t.Cleanup(func() { le2.Close() })
	var old *fakeElector
	c.mu.Lock()
	for e := range c.all {
		if e.id == "leader" {
			old = e
		}
	}
	c.mu.Unlock()
	_ = old.Resign(context.Background())
	newer := c.epochNow()
	if newer <= epoch {
		t.Fatalf("no newer epoch: %d", newer)
	}
	if r := do(t, http.MethodGet, n.url+replication.PathPosition+fmt.Sprintf("?epoch=%d", newer), "", ""); r.code != 200 {
		t.Fatalf("position at the newer leader's epoch: %d %s", r.code, r.body)
	}
	body = appendBody(t, epoch, stub.addr(), 1, kvstore.Entry{Key: "k2", Value: "v", Version: 1, Index: 2, Epoch: epoch})
	if r := do(t, http.MethodPost, n.url+replication.PathAppend, "application/json", body); r.code != 412 && r.code != 403 {
		t.Fatalf("append from the deposed leader: %d %s", r.code, r.body)
	}
	if _, ok := n.store.Get("k2"); ok {
		t.Fatal("a fenced append was applied")
	}
	if r := do(t, http.MethodGet, n.url+replication.PathPosition+"?epoch=x", "", ""); r.code != 400 {
		t.Fatalf("bad epoch: %d", r.code)
	}
}

// TestLocalReadStaleness: a follower's local reads say how long ago it heard from its
// leader and which index its store has applied; ?max_staleness refuses a read once that is
// longer than asked (503 too_stale), and /readyz turns 503 once the stream is silent past
// SilentAfter, while local reads go on.
func TestLocalReadStaleness(t *testing.T) {
	c, stub, n := followerOfStub(t, withConfig(func(cfg *server.Config) { cfg.SilentAfter = 300 * time.Millisecond }))
	if r := do(t, http.MethodGet, n.url+"/v1/kv/k?max_staleness=1h", "", ""); r.code != 503 || r.errCode(t) != server.CodeTooStale {
		t.Fatalf("max_staleness before any contact: %d %s", r.code, r.body)
	}
	body := appendBody(t, c.epochNow(), stub.addr(), 0, kvstore.Entry{Key: "k", Value: "v", Version: 1, Index: 1, Epoch: c.epochNow()})
	body = strings.Replace(body, `"leader":`, `"in_sync":true,"leader":`, 1)
	if r := do(t, http.MethodPost, n.url+replication.PathAppend, "application/json", body); r.code != 200 {
		t.Fatalf("append: %d %s", r.code, r.body)
	}
	r := do(t, http.MethodGet, n.url+"/v1/kv/k?max_staleness=1h", "", "")
	if r.code != 200 || r.hdr.Get(server.HeaderApplied) != "1" || r.hdr.Get(server.HeaderLastContact) == "" || r.hdr.Get(server.HeaderLastContact) == "-1" {
		t.Fatalf("fresh local read: %d %s %v", r.code, r.body, r.hdr)
	}
	if r := do(t, http.MethodGet, n.url+"/readyz", "", ""); r.code != 200 {
		t.Fatalf("readyz right after the leader's append: %d %s", r.code, r.body)
	}
	time.Sleep(400 * time.Millisecond)
	if r := do(t, http.MethodGet, n.url+"/v1/kv/k?max_staleness=100ms", "", ""); r.code != 503 || r.errCode(t) != server.CodeTooStale {
		t.Fatalf("max_staleness=100ms after 400ms of silence: %d %s", r.code, r.body)
	}
	if r := do(t, http.MethodGet, n.url+"/readyz", "", ""); r.code != 503 {
		t.Fatalf("readyz after 400ms of silence (SilentAfter 300ms): %d %s", r.code, r.body)
	}
	if r := do(t, http.MethodGet, n.url+"/v1/kv/k", "", ""); r.code != 200 || r.json(t)["value"] != "v" {
		t.Fatalf("a plain local read must still answer: %d %s", r.code, r.body)
	}
	for _, bad := range []string{"-1s", "soon", "1"} {
		if r := do(t, http.MethodGet, n.url+"/v1/kv/k?max_staleness="+bad, "", ""); r.code != 400 {
			t.Errorf("max_staleness=%s: %d %s", bad, r.code, r.body)
		}
	}
}
