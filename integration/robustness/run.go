package robustness

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// Result is one test's figures, as the report shows them.
type Result struct {
	Name, Fault    string
	Ack            string
	Counts         Counts
	Lost           int
	Linearizable   porcupine.CheckResult
	Violations     []Violation
	Epochs         EpochReport
	Failover       []time.Duration // fault -> first write acknowledged by a newer epoch
	CatchUp        []time.Duration // heal -> the cut-off server caught up
	Converge       time.Duration   // quiet -> every live server holds the leader's content
	Notes          []string
	Elapsed        time.Duration
	Skipped        string
	ExpectViolated bool // a negative test: the checkers must flag something
}

// Violated counts violations by invariant.
func (r *Result) Violated() map[string]int {
	m := map[string]int{}
	for _, v := range r.Violations {
		m[v.Invariant]++
	}
	return m
}

// Note adds a line to the report.
func (r *Result) Note(format string, args ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

// fault is an instant at which a leader was taken away, for the failover time.
type fault struct {
	at    time.Duration
	epoch int64 // the deposed leader's epoch
}

// Run is one scenario in progress: what Inject sees.
type Run struct {
	T       testing.TB
	C       *Cluster
	H       *History
	R       *Result
	Traffic Traffic
	faults  []fault
}

// LeaderGone marks now as the moment the leader with epoch was killed or paused.
func (r *Run) LeaderGone(epoch int64) { r.faults = append(r.faults, fault{r.H.Now(), epoch}) }

// Sleep waits d or until ctx ends.
func Sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// Scenario is one robustness test: a cluster, traffic, one kind of fault.
type Scenario struct {
	Name, Fault string
	Cluster     Config
	Traffic     Traffic
	MaxTime     time.Duration // the traffic's bound; default 30s
	Tail        time.Duration // traffic after Inject returns; default 2s
	// Inject runs alongside the traffic; it injects its fault and heals it before returning.
	Inject func(ctx context.Context, r *Run) error
	// Expect, when set, replaces the default assertion (no violations).
	Expect func(t testing.TB, r *Result)
}

// Execute runs s on a fresh cluster of env and checks the history.
func (s Scenario) Execute(t *testing.T, env *Env) *Result {
	res := &Result{Name: s.Name, Fault: s.Fault, Ack: s.Cluster.Ack}
	if res.Ack == "" {
		res.Ack = "all"
	}
	start := time.Now()
	defer func() {
		res.Elapsed = time.Since(start)
		if t.Skipped() {
			res.Skipped = "no server binary or ZooKeeper"
		}
		env.Record(res)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := env.Cluster(t, s.Cluster)
	if s.MaxTime == 0 {
		s.MaxTime = 30 * time.Second
	}
	if s.Tail == 0 {
		s.Tail = 2 * time.Second
	}
	h := NewHistory()
	run := &Run{T: t, C: c, H: h, R: res, Traffic: s.Traffic.withDefaults()}
	tctx, stop := context.WithTimeout(ctx, s.MaxTime)
	wctx, stopWatchers := context.WithCancel(ctx)
	defer stopWatchers()
	watchers := startWatchers(wctx, c)
	done := make(chan struct{})
	go func() { defer close(done); run.Traffic.Run(tctx, c, h) }()
	Sleep(ctx, time.Second) // traffic before the fault
	if s.Inject != nil {
		if err := s.Inject(tctx, run); err != nil {
			t.Errorf("inject: %v", err)
		}
	} else {
		Sleep(tctx, s.MaxTime)
	}
	Sleep(tctx, s.Tail)
	stop()
	<-done

	// Heal everything, then quiesce: final leader reads and convergence.
	c.Links.Heal()
	for _, srv := range c.Servers {
		if srv.Running() {
			_ = srv.Resume()
		}
	}
	quiet := time.Now()
	leader, err := c.Leader(ctx)
	if err != nil {
		t.Fatalf("after healing: %v", err)
	}
	if err := c.Ready(ctx); err != nil {
		t.Errorf("after healing: %v", err)
	}
	final := finalReads(ctx, t, c, leader, h, run.Traffic)
	res.Converge = converge(ctx, c, final, run.Traffic, res)
	checkWatchers(ctx, watchers, res)
	stopWatchers()
	res.Note("leader after healing: server %d, found %v after quiet", leader.Index, time.Since(quiet).Round(time.Millisecond))

	ops := h.Ops()
	res.Counts = Count(ops)
	check(ops, final, res)
	res.Failover = failovers(ops, run.faults)
	report(t, res)
	if s.Expect != nil {
		s.Expect(t, res)
	} else if len(res.Violations) > 0 {
		t.Errorf("%d invariant violations", len(res.Violations))
	}
	if res.Counts.Acked == 0 {
		t.Errorf("no write acknowledged at all")
	}
	return res
}

// finalReads reads every key from the leader, retrying, and records the reads in h.
func finalReads(ctx context.Context, t testing.TB, c *Cluster, leader *Server, h *History, tr Traffic) map[string]Op {
	cl := NewClient(tr.Clients, h, 2*time.Second)
	defer cl.Close()
	final := map[string]Op{}
	for i := 0; i < tr.Keys; i++ {
		k := KeyName(i)
		for attempt := 0; ; attempt++ {
			op := cl.Get(ctx, leader, k, true)
			if op.Outcome == OK {
				final[k] = op
				break
			}
			if attempt == 50 || ctx.Err() != nil {
				t.Errorf("final read of %s from the leader: status %d %s", k, op.Status, op.Err)
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return final
}

// converge polls every running server's own copy until it holds final; it returns how long that
// took, or records a violation after 15s.
func converge(ctx context.Context, c *Cluster, final map[string]Op, tr Traffic, res *Result) time.Duration {
	h := NewHistory() // these reads are not part of the checked history
	cl := NewClient(-1, h, time.Second)
	defer cl.Close()
	start := time.Now()
	deadline := start.Add(15 * time.Second)
	for {
		var diff []string
		for _, s := range c.Servers {
			if !s.Running() {
				continue
			}
			for i := 0; i < tr.Keys; i++ {
				k := KeyName(i)
				op := cl.Get(ctx, s, k, false)
				f := final[k]
				if op.Outcome != OK || op.Found != f.Found || op.Value != f.Value || op.Version != f.Version {
					diff = append(diff, fmt.Sprintf("server %d %s: has %q v%d (status %d), leader %q v%d", s.Index, k, op.Value, op.Version, op.Status, f.Value, f.Version))
				}
			}
		}
		if len(diff) == 0 {
			return time.Since(start)
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			for _, d := range diff {
				res.Violations = append(res.Violations, Violation{InvDivergence, d})
			}
			return time.Since(start)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// check runs every checker over ops.
func check(ops []Op, final map[string]Op, res *Result) {
	lin, _ := Linearizable(ops, time.Minute)
	res.Linearizable = lin
	if lin == porcupine.Illegal {
		res.Violations = append(res.Violations, Violation{InvLinearizable, "porcupine found no linearization of the leader path"})
	}
	lost, vs := LostWrites(ops, final)
	res.Lost = lost
	res.Violations = append(res.Violations, vs...)
	res.Violations = append(res.Violations, StaleReads(ops)...)
	res.Violations = append(res.Violations, DoubleApplies(ops)...)
	res.Violations = append(res.Violations, Regressions(ops)...)
	ep, vs := Epochs(ops)
	res.Epochs = ep
	res.Violations = append(res.Violations, vs...)
}

// failovers: per fault, the time until a write was acknowledged under a newer epoch.
func failovers(ops []Op, faults []fault) []time.Duration {
	var out []time.Duration
	for _, f := range faults {
		best := time.Duration(-1)
		for _, op := range ops {
			if op.Kind == Put && op.Outcome == OK && op.Epoch > f.epoch && op.Return > f.at {
				if d := op.Return - f.at; best < 0 || d < best {
					best = d
				}
			}
		}
		out = append(out, best)
	}
	return out
}

func report(t testing.TB, r *Result) {
	c := r.Counts
	t.Logf("%s: %d ops; writes %d acknowledged, %d uncertain, %d failed; reads %d/%d ok; lost %d; linearizable %s; epochs %d; failover %v; catch-up %v; converged in %v",
		r.Name, c.Ops, c.Acked, c.Unknown, c.Failed, c.ReadsOK, c.Reads, r.Lost, r.Linearizable, r.Epochs.Epochs, r.Failover, r.CatchUp, r.Converge.Round(time.Millisecond))
	for _, n := range r.Notes {
		t.Logf("note: %s", n)
	}
	byInv := r.Violated()
	invs := make([]string, 0, len(byInv))
	for k := range byInv {
		invs = append(invs, k)
	}
	sort.Strings(invs)
	for _, inv := range invs {
		t.Logf("violated %q %d times", inv, byInv[inv])
	}
	for _, v := range Examples(r.Violations, 3) {
		t.Logf("violation: %v", v)
	}
}

// Examples keeps at most n violations of each invariant.
func Examples(vs []Violation, n int) []Violation {
	seen := map[string]int{}
	var out []Violation
	for _, v := range vs {
		if seen[v.Invariant]++; seen[v.Invariant] <= n {
			out = append(out, v)
		}
	}
	return out
}
