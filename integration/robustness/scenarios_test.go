package robustness

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"
)

// skip records a skipped test in the report and skips it.
func skip(t *testing.T, name, fault, reason string) {
	env.Record(&Result{Name: name, Fault: fault, Ack: "all", Skipped: reason})
	t.Skip(reason)
}

const session = 1500 * time.Millisecond // the servers' -session_timeout

func TestBaseline(t *testing.T) {
	Scenario{Name: "baseline", Fault: "none", MaxTime: 8 * time.Second}.Execute(t, env)
}

// killLeader kills the leader every few seconds and restarts it (empty) a second later.
func killLeader(ctx context.Context, r *Run) error {
	for i := 0; i < 3 && ctx.Err() == nil; i++ {
		Sleep(ctx, 2*time.Second)
		l, err := r.C.Leader(ctx)
		if err != nil {
			return err
		}
		// every kill starts from a whole cluster: the last restarted server has caught up
		if err := r.C.Ready(ctx); err != nil {
			return err
		}
		st, err := r.C.Status(ctx, l)
		if err != nil {
			return err
		}
		r.LeaderGone(st.Epoch)
		if err := l.Kill(); err != nil {
			return err
		}
		Sleep(ctx, time.Second)
		if err := l.Restart(context.WithoutCancel(ctx)); err != nil {
			return err
		}
	}
	return nil
}

func TestLeaderKill(t *testing.T) {
	for _, ack := range []string{"all", "majority"} {
		t.Run("ack="+ack, func(t *testing.T) {
			// Three kills in a row are three crashes: a server restarted empty never rejoins the
			// in-sync set, so after two of them the data would live on one server and the third
			// would lose it (an unclean leadership, by design). Restarted servers copy the
			// leader's store (-sync_on_join) so that each kill is a single fault;
			// replica-crash covers a restart that starts empty.
			Scenario{Name: "leader-kill/ack=" + ack, Fault: "SIGKILL the leader 3 times, restart it (-sync_on_join) 1s later",
				Cluster: Config{Ack: ack, Env: []string{"ZKV_SYNC_ON_JOIN=true"}}, Inject: killLeader, Tail: 3 * time.Second}.Execute(t, env)
		})
	}
}

// pauseLeader stops the leader past its session, then lets it run again; twice.
func pauseLeader(ctx context.Context, r *Run) error {
	return pauseLeaderUntil(ctx, r, 2, 3*time.Second, nil)
}

// pauseLeaderUntil pauses the leader for session+1.5s (a newer leader is elected and takes
// writes meanwhile), resumes it, lets the cluster settle for settle; up to n times, stopping
// early once done (when given) says so.
func pauseLeaderUntil(ctx context.Context, r *Run, n int, settle time.Duration, done func() bool) error {
	for i := 0; i < n && ctx.Err() == nil; i++ {
		l, err := r.C.Leader(ctx)
		if err != nil {
			return err
		}
		if err := r.C.Ready(ctx); err != nil { // the last paused leader is back as a follower
			return err
		}
		st, err := r.C.Status(ctx, l)
		if err != nil {
			return err
		}
		if err := l.Pause(); err != nil {
			return err
		}
		r.LeaderGone(st.Epoch)
		Sleep(ctx, session+1500*time.Millisecond)
		if err := l.Resume(); err != nil {
			return err
		}
		Sleep(ctx, settle)
		if done != nil && done() {
			r.R.Note("pause %d of at most %d: a write was acknowledged under the deposed leader's epoch; stopped there", i+1, n)
			break
		}
	}
	return nil
}

func TestLeaderPause(t *testing.T) {
	fault := "SIGSTOP the leader for session+1.5s, then SIGCONT; twice"
	Scenario{Name: "leader-pause", Fault: fault, Inject: pauseLeader}.Execute(t, env)
}

// TestLeaderPauseFencingOff shows that the checkers catch a deposed leader when the replicas do
// not fence it (the server's test-only -unsafe_disable_fencing). Whether the resumed leader gets
// its queued writes acknowledged before it notices that its session is gone is a race of a few
// milliseconds, so it pauses the leader up to 10 times and stops once a write was acknowledged
// under an old epoch. When that happens, a violation that fencing prevents is flagged: a write
// acknowledged under an old epoch, two leaders acknowledging at once, or an acknowledged write
// lost. When the race never happens in 10 pauses the run is noted in the report, not failed.
func TestLeaderPauseFencingOff(t *testing.T) {
	name, fault := "leader-pause, fencing off (negative test)", "as leader-pause, up to 10 times until the deposed leader acts; replicas accept appends from any epoch"
	if env.Binary != "" && !env.Features.DisableFencing {
		skip(t, name, fault, "the server has no -unsafe_disable_fencing (ZKV_UNSAFE_DISABLE_FENCING=1) hook")
	}
	Scenario{Name: name, Fault: fault, MaxTime: 75 * time.Second,
		Inject: func(ctx context.Context, r *Run) error {
			// the resumed leader's queued writes return within the 2s client timeout
			return pauseLeaderUntil(ctx, r, 10, 2100*time.Millisecond, func() bool { _, vs := Epochs(r.H.Ops()); return len(vs) > 0 })
		},
		Cluster: Config{Env: []string{"ZKV_UNSAFE_DISABLE_FENCING=1"}},
		Expect: func(t testing.TB, r *Result) {
			r.ExpectViolated = true
			by := r.Violated()
			if by[InvStaleEpoch]+by[InvDualLeader]+by[InvLostWrite] == 0 {
				// The race did not happen in 10 pauses (seen at 0 to 40% a pause, depending on the
				// load): nothing the deposed leader did reached a client. That is no failure of
				// zkv nor of the checks, whose power the synthetic histories of checks_test.go
				// prove every run; it is reported, not failed, so CI does not hang on a race.
				r.Note("not triggered: in 10 pauses no write of the deposed leader was acknowledged (violations: %v); checks_test.go shows these checks catching it", by)
				t.Logf("fencing off: the deposed leader's race did not happen in 10 pauses (violations: %v)", by)
			}
		}}.Execute(t, env)
}

func TestReplicaPartition(t *testing.T) {
	name, fault := "replica-partition", "blackhole leader -> one replica for 4s, heal; twice"
	if env.Binary != "" && !env.Features.Advertise {
		skip(t, name, fault, "needs the server's -advertise flag to put a proxy between servers")
	}
	Scenario{Name: name, Fault: fault, Tail: 500 * time.Millisecond, Inject: func(ctx context.Context, r *Run) error {
		type cut struct {
			leader, rep *Server
			from, to    time.Duration
		}
		var cuts []cut
		for i := 0; i < 2 && ctx.Err() == nil; i++ {
			l, err := r.C.Leader(ctx)
			if err != nil {
				return err
			}
			if err := r.C.Ready(ctx); err != nil {
				return err
			}
			rep := r.C.Followers(l)[0]
			// peer-<i> carries what other servers send to server i: the leader's appends
			if err := r.C.Links.Toxic("timeout", 1, `"timeout":0`, fmt.Sprintf("peer-%d", rep.Index)); err != nil {
				return err
			}
			from := r.H.Now()
			Sleep(ctx, 4*time.Second)
			r.C.Links.Heal()
			cuts = append(cuts, cut{l, rep, from, r.H.Now()})
			r.R.CatchUp = append(r.R.CatchUp, catchUp(ctx, r, l, rep))
			Sleep(ctx, time.Second)
		}
		Sleep(ctx, 2*time.Second) // every request sent during the cuts has returned (2s timeout)
		ops := r.H.Ops()
		for i, c := range cuts {
			sent, _, _, gap := window(ops, c.from, c.to)
			ackedIn, localOK := 0, 0
			for _, op := range ops {
				if op.Kind == Put && op.Outcome == OK && op.Return > c.from && op.Return < c.to {
					ackedIn++
				}
				if op.Kind == LocalGet && op.Outcome == OK && op.Server == c.rep.Index && op.Call >= c.from && op.Call < c.to {
					localOK++
				}
			}
			r.R.Note("cut %d (leader server %d -/-> replica server %d, %v): %d writes acknowledged during the cut (ack=all waits for every replica), longest gap %v; writes sent during it: %d acked (after the heal), %d uncertain; %d local reads served by the cut replica",
				i+1, c.leader.Index, c.rep.Index, (c.to - c.from).Round(100*time.Millisecond), ackedIn, gap.Round(10*time.Millisecond), sent.Acked, sent.Unknown, localOK)
		}
		return nil
	}}.Execute(t, env)
}

// catchUp reads every key from the leader, then polls rep's own copy until it has at least
// those versions; -1 if it never does within 10s.
func catchUp(ctx context.Context, r *Run, leader, rep *Server) time.Duration {
	start := time.Now()
	h := NewHistory()
	cl := NewClient(-1, h, time.Second)
	defer cl.Close()
	want := map[string]uint64{}
	for i := 0; i < r.Traffic.Keys; i++ {
		if op := cl.Get(ctx, leader, KeyName(i), true); op.Outcome == OK {
			want[op.Key] = op.Version
		}
	}
	for time.Since(start) < 10*time.Second && ctx.Err() == nil {
		behind := 0
		for k, v := range want {
			if op := cl.Get(ctx, rep, k, false); op.Outcome != OK || op.Version < v {
				behind++
			}
		}
		if behind == 0 {
			return time.Since(start)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return -1
}

func TestFlakyLink(t *testing.T) {
	phases := []struct {
		name, typ, attrs string
		toxicity         float64
		links            []string
	}{
		{"latency 50ms +-50ms on every link", "latency", `"latency":50,"jitter":50`, 1, []string{"client-", "zk-", "peer-"}},
		{"20% of client and peer connections reset", "reset_peer", `"timeout":100`, 0.2, []string{"client-", "peer-"}},
		{"10% of ZooKeeper connections reset", "reset_peer", `"timeout":300`, 0.1, []string{"zk-"}},
		{"bandwidth 32KB/s on client and peer links", "bandwidth", `"rate":32`, 1, []string{"client-", "peer-"}},
		{"TCP stream sliced into ~16-byte segments", "slicer", `"average_size":16,"size_variation":8,"delay":100`, 1, []string{"client-", "peer-"}},
	}
	Scenario{Name: "flaky-link", Fault: "latency+jitter, resets, bandwidth, slicing; 3s each, one at a time", MaxTime: 40 * time.Second,
		Inject: func(ctx context.Context, r *Run) error {
			for _, ph := range phases {
				var names []string
				for _, prefix := range ph.links {
					names = append(names, r.C.Links.Names(prefix)...)
				}
				if err := r.C.Links.Toxic(ph.typ, ph.toxicity, ph.attrs, names...); err != nil {
					return err
				}
				before := len(r.H.Ops())
				Sleep(ctx, 3*time.Second)
				r.C.Links.Heal()
				ops := r.H.Ops()[before:]
				c := Count(ops)
				r.R.Note("%s: writes %d acked, %d uncertain, %d failed", ph.name, c.Acked, c.Unknown, c.Failed)
				Sleep(ctx, 1500*time.Millisecond)
			}
			return nil
		}}.Execute(t, env)
}

// window sums up the operations called in [from, to).
func window(ops []Op, from, to time.Duration) (c Counts, lastAckCall time.Duration, unavailable int, maxGap time.Duration) {
	lastAckCall = -1
	prev := from
	for _, op := range ops {
		if op.Call < from || op.Call >= to {
			continue
		}
		c.Ops++
		switch {
		case op.Kind == Put && op.Outcome == OK:
			c.Acked++
			if op.Call > lastAckCall {
				lastAckCall = op.Call
			}
			if op.Return > prev {
				if g := op.Return - prev; g > maxGap {
					maxGap = g
				}
				prev = op.Return
			}
		case op.Kind == Put:
			c.Unknown++
			if op.Status == http.StatusServiceUnavailable {
				unavailable++
			}
		case op.Outcome == OK:
			c.ReadsOK++
			c.Reads++
		default:
			c.Reads++
		}
	}
	if g := to - prev; g > maxGap {
		maxGap = g
	}
	return
}

func TestZooKeeperQuorum(t *testing.T) {
	Scenario{Name: "zk-quorum", Fault: "stop 1 ZooKeeper node for 5s, then pause a 2nd for 5s, then bring both back", MaxTime: 45 * time.Second, Tail: 4 * time.Second,
		Inject: func(ctx context.Context, r *Run) error {
			zk := r.C.ZK
			bg := context.WithoutCancel(ctx)
			t0 := r.H.Now()
			if err := zk.Stop(bg, 0); err != nil {
				return err
			}
			t1 := r.H.Now()
			Sleep(ctx, 5*time.Second)
			t2 := r.H.Now()
			c, _, _, gap := window(r.H.Ops(), t1, t2)
			r.R.Note("1 of 3 ZooKeeper nodes down (stop took %v): %d writes acknowledged, longest gap without an acknowledgement %v; reads %d/%d ok",
				(t1 - t0).Round(time.Millisecond), c.Acked, gap.Round(time.Millisecond), c.ReadsOK, c.Reads)
			if c.Acked == 0 {
				r.T.Errorf("no write acknowledged with 1 ZooKeeper node down")
			}
			if err := zk.Pause(bg, 1); err != nil {
				return err
			}
			t3 := r.H.Now()
			Sleep(ctx, session+3500*time.Millisecond)
			t4 := r.H.Now()
			c, lastAck, unavailable, _ := window(r.H.Ops(), t3, t4)
			stopped := "no write acknowledged"
			if lastAck >= 0 {
				stopped = fmt.Sprintf("last acknowledged write sent %v after", (lastAck - t3).Round(time.Millisecond))
			}
			r.R.Note("2 of 3 ZooKeeper nodes down: %s (session timeout %v); %d writes answered 503, %d other failures; local and leader reads %d/%d ok",
				stopped, session, unavailable, c.Unknown-unavailable, c.ReadsOK, c.Reads)
			if lastAck-t3 > session+time.Second {
				r.T.Errorf("writes went on %v after ZooKeeper lost its quorum (session timeout %v)", lastAck-t3, session)
			}
			if c.ReadsOK == 0 {
				r.T.Errorf("no read served while ZooKeeper had no quorum")
			}
			if err := zk.Resume(bg, 1); err != nil {
				return err
			}
			if err := zk.Restart(bg, 0); err != nil {
				return err
			}
			t5 := r.H.Now()
			Sleep(ctx, 3*time.Second)
			for _, op := range r.H.Ops() {
				if op.Kind == Put && op.Outcome == OK && op.Call > t5 {
					r.R.Note("quorum back: first write acknowledged %v later", (op.Return - t5).Round(time.Millisecond))
					break
				}
			}
			return nil
		}}.Execute(t, env)
}

func TestReplicaCrash(t *testing.T) {
	Scenario{Name: "replica-crash", Fault: "SIGKILL a replica mid-traffic, restart it (empty) 2s later", Tail: 5 * time.Second,
		Inject: func(ctx context.Context, r *Run) error {
			Sleep(ctx, time.Second)
			l, err := r.C.Leader(ctx)
			if err != nil {
				return err
			}
			rep := r.C.Followers(l)[0]
			if err := rep.Kill(); err != nil {
				return err
			}
			Sleep(ctx, 2*time.Second)
			if err := rep.Restart(context.WithoutCancel(ctx)); err != nil {
				return err
			}
			restarted := r.H.Now()
			Sleep(ctx, 3*time.Second)
			empty, found := 0, 0
			first := time.Duration(-1)
			for _, op := range r.H.Ops() {
				if op.Kind == LocalGet && op.Outcome == OK && op.Server == rep.Index && op.Gen == rep.Gen() {
					if !op.Found {
						empty++
					} else {
						found++
						if first < 0 {
							first = op.Return - restarted
						}
					}
				}
			}
			r.R.Note("restarted replica: %d local reads answered absent (it starts empty), %d found a value; first value served %v after its restart",
				empty, found, dur(first))
			return nil
		}}.Execute(t, env)
}
