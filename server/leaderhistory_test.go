package server

import (
	"testing"
	"time"

	"github.com/zkv-dev/zkv/election"
)

func view(node, addr string, epoch int64) election.View {
	return election.View{Connected: true, Epoch: epoch, Leader: election.Member{ID: addr, Address: addr, Node: node}}
}

func TestLeaderHistory(t *testing.T) {
	t0 := time.Unix(1000, 0)
	h := newLeaderHistory(t0)
	h.observe(election.View{Connected: true}, time.Time{}, t0.Add(time.Second))
	h.observe(view("n1", "a:1", 10), time.Time{}, t0.Add(3*time.Second))
	h.observe(view("n1", "a:1", 10), time.Time{}, t0.Add(4*time.Second)) // same leader: no change
	// The view loses its leader, then names the next one.
	h.observe(election.View{Connected: true, Epoch: 10}, t0.Add(4*time.Second), t0.Add(5*time.Second))
	h.observe(view("n2", "b:1", 20), t0.Add(4*time.Second), t0.Add(5500*time.Millisecond))
	// Straight from b to c: counted from the last contact with b.
	h.observe(view("n3", "c:1", 30), t0.Add(7*time.Second), t0.Add(9*time.Second))
	// Straight from c to a with no contact during c's term: no gap seen.
	h.observe(view("n4", "a:1", 40), t0.Add(7*time.Second), t0.Add(10*time.Second))

	got := h.list()
	want := []struct {
		from, to string
		epoch    int64
		without  int64
	}{{"", "a:1", 10, 3000}, {"a:1", "b:1", 20, 500}, {"b:1", "c:1", 30, 2000}, {"c:1", "a:1", 40, 0}}
	if len(got) != len(want) {
		t.Fatalf("%d changes, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		g := got[i]
		if g.From.Address != w.from || g.To.Address != w.to || g.Epoch != w.epoch || g.WithoutLeaderMS != w.without {
			t.Errorf("change %d: %+v, want %+v", i, g, w)
		}
	}
	for i := range 2 * leaderHistoryLen {
		h.observe(view("m", "x:1", int64(100+i)), time.Time{}, t0.Add(time.Minute))
	}
	if got := h.list(); len(got) != leaderHistoryLen || got[len(got)-1].Epoch != int64(100+2*leaderHistoryLen-1) {
		t.Fatalf("bounded history: %d changes, last %+v", len(got), got[len(got)-1])
	}
}
