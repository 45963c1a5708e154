package replication

import (
	"context"
	"errors"
	"testing"
	"time"
)

// A change releases exactly the blocked Waits whose condition now holds, in one pass, and
// leaves the others queued; a cancelled Wait leaves its queue; Close releases the rest.
func TestWaitReleasesOnlyReadyWaiters(t *testing.T) {
	l := newTestLeader(t, Config{Mode: AckLeader}, LogConfig{})
	f := l.fan
	const n = 50
	type result struct {
		index uint64
		err   error
	}
	done := make(chan result, n)
	for i := uint64(1); i <= n; i++ {
		go func() {
			_, err := f.Wait(context.Background(), i, AckLeader)
			done <- result{i, err}
		}()
	}
	queued := func() int {
		f.mu.Lock()
		defer f.mu.Unlock()
		return len(f.waits[kindWait][AckLeader].ws)
	}
	deadline := time.Now().Add(10 * time.Second)
	for queued() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d Waits queued", queued(), n)
		}
		time.Sleep(time.Millisecond)
	}
	// With no replica, a Wait under AckLeader holds once the leader applied its index.
	f.mu.Lock()
	f.applied = 20
	f.broadcast()
	f.mu.Unlock()
	for range 20 {
		r := <-done
		if r.err != nil || r.index > 20 {
			t.Fatalf("Wait(%d) = %v after applying up to 20", r.index, r.err)
		}
	}
	if q := queued(); q != n-20 {
		t.Fatalf("%d Waits still queued, want %d", q, n-20)
	}
	select {
	case r := <-done:
		t.Fatalf("Wait(%d) returned (%v) before its index applied", r.index, r.err)
	case <-time.After(50 * time.Millisecond):
	}

	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { _, err := f.Wait(ctx, 1000, AckLeader); errc <- err }()
	for queued() < n-20+1 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Wait: %v", err)
	}
	if q := queued(); q != n-20 {
		t.Fatalf("a cancelled Wait stayed queued: %d, want %d", q, n-20)
	}

	f.Close()
	for range n - 20 {
		if r := <-done; !errors.Is(r.err, ErrClosed) {
			t.Fatalf("Wait(%d) across Close: %v", r.index, r.err)
		}
	}
	if q := queued(); q != 0 {
		t.Fatalf("%d Waits queued after Close", q)
	}
}

// Under AckAll with LagMax, a replica outside the in-sync set that the leader has added but
// not heard from yet (a new leader's first writes, a server that just restarted) holds a
// write up, from when it was added and for at most LagMax, as one that answered would.
func TestWaitCountsAReplicaNotHeardFromYet(t *testing.T) {
	tr := NewInmemTransport(5 * time.Second)
	r1 := newMemReplica(t, tr, "r1", FollowerConfig{Incarnation: "r1"})
	l := newMemLeader(t, tr, Config{LagMax: 3 * time.Second, HeartbeatInterval: -1}, LogConfig{})
	l.fan.SetInSync([]string{}) // the leader alone: r1 is outside the set
	tr.Hold("r1")
	l.fan.SetReplicas([]string{"r1"})
	e := l.put(t, "k", "v")
	done := make(chan error, 1)
	go func() { _, err := l.fan.Wait(context.Background(), e.Index, AckAll); done <- err }()
	select {
	case err := <-done:
		t.Fatalf("Wait(all) returned (%v) before the replica it has not heard from applied the write", err)
	case <-time.After(200 * time.Millisecond):
	}
	for tr.Held("r1") == 0 {
		time.Sleep(time.Millisecond)
	}
	tr.Release("r1")
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Wait(all) still blocked after the replica answered")
	}
	if got, ok := r1.store.Get("k"); !ok || got.Value != "v" {
		t.Fatalf("replica holds %+v, %v after Wait(all)", got, ok)
	}
}

// ... and for at most LagMax: a replica outside the in-sync set that stays silent (no
// answer, no error) releases the write once LagMax has passed, on the Fanout's lag tick
// (this Wait blocks with no ack to come, so nothing else would wake it).
func TestWaitPassesASilentReplicaAfterLagMax(t *testing.T) {
	tr := NewInmemTransport(5 * time.Second)
	newMemReplica(t, tr, "r1", FollowerConfig{Incarnation: "r1"})
	const lagMax = 400 * time.Millisecond
	l := newMemLeader(t, tr, Config{LagMax: lagMax, HeartbeatInterval: -1}, LogConfig{})
	l.fan.SetInSync([]string{}) // the leader alone: r1 is outside the set
	tr.Hold("r1")
	defer tr.Release("r1")
	l.fan.SetReplicas([]string{"r1"})
	e := l.put(t, "k", "v")
	start := time.Now()
	done := make(chan error, 1)
	go func() { _, err := l.fan.Wait(context.Background(), e.Index, AckAll); done <- err }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took < lagMax/2 {
			t.Fatalf("Wait(all) passed the silent replica after %v, before LagMax %v", took, lagMax)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("Wait(all) still blocked %v after LagMax %v passed", 10*time.Second, lagMax)
	}
}
