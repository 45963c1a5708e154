package integration

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zkv-dev/zkv/election"
)

// electionSession is the session timeout the election tests ask for (ZooKeeper allows
// 2..20 x zkTick). go-zookeeper gives up on a silent server after 2/3 of it, so a leader cut from
// ZooKeeper steps down about a third of it before its session expires on the server.
const electionSession = 1500 * time.Millisecond

var znodeName = regexp.MustCompile(`^server\d{10}$`)

// electionRig is a set of candidates under a root of their own, with a record of who led when.
type electionRig struct {
	t       *testing.T
	servers []string
	root    string
	log     *leadershipLog
	poll    time.Duration // Config.LeaderPoll of new candidates

	mu      sync.Mutex
	members []*candidate
}

// candidate is one election participant with its own session.
type candidate struct {
	id      string
	sess    *election.Session
	c       *election.Candidate
	proxies []*blackholeProxy // when connected through proxies
	stop    context.CancelFunc
	done    chan struct{} // closed when the recorder has seen Observe's channel close
}

func newElectionRig(ctx context.Context, t *testing.T, servers []string) *electionRig {
	var raw [6]byte
	_, _ = rand.Read(raw[:])
	r := &electionRig{
		t:       t,
		servers: servers,
		root:    "/zkv-it-" + hex.EncodeToString(raw[:]),
		log:     newLeadershipLog(),
	}
	sampleCtx, stopSampling := context.WithCancel(ctx)
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		r.sample(sampleCtx)
	}()
	// Cleanups run last-in first-out: this one runs after every candidate has closed.
	t.Cleanup(func() {
		stopSampling()
		<-sampled
		r.log.check(t)
	})
	return r
}

// add starts candidate id and joins it. With proxied, its session goes through one
// blackholeProxy per ZooKeeper node, so it can be cut from ZooKeeper.
func (r *electionRig) add(ctx context.Context, id string, proxied bool) *candidate {
	t := r.t
	t.Helper()
	m := &candidate{id: id, done: make(chan struct{})}
	servers := r.servers
	if proxied {
		servers = nil
		for _, s := range r.servers {
			p := newBlackholeProxy(t, s)
			m.proxies = append(m.proxies, p)
			servers = append(servers, p.Addr())
		}
	}
	logger := testLogger(t).With("who", id)
	sess, err := election.DialContext(ctx, servers, electionSession, election.WithLogger(logger), election.WithoutEvents())
	if err != nil {
		t.Fatalf("dial %s: %v", id, err)
	}
	c, err := election.New(election.Config{
		Session: sess, Root: r.root, ID: id, Address: id + ".invalid:1",
		Logger: logger, LeaderPoll: r.poll,
	})
	if err != nil {
		sess.Close()
		t.Fatalf("new %s: %v", id, err)
	}
	m.sess, m.c = sess, c
	obsCtx, stop := context.WithCancel(context.Background())
	m.stop = stop
	views := c.Observe(obsCtx)
	go func() {
		defer close(m.done)
		for v := range views {
			r.log.observe(id, v)
		}
		r.log.observe(id, election.View{}) // closed: whatever it led has ended
	}()
	t.Cleanup(func() {
		// A candidate cut off would wait for its session to return before closing.
		for _, p := range m.proxies {
			p.Heal()
		}
		_ = c.Close()
		sess.Close()
		stop()
		<-m.done
	})
	r.mu.Lock()
	r.members = append(r.members, m)
	r.mu.Unlock()
	if err := c.Join(ctx); err != nil {
		t.Fatalf("join %s: %v", id, err)
	}
	return m
}

// kill takes m out of the record as a crash would: its leadership ends now, and the sampler
// no longer asks it.
func (r *electionRig) kill(m *candidate) {
	r.mu.Lock()
	r.members = slices.DeleteFunc(r.members, func(x *candidate) bool { return x == m })
	r.mu.Unlock()
	r.log.kill(m.id)
}

// sample asks every candidate IsLeader (which is false as soon as the session is in doubt) every
// millisecond and records a violation when two say yes in the same round.
func (r *electionRig) sample(ctx context.Context) {
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		r.mu.Lock()
		members := slices.Clone(r.members)
		r.mu.Unlock()
		var leaders []string
		for _, m := range members {
			if m.c.IsLeader() {
				leaders = append(leaders, m.id)
			}
		}
		if len(leaders) > 1 {
			r.log.violation(fmt.Sprintf("%v: IsLeader true on %v at once", time.Now().Format("15:04:05.000000"), leaders))
		}
	}
}

// leader waits until exactly one of live leads and every one of them agrees on it and its
// epoch, and returns it.
func (r *electionRig) leader(ctx context.Context, limit time.Duration, live ...*candidate) *candidate {
	r.t.Helper()
	var got *candidate
	eventually(ctx, r.t, limit, "one agreed leader", func(context.Context) error {
		got = nil
		for _, m := range live {
			if m.c.IsLeader() {
				if got != nil {
					return fmt.Errorf("%s and %s both lead", got.id, m.id)
				}
				got = m
			}
		}
		if got == nil {
			return errors.New("nobody leads")
		}
		want := got.c.View()
		for _, m := range live {
			v := m.c.View()
			if v.Leader.Node != want.Self.Node || v.Epoch != want.Epoch || !v.Connected {
				return fmt.Errorf("%s sees leader %q epoch %d connected %v, want %q epoch %d",
					m.id, v.Leader.Node, v.Epoch, v.Connected, want.Self.Node, want.Epoch)
			}
		}
		return nil
	})
	return got
}

// children lists the rig's election znodes through ZooKeeper itself.
func (r *electionRig) children(ctx context.Context, z interface {
	Children(context.Context, string) ([]string, error)
}) []string {
	r.t.Helper()
	kids, err := z.Children(ctx, r.root+"/election")
	if err != nil {
		r.t.Fatalf("children of %s/election: %v", r.root, err)
	}
	slices.Sort(kids)
	return kids
}

// leadershipLog records each candidate's leadership intervals as its Observe channel reports
// them, and any violation the sampler saw.
type leadershipLog struct {
	mu         sync.Mutex
	open       map[string]interval
	dead       map[string]bool // killed: its views no longer count
	closed     []interval
	violations []string
}

type interval struct {
	id       string
	node     string
	epoch    int64
	from, to time.Time // to is zero while open
}

func newLeadershipLog() *leadershipLog {
	return &leadershipLog{open: map[string]interval{}, dead: map[string]bool{}}
}

func (l *leadershipLog) observe(id string, v election.View) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.dead[id] {
		return
	}
	cur, leading := l.open[id]
	switch {
	case v.IsLeader && !leading:
		l.open[id] = interval{id: id, node: v.Self.Node, epoch: v.Epoch, from: now}
	case v.IsLeader && (cur.node != v.Self.Node || cur.epoch != v.Epoch):
		// A new leadership without an observed end in between (latest-wins channel).
		cur.to = now
		l.closed = append(l.closed, cur)
		l.open[id] = interval{id: id, node: v.Self.Node, epoch: v.Epoch, from: now}
	case !v.IsLeader && leading:
		cur.to = now
		l.closed = append(l.closed, cur)
		delete(l.open, id)
	}
}

// kill ends id's leadership now and ignores what its Observe channel says from now on.
func (l *leadershipLog) kill(id string) {
	l.observe(id, election.View{})
	l.mu.Lock()
	l.dead[id] = true
	l.mu.Unlock()
}

func (l *leadershipLog) violation(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.violations) < 10 {
		l.violations = append(l.violations, s)
	}
}

// intervals returns every interval of id, the open one last.
func (l *leadershipLog) intervals(id string) []interval {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []interval
	for _, iv := range l.closed {
		if iv.id == id {
			out = append(out, iv)
		}
	}
	if iv, ok := l.open[id]; ok {
		out = append(out, iv)
	}
	return out
}

// check fails t if two candidates' intervals overlap at all, or the sampler saw two leaders.
func (l *leadershipLog) check(t *testing.T) {
	t.Helper()
	problems, summary := l.verdict(time.Now())
	for _, p := range problems {
		t.Error(p)
	}
	t.Logf("leadership: %s", summary)
}

// verdict returns every overlap between two candidates' intervals (open ones end at now) and
// every sampler violation, and a summary of the intervals.
func (l *leadershipLog) verdict(now time.Time) (problems []string, summary string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	all := slices.Clone(l.closed)
	for _, iv := range l.open {
		iv.to = now
		all = append(all, iv)
	}
	slices.SortFunc(all, func(a, b interval) int { return a.from.Compare(b.from) })
	for i, a := range all {
		for _, b := range all[i+1:] {
			if a.id != b.id && b.from.Before(a.to) {
				problems = append(problems, fmt.Sprintf("leadership overlap: %s led %v..%v (epoch %d), %s from %v (epoch %d)",
					a.id, a.from.Format("15:04:05.000000"), a.to.Format("15:04:05.000000"), a.epoch,
					b.id, b.from.Format("15:04:05.000000"), b.epoch))
			}
		}
	}
	problems = append(problems, l.violations...)
	var lines []string
	for _, iv := range all {
		lines = append(lines, fmt.Sprintf("%s epoch %d %s..%s", iv.id, iv.epoch, iv.from.Format("15:04:05.000"), iv.to.Format("15:04:05.000")))
	}
	return problems, strings.Join(lines, "; ")
}

// TestLeadershipLogFindsOverlap checks the checker: a successor whose leadership begins before
// its predecessor's ends is reported, back-to-back leaderships are not.
func TestLeadershipLogFindsOverlap(t *testing.T) {
	l := newLeadershipLog()
	lead := func(id string, epoch int64) election.View {
		return election.View{IsLeader: true, Epoch: epoch, Self: election.Member{Node: "/e/" + id}}
	}
	l.observe("a", lead("a", 1))
	l.observe("a", election.View{})
	l.observe("b", lead("b", 2))
	if p, _ := l.verdict(time.Now()); len(p) != 0 {
		t.Fatalf("back-to-back leaderships reported: %v", p)
	}
	l.observe("c", lead("c", 3)) // b has not stepped down
	p, summary := l.verdict(time.Now())
	if len(p) != 1 || !strings.Contains(p[0], "b led") || !strings.Contains(p[0], "c from") {
		t.Fatalf("overlap of b and c: got %v (%s)", p, summary)
	}
	l.violation("two at once")
	if p, _ := l.verdict(time.Now()); len(p) != 2 {
		t.Fatalf("sampler violation not reported: %v", p)
	}
}

// holds fails t if check fails at any poll during d (or ctx ends first).
func holds(ctx context.Context, t *testing.T, d time.Duration, what string, check func() error) {
	t.Helper()
	end := time.Now().Add(d)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for time.Now().Before(end) {
		if err := check(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: %v", what, ctx.Err())
		case <-tick.C:
		}
	}
}

// TestElectionOneLeader: three candidates elect exactly one, the first to register, and every
// one of them agrees on it; the znodes are /election/server<10 digits>.
func TestElectionOneLeader(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	z := sharedEnsemble(ctx, t)
	r := newElectionRig(ctx, t, z.Servers())
	a := r.add(ctx, "a", false)
	b := r.add(ctx, "b", false)
	c := r.add(ctx, "c", false)

	if got := r.leader(ctx, 10*time.Second, a, b, c); got != a {
		t.Fatalf("leader %s, want a (the smallest sequence)", got.id)
	}
	if _, err := a.c.Campaign(ctx); err != nil {
		t.Fatalf("Campaign on the leader: %v", err)
	}
	lctx, ok := a.c.Leading()
	if !ok || lctx.Err() != nil {
		t.Fatalf("Leading on the leader: %v, %v", ok, lctx.Err())
	}
	for _, m := range []*candidate{b, c} {
		if _, ok := m.c.Leading(); ok {
			t.Fatalf("%s reports Leading", m.id)
		}
	}

	kids := r.children(ctx, z)
	if len(kids) != 3 {
		t.Fatalf("znodes %v, want 3", kids)
	}
	for _, k := range kids {
		if !znodeName.MatchString(k) {
			t.Fatalf("znode %q is not server<10 digits>", k)
		}
	}
	members, err := c.c.Members(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids, nodes []string
	for _, m := range members {
		ids = append(ids, m.ID)
		nodes = append(nodes, strings.TrimPrefix(m.Node, r.root+"/election/"))
	}
	if !slices.Equal(ids, []string{"a", "b", "c"}) || !slices.Equal(nodes, kids) {
		t.Fatalf("members %v %v, want a b c on %v", ids, nodes, kids)
	}
	if v := a.c.View(); v.Epoch == 0 || v.Leader.Address != "a.invalid:1" {
		t.Fatalf("leader's view %+v", v)
	}
}

// TestElectionLeaderLeaves: however the leader goes (closing its candidate, closing its
// session, or its session expiring after it is cut off), its successor and only its successor
// takes over, with a higher epoch, and the third candidate follows the successor.
func TestElectionLeaderLeaves(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	z := sharedEnsemble(ctx, t)

	for _, tc := range []struct {
		name    string
		proxied bool
		leave   func(r *electionRig, a *candidate)
		limit   time.Duration // from leaving to the successor leading
	}{
		{"close-candidate", false, func(_ *electionRig, a *candidate) { _ = a.c.Close() }, 5 * time.Second},
		// As a crash would: the candidate is dead from here on. (In one process it could still
		// say it leads until go-zookeeper hears the close answered, after ZooKeeper has
		// already deleted its node and told the successor.)
		{"close-session", false, func(r *electionRig, a *candidate) { r.kill(a); a.sess.Close() }, 5 * time.Second},
		{"session-expiry", true, func(_ *electionRig, a *candidate) {
			for _, p := range a.proxies {
				p.Blackhole()
			}
		}, electionSession + 10*time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newElectionRig(ctx, t, z.Servers())
			a := r.add(ctx, "a", tc.proxied)
			b := r.add(ctx, "b", false)
			c := r.add(ctx, "c", false)
			if got := r.leader(ctx, 10*time.Second, a, b, c); got != a {
				t.Fatalf("leader %s, want a", got.id)
			}
			e1 := a.c.View().Epoch

			began := time.Now()
			tc.leave(r, a)
			if got := r.leader(ctx, tc.limit, b, c); got != b {
				t.Fatalf("leader %s after a left, want b (a's successor)", got.id)
			}
			agreed := time.Since(began)
			if a.c.IsLeader() {
				t.Fatal("a still reports leadership")
			}
			if e2 := b.c.View().Epoch; e2 <= e1 {
				t.Fatalf("epoch %d after failover, was %d: must grow", e2, e1)
			}
			if n := len(r.log.intervals("c")); n != 0 {
				t.Fatalf("c led %d times; only the successor may", n)
			}
			var iv []interval
			eventually(ctx, t, 5*time.Second, "the log to show b's leadership", func(context.Context) error {
				if iv = r.log.intervals("b"); len(iv) != 1 { // the log is a moment behind the View
					return fmt.Errorf("b led %d times, want once", len(iv))
				}
				return nil
			})
			// c, not next in line, learns of b from its watch on the leader's node.
			t.Logf("%s: b leads %v after a left, all agree after %v", tc.name,
				iv[0].from.Sub(began).Round(time.Millisecond), agreed.Round(time.Millisecond))
		})
	}
}

// TestElectionMiddleLeaves: when the middle candidate leaves, the leader stays (same node, same
// epoch, one leadership) and the last candidate now waits on the leader: with the leader poll
// off, only its watches can tell it when the leader leaves in turn.
func TestElectionMiddleLeaves(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	z := sharedEnsemble(ctx, t)
	r := newElectionRig(ctx, t, z.Servers())
	r.poll = -1 // watches only
	a := r.add(ctx, "a", false)
	b := r.add(ctx, "b", false)
	c := r.add(ctx, "c", false)
	if got := r.leader(ctx, 10*time.Second, a, b, c); got != a {
		t.Fatalf("leader %s, want a", got.id)
	}
	before := a.c.View()

	if err := b.c.Close(); err != nil {
		t.Fatalf("close b: %v", err)
	}
	eventually(ctx, t, 5*time.Second, "two znodes left", func(ctx context.Context) error {
		if kids := r.children(ctx, z); len(kids) != 2 {
			return fmt.Errorf("znodes %v", kids)
		}
		return nil
	})
	holds(ctx, t, 2*electionSession, "a keeps leading", func() error {
		v := a.c.View()
		if !v.IsLeader || v.Self.Node != before.Self.Node || v.Epoch != before.Epoch {
			return fmt.Errorf("a's view %+v, was %+v", v, before)
		}
		if cv := c.c.View(); cv.Leader.Node != before.Self.Node || cv.IsLeader {
			return fmt.Errorf("c's view %+v", cv)
		}
		return nil
	})
	if iv := r.log.intervals("a"); len(iv) != 1 || !iv[0].to.IsZero() {
		t.Fatalf("a's leadership %+v, want one, still open", iv)
	}

	began := time.Now()
	if err := a.c.Close(); err != nil {
		t.Fatalf("close a: %v", err)
	}
	if got := r.leader(ctx, 5*time.Second, c); got != c {
		t.Fatalf("leader %s, want c", got.id)
	}
	t.Logf("c leads %v after a left (re-linked watch)", time.Since(began).Round(time.Millisecond))
}

// TestElectionLeaderCutOff: a leader whose every link to ZooKeeper goes silent steps down on its
// own (go-zookeeper's receive timeout, 2/3 of the session) before its session expires and the
// successor takes over; no two leaderships overlap (the rig's log and sampler); once the links
// heal the old leader registers again, at the end of the line.
func TestElectionLeaderCutOff(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	z := sharedEnsemble(ctx, t)
	r := newElectionRig(ctx, t, z.Servers())
	a := r.add(ctx, "a", true)
	b := r.add(ctx, "b", false)
	c := r.add(ctx, "c", false)
	if got := r.leader(ctx, 10*time.Second, a, b, c); got != a {
		t.Fatalf("leader %s, want a", got.id)
	}
	old := a.c.View()

	cut := time.Now()
	for _, p := range a.proxies {
		p.Blackhole()
	}
	eventually(ctx, t, electionSession+5*time.Second, "a steps down", func(context.Context) error {
		if a.c.IsLeader() {
			return errors.New("a still leads")
		}
		return nil
	})
	down := time.Since(cut)
	if got := r.leader(ctx, electionSession+10*time.Second, b, c); got != b {
		t.Fatalf("leader %s, want b", got.id)
	}
	up := time.Since(cut)
	// The log follows each candidate's Observe channel, a moment behind its View.
	var ivA, ivB []interval
	eventually(ctx, t, 5*time.Second, "the log to show a's leadership ended and b's begun", func(context.Context) error {
		ivA, ivB = r.log.intervals("a"), r.log.intervals("b")
		if len(ivA) != 1 || ivA[0].to.IsZero() || len(ivB) != 1 {
			return fmt.Errorf("leaderships a %+v b %+v", ivA, ivB)
		}
		return nil
	})
	if !ivA[0].to.Before(ivB[0].from) {
		t.Fatalf("a stepped down at %v, b led from %v", ivA[0].to, ivB[0].from)
	}
	t.Logf("cut at 0: a stepped down after %v, b leads after %v (gap %v)", down.Round(time.Millisecond),
		up.Round(time.Millisecond), ivB[0].from.Sub(ivA[0].to).Round(time.Millisecond))

	for _, p := range a.proxies {
		p.Heal()
	}
	eventually(ctx, t, 20*time.Second, "a registers again behind b and c", func(context.Context) error {
		v := a.c.View()
		if v.Self.Node == "" || v.Self.Node == old.Self.Node {
			return fmt.Errorf("a's node %q (was %q)", v.Self.Node, old.Self.Node)
		}
		if !v.Connected || v.Leader.Node != b.c.View().Self.Node {
			return fmt.Errorf("a's view %+v", v)
		}
		if v.Self.Seq <= c.c.View().Self.Seq {
			return fmt.Errorf("a's sequence %d not after c's", v.Self.Seq)
		}
		return nil
	})
	if kids := r.children(ctx, z); len(kids) != 3 || slices.Contains(kids, strings.TrimPrefix(old.Self.Node, r.root+"/election/")) {
		t.Fatalf("znodes %v (old %s)", kids, old.Self.Node)
	}
	if got := r.leader(ctx, 5*time.Second, a, b, c); got != b {
		t.Fatalf("leader %s after healing, want b", got.id)
	}
}

// TestElectionZooKeeperNodeLoss runs on an ensemble of its own: losing one ZooKeeper node (one
// the leader is not connected to) changes nothing; losing a second (no quorum) makes the leader
// step down within the session timeout and nobody leads; restarting both restores one leader.
func TestElectionZooKeeperNodeLoss(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	z := startZooKeeper(ctx, t, 3)
	needsNodeControl(t, z)
	servers := z.Servers()
	r := newElectionRig(ctx, t, servers)
	a := r.add(ctx, "a", false)
	b := r.add(ctx, "b", false)
	c := r.add(ctx, "c", false)
	all := []*candidate{a, b, c}
	if got := r.leader(ctx, 10*time.Second, all...); got != a {
		t.Fatalf("leader %s, want a", got.id)
	}
	before := a.c.View()

	// A ZooKeeper follower the leader is not connected to: losing the quorum leader would make
	// every node drop its clients while they elect a new one.
	victim := -1
	for i, s := range servers {
		role, err := zkRole(ctx, s)
		if err != nil {
			t.Fatalf("role of %s: %v", s, err)
		}
		if role == "follower" && s != a.sess.Conn.Server() {
			victim = i
			break
		}
	}
	if victim < 0 {
		t.Fatalf("no ZooKeeper follower apart from the leader's %s", a.sess.Conn.Server())
	}
	t.Logf("leader a on %s; killing ZooKeeper node %d (%s)", a.sess.Conn.Server(), victim, servers[victim])
	if err := z.Kill(ctx, victim); err != nil {
		t.Fatal(err)
	}
	holds(ctx, t, 2*electionSession+time.Second, "a keeps leading with one ZooKeeper node down", func() error {
		if v := a.c.View(); !v.IsLeader || v.Epoch != before.Epoch || v.Self.Node != before.Self.Node {
			return fmt.Errorf("a's view %+v", v)
		}
		return nil
	})
	// The candidates that were on the lost node have moved and agree again.
	r.leader(ctx, 10*time.Second, all...)
	if iv := r.log.intervals("a"); len(iv) != 1 {
		t.Fatalf("a's leaderships %+v, want one", iv)
	}

	second := -1
	for i := range servers {
		if i != victim {
			second = i
			break
		}
	}
	remaining := 3 - victim - second
	lost := time.Now()
	if err := z.Kill(ctx, second); err != nil {
		t.Fatal(err)
	}
	// The node left running serves until it notices the quorum is gone (syncLimit ticks); a
	// client that moved to it meanwhile may lead again for that long, harmlessly, since nothing
	// can change in ZooKeeper without a quorum.
	eventually(ctx, t, electionSession+5*time.Second, "a steps down and the last node stops serving", func(ctx context.Context) error {
		if a.c.IsLeader() {
			return errors.New("a still leads")
		}
		if role, err := zkRole(ctx, servers[remaining]); err == nil {
			return fmt.Errorf("%s still serves as %s", servers[remaining], role)
		}
		return nil
	})
	holds(ctx, t, electionSession, "nobody leads without a quorum", func() error {
		for _, m := range all {
			if m.c.IsLeader() {
				return fmt.Errorf("%s leads", m.id)
			}
		}
		return nil
	})
	ivA := r.log.intervals("a")
	stepped := ivA[len(ivA)-1].to.Sub(lost)
	t.Logf("quorum lost: a stepped down for good %v after the second kill (%d leaderships)", stepped.Round(time.Millisecond), len(ivA))
	if limit := electionSession + 5*zkTick + 2*time.Second; stepped > limit {
		t.Fatalf("a stepped down %v after the quorum was lost, want within %v", stepped, limit)
	}

	restart := time.Now()
	for _, i := range []int{victim, second} {
		if err := z.Restart(ctx, i); err != nil {
			t.Fatalf("restart ZooKeeper node %d: %v", i, err)
		}
	}
	got := r.leader(ctx, 60*time.Second, all...)
	t.Logf("quorum back: %s leads %v after the restarts began (epoch %d, was %d)",
		got.id, time.Since(restart).Round(time.Millisecond), got.c.View().Epoch, before.Epoch)
	eventually(ctx, t, 20*time.Second, "three znodes", func(ctx context.Context) error {
		if kids := r.children(ctx, z); len(kids) != 3 {
			return fmt.Errorf("znodes %v", kids)
		}
		return nil
	})
}
