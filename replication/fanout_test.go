package replication

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zkv-dev/zkv/kvstore"
)

func waitCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestParseAckMode(t *testing.T) {
	for _, s := range []string{"all", "majority", "leader"} {
		m, err := ParseAckMode(s)
		if err != nil || m.String() != s {
			t.Errorf("%s: %v %v", s, m, err)
		}
	}
	if _, err := ParseAckMode("some"); err == nil {
		t.Error("unknown mode accepted")
	}
}

func TestFanoutConfig(t *testing.T) {
	if _, err := NewFanout(Config{}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("empty config: %v", err)
	}
	l := newLog(t, LogConfig{})
	_, err := NewFanout(Config{Epoch: 1, Log: l, Snapshot: func() kvstore.Snapshot { return kvstore.Snapshot{} }, MaxBatch: -1})
	if !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("negative MaxBatch: %v", err)
	}
}

func TestReplicateToTwo(t *testing.T) {
	a, b := newTestReplica(t), newTestReplica(t)
	l := newTestLeader(t, Config{}, LogConfig{})
	l.fan.SetReplicas(append(urls(a, b), "leader:1", a.srv.URL, "")) // self, dupes, empties ignored
	ctx := waitCtx(t)
	for i := range 300 {
		l.put(t, fmt.Sprintf("k%d", i%50), fmt.Sprint(i))
		if i%10 == 0 {
			l.del(t, fmt.Sprintf("k%d", (i+7)%50))
		}
	}
	n, err := l.fan.Wait(ctx, l.lastIndex(), AckAll)
	if err != nil || n != 2 {
		t.Fatalf("Wait(all) = %d, %v", n, err)
	}
	for _, r := range []*testReplica{a, b} {
		if r.store.Hash() != l.store.Hash() || !sameStats(r.store, l.store) {
			t.Fatalf("replica %s differs: %+v vs leader %+v", r.srv.URL, r.store.Stats(), l.store.Stats())
		}
		// Group commit: far fewer requests than writes.
		if p := r.posts.Load(); p >= int64(l.lastIndex()) {
			t.Errorf("replica %s got %d posts for %d writes", r.srv.URL, p, l.lastIndex())
		}
	}
	st := l.fan.Stats()
	if len(st) != 2 || st[0].MatchIndex != l.lastIndex() || st[0].Lag != 0 || !st[0].Up || st[0].Snapshots != 0 {
		t.Fatalf("Stats = %+v", st)
	}
}

func TestAckModes(t *testing.T) {
	fast, slow := newTestReplica(t), newTestReplica(t)
	l := newTestLeader(t, Config{}, LogConfig{})
	l.fan.SetReplicas(urls(fast, slow))
	ctx := waitCtx(t)
	l.put(t, "warm", "up")
	if _, err := l.fan.Wait(ctx, 1, AckAll); err != nil {
		t.Fatal(err)
	}
	gate := slow.block()
	e := l.put(t, "k", "v")

	if n, err := l.fan.Wait(ctx, e.Index, AckLeader); err != nil || n > 1 {
		t.Fatalf("Wait(leader) = %d, %v", n, err)
	}
	// 3 servers: the leader and the fast replica are a majority, the slow one does not matter.
	if n, err := l.fan.Wait(ctx, e.Index, AckMajority); err != nil || n != 1 {
		t.Fatalf("Wait(majority) = %d, %v", n, err)
	}
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	n, err := l.fan.Wait(short, e.Index, AckAll)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) || n != 1 {
		t.Fatalf("Wait(all) with a blocked replica = %d, %v; want 1, deadline exceeded", n, err)
	}
	slow.unblock(gate)
	if n, err := l.fan.Wait(ctx, e.Index, AckAll); err != nil || n != 2 {
		t.Fatalf("Wait(all) after unblocking = %d, %v", n, err)
	}
	if _, err := l.fan.Wait(ctx, e.Index, AckMode(42)); err == nil {
		t.Fatal("invalid mode accepted")
	}
}

func TestMajorityNeedsReplicas(t *testing.T) {
	a, b := newTestReplica(t), newTestReplica(t)
	l := newTestLeader(t, Config{}, LogConfig{})
	l.fan.SetReplicas(urls(a, b))
	ctx := waitCtx(t)
	ga, gb := a.block(), b.block()
	e := l.put(t, "k", "v")
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	_, err := l.fan.Wait(short, e.Index, AckMajority)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("majority without any replica: %v", err)
	}
	a.unblock(ga)
	if n, err := l.fan.Wait(ctx, e.Index, AckMajority); err != nil || n < 1 {
		t.Fatalf("majority with one replica = %d, %v", n, err)
	}
	b.unblock(gb)
	// No replicas at all: every mode holds at once (a one-server cluster).
	l.fan.SetReplicas(nil)
	if _, err := l.fan.Wait(ctx, e.Index, AckAll); err != nil {
		t.Fatalf("all with no replicas: %v", err)
	}
}

func TestSlowReplicaDoesNotStallMajority(t *testing.T) {
	fast, slow := newTestReplica(t), newTestReplica(t)
	l := newTestLeader(t, Config{}, LogConfig{})
	l.fan.SetReplicas(urls(fast, slow))
	ctx := waitCtx(t)
	gate := slow.block()
	for i := range 100 {
		e := l.put(t, fmt.Sprint(i), "v")
		if _, err := l.fan.Wait(ctx, e.Index, AckMajority); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	if s := l.stats(slow.srv.URL); s.Lag < 99 {
		t.Fatalf("slow replica stats %+v: expected it to lag", s)
	}
	slow.unblock(gate)
	if _, err := l.fan.Wait(ctx, l.lastIndex(), AckAll); err != nil {
		t.Fatal(err)
	}
	if slow.store.Hash() != l.store.Hash() {
		t.Fatal("slow replica did not catch up")
	}
}

func TestReplicaDownThenBack(t *testing.T) {
	a, b := newTestReplica(t), newTestReplica(t)
	l := newTestLeader(t, Config{RetryMax: 1}, LogConfig{})
	l.fan.SetReplicas(urls(a, b))
	ctx := waitCtx(t)
	l.put(t, "before", "x")
	if _, err := l.fan.Wait(ctx, 1, AckAll); err != nil {
		t.Fatal(err)
	}
	b.down.Store(true)
	for i := range 50 {
		e := l.put(t, fmt.Sprint(i), "v")
		if _, err := l.fan.Wait(ctx, e.Index, AckMajority); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "replica b reported down", func() bool {
		s := l.stats(b.srv.URL)
		return !s.Up && s.LastError != "" && s.Retries > 0
	})
	b.down.Store(false)
	b.fail.Store(true) // then 503s for a while: retried as well
	time.Sleep(30 * time.Millisecond)
	b.fail.Store(false)
	if _, err := l.fan.Wait(ctx, l.lastIndex(), AckAll); err != nil {
		t.Fatal(err)
	}
	if b.store.Hash() != l.store.Hash() {
		t.Fatal("b did not catch up")
	}
	s := l.stats(b.srv.URL)
	if s.Snapshots != 0 || !s.Up || b.snaps.Load() != 0 {
		t.Fatalf("b caught up from the log, without snapshot: %+v", s)
	}
}

func TestSnapshotAfterLogTruncation(t *testing.T) {
	a, b := newTestReplica(t), newTestReplica(t)
	obs := &countingObserver{}
	l := newTestLeader(t, Config{Observer: obs}, LogConfig{Capacity: 10})
	l.fan.SetReplicas(urls(a, b))
	ctx := waitCtx(t)
	l.put(t, "first", "x")
	if _, err := l.fan.Wait(ctx, 1, AckAll); err != nil {
		t.Fatal(err)
	}
	gate := b.block()
	for i := range 100 {
		l.put(t, fmt.Sprint(i), "v")
	}
	l.del(t, "first")
	b.unblock(gate)
	if _, err := l.fan.Wait(ctx, l.lastIndex(), AckAll); err != nil {
		t.Fatal(err)
	}
	if b.store.Hash() != l.store.Hash() || !sameStats(b.store, l.store) {
		t.Fatalf("b after snapshot: %+v, leader %+v", b.store.Stats(), l.store.Stats())
	}
	if s := l.stats(b.srv.URL); s.Snapshots == 0 || b.snaps.Load() == 0 {
		t.Fatalf("expected a snapshot: %+v", s)
	}
	if obs.snapshots.Load() == 0 || obs.acks.Load() == 0 {
		t.Fatalf("observer: %d snapshots, %d acks", obs.snapshots.Load(), obs.acks.Load())
	}
	// b keeps following from the log after the snapshot.
	e := l.put(t, "after", "y")
	if _, err := l.fan.Wait(ctx, e.Index, AckAll); err != nil {
		t.Fatal(err)
	}
	if got, ok := b.store.Get("after"); !ok || got.Index != e.Index {
		t.Fatalf("b after = %+v %v", got, ok)
	}
}

type countingObserver struct{ retries, acks, snapshots atomic.Int64 }

func (o *countingObserver) OnRetry(string)            { o.retries.Add(1) }
func (o *countingObserver) OnAck(string, uint64)      { o.acks.Add(1) }
func (o *countingObserver) OnSnapshot(replica string) { o.snapshots.Add(1) }

func TestWaitCancelAndClose(t *testing.T) {
	a := newTestReplica(t)
	l := newTestLeader(t, Config{}, LogConfig{})
	l.fan.SetReplicas(urls(a))
	gate := a.block()
	defer a.unblock(gate)
	e := l.put(t, "k", "v")
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { _, err := l.fan.Wait(ctx, e.Index, AckAll); errc <- err }()
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Wait: %v", err)
	}
	go func() { _, err := l.fan.Wait(context.Background(), e.Index, AckAll); errc <- err }()
	if err := l.fan.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Fatalf("Wait across Close: %v", err)
	}
	if err := l.fan.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
	l.fan.Enqueue(kvstore.Entry{Index: 99})
	l.fan.SetReplicas(urls(a))
	if len(l.fan.Stats()) != 1 {
		t.Fatal("SetReplicas after Close changed the replicas")
	}
}

func TestFencing(t *testing.T) {
	a := newTestReplica(t)
	b := newTestReplica(t, withFollower(FollowerConfig{Epoch: 5})) // has seen epoch 5
	l := newTestLeader(t, Config{Epoch: 3}, LogConfig{})
	l.fan.SetReplicas(urls(a, b))
	e := l.put(t, "k", "v")
	select {
	case <-l.fan.Deposed():
	case <-waitCtx(t).Done():
		t.Fatal("not deposed")
	}
	_, err := l.fan.Wait(waitCtx(t), e.Index, AckAll)
	if !errors.Is(err, ErrFenced) {
		t.Fatalf("Wait after fencing: %v", err)
	}
	if _, ok := b.store.Get("k"); ok {
		t.Fatal("the fenced replica applied a stale write")
	}
	// Once deposed, nothing more is sent: a later write reaches no replica.
	l.put(t, "more", "v")
	l.fan.Close() // waits for the workers
	for _, r := range []*testReplica{a, b} {
		if _, ok := r.store.Get("more"); ok {
			t.Fatalf("a deposed fanout replicated to %s", r.srv.URL)
		}
	}
}

func TestFreshReplicaTakesBase(t *testing.T) {
	l := newTestLeader(t, Config{}, LogConfig{})
	for i := range 10 {
		l.put(t, fmt.Sprint("old", i), "v")
	}
	fresh := newTestReplica(t, withFresh())
	l.fan.SetReplicas(urls(fresh))
	ctx := waitCtx(t)
	// The probe makes the fresh replica take the leader's position as its base.
	if _, err := l.fan.Wait(ctx, 10, AckAll); err != nil {
		t.Fatal(err)
	}
	var last kvstore.Entry
	for i := range 5 {
		last = l.put(t, fmt.Sprint("new", i), "v")
	}
	if _, err := l.fan.Wait(ctx, last.Index, AckAll); err != nil {
		t.Fatal(err)
	}
	if fresh.store.Len() != 5 {
		t.Fatalf("fresh replica holds %d keys, want only the 5 later ones", fresh.store.Len())
	}
	if _, ok := fresh.store.Get("old0"); ok {
		t.Fatal("fresh replica received an older write")
	}
	if min := fresh.minIdx.Load(); min != 11 {
		t.Fatalf("smallest index applied = %d, want 11", min)
	}
	if i, _ := fresh.store.Last(); i != last.Index {
		t.Fatalf("fresh last = %d, want %d", i, last.Index)
	}
	if fresh.snaps.Load() != 0 {
		t.Fatal("fresh replica got a snapshot")
	}
}

func TestNewLeaderOverridesDivergentReplica(t *testing.T) {
	// The replica holds index 3 from an old leader (epoch 1) that the new leader never got:
	// it was not committed (1 and 2 were).
	r := newTestReplica(t)
	ctx := waitCtx(t)
	req := appendReq(1, 0, 0, entries(1, 3, 1))
	req.Commit = 2
	if _, err := r.f.Append(ctx, req); err != nil {
		t.Fatal(err)
	}
	l := newTestLeader(t, Config{Epoch: 2}, LogConfig{})
	if err := l.store.Apply(entries(1, 2, 1)...); err != nil {
		t.Fatal(err)
	}
	if err := l.log.Append(entries(1, 2, 1)...); err != nil {
		t.Fatal(err)
	}
	l.fan.SetReplicas(urls(r))
	e := l.put(t, "new", "v") // index 3, epoch 2
	if _, err := l.fan.Wait(ctx, e.Index, AckAll); err != nil {
		t.Fatal(err)
	}
	if r.store.Hash() != l.store.Hash() {
		t.Fatal("replica kept the old leader's divergent write")
	}
	if r.snaps.Load() != 0 {
		t.Fatal("the divergent tail was not committed: dropping it repairs the replica without a snapshot")
	}
}

func TestSetReplicasRemovalUnblocksWaitAll(t *testing.T) {
	fast, stuck := newTestReplica(t), newTestReplica(t)
	l := newTestLeader(t, Config{}, LogConfig{})
	l.fan.SetReplicas(urls(fast, stuck))
	gate := stuck.block()
	defer stuck.unblock(gate)
	e := l.put(t, "k", "v")
	errc := make(chan error, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, err := l.fan.Wait(waitCtx(t), e.Index, AckAll)
		errc <- err
	}()
	eventually(t, "the fast replica's ack", func() bool { return l.stats(fast.srv.URL).MatchIndex >= e.Index })
	select {
	case err := <-errc:
		t.Fatalf("Wait(all) returned %v with a replica stuck", err)
	default:
	}
	l.fan.SetReplicas(urls(fast))
	wg.Wait()
	if err := <-errc; err != nil {
		t.Fatalf("Wait(all) after removal: %v", err)
	}
	if len(l.fan.Stats()) != 1 {
		t.Fatal("removed replica still listed")
	}
}

func TestTokenAndClientErrors(t *testing.T) {
	r := newTestReplica(t, withToken("s3cret"))
	good := newTestLeader(t, Config{Token: "s3cret"}, LogConfig{})
	good.fan.SetReplicas(urls(r))
	e := good.put(t, "k", "v")
	if _, err := good.fan.Wait(waitCtx(t), e.Index, AckAll); err != nil {
		t.Fatal(err)
	}
	bad := newTestLeader(t, Config{Token: "wrong", RetryMax: 5}, LogConfig{})
	bad.fan.SetReplicas(urls(r))
	eventually(t, "a 401 recorded", func() bool {
		s := bad.stats(r.srv.URL)
		return s.LastError != "" && !s.Up
	})
	if s := bad.stats(r.srv.URL); s.Retries != 0 {
		t.Fatalf("4xx must not be retried by the HTTP client: %+v", s)
	}
}

func sameStats(a, b *kvstore.Store) bool {
	sa, sb := a.Stats(), b.Stats()
	sa.Shards, sb.Shards = 0, 0
	return sa == sb
}

// Barrier needs a request sent after it began to be answered: a replica that was
// reachable before but is blocked now holds an ack=all barrier back, not a majority one.
func TestBarrier(t *testing.T) {
	fast, slow := newTestReplica(t), newTestReplica(t)
	l := newTestLeader(t, Config{HeartbeatInterval: time.Hour}, LogConfig{})
	l.fan.SetReplicas(urls(fast, slow))
	e := l.put(t, "k", "v")
	if _, err := l.fan.Wait(waitCtx(t), e.Index, AckAll); err != nil {
		t.Fatal(err)
	}
	if n, err := l.fan.Barrier(waitCtx(t), AckAll); err != nil || n != 2 {
		t.Fatalf("Barrier(all) with both up: %d %v", n, err)
	}
	gate := slow.block()
	if n, err := l.fan.Barrier(waitCtx(t), AckMajority); err != nil || n < 1 {
		t.Fatalf("Barrier(majority) with one blocked: %d %v", n, err)
	}
	// Both replicas had acked everything before; only a new round counts.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := l.fan.Barrier(ctx, AckAll); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Barrier(all) with one replica blocked: %v, want a deadline", err)
	}
	slow.unblock(gate)
	if _, err := l.fan.Barrier(waitCtx(t), AckAll); err != nil {
		t.Fatalf("Barrier(all) after unblocking: %v", err)
	}
	// AckLeader proves nothing alone: it needs a majority round too.
	if n, err := l.fan.Barrier(waitCtx(t), AckLeader); err != nil || n < 1 {
		t.Fatalf("Barrier(leader): %d %v", n, err)
	}
}

// A replica that has seen a newer epoch refuses the barrier's round: a deposed leader
// learns it there rather than answering a read.
func TestBarrierFenced(t *testing.T) {
	a := newTestReplica(t, withFollower(FollowerConfig{Epoch: 5}))
	b := newTestReplica(t, withFollower(FollowerConfig{Epoch: 5}))
	l := newTestLeader(t, Config{Epoch: 3, HeartbeatInterval: time.Hour}, LogConfig{})
	l.fan.SetReplicas(urls(a, b))
	if _, err := l.fan.Barrier(waitCtx(t), AckMajority); !errors.Is(err, ErrFenced) {
		t.Fatalf("Barrier on fenced replicas: %v", err)
	}
}

// TestCommitCountsInSyncSets: the commit index needs the leader and a quorum of every
// in-sync set, never stops below EpochStart, and drives Apply in order; a replica outside
// the sets is streamed to but does not count; Stats says since when a replica lags.
func TestCommitCountsInSyncSets(t *testing.T) {
	a, b := newTestReplica(t), newTestReplica(t)
	var applied []uint64
	var mu sync.Mutex
	l := newTestLeader(t, Config{Mode: AckMajority, EpochStart: 2, Apply: func(i uint64) error {
		mu.Lock()
		defer mu.Unlock()
		applied = append(applied, i)
		return nil
	}}, LogConfig{})
	l.fan.SetReplicas(urls(a, b))
	l.fan.SetInSync([]string{a.srv.URL, b.srv.URL})
	ctx := waitCtx(t)
	ga, gb := a.block(), b.block()
	e1 := l.put(t, "k", "1") // index 1: below EpochStart, it commits only with index 2
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	_, err := l.fan.Wait(short, e1.Index, AckMajority)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("majority of {leader, a, b} without a or b: %v", err)
	}
	if st := l.stats(a.srv.URL); st.LaggingSince.IsZero() {
		t.Fatalf("a blocked replica must lag: %+v", st)
	}
	a.unblock(ga)
	eventually(t, "a to hold index 1", func() bool { return l.stats(a.srv.URL).MatchIndex == 1 })
	if c, _ := l.fan.Commit(); c != 0 {
		t.Fatalf("commit %d: index 1 is below EpochStart 2", c)
	}
	e2 := l.put(t, "k", "2")
	if _, err := l.fan.Wait(ctx, e2.Index, AckMajority); err != nil {
		t.Fatal(err)
	}
	if c, ap := l.fan.Commit(); c != 2 || ap != 2 {
		t.Fatalf("commit %d applied %d, want 2 2", c, ap)
	}
	// b is no longer counted: ack all means a alone with the leader.
	l.fan.SetInSync([]string{a.srv.URL})
	e3 := l.put(t, "k", "3")
	if _, err := l.fan.Wait(ctx, e3.Index, AckAll); err != nil {
		t.Fatalf("ack all over {a}: %v", err)
	}
	// Two sets (a change in flight): an entry must commit in both.
	l.fan.SetInSync([]string{a.srv.URL}, []string{a.srv.URL, b.srv.URL})
	e4 := l.put(t, "k", "4")
	short, cancel = context.WithTimeout(ctx, 50*time.Millisecond)
	_, err = l.fan.Wait(short, e4.Index, AckMajority)
	cancel()
	if err != nil {
		t.Fatalf("majority of both {leader, a} and {leader, a, b} holds with a: %v", err)
	}
	l.fan.SetInSync([]string{a.srv.URL, b.srv.URL}, []string{b.srv.URL})
	e5 := l.put(t, "k", "5")
	short, cancel = context.WithTimeout(ctx, 50*time.Millisecond)
	_, err = l.fan.Wait(short, e5.Index, AckMajority)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("the set {leader, b} needs b: %v", err)
	}
	b.unblock(gb)
	if _, err := l.fan.Wait(ctx, e5.Index, AckMajority); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.IsSorted(applied) || applied[0] != 2 || applied[len(applied)-1] != e5.Index {
		t.Fatalf("Apply calls %v: in order, from 2 to %d", applied, e5.Index)
	}
}

// TestRestartedReplicaStartsAtTheLeadersLast: a replica process that restarts at the same
// address refuses the stream meant for its predecessor (new_incarnation); its stream starts
// again at the leader's last entry, so it holds only what comes after (it starts empty).
func TestRestartedReplicaStartsAtTheLeadersLast(t *testing.T) {
	r := newTestReplica(t, withFollower(FollowerConfig{Fresh: true, Incarnation: "one"}))
	l := newTestLeader(t, Config{}, LogConfig{})
	l.fan.SetReplicas(urls(r))
	ctx := waitCtx(t)
	e := l.put(t, "before", "1")
	if _, err := l.fan.Wait(ctx, e.Index, AckAll); err != nil {
		t.Fatal(err)
	}
	r.down.Store(true) // the process dies; writes go on without it
	for i := range 5 {
		l.put(t, fmt.Sprint("while-down-", i), "x")
	}
	st, err := kvstore.New(kvstore.Config{Shards: 4})
	if err != nil {
		t.Fatal(err)
	}
	r.store = st
	r.f, err = NewFollower(FollowerConfig{Store: st, Fresh: true, Incarnation: "two", Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	r.down.Store(false) // a new process at the same address
	eventually(t, "the stream to reach the new process", func() bool { return r.f.Position().LastIndex == l.lastIndex() })
	after := l.put(t, "after", "2")
	if _, err := l.fan.Wait(ctx, after.Index, AckAll); err != nil {
		t.Fatal(err)
	}
	if _, ok := st.Get("after"); !ok {
		t.Fatal("the restarted replica lacks a write made after its restart")
	}
	for _, k := range []string{"before", "while-down-0", "while-down-4"} {
		if _, ok := st.Get(k); ok {
			t.Fatalf("the restarted replica holds %s, written before it started", k)
		}
	}
}
