package election

import (
	"sync"
	"testing"
	"time"
)

func TestCampaignDescribesLeadership(t *testing.T) {
	srv := newFakeServer()
	ms := joinAll(t, srv, "a", "b")
	term, err := ms[0].c.Campaign(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	v := ms[0].c.View()
	if term.Node != v.Self.Node || term.Epoch != v.Epoch || term.Epoch == 0 {
		t.Fatalf("term %+v, view %+v", term, v)
	}
	if lctx, _ := ms[0].c.Leading(); lctx != term.Ctx || term.Ctx.Err() != nil {
		t.Fatal("the term's ctx is not the live leadership's")
	}
	if err := ms[0].c.Resign(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if term.Ctx.Err() == nil {
		t.Fatal("the term's ctx outlived the leadership")
	}
	next, err := ms[1].c.Campaign(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if next.Epoch <= term.Epoch {
		t.Fatalf("epoch %d after %d", next.Epoch, term.Epoch)
	}
}

// TestSuccessorLeadsOnTheDeleteEvent: the candidate next in line, told that its
// predecessor (the leader) is gone, leads at once, before any further ZooKeeper call (the
// listing and the read of its own node that verify the claim come after): a hand-over
// costs the delete and the watch event, two one-way delays, no more. The claim is then
// verified, and the epoch is its node's czxid as always.
func TestSuccessorLeadsOnTheDeleteEvent(t *testing.T) {
	srv := newFakeServer()
	a := newMember(t, srv, "a")
	if _, err := a.c.Campaign(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	var (
		mu        sync.Mutex
		opsAtLead = -1
		b         member
	)
	b = newMemberWith(t, srv, "b", func(cfg *Config) {
		cfg.Hooks.Leadership = func(leading bool, _ int64) {
			if leading {
				mu.Lock()
				opsAtLead = b.conn.opCount()
				mu.Unlock()
			}
		}
	})
	if err := b.c.Join(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	waitLeader(t, a, a, b)
	// b's follow pass is done once its view names a and nothing more is in flight.
	waitFor(t, "b to settle", func() bool {
		before := b.conn.opCount()
		time.Sleep(20 * time.Millisecond)
		return b.conn.opCount() == before && b.c.View().Leader.ID == "a"
	})
	base := b.conn.opCount()
	if err := a.c.Resign(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	term, err := b.c.Campaign(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	ops := opsAtLead - base
	mu.Unlock()
	if ops != 0 {
		t.Fatalf("b made %d ZooKeeper calls between the leader's delete and leading; want 0", ops)
	}
	_, stat, err := b.conn.Exists(term.Node)
	if err != nil || stat.Czxid != term.Epoch {
		t.Fatalf("epoch %d, node czxid %v (%v)", term.Epoch, stat, err)
	}
	waitLeader(t, b, b) // verified: still the leader after the listing
}
