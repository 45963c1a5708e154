package replication

import (
	"context"
	"testing"
	"time"

	"github.com/zkv-dev/zkv/kvstore"
)

// gatedTransport holds the answer to the append of the batch starting at index answerAt
// until answerOpen closes, and the append of the batch starting at sendAt until sendOpen
// closes.
type gatedTransport struct {
	Transport
	answerAt, sendAt     uint64
	answerOpen, sendOpen chan struct{}
	answering            chan struct{} // closed when the batch starting at answerAt is sent
}

func (g *gatedTransport) Append(ctx context.Context, replica string, req AppendRequest) (AppendResponse, error) {
	first := uint64(0)
	if len(req.Entries) > 0 {
		first = req.Entries[0].Index
	}
	if first == g.sendAt {
		select {
		case <-g.sendOpen:
		case <-ctx.Done():
			return AppendResponse{}, ctx.Err()
		}
	}
	resp, err := g.Transport.Append(ctx, replica, req)
	if first == g.answerAt {
		close(g.answering)
		<-g.answerOpen
	}
	return resp, err
}

// Under AckAll a write waits for the replicas to apply it, which they do once told it
// committed. The commit notice tells them while the worker's next append is still in
// flight: here that append (entry 3) is held, and entry 2 still gets applied on the
// replica and acknowledged.
func TestCommitNoticeWhileAppendInFlight(t *testing.T) {
	tr := NewInmemTransport(0)
	r := newMemReplica(t, tr, "r1", FollowerConfig{Incarnation: "one"}) // notices go only to a named incarnation
	st, err := kvstore.New(kvstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	lg := newLog(t, LogConfig{})
	g := &gatedTransport{Transport: tr, answerAt: 2, sendAt: 3, answerOpen: make(chan struct{}), sendOpen: make(chan struct{}), answering: make(chan struct{})}
	fan, err := NewFanout(Config{Self: "leader:1", Epoch: 1, Log: lg, Snapshot: st.Snapshot, Mode: AckAll,
		HeartbeatInterval: -1, Peers: g, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer fan.Close()
	defer close(g.sendOpen)
	fan.SetReplicas([]string{"r1"})
	put := func(i uint64) {
		e := kvstore.Entry{Key: "k", Value: "v", Version: i, Index: i, Epoch: 1}
		if err := lg.Append(e); err != nil {
			t.Fatal(err)
		}
		fan.Enqueue(e)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	put(1)
	if _, err := fan.Wait(ctx, 1, AckAll); err != nil {
		t.Fatal(err)
	}
	put(2)
	<-g.answering // entry 2's batch is on its way, alone
	put(3)        // enqueued before its answer: the worker sends entry 3 next
	close(g.answerOpen)
	if _, err := fan.Wait(ctx, 2, AckAll); err != nil {
		t.Fatalf("entry 2 while entry 3's append is held: %v", err)
	}
	if i, _ := r.store.Last(); i != 2 {
		t.Fatalf("replica applied up to %d, want 2", i)
	}
}
