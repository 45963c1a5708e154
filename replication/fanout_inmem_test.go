package replication

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/zkv-dev/zkv/kvstore"
)

// The protocol's tests on the InmemTransport: Fanout and Followers in one process, faults
// on demand, no sockets.

// countingStore counts how often each index is applied.
type countingStore struct {
	*kvstore.Store
	mu      sync.Mutex
	applied map[uint64]int
}

func (s *countingStore) Apply(es ...kvstore.Entry) error {
	s.mu.Lock()
	for _, e := range es {
		s.applied[e.Index]++
	}
	s.mu.Unlock()
	return s.Store.Apply(es...)
}

// appliedTwice returns the indexes applied more than once.
func (s *countingStore) appliedTwice() []uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []uint64
	for i, n := range s.applied {
		if n > 1 {
			out = append(out, i)
		}
	}
	return out
}

type memReplica struct {
	name  string
	store *countingStore
	f     *Follower
}

func newMemReplica(t testing.TB, tr *InmemTransport, name string, fc FollowerConfig) *memReplica {
	t.Helper()
	st, err := kvstore.New(kvstore.Config{Shards: 4})
	if err != nil {
		t.Fatal(err)
	}
	r := &memReplica{name: name, store: &countingStore{Store: st, applied: make(map[uint64]int)}}
	fc.Store, fc.Log, fc.Logger = r.store, newLog(t, LogConfig{}), testLogger(t)
	if r.f, err = NewFollower(fc); err != nil {
		t.Fatal(err)
	}
	tr.Register(name, r.f)
	return r
}

func newMemLeader(t testing.TB, tr *InmemTransport, cfg Config, logCfg LogConfig) *testLeader {
	cfg.Peers = tr
	return newTestLeader(t, cfg, logCfg)
}

func names(rs ...*memReplica) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.name)
	}
	return out
}

func waitFor(t testing.TB, l *testLeader, index uint64, mode AckMode) {
	t.Helper()
	if _, err := l.fan.Wait(waitCtx(t), index, mode); err != nil {
		t.Fatalf("Wait(%d, %s): %v", index, mode, err)
	}
}

// notBy asserts that Wait(index, mode) does not return within a short while.
func notBy(t testing.TB, l *testLeader, index uint64, mode AckMode, why string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if _, err := l.fan.Wait(ctx, index, mode); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait(%d, %s) = %v: %s", index, mode, err, why)
	}
}

func sameAs(t testing.TB, l *testLeader, rs ...*memReplica) {
	t.Helper()
	for _, r := range rs {
		if r.store.Hash() != l.store.Hash() || !sameStats(r.store.Store, l.store) {
			t.Fatalf("replica %s differs: %+v vs leader %+v", r.name, r.store.Stats(), l.store.Stats())
		}
		if twice := r.store.appliedTwice(); len(twice) > 0 {
			t.Fatalf("replica %s applied indexes %v more than once", r.name, twice)
		}
	}
}

// A new leader's log matching repairs a divergent uncommitted tail (two entries of an old
// epoch) on one replica and a short log on another, from the log, without a snapshot.
func TestInMemLogMatchingDivergentTail(t *testing.T) {
	tr := NewInmemTransport(time.Second)
	a, b := newMemReplica(t, tr, "a", FollowerConfig{}), newMemReplica(t, tr, "b", FollowerConfig{})
	ctx := waitCtx(t)
	req := appendReq(1, 0, 0, entries(1, 4, 1))
	req.Commit = 2 // 3 and 4 were never committed
	if _, err := a.f.Append(ctx, req); err != nil {
		t.Fatal(err)
	}
	if _, err := b.f.Append(ctx, appendReq(1, 0, 0, entries(1, 1, 1))); err != nil {
		t.Fatal(err)
	}
	l := newMemLeader(t, tr, Config{Epoch: 2}, LogConfig{})
	if err := l.store.Apply(entries(1, 2, 1)...); err != nil {
		t.Fatal(err)
	}
	if err := l.log.Append(entries(1, 2, 1)...); err != nil {
		t.Fatal(err)
	}
	l.fan.SetReplicas(names(a, b))
	for i := range 3 {
		l.put(t, fmt.Sprint("new", i), "v") // indexes 3 to 5, epoch 2
	}
	waitFor(t, l, l.lastIndex(), AckAll)
	sameAs(t, l, a, b)
	if ep, ok := a.f.Log().EpochAt(3); !ok || ep != 2 {
		t.Fatalf("a's index 3 has epoch %d (%v), want the new leader's 2", ep, ok)
	}
	for _, s := range l.fan.Stats() {
		if s.Snapshots != 0 {
			t.Fatalf("repaired by snapshot: %+v", s)
		}
	}
}

// A partitioned replica does not hold up a majority, then catches up from the log once
// healed; after a partition longer than the log, by snapshot, and follows the log after.
func TestInMemCatchUpAfterPartition(t *testing.T) {
	tr := NewInmemTransport(time.Second)
	a, b := newMemReplica(t, tr, "a", FollowerConfig{}), newMemReplica(t, tr, "b", FollowerConfig{})
	l := newMemLeader(t, tr, Config{}, LogConfig{Capacity: 64})
	l.fan.SetReplicas(names(a, b))
	waitFor(t, l, l.put(t, "before", "x").Index, AckAll)

	tr.Partition("b")
	for i := range 20 {
		waitFor(t, l, l.put(t, fmt.Sprint(i), "v").Index, AckMajority)
	}
	eventually(t, "b reported down", func() bool { s := l.stats("b"); return !s.Up && s.LastError != "" })
	notBy(t, l, l.lastIndex(), AckAll, "b is partitioned")
	tr.Heal("b")
	waitFor(t, l, l.lastIndex(), AckAll)
	sameAs(t, l, a, b)
	if s := l.stats("b"); s.Snapshots != 0 || !s.Up {
		t.Fatalf("b caught up from the log: %+v", s)
	}

	tr.Partition("b")
	for i := range 200 { // past the log's capacity: b's position is trimmed away
		l.put(t, fmt.Sprint(i%30), fmt.Sprint(i))
	}
	l.del(t, "before")
	waitFor(t, l, l.lastIndex(), AckMajority)
	tr.Heal("b")
	waitFor(t, l, l.lastIndex(), AckAll)
	sameAs(t, l, a, b)
	if s := l.stats("b"); s.Snapshots == 0 {
		t.Fatalf("b needed a snapshot: %+v", s)
	}
	e := l.put(t, "after", "y")
	waitFor(t, l, e.Index, AckAll)
	if got, ok := b.store.Get("after"); !ok || got.Index != e.Index {
		t.Fatalf("b after the snapshot: %+v %v", got, ok)
	}
	if s := l.stats("b"); s.Snapshots != 1 {
		t.Fatalf("b follows the log after its snapshot: %+v", s)
	}
}

// A replica that has seen a newer epoch deposes the leader: Wait fails with ErrFenced and
// nothing more is sent.
func TestInMemFencing(t *testing.T) {
	tr := NewInmemTransport(time.Second)
	a := newMemReplica(t, tr, "a", FollowerConfig{})
	b := newMemReplica(t, tr, "b", FollowerConfig{Epoch: 5})
	l := newMemLeader(t, tr, Config{Epoch: 3}, LogConfig{})
	l.fan.SetReplicas(names(a, b))
	e := l.put(t, "k", "v")
	select {
	case <-l.fan.Deposed():
	case <-waitCtx(t).Done():
		t.Fatal("not deposed")
	}
	if _, err := l.fan.Wait(waitCtx(t), e.Index, AckAll); !errors.Is(err, ErrFenced) {
		t.Fatalf("Wait after fencing: %v", err)
	}
	if _, ok := b.store.Get("k"); ok {
		t.Fatal("the fenced replica applied a stale write")
	}
	more := l.put(t, "more", "v")
	l.fan.Close() // waits for the workers
	for _, r := range []*memReplica{a, b} {
		if last, _ := r.f.Last(); last >= more.Index {
			t.Fatalf("a deposed fanout replicated to %s", r.name)
		}
	}
}

// Reordered across leaders: the old leader's request, sent first, arrives after the new
// leader's; the replica refuses it, the old leader is deposed, the new one goes on.
func TestInMemFencingReordered(t *testing.T) {
	tr := NewInmemTransport(0)
	a := newMemReplica(t, tr, "a", FollowerConfig{})
	tr.Hold("a")
	old := newMemLeader(t, tr, Config{Epoch: 1, Self: "old:1"}, LogConfig{})
	old.put(t, "k", "old")
	old.fan.SetReplicas(names(a))
	eventually(t, "the old leader's probe in flight", func() bool { return tr.Held("a") == 1 })
	cur := newMemLeader(t, tr, Config{Epoch: 2, Self: "new:1"}, LogConfig{})
	cur.fan.SetReplicas(names(a))
	eventually(t, "the new leader's probe in flight", func() bool { return tr.Held("a") == 2 })
	if n := tr.Release("a"); n != 2 {
		t.Fatalf("released %d", n)
	}
	select {
	case <-old.fan.Deposed():
	case <-waitCtx(t).Done():
		t.Fatal("the old leader was not deposed")
	}
	select {
	case <-cur.fan.Deposed():
		t.Fatal("the new leader was deposed")
	default:
	}
	e := cur.put(t, "k", "new")
	waitFor(t, cur, e.Index, AckAll)
	if got, ok := a.store.Get("k"); !ok || got.Value != "new" {
		t.Fatalf("a holds %+v %v, want the new leader's write", got, ok)
	}
	if a.f.Fence() != 2 {
		t.Fatalf("fence %d, want 2", a.f.Fence())
	}
}

// Ack counting: the commit needs the leader and a quorum of every in-sync set; Wait under
// AckAll needs every in-sync replica; a replica outside the sets does not count.
func TestInMemAckCounting(t *testing.T) {
	tr := NewInmemTransport(time.Second)
	a, b, c := newMemReplica(t, tr, "a", FollowerConfig{}), newMemReplica(t, tr, "b", FollowerConfig{}), newMemReplica(t, tr, "c", FollowerConfig{})
	l := newMemLeader(t, tr, Config{Mode: AckMajority}, LogConfig{})
	l.fan.SetReplicas(names(a, b, c))
	l.fan.SetInSync(names(a, b, c))
	waitFor(t, l, l.put(t, "k", "0").Index, AckAll)

	tr.Partition("b")
	tr.Partition("c")
	e := l.put(t, "k", "1")
	notBy(t, l, e.Index, AckMajority, "the leader and a are 2 of 4")
	if commit, _ := l.fan.Commit(); commit >= e.Index {
		t.Fatalf("commit %d with 2 of 4", commit)
	}
	tr.Heal("b")
	waitFor(t, l, e.Index, AckMajority) // 3 of 4
	notBy(t, l, e.Index, AckAll, "c is in the set and partitioned")
	l.fan.SetInSync(names(a, b))
	waitFor(t, l, e.Index, AckAll) // c no longer counts

	// Two sets, a change in flight: an entry commits only once it commits in both.
	l.fan.SetInSync(names(a, b), names(c))
	e = l.put(t, "k", "2")
	notBy(t, l, e.Index, AckMajority, "the set {leader, c} needs c")
	tr.Heal("c")
	waitFor(t, l, e.Index, AckMajority)
	l.fan.SetInSync(names(a, b, c))
	waitFor(t, l, e.Index, AckAll)
	sameAs(t, l, a, b, c)
}

// A lost answer (the append took effect) and lost requests are retried; each entry is
// applied once.
func TestInMemLostReply(t *testing.T) {
	tr := NewInmemTransport(time.Second)
	a := newMemReplica(t, tr, "a", FollowerConfig{})
	l := newMemLeader(t, tr, Config{}, LogConfig{})
	l.fan.SetReplicas(names(a))
	waitFor(t, l, l.put(t, "k", "0").Index, AckAll)

	before := tr.Delivered("a")
	tr.DropReplies("a", 1)
	e := l.put(t, "k", "1")
	waitFor(t, l, e.Index, AckAll)
	if n := tr.Delivered("a") - before; n < 2 {
		t.Fatalf("%d requests reached a: the append whose answer was lost, then its probe", n)
	}
	tr.DropNext("a", 3)
	for i := range 3 {
		l.put(t, "k", fmt.Sprint(i+2))
	}
	tr.DropReplies("a", 2)
	waitFor(t, l, l.put(t, "k", "last").Index, AckAll)
	sameAs(t, l, a)
}

// Reordered on one link: requests held while their sender times out and probes again,
// then delivered newest first; the late batch is harmless and the stream converges.
func TestInMemReordering(t *testing.T) {
	tr := NewInmemTransport(20 * time.Millisecond)
	a := newMemReplica(t, tr, "a", FollowerConfig{})
	l := newMemLeader(t, tr, Config{}, LogConfig{})
	l.fan.SetReplicas(names(a))
	waitFor(t, l, l.put(t, "k", "0").Index, AckAll)

	tr.Hold("a")
	l.put(t, "k", "1")
	eventually(t, "the batch and a probe in flight", func() bool { return tr.Held("a") >= 3 })
	for i := range 5 {
		l.put(t, "k", fmt.Sprint(i+2))
	}
	tr.Release("a")
	waitFor(t, l, l.lastIndex(), AckAll)
	sameAs(t, l, a)

	// Delayed and reordered together: each request takes a while and the timeouts race.
	tr.Delay("a", 15*time.Millisecond)
	for i := range 10 {
		l.put(t, "j", fmt.Sprint(i))
	}
	tr.Hold("a")
	l.put(t, "j", "last")
	eventually(t, "a request in flight", func() bool { return tr.Held("a") >= 1 })
	tr.Release("a")
	tr.Heal("a")
	waitFor(t, l, l.lastIndex(), AckAll)
	sameAs(t, l, a)
}
