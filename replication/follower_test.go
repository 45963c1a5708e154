package replication

import (
	"context"
	"errors"
	"testing"

	"github.com/zkv-dev/zkv/kvstore"
)

func newFollower(t testing.TB, fresh bool) (*Follower, *kvstore.Store, *Log) {
	t.Helper()
	st, err := kvstore.New(kvstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	l := newLog(t, LogConfig{})
	f, err := NewFollower(FollowerConfig{Store: st, Log: l, Fresh: fresh, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	return f, st, l
}

// appendReq is an append whose entries are all committed (Commit is its last index).
func appendReq(epoch int64, prevIndex uint64, prevEpoch int64, es []kvstore.Entry) AppendRequest {
	return AppendRequest{Epoch: epoch, Leader: "leader", PrevIndex: prevIndex, PrevEpoch: prevEpoch, Entries: es,
		Commit: prevIndex + uint64(len(es))}
}

func mustAppend(t *testing.T, f *Follower, req AppendRequest, wantIndex uint64) {
	t.Helper()
	resp, err := f.Append(context.Background(), req)
	if err != nil {
		t.Fatalf("Append(prev %d): %v", req.PrevIndex, err)
	}
	if resp.LastIndex != wantIndex {
		t.Fatalf("Append(prev %d) last = %d, want %d", req.PrevIndex, resp.LastIndex, wantIndex)
	}
}

func TestFollowerDuplicatesAndOrder(t *testing.T) {
	if _, err := NewFollower(FollowerConfig{}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("nil store: %v", err)
	}
	f, st, l := newFollower(t, false)
	ctx := context.Background()
	b1 := appendReq(1, 0, 0, entries(1, 5, 1))
	b2 := appendReq(1, 5, 1, entries(6, 9, 1))

	// Out of order: the second batch first is a mismatch carrying our position.
	_, err := f.Append(ctx, b2)
	var mm *LogMismatchError
	if !errors.As(err, &mm) || mm.LastIndex != 0 || mm.LastEpoch != 0 {
		t.Fatalf("out of order: %v", err)
	}
	mustAppend(t, f, b1, 5)
	mustAppend(t, f, b1, 5) // the same batch again: skipped
	mustAppend(t, f, b2, 9)
	mustAppend(t, f, b2, 9)
	// A batch overlapping what we hold applies only its new tail.
	mustAppend(t, f, appendReq(1, 7, 1, entries(8, 12, 1)), 12)
	if i, _ := st.Last(); i != 12 {
		t.Fatalf("store last = %d", i)
	}
	if i, _ := l.Last(); i != 12 || l.Len() != 12 {
		t.Fatalf("log last %d len %d", i, l.Len())
	}
	// An empty append at our position is a heartbeat.
	mustAppend(t, f, appendReq(1, 12, 1, nil), 12)
	// A non-fresh replica does not jump ahead.
	_, err = f.Append(ctx, appendReq(1, 20, 1, entries(21, 22, 1)))
	if !errors.As(err, &mm) || mm.LastIndex != 12 {
		t.Fatalf("gap: %v", err)
	}
	// Invalid requests are refused.
	if _, err := f.Append(ctx, appendReq(1, 12, 1, entries(14, 14, 1))); !errors.Is(err, ErrInvalidRequest) {
		t.Fatalf("non-contiguous: %v", err)
	}
	if err := ctx.Err(); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := f.Append(cctx, b2); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled ctx: %v", err)
	}
}

func TestFollowerDivergentEntries(t *testing.T) {
	f, st, _ := newFollower(t, false)
	ctx := context.Background()
	mustAppend(t, f, appendReq(1, 0, 0, entries(1, 3, 1)), 3)
	// A new leader (epoch 2) whose index 3 differs from ours: mismatch at (3, 1).
	_, err := f.Append(ctx, appendReq(2, 2, 1, entries(3, 4, 2)))
	var mm *LogMismatchError
	if !errors.As(err, &mm) || mm.LastIndex != 3 || mm.LastEpoch != 1 {
		t.Fatalf("divergent: %v", err)
	}
	// The leader installs a snapshot; appends continue after it.
	snap := kvstore.Snapshot{Index: 4, Epoch: 2, Entries: []kvstore.Entry{{Key: "k", Value: "v", Version: 4, Index: 4, Epoch: 2}}}
	resp, err := f.InstallSnapshot(ctx, SnapshotRequest{Epoch: 2, Leader: "leader", Snapshot: snap})
	if err != nil || resp.LastIndex != 4 || resp.LastEpoch != 2 {
		t.Fatalf("InstallSnapshot = %+v, %v", resp, err)
	}
	mustAppend(t, f, appendReq(2, 4, 2, entries(5, 5, 2)), 5)
	if e, ok := st.Get("k"); !ok || e.Index != 5 {
		t.Fatalf("Get = %+v %v", e, ok)
	}
}

func TestFollowerFencing(t *testing.T) {
	f, st, _ := newFollower(t, false)
	ctx := context.Background()
	mustAppend(t, f, appendReq(3, 0, 0, entries(1, 2, 3)), 2)
	if f.Fence() != 3 {
		t.Fatalf("fence = %d, want 3 (raised by the accepted append)", f.Fence())
	}
	_, err := f.Append(ctx, appendReq(2, 2, 3, []kvstore.Entry{{Key: "x", Index: 3, Epoch: 2}}))
	var se *StaleEpochError
	if !errors.As(err, &se) || se.Epoch != 3 || !errors.Is(err, ErrStaleEpoch) {
		t.Fatalf("stale append: %v", err)
	}
	if _, ok := st.Get("x"); ok {
		t.Fatal("a refused append applied")
	}
	f.ObserveEpoch(9)
	f.ObserveEpoch(4) // never lowers
	if f.Fence() != 9 {
		t.Fatalf("fence = %d", f.Fence())
	}
	if _, err := f.InstallSnapshot(ctx, SnapshotRequest{Epoch: 8}); !errors.Is(err, ErrStaleEpoch) {
		t.Fatalf("stale snapshot: %v", err)
	}
	if i, _ := st.Last(); i != 2 {
		t.Fatal("a refused snapshot changed the store")
	}
	// The leader check runs after the fence.
	g, err := NewFollower(FollowerConfig{Store: st, CheckLeader: func(leader string, _ int64) error {
		if leader != "leader" {
			return ErrNotLeader
		}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	req := appendReq(9, 2, 3, nil)
	req.Leader = "impostor"
	if _, err := g.Append(ctx, req); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("impostor: %v", err)
	}
}

func TestFollowerFreshTakesBase(t *testing.T) {
	f, st, l := newFollower(t, true)
	// The first append is taken as base even though we hold nothing before it.
	mustAppend(t, f, appendReq(2, 100, 2, entries(101, 102, 2)), 102)
	if i, ep := st.Last(); i != 102 || ep != 2 {
		t.Fatalf("store last %d %d", i, ep)
	}
	if b, _ := l.Base(); b != 100 {
		t.Fatalf("log base %d", b)
	}
	// From then on it is an ordinary replica: no more jumps.
	_, err := f.Append(context.Background(), appendReq(2, 200, 2, entries(201, 201, 2)))
	if !errors.Is(err, ErrLogMismatch) {
		t.Fatalf("second jump: %v", err)
	}

	// An empty first append (the leader's probe) sets the base position too, in the store,
	// so this server's own indexes would continue the cluster's should it lead.
	g, st2, _ := newFollower(t, true)
	mustAppend(t, g, appendReq(2, 50, 1, nil), 50)
	if i, ep := st2.Last(); i != 50 || ep != 1 {
		t.Fatalf("store last after empty base %d %d", i, ep)
	}
	if e := st2.Put("k", "v", 2); e.Index != 51 {
		t.Fatalf("Put after base got index %d", e.Index)
	}
}

func TestFollowerPositionPartial(t *testing.T) {
	f, _, _ := newFollower(t, true)
	if p := f.Position(); p.Partial || p.LastIndex != 0 {
		t.Fatalf("new fresh follower %+v", p)
	}
	mustAppend(t, f, appendReq(2, 100, 2, entries(101, 101, 2)), 101)
	if p := f.Position(); !p.Partial || p.LastIndex != 101 || p.LastEpoch != 2 {
		t.Fatalf("after a base at 100: %+v, want partial at 101", p)
	}
	// A base at index 0 loses nothing: the replica is complete.
	g, _, _ := newFollower(t, true)
	mustAppend(t, g, appendReq(2, 0, 0, entries(1, 2, 2)), 2)
	if p := g.Position(); p.Partial {
		t.Fatalf("a base at 0 is not partial: %+v", p)
	}
	// Adopting a snapshot makes a partial replica complete.
	p := f.Adopt(kvstore.Snapshot{Index: 120, Epoch: 3, Entries: []kvstore.Entry{{Key: "a", Value: "1", Version: 1, Index: 120, Epoch: 3}}})
	if p.Partial || p.LastIndex != 120 || f.Position().Partial {
		t.Fatalf("after Adopt: %+v", p)
	}
}

func TestFollowerExtend(t *testing.T) {
	f, st, l := newFollower(t, false)
	mustAppend(t, f, appendReq(2, 0, 0, entries(1, 3, 2)), 3)

	// A newly elected leader takes what a peer holds beyond its own last entry, with no
	// fence check (its own epoch is newer than the entries').
	f.ObserveEpoch(9)
	pos, err := f.Extend(3, 2, entries(4, 5, 2))
	if err != nil || pos.LastIndex != 5 {
		t.Fatalf("Extend: %+v %v", pos, err)
	}
	if i, _ := l.Last(); i != 5 {
		t.Fatalf("log last %d, want 5", i)
	}
	// Overlapping entries are skipped.
	if pos, err := f.Extend(2, 2, entries(3, 6, 2)); err != nil || pos.LastIndex != 6 {
		t.Fatalf("overlapping Extend: %+v %v", pos, err)
	}
	// A prev position from another history is refused and changes nothing.
	_, err = f.Extend(6, 1, entries(7, 7, 1))
	var mm *LogMismatchError
	if !errors.As(err, &mm) || mm.LastIndex != 6 {
		t.Fatalf("mismatched Extend: %v", err)
	}
	// Extend takes entries into the log only: they commit with the new leader's first entry.
	if i, _ := st.Last(); i != 3 {
		t.Fatalf("store at %d after Extend, want 3 (nothing applied)", i)
	}
	if i, _ := l.Last(); i != 6 {
		t.Fatalf("log at %d after a refused Extend, want 6", i)
	}
}

// TestFollowerAppliesOnlyCommitted: entries reach the store only once the leader's commit
// index covers them and the append shows the log to match up to there; a tail that a new
// leader's log does not continue is dropped, never applied.
func TestFollowerAppliesOnlyCommitted(t *testing.T) {
	f, st, l := newFollower(t, false)
	ctx := context.Background()
	req := appendReq(1, 0, 0, entries(1, 5, 1))
	req.Commit = 2
	mustAppend(t, f, req, 5)
	if i, _ := st.Last(); i != 2 {
		t.Fatalf("store at %d, want 2: only committed entries apply", i)
	}
	if p := f.Position(); p.LastIndex != 5 || p.Applied != 2 {
		t.Fatalf("position %+v, want last 5 applied 2", p)
	}
	// A heartbeat from a new leader (epoch 2) whose log holds only 1..3 of epoch 1 says
	// commit 3: its prev (3, 1) matches, so 3 applies; 4 and 5 stay unapplied.
	hb := AppendRequest{Epoch: 2, Leader: "leader", PrevIndex: 3, PrevEpoch: 1, Entries: []kvstore.Entry{}, Commit: 3}
	mustAppend(t, f, hb, 3)
	if i, _ := st.Last(); i != 3 {
		t.Fatalf("store at %d, want 3", i)
	}
	// Its next entry, index 4 of epoch 2, conflicts with our 4 of epoch 1: the tail after
	// the applied index goes, and the mismatch names (3, 1).
	_, err := f.Append(ctx, AppendRequest{Epoch: 2, Leader: "leader", PrevIndex: 3, PrevEpoch: 1,
		Entries: entries(4, 4, 2)[:0], Commit: 10})
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.Append(ctx, AppendRequest{Epoch: 2, Leader: "leader", PrevIndex: 4, PrevEpoch: 2, Entries: entries(5, 5, 2), Commit: 5})
	var mm *LogMismatchError
	if !errors.As(err, &mm) || mm.LastIndex != 3 || mm.LastEpoch != 1 {
		t.Fatalf("conflicting tail: %v, want a mismatch at (3, 1)", err)
	}
	if i, _ := l.Last(); i != 3 {
		t.Fatalf("log at %d, want the tail dropped to 3", i)
	}
	if _, ok := st.Get("k"); !ok {
		t.Fatal("the committed key is gone")
	}
	if e, _ := st.Get("k"); e.Index != 3 {
		t.Fatalf("store holds index %d of k: an uncommitted entry was applied", e.Index)
	}
	mustAppend(t, f, AppendRequest{Epoch: 2, Leader: "leader", PrevIndex: 3, PrevEpoch: 1, Entries: entries(4, 5, 2), Commit: 5}, 5)
	if e, _ := st.Get("k"); e.Index != 5 || e.Epoch != 2 {
		t.Fatalf("after the new leader's entries: %+v", e)
	}
}

func TestLogAfter(t *testing.T) {
	l := newLog(t, LogConfig{})
	l.Reset(10, 1)
	if err := l.Append(entries(11, 15, 2)...); err != nil {
		t.Fatal(err)
	}
	es, more, ok := l.After(12, 2, 2)
	if !ok || !more || len(es) != 2 || es[0].Index != 13 || es[1].Index != 14 {
		t.Fatalf("After(12, 2, 2) = %v %v %v", es, more, ok)
	}
	if es, more, ok := l.After(10, 1, 0); !ok || more || len(es) != 5 {
		t.Fatalf("After(base) = %d entries, more %v, ok %v", len(es), more, ok)
	}
	if _, _, ok := l.After(12, 1, 0); ok {
		t.Fatal("After with the wrong epoch at 12 must not be ok")
	}
	if _, _, ok := l.After(9, 1, 0); ok {
		t.Fatal("After below the base must not be ok")
	}
	if es, more, ok := l.After(15, 2, 0); !ok || more || len(es) != 0 {
		t.Fatalf("After(last) = %v %v %v", es, more, ok)
	}
}

func TestPositionAfter(t *testing.T) {
	cases := []struct {
		p, q Position
		want bool
	}{
		{Position{LastIndex: 5, LastEpoch: 3}, Position{LastIndex: 9, LastEpoch: 2}, true},
		{Position{LastIndex: 9, LastEpoch: 2}, Position{LastIndex: 5, LastEpoch: 3}, false},
		{Position{LastIndex: 6, LastEpoch: 3}, Position{LastIndex: 5, LastEpoch: 3}, true},
		{Position{LastIndex: 5, LastEpoch: 3}, Position{LastIndex: 5, LastEpoch: 3}, false},
	}
	for _, c := range cases {
		if got := c.p.After(c.q); got != c.want {
			t.Errorf("%+v.After(%+v) = %v", c.p, c.q, got)
		}
	}
}

func TestFollowerUnsafeDisableFencing(t *testing.T) {
	st, err := kvstore.New(kvstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	f, err := NewFollower(FollowerConfig{Store: st, Epoch: 9, UnsafeDisableFencing: true,
		CheckLeader: func(string, int64) error { return ErrNotLeader }})
	if err != nil {
		t.Fatal(err)
	}
	// Epoch 2 is below the fence and the sender check refuses everyone: both are off.
	mustAppend(t, f, appendReq(2, 0, 0, entries(1, 1, 2)), 1)
}
