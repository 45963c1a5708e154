package scenarios

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/zkv-dev/zkv/driver/client"
)

// maxLines caps the detail lines a failed check prints.
const maxLines = 6

func capLines(lines []string) string {
	if len(lines) > maxLines {
		lines = append(lines[:maxLines:maxLines], fmt.Sprintf("... and %d more", len(lines)-maxLines))
	}
	return strings.Join(lines, "\n")
}

// scenario1: add and read.
func (r *run) scenario1(ctx context.Context) {
	r.p.heading("Scenario 1: add and read")
	var sts map[*member]client.Status
	r.steps([]step{
		{"1.1", "servers start and elect a leader", func() (bool, string) {
			healthy := 0
			for _, m := range r.members {
				if err := m.c.Healthy(ctx); err != nil {
					r.p.info("%s: /healthz: %v", m.addr, err)
				} else {
					healthy++
				}
			}
			r.p.note("%d/%d servers answer /healthz; waiting for them to agree on a leader", healthy, len(r.members))
			start := time.Now()
			leader, s, err := r.agreement(ctx, r.members)
			took := time.Since(start)
			sts = s
			r.showStatuses(r.members, sts)
			if err != nil {
				r.record("1.1", "servers start and elect a leader", Fail, took, "%v", err)
				return false, "no leader was elected"
			}
			r.leader = leader
			r.rep.Leader = leader.self
			st := sts[leader]
			znode := "(not listed)"
			if m, ok := st.LeaderMember(); ok {
				znode = m.Znode
			}
			r.p.info("leader %s, id %s, znode %s, epoch %d", r.describe(leader), st.ID, znode, st.Epoch)
			// A leader re-reads its members periodically: wait until it replicates to every
			// follower, or a write acknowledged before then would miss a late joiner.
			replicated := 0
			for _, m := range r.members {
				if m != leader && r.awaitReplica(ctx, leader, m) {
					replicated++
				}
			}
			if replicated == len(r.members)-1 {
				r.p.info("the leader replicates to all %d followers (its /metrics lists them) %v after the servers answered", replicated, round(time.Since(start)))
			} else {
				r.p.note("the leader's /metrics lists %d of %d followers as replicas after %v; going on", replicated, len(r.members)-1, r.cfg.ConvergeTimeout)
			}
			r.record("1.1", "servers start and elect a leader", Pass, took,
				"leader %s (znode %s, epoch %d); %d/%d servers agree", leader.self, znode, st.Epoch, len(sts), len(r.members))
			return true, ""
		}},
		{"1.2", "a write through each server is routed to the leader", func() (bool, string) {
			start := time.Now()
			ok, bad := r.writeThrough(ctx, r.members, r.leader, "s1")
			if len(bad) > 0 {
				r.record("1.2", "a write through each server is routed to the leader", Fail, time.Since(start), "%s", capLines(bad))
			} else {
				r.record("1.2", "a write through each server is routed to the leader", Pass, time.Since(start),
					"%d/%d writes answered by leader %s", ok, len(r.members), r.leader.self)
			}
			if ok == 0 {
				return false, "no write succeeded"
			}
			return true, ""
		}},
		{"1.3", "every server reads every value", func() (bool, string) {
			took, bad := r.converge(ctx, r.members, r.keys)
			if len(bad) > 0 {
				r.record("1.3", "every server reads every value", Fail, took, "%s", capLines(bad))
				return true, ""
			}
			r.record("1.3", "every server reads every value", Pass, took,
				"%d servers x %d keys read back", len(r.members), len(r.keys))
			return true, ""
		}},
	})
}

// writeThrough writes one key through each of ms and checks that want answered it.
func (r *run) writeThrough(ctx context.Context, ms []*member, want *member, tag string) (ok int, bad []string) {
	for i, m := range ms {
		key := fmt.Sprintf("%s%s/key-%d", r.cfg.KeyPrefix, tag, i+1)
		value := fmt.Sprintf("%s-value-%d-via-%s", tag, i+1, m.addr)
		var kv client.KV
		n, err := r.retry(ctx, r.cfg.ConvergeTimeout, func(ctx context.Context) error {
			var err error
			kv, err = m.c.Put(ctx, key, value)
			return err
		})
		if err != nil {
			r.p.info("PUT %s via %s: %v", key, m.addr, err)
			bad = append(bad, fmt.Sprintf("PUT %s via %s: %v", key, m.addr, err))
			continue
		}
		r.wrote(key, value)
		role := "follower"
		if m == want {
			role = "leader"
		}
		tries := ""
		if n > 1 {
			tries = fmt.Sprintf(" (%d attempts)", n)
		}
		r.p.info("PUT %s via %s (%s) -> answered by leader %s, version %d, epoch %d%s", key, m.addr, role, kv.Leader, kv.Version, kv.Epoch, tries)
		if !isLeader(want, kv.Leader) {
			bad = append(bad, fmt.Sprintf("PUT via %s answered by leader %q, want %s", m.addr, kv.Leader, want.self))
			continue
		}
		ok++
	}
	return ok, bad
}

// scenario2: the leader is stopped; a survivor takes over.
func (r *run) scenario2(ctx context.Context) {
	r.p.heading("Scenario 2: leader election")
	sig, sigName := syscall.SIGKILL, "SIGKILL (kill -9)"
	if r.cfg.Graceful {
		sig, sigName = syscall.SIGTERM, "SIGTERM"
	}
	var (
		survivors          []*member
		signalled          time.Time
		next               *member
		sts                map[*member]client.Status
		agreeErr, writeErr error
		agreeTook          time.Duration
		writeTook          time.Duration
		firstKV            client.KV
		firstVia           *member
		attempts           int
		oldEpoch           int64
	)
	steps := []step{
		{"2.1", "stop the leader with " + sigName, func() (bool, string) {
			if r.leader == nil {
				r.record("2.1", "stop the leader with "+sigName, Fail, 0, "not run: scenario 1 found no leader")
				return false, "scenario 1 found no leader"
			}
			old := r.leader
			if st, err := old.c.Status(ctx); err == nil {
				oldEpoch = st.Epoch
			}
			for _, m := range r.members {
				if m != old && m.running() {
					survivors = append(survivors, m)
				}
			}
			if len(survivors) == 0 {
				r.record("2.1", "stop the leader with "+sigName, Fail, 0, "no other server runs: nothing can take over")
				return false, "no survivors"
			}
			pid := old.node.Pid()
			signalled = time.Now()
			var err error
			if r.cfg.Graceful {
				err = old.node.Signal(sig)
			} else {
				err = old.node.Kill() // returns once the process is gone
			}
			if err != nil {
				r.record("2.1", "stop the leader with "+sigName, Fail, 0, "%s: %v", r.describe(old), err)
				return false, "the leader could not be stopped"
			}
			r.killed = old
			r.record("2.1", "stop the leader with "+sigName, Pass, 0, "sent %s to leader %s, pid %d", sigName, r.describe(old), pid)
			r.p.note("waiting for the %d survivors to agree on a new leader, and writing through them until one write is acknowledged", len(survivors))
			// Both clocks run from the signal, side by side.
			var wg sync.WaitGroup
			wg.Go(func() {
				next, sts, agreeErr = r.agreement(ctx, survivors)
				agreeTook = time.Since(signalled)
			})
			wg.Go(func() {
				key := r.cfg.KeyPrefix + "s2/first-write"
				i := 0
				attempts, writeErr = r.retry(ctx, r.cfg.ElectionTimeout, func(ctx context.Context) error {
					m := survivors[i%len(survivors)]
					i++
					wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
					defer cancel()
					kv, err := m.c.Put(wctx, key, "written-after-the-failover")
					if err == nil && (kv.Leader == old.self || kv.Epoch <= oldEpoch) {
						// The stopped leader answered it, in the instant before it acted on
						// the signal: that is not a failover. Count only a new leader's.
						return errAckedByOldLeader
					}
					if err == nil {
						firstKV, firstVia = kv, m
					}
					return err
				})
				writeTook = time.Since(signalled)
				if writeErr == nil {
					r.wrote(key, "written-after-the-failover")
				}
			})
			wg.Wait()
			if r.cfg.Graceful {
				wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
				err := old.node.Wait(wctx)
				cancel()
				if wctx.Err() != nil {
					r.p.note("the ex-leader has not exited 15s after SIGTERM; killing it")
					_ = old.node.Kill()
				} else {
					r.p.note("the ex-leader exited: %v", exitText(err))
				}
			}
			return true, ""
		}},
		{"2.2", "the survivors agree on a new leader", func() (bool, string) {
			r.showStatuses(survivors, sts)
			if agreeErr != nil {
				r.record("2.2", "the survivors agree on a new leader", Fail, agreeTook, "%v", agreeErr)
				return false, "no new leader"
			}
			r.next = next
			r.rep.NewLeader = next.self
			r.timing(TimingElection, agreeTook)
			r.record("2.2", "the survivors agree on a new leader", Pass, 0,
				"%s, %v after %s", next.self, round(agreeTook), sigName)
			return true, ""
		}},
		{"2.3", "the new leader is one of the survivors", func() (bool, string) {
			st := sts[next]
			znode := "(not listed)"
			if m, ok := st.LeaderMember(); ok {
				znode = m.Znode
			}
			switch {
			case next == r.killed:
				r.record("2.3", "the new leader is one of the survivors", Fail, 0, "the stopped ex-leader %s still leads", next.self)
			case st.Epoch <= oldEpoch:
				r.record("2.3", "the new leader is one of the survivors", Fail, 0,
					"%s leads with epoch %d, not above the old leader's %d", next.self, st.Epoch, oldEpoch)
			default:
				r.record("2.3", "the new leader is one of the survivors", Pass, 0,
					"%s (znode %s, epoch %d > %d), not the stopped %s", r.describe(next), znode, st.Epoch, oldEpoch, r.killed.self)
			}
			return true, ""
		}},
		{"2.4", "writes are acknowledged again", func() (bool, string) {
			if writeErr != nil {
				r.record("2.4", "writes are acknowledged again", Fail, writeTook, "%v", writeErr)
				return true, ""
			}
			r.timing(TimingFirstWrite, writeTook)
			r.record("2.4", "writes are acknowledged again", Pass, 0,
				"first write acknowledged %v after %s (via %s, leader %s, %d attempts)", round(writeTook), sigName, firstVia.addr, firstKV.Leader, attempts)
			return true, ""
		}},
		{"2.5", "later writes through each survivor are routed to the new leader", func() (bool, string) {
			start := time.Now()
			ok, bad := r.writeThrough(ctx, survivors, next, "s2")
			if len(bad) > 0 {
				r.record("2.5", "later writes through each survivor are routed to the new leader", Fail, time.Since(start), "%s", capLines(bad))
			} else {
				r.record("2.5", "later writes through each survivor are routed to the new leader", Pass, time.Since(start),
					"%d/%d writes answered by new leader %s", ok, len(survivors), next.self)
			}
			return true, ""
		}},
		{"2.6", "every survivor reads every value", func() (bool, string) {
			took, bad := r.converge(ctx, survivors, r.keys)
			if len(bad) > 0 {
				r.record("2.6", "every survivor reads every value", Fail, took, "%s", capLines(bad))
			} else {
				r.record("2.6", "every survivor reads every value", Pass, took,
					"%d survivors x %d keys (written before and after the failover) agree", len(survivors), len(r.keys))
			}
			return true, ""
		}},
	}
	if r.cfg.Cluster == nil {
		r.skipAll(steps, "-addrs mode: the driver did not start these servers, so it cannot stop one")
		return
	}
	r.steps(steps)
}

// errAckedByOldLeader marks a write the stopped leader acknowledged before it acted on the
// signal; the failover clock runs on.
var errAckedByOldLeader = errors.New("scenarios: acknowledged by the stopped leader, not a new one")

func exitText(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// scenario3: the ex-leader comes back empty and reads stale (empty) values.
func (r *run) scenario3(ctx context.Context) {
	r.p.heading("Scenario 3: stale read on the restarted ex-leader")
	var (
		back    *member
		leader  *member
		earlier []string
	)
	steps := []step{
		{"3.1", "restart the ex-leader; it rejoins as a follower", func() (bool, string) {
			if r.killed == nil {
				r.record("3.1", "restart the ex-leader; it rejoins as a follower", Fail, 0, "not run: scenario 2 stopped no leader")
				return false, "scenario 2 stopped no leader"
			}
			back = r.killed
			earlier = append(earlier, r.keys...)
			start := time.Now()
			if err := back.node.Restart(ctx); err != nil {
				r.record("3.1", "restart the ex-leader; it rejoins as a follower", Fail, time.Since(start), "%v", err)
				return false, "the ex-leader did not restart"
			}
			r.p.info("restarted %s, pid %d, same address; log appended to %s", r.describe(back), back.node.Pid(), back.node.LogPath())
			l, sts, err := r.agreement(ctx, r.running())
			took := time.Since(start)
			r.showStatuses(r.running(), sts)
			if err != nil {
				r.record("3.1", "restart the ex-leader; it rejoins as a follower", Fail, took, "%v", err)
				return false, "the restarted server did not rejoin"
			}
			leader = l
			st := sts[back]
			if back == l || st.Role != client.RoleFollower {
				r.record("3.1", "restart the ex-leader; it rejoins as a follower", Fail, took, "%s is %s, want follower", back.self, st.Role)
				return false, "the restarted server did not rejoin as a follower"
			}
			r.timing(TimingRejoin, took)
			if r.awaitReplica(ctx, l, back) {
				r.timing(TimingReplica, time.Since(start))
				r.p.info("the leader replicates to it (its /metrics lists replica %s) %v after the restart", back.self, round(time.Since(start)))
			} else {
				r.p.note("the leader's /metrics does not list replica %s after %v; going on", back.self, r.cfg.ConvergeTimeout)
			}
			extra := ""
			if r.next != nil && l != r.next {
				extra = fmt.Sprintf(" (leadership moved from %s meanwhile)", r.next.self)
			}
			r.record("3.1", "restart the ex-leader; it rejoins as a follower", Pass, took,
				"%s is a follower of %s%s", back.self, l.self, extra)
			return true, ""
		}},
		{"3.2", "keys written before read as empty on it", func() (bool, string) {
			start := time.Now()
			var bad []string
			empty, leaderHas := 0, 0
			for i, k := range earlier {
				kv, err := back.c.Get(ctx, k)
				switch {
				case err != nil:
					bad = append(bad, fmt.Sprintf("GET %s on %s: %v", k, back.addr, err))
				case kv.Found || kv.Value != "":
					bad = append(bad, fmt.Sprintf("GET %s on %s = %q (found=%v), want empty", k, back.addr, kv.Value, kv.Found))
				default:
					empty++
				}
				if i < 3 && err == nil {
					r.p.info("GET %s on %s -> found=%v value %q", k, back.addr, kv.Found, kv.Value)
				}
				if lkv, err := leader.c.Get(ctx, k); err == nil && lkv.Found && lkv.Value == r.want[k] {
					leaderHas++
				}
			}
			if len(earlier) > 3 {
				r.p.info("... and %d more keys", len(earlier)-3)
			}
			if v, err := back.c.Read(ctx, earlier[0]); err != nil || v != "" {
				bad = append(bad, fmt.Sprintf("GET /read?key=%s on %s = %q, %v; want \"\"", earlier[0], back.addr, v, err))
			} else {
				r.p.info("GET /read?key=%s on %s -> value %q (the assignment's route)", earlier[0], back.addr, v)
			}
			r.p.info("the leader %s reads %d/%d of them with their values", leader.self, leaderHas, len(earlier))
			if len(bad) > 0 {
				r.record("3.2", "keys written before read as empty on it", Fail, time.Since(start), "%s", capLines(bad))
				return true, ""
			}
			r.record("3.2", "keys written before read as empty on it", Pass, 0,
				"%d/%d keys empty on %s (found=false, value \"\"); the leader has %d/%d", empty, len(earlier), back.self, leaderHas, len(earlier))
			return true, ""
		}},
		{"3.3", "after an update through another server it reads the new value", func() (bool, string) {
			via := leader
			for _, m := range r.running() {
				if m != back && m != leader {
					via = m
					break
				}
			}
			key := earlier[0]
			value := "updated-at-" + time.Now().Format("15:04:05.000")
			n, err := r.retry(ctx, r.cfg.ConvergeTimeout, func(ctx context.Context) error { return via.c.Update(ctx, key, value) })
			if err != nil {
				r.record("3.3", "after an update through another server it reads the new value", Fail, 0, "POST /update via %s: %v", via.addr, err)
				return true, ""
			}
			r.wrote(key, value)
			r.p.info("POST /update {key: %s, value: %s} via %s (%d attempts)", key, value, via.addr, n)
			start := time.Now()
			pctx, cancel := context.WithTimeout(ctx, r.cfg.ConvergeTimeout)
			defer cancel()
			t := time.NewTicker(r.cfg.PollInterval)
			defer t.Stop()
			var got string
			for {
				v, err := back.c.Read(pctx, key)
				if err == nil {
					got = v
				}
				if err == nil && got == value {
					break
				}
				select {
				case <-pctx.Done():
					r.record("3.3", "after an update through another server it reads the new value", Fail, time.Since(start),
						"%s still reads %s = %q after %v, want %q", back.addr, key, got, r.cfg.ConvergeTimeout, value)
					return true, ""
				case <-t.C:
				}
			}
			took := time.Since(start)
			r.timing(TimingUpdate, took)
			kv, _ := back.c.Get(ctx, key)
			r.p.info("GET /read?key=%s on %s -> %q; GET /v1/kv -> found=%v version %d", key, back.addr, got, kv.Found, kv.Version)
			stillEmpty := 0
			for _, k := range earlier[1:] {
				if kv, err := back.c.Get(ctx, k); err == nil && !kv.Found {
					stillEmpty++
				}
			}
			r.p.note("the other %d keys written before the restart: %d still empty on %s", len(earlier)-1, stillEmpty, back.addr)
			r.record("3.3", "after an update through another server it reads the new value", Pass, took,
				"updated %s via %s; %s reads %q", key, via.addr, back.self, value)
			return true, ""
		}},
	}
	if r.cfg.Cluster == nil {
		r.skipAll(steps, "-addrs mode: the driver did not start these servers, so it cannot restart one")
		return
	}
	r.steps(steps)
}

// awaitReplica waits until the leader's /metrics names m as a replica and m's /readyz says the
// leader's stream reaches it. A server that just rejoined may not be replicated to yet; an
// update sent in that window would never reach it (it takes the first append it gets as its
// base). False when that does not happen within ConvergeTimeout.
func (r *run) awaitReplica(ctx context.Context, leader, m *member) bool {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.ConvergeTimeout)
	defer cancel()
	want := fmt.Sprintf("replica=%q", m.self)
	t := time.NewTicker(r.cfg.PollInterval)
	defer t.Stop()
	for {
		// The leader lists it as a replica, and it is ready: the leader's stream reaches it,
		// so every write acknowledged from now on under ack all is on it.
		if text, err := leader.c.Metrics(ctx); err == nil && strings.Contains(text, want) && m.c.Ready(ctx) == nil {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
	}
}
