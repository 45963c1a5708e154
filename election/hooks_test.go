package election

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zkv-dev/zkv/zk"
)

// hookRecord keeps what a candidate's Hooks were told.
type hookRecord struct {
	mu     sync.Mutex
	events []string
	waits  []time.Duration
	errs   []string
}

func (r *hookRecord) hooks() Hooks {
	return Hooks{
		Leadership: func(leading bool, epoch int64) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.events = append(r.events, fmt.Sprintf("leading=%v", leading))
		},
		Elected: func(wait time.Duration) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.waits = append(r.waits, wait)
		},
		Error: func(step string, err error) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.errs = append(r.errs, step+": "+err.Error())
		},
	}
}

func (r *hookRecord) snapshot() ([]string, []time.Duration, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events), slices.Clone(r.waits), slices.Clone(r.errs)
}

func TestHooksReportTransitionsWaitsAndErrors(t *testing.T) {
	srv := newFakeServer()
	a := newMember(t, srv, "a")
	if err := a.c.Join(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	var rec hookRecord
	b := newMemberWith(t, srv, "b", func(cfg *Config) { cfg.Hooks = rec.hooks() })
	b.conn.failCreate = zk.ErrConnectionClosed // transient: retried, and told to Error
	if err := b.c.Join(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	waitLeader(t, a, a, b)
	time.Sleep(20 * time.Millisecond) // b waits a while for its turn
	if err := a.c.Resign(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	waitLeader(t, b, b)
	if err := b.c.Resign(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	events, waits, errs := rec.snapshot()
	if want := []string{"leading=true", "leading=false"}; !slices.Equal(events, want) {
		t.Errorf("Leadership calls %v, want %v", events, want)
	}
	if len(waits) != 1 || waits[0] < 20*time.Millisecond || waits[0] > waitLimit {
		t.Errorf("Elected waits %v, want one of at least 20ms (since Join)", waits)
	}
	if len(errs) != 1 || !strings.HasPrefix(errs[0], "register: ") || !strings.Contains(errs[0], zk.ErrConnectionClosed.Error()) {
		t.Errorf("Error calls %q, want one for the failed register", errs)
	}
}
