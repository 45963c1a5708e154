package replication

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zkv-dev/zkv/kvstore"
)

// pipelineReplica is a streamReplica whose Follower names its incarnation (as every server
// does; the pipeline needs it) and whose appends can be slowed down or made to fail.
type pipelineReplica struct {
	*streamReplica
	slow   atomic.Int64 // nanoseconds each append waits before it is served
	failAt atomic.Int64 // the append with this sequence number (1-based) fails; 0: none
	seq    atomic.Int64
}

func (r *pipelineReplica) Append(ctx context.Context, req AppendRequest) (AppendResponse, error) {
	n := r.seq.Add(1)
	if d := time.Duration(r.slow.Load()); d > 0 {
		time.Sleep(d)
	}
	if n == r.failAt.Load() {
		return AppendResponse{}, errors.New("injected failure")
	}
	return r.streamReplica.Append(ctx, req)
}

func newPipelineReplica(t *testing.T, token, name string) *pipelineReplica {
	t.Helper()
	r := &pipelineReplica{streamReplica: newStreamReplica(t, token, true, false)}
	var err error
	r.f, err = NewFollower(FollowerConfig{Store: r.store, Log: newLog(t, LogConfig{}), Logger: testLogger(t), Incarnation: name})
	if err != nil {
		t.Fatal(err)
	}
	r.ss.Handler = r
	return r
}

// With a slow replica and writes arriving all the time, the worker keeps several appends
// in flight on the stream (never more than MaxInFlight), and every replica ends equal to
// the leader.
func TestPipelineKeepsSeveralAppendsInFlight(t *testing.T) {
	const token = "s3cret"
	r1, r2 := newPipelineReplica(t, token, "r1"), newPipelineReplica(t, token, "r2")
	r1.slow.Store(int64(5 * time.Millisecond))
	l := newTestLeader(t, Config{Token: token, Mode: AckAll, HeartbeatInterval: -1, MaxInFlight: 3, MinPipelinedBatch: 1}, LogConfig{})
	l.fan.SetReplicas([]string{r1.srv.URL, r2.srv.URL})
	for i := range 300 {
		l.put(t, fmt.Sprintf("k%d", i), "v")
		if i%10 == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	want := l.lastIndex()
	for _, r := range []*pipelineReplica{r1, r2} {
		eventually(t, "replica applies every write", func() bool { i, _ := r.store.Last(); return i == want })
		if r.store.Hash() != l.store.Hash() {
			t.Fatalf("replica %s differs from the leader", r.srv.URL)
		}
	}
	peak := 0
	for _, st := range l.fan.Stats() {
		if st.PeakInFlight > 3 {
			t.Fatalf("%s: %d appends in flight, MaxInFlight is 3", st.Addr, st.PeakInFlight)
		}
		peak = max(peak, st.PeakInFlight)
	}
	if peak < 2 {
		t.Fatalf("at most %d append in flight to any replica: no pipelining", peak)
	}
}

// An append that fails in the middle of a pipeline makes the replica refuse the ones sent
// after it (their previous position is past its log); it drops nothing for them, the
// worker resumes from where the replica stands, and every write arrives once.
func TestPipelineRecoversFromAFailedAppend(t *testing.T) {
	const token = "s3cret"
	r1 := newPipelineReplica(t, token, "r1")
	r1.slow.Store(int64(2 * time.Millisecond))
	l := newTestLeader(t, Config{Token: token, Mode: AckAll, HeartbeatInterval: -1, MaxInFlight: 4, MinPipelinedBatch: 1}, LogConfig{})
	l.fan.SetReplicas([]string{r1.srv.URL})
	l.put(t, "warm", "up")
	eventually(t, "replica takes the first write", func() bool { i, _ := r1.store.Last(); return i == l.lastIndex() })
	r1.failAt.Store(r1.seq.Load() + 3)
	for i := range 200 {
		l.put(t, fmt.Sprintf("k%d", i), "v")
		if i%5 == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	want := l.lastIndex()
	eventually(t, "replica applies every write", func() bool { i, _ := r1.store.Last(); return i == want })
	if r1.store.Hash() != l.store.Hash() {
		t.Fatal("replica differs from the leader")
	}
	if r1.seq.Load() < r1.failAt.Load() {
		t.Fatalf("the injected failure (append %d) never happened: %d appends", r1.failAt.Load(), r1.seq.Load())
	}
	if st := l.fan.Stats(); st[0].Snapshots != 0 {
		t.Fatalf("the replica needed %d snapshots; it should resume from its log", st[0].Snapshots)
	}
}

// An append past the end of the log (one before it never arrived) is refused without
// dropping the log's tail: entries this leader may have counted stay. The answer names
// the applied position, where the leader resumes.
func TestFollowerGapKeepsItsTail(t *testing.T) {
	st, err := kvstore.New(kvstore.Config{Shards: 4})
	if err != nil {
		t.Fatal(err)
	}
	log := newLog(t, LogConfig{})
	f, err := NewFollower(FollowerConfig{Store: st, Log: log, Logger: testLogger(t), Incarnation: "f"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	entry := func(i uint64) kvstore.Entry {
		return kvstore.Entry{Key: fmt.Sprintf("k%d", i), Value: "v", Version: 1, Index: i, Epoch: 1}
	}
	// Base at 0, then entries 1-4 of which 1-2 are committed (applied).
	if _, err := f.Append(ctx, AppendRequest{Epoch: 1, Leader: "l", Entries: []kvstore.Entry{}}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Append(ctx, AppendRequest{Epoch: 1, Leader: "l", Entries: []kvstore.Entry{entry(1), entry(2), entry(3), entry(4)}, Commit: 2}); err != nil {
		t.Fatal(err)
	}
	// Entries 5-6 were lost on the way; 7-8 arrive.
	_, err = f.Append(ctx, AppendRequest{Epoch: 1, Leader: "l", PrevIndex: 6, PrevEpoch: 1, Entries: []kvstore.Entry{entry(7), entry(8)}, Commit: 2})
	var mismatch *LogMismatchError
	if !errors.As(err, &mismatch) {
		t.Fatalf("append past the end: %v, want a log mismatch", err)
	}
	if mismatch.LastIndex != 2 || mismatch.LastEpoch != 1 {
		t.Fatalf("mismatch names %d/%d, want the applied position 2/1", mismatch.LastIndex, mismatch.LastEpoch)
	}
	if last, _ := log.Last(); last != 4 {
		t.Fatalf("the log ends at %d after the gap, want 4: its tail was dropped", last)
	}
	// The leader resumes from the applied position: the tail it sends again agrees.
	resp, err := f.Append(ctx, AppendRequest{Epoch: 1, Leader: "l", PrevIndex: 2, PrevEpoch: 1,
		Entries: []kvstore.Entry{entry(3), entry(4), entry(5), entry(6), entry(7), entry(8)}, Commit: 8})
	if err != nil || resp.LastIndex != 8 {
		t.Fatalf("resumed append = %+v, %v", resp, err)
	}
	if i, _ := st.Last(); i != 8 {
		t.Fatalf("store at %d, want 8", i)
	}
}
