package election

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
)

// Candidates that all use Run take turns: each term runs alone, and each fn that returns
// while leading hands the leadership to the next in line, and queues behind it.
func TestRunRotatesLeadership(t *testing.T) {
	srv := newFakeServer()
	ms := joinAll(t, srv, "a", "b") // joined in this order: a's term comes first
	ctx, cancel := context.WithCancel(ctxT(t))
	defer cancel()
	var (
		running atomic.Int32
		mu      sync.Mutex
		terms   []string
		epochs  []int64
	)
	errs := make(chan error, len(ms))
	for _, m := range ms {
		go func() {
			errs <- m.c.Run(ctx, func(tctx context.Context, term Term) error {
				if running.Add(1) != 1 {
					t.Error("two terms at once")
				}
				defer running.Add(-1)
				// Hold the term until the other has queued again: Run guarantees no
				// order between one's Resign-and-rejoin and the other's rejoin.
				waitFor(t, "both queued", func() bool { return len(srv.children("/election")) == 2 })
				mu.Lock()
				defer mu.Unlock()
				terms = append(terms, m.c.cfg.ID)
				epochs = append(epochs, term.Epoch)
				if len(terms) == 4 {
					cancel()
				}
				return nil
			})
		}()
	}
	for range ms {
		if err := <-errs; !errors.Is(err, context.Canceled) {
			t.Errorf("Run: %v", err)
		}
	}
	if got := srv.children("/election"); len(got) != 0 {
		t.Errorf("nodes left after Run: %v", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"a", "b", "a", "b"}; len(terms) < 4 || !slices.Equal(terms[:4], want) {
		t.Fatalf("terms %v, want %v", terms, want)
	}
	for i := 1; i < len(epochs); i++ {
		if epochs[i] <= epochs[i-1] {
			t.Fatalf("epochs %v do not grow", epochs)
		}
	}
}

// A lost leadership cancels fn's ctx; Run queues on and fn runs again in a later term.
func TestRunSurvivesLostLeadership(t *testing.T) {
	srv := newFakeServer()
	m := newMember(t, srv, "a")
	ctx, cancel := context.WithCancel(ctxT(t))
	defer cancel()
	terms := make(chan Term, 2)
	done := make(chan error, 1)
	go func() {
		done <- m.c.Run(ctx, func(tctx context.Context, term Term) error {
			terms <- term
			<-tctx.Done()
			return tctx.Err()
		})
	}()
	first := <-terms
	srv.remove(first.Node) // an operator deletes the leader's node: the term ends
	second := <-terms
	if second.Epoch <= first.Epoch || second.Node == first.Node {
		t.Fatalf("second term %+v after %+v", second, first)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run: %v", err)
	}
}

// An error from fn while leading ends Run with it, and the candidate leaves the election.
func TestRunReturnsLeaderError(t *testing.T) {
	srv := newFakeServer()
	ms := joinAll(t, srv, "a", "b")
	boom := errors.New("boom")
	err := ms[0].c.Run(ctxT(t), func(context.Context, Term) error { return boom })
	if !errors.Is(err, boom) {
		t.Fatalf("Run: %v", err)
	}
	waitLeader(t, ms[1], ms[1])
	if v := ms[0].c.View(); v.Self.Node != "" {
		t.Fatalf("a still registered: %+v", v.Self)
	}
}
