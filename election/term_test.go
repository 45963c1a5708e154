package election

import (
	"testing"
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
