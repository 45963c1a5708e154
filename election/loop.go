package election

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/zkv-dev/zkv/zk"
)

const (
	minBackoff = 50 * time.Millisecond
	maxBackoff = 2 * time.Second
	maxPasses  = 16
	// sessionPoll is how often the candidate looks at the session state
	// while it has no session: events may be lost (zk.Connect's channel
	// drops what does not fit), so they only hasten what the poll does.
	sessionPoll = 100 * time.Millisecond
	// defaultSettleWait bounds that wait when the session timeout is unknown.
	defaultSettleWait = 10 * time.Second
)

// watchSlot holds one one-shot watch.
type watchSlot struct {
	path string
	ch   <-chan zk.Event
	gen  uint64 // loopState.gen when set; a watch from an older gen is set again
}

func (w *watchSlot) clear() { *w = watchSlot{} }

// loopState is owned by the run goroutine; nothing else touches it.
type loopState struct {
	want    bool         // joined and not resigned
	waiters []chan error // Join calls waiting for the node to exist
	node    string       // our znode's full path; "" while unregistered
	seq     int64
	session int64 // the session that created node
	// doubt: a create's outcome is unknown. A node carrying our guid may
	// exist, first in line perhaps: adopt it when we want a node, delete it
	// when we do not (after Resign or on Close), or nobody leads from it.
	doubt bool
	stale []string // our nodes to delete as soon as the session allows

	gen  uint64    // bumped whenever the connection breaks
	pred watchSlot // our predecessor, or our own node while leading
	lead watchSlot // the leader, while it is not our predecessor
	kids watchSlot // the election's children, while leading (View.Members)
	// membersStale: the last reading of the members failed; read them again
	// even though the children watch has not fired.
	membersStale bool
	unreadable   map[string]bool // nodes we may not read, logged once each
	refreshes    []chan error    // Refresh calls waiting for the next reconcile
	passErr      error           // the first failure of the current pass (retry records it)

	events      <-chan zk.Event
	sessionGone bool
	renew       *time.Timer // the leader's next lease renewal
	noSession   bool        // the last pass found no session: set the watches again
	dirty       bool
	backoff     time.Duration
	timer       *time.Timer
	following   string // leader node last logged, to log changes only
	// predIsLeader: the node we watch as our predecessor was first in line at our last
	// listing. ownCzxid: our node's czxid (0 until read), the epoch we lead in.
	// fastClaim: when our predecessor, the leader, was deleted (zero: no such event
	// pending); the next pass claims at once and verifies after (see follow).
	predIsLeader bool
	ownCzxid     int64
	fastClaim    time.Time
}

func (c *Candidate) run() {
	defer c.wg.Done()
	st := &loopState{events: c.cfg.Events, dirty: true, timer: time.NewTimer(time.Hour), renew: time.NewTimer(time.Hour)}
	st.timer.Stop()
	st.renew.Stop()
	defer st.timer.Stop()
	defer st.renew.Stop()
	var poll <-chan time.Time
	if c.cfg.LeaderPoll > 0 {
		t := time.NewTicker(c.cfg.LeaderPoll)
		defer t.Stop()
		poll = t.C
	}
	for {
		// A pass may ask for another (a node vanished between two
		// reads); a bound keeps a flapping tree from starving events.
		for pass := 0; st.dirty; pass++ {
			st.dirty = false
			if pass == maxPasses {
				c.retry(st, "reconcile", errors.New("election: tree kept changing"))
				break
			}
			st.passErr = nil
			c.reconcile(st)
		}
		for _, r := range st.refreshes {
			r <- st.passErr // the View reflects the reading only if it worked
		}
		st.refreshes = nil
		select {
		case <-c.stop:
			c.shutdown(st)
			return
		case ev, ok := <-st.events:
			if !ok {
				c.log.Warn("session closed: leaving the election")
				st.events, st.sessionGone = nil, true
				st.dirty = true
				continue
			}
			c.handleEvent(st, ev)
		case ev := <-st.pred.ch:
			c.log.Debug("watch fired", "node", st.pred.path, "type", ev.Type.String(), "err", ev.Err)
			if ev.Type == zk.EventNodeDeleted && st.predIsLeader && st.node != "" && st.ownCzxid != 0 &&
				c.cfg.Conn.SessionID() == st.session {
				st.fastClaim = time.Now()
			}
			st.pred.clear()
			st.dirty = true
		case ev := <-st.lead.ch:
			c.log.Debug("leader watch fired", "node", st.lead.path, "type", ev.Type.String(), "err", ev.Err)
			st.lead.clear()
			st.dirty = true
		case ev := <-st.kids.ch:
			c.log.Debug("members changed", "type", ev.Type.String(), "err", ev.Err)
			st.kids.clear()
			st.dirty = true
		case <-poll:
			st.dirty = st.node != ""
		case req := <-c.reqs:
			c.handleRequest(st, req)
		case <-st.timer.C:
			st.dirty = true
		case <-st.renew.C:
			c.renewLease(st)
		case <-c.leaseLost:
			c.mu.Lock()
			expired := c.view.IsLeader && c.leaseExpired()
			c.mu.Unlock()
			if expired {
				c.stepDown("lease ran out: no answer from zookeeper")
				st.dirty = true // claim again if ZooKeeper answers
			}
		}
	}
}

func (c *Candidate) handleEvent(st *loopState, ev zk.Event) {
	switch ev.Type {
	case zk.EventSession:
		st.dirty = true
		if ev.State != zk.StateHasSession && ev.State != zk.StateConnected && ev.State != zk.StateConnecting {
			// The connection broke: go-zookeeper re-arms its watches on
			// reconnect but drops them silently if that fails, so the next
			// pass sets its watch again.
			st.gen++
		}
		switch ev.State {
		case zk.StateHasSession:
			c.log.Info("zookeeper session established", "session", sessionHex(c.cfg.Conn.SessionID()), "server", ev.Server)
		case zk.StateExpired:
			c.log.Warn("zookeeper session expired: our node is gone")
			c.suspend(st, "session expired")
			c.lose(st)
		case zk.StateDisconnected:
			c.log.Warn("zookeeper disconnected", "server", ev.Server)
			c.suspend(st, "disconnected from zookeeper")
		case zk.StateConnecting, zk.StateConnected:
			c.log.Debug("zookeeper connection", "state", ev.State.String(), "server", ev.Server)
		default:
			c.log.Warn("zookeeper session event", "state", ev.State.String(), "server", ev.Server)
			c.suspend(st, "session state "+ev.State.String())
		}
	case zk.EventNotWatching:
		// go-zookeeper sends this on the watch's own channel too, which clears
		// that slot; setting every watch again here as well would leave two
		// on the server when that channel's event is handled first.
		c.log.Info("watch removed by zookeeper client; listing again", "path", ev.Path, "err", ev.Err)
		st.dirty = true
	}
}

func (c *Candidate) handleRequest(st *loopState, req request) {
	switch req.kind {
	case reqJoin:
		if st.sessionGone {
			req.reply <- ErrNoSession
			return
		}
		if !st.want {
			c.log.Info("joining the election", "dir", c.dir)
		}
		c.mu.Lock()
		if !st.want {
			c.waitingSince = time.Now()
		}
		c.want = true
		c.mu.Unlock()
		st.want = true
		if st.node != "" {
			req.reply <- nil
			return
		}
		st.waiters = append(st.waiters, req.reply)
		st.dirty = true
	case reqResign:
		req.reply <- c.resign(st, "resigned", ErrResigned)
		st.dirty = true
	case reqRefresh:
		st.refreshes = append(st.refreshes, req.reply)
		st.dirty = true
	}
}

// resign leaves the election: steps down and deletes our node.
func (c *Candidate) resign(st *loopState, why string, waiterErr error) error {
	st.want = false
	c.failWaiters(st, waiterErr)
	c.stepDown(why)
	st.pred.clear()
	st.lead.clear()
	st.kids.clear()
	st.membersStale = false
	var err error
	if st.node != "" && (st.sessionGone || c.cfg.Conn.State() != zk.StateHasSession) {
		// Without a session a delete would wait for one (go-zookeeper queues it);
		// delete it when the session returns, or it vanishes with the session.
		st.stale = append(st.stale, st.node)
		c.log.Warn("left the election without a session: our node goes when the session returns or expires",
			"node", st.node, "why", why)
		st.node = ""
	}
	if st.node != "" {
		node := st.node
		st.node = ""
		if err = c.deleteOwn(node); err != nil {
			st.stale = append(st.stale, node)
			err = fmt.Errorf("election: delete %s (retried when the session returns): %w", node, err)
			c.log.Warn("could not delete our node", "node", node, "err", err)
		} else {
			c.log.Info("left the election", "node", node, "why", why)
		}
	}
	c.publish(func(v *View) {
		*v = View{Self: c.selfMember("", 0), Epoch: v.Epoch, Connected: v.Connected}
	})
	c.mu.Lock()
	c.want = false
	c.mu.Unlock()
	return err
}

// deleteOwn deletes one of our nodes; a node already gone is fine.
func (c *Candidate) deleteOwn(node string) error {
	_, err := c.deleteOwnNode(node)
	return err
}

// deleteOwnNode is deleteOwn also reporting whether the node was there.
func (c *Candidate) deleteOwnNode(node string) (bool, error) {
	err := c.cfg.Conn.Delete(node, -1)
	if errors.Is(err, zk.ErrNoNode) {
		return false, nil
	}
	return err == nil, err
}

func (c *Candidate) shutdown(st *loopState) {
	c.resign(st, "closing", ErrClosed) // what it cannot delete goes to stale
	c.mu.Lock()
	c.closed = true
	for s := range c.subs {
		c.dropSubscriber(s)
	}
	c.mu.Unlock()
	err := c.settleLeftovers(st)
	c.mu.Lock()
	c.closeErr = err
	c.mu.Unlock()
}

// settleLeftovers deletes, on Close, the nodes of ours that could not go
// yet: those left without a session and the outcome of a doubted create.
// Without a session it waits for one, at most a session timeout: a node
// left behind while the Session stays open would stay first in line with
// nobody leading from it. After that long without contact the server has
// expired the session (and the nodes with it), unless the whole ensemble was
// down meanwhile; closing the Session removes them in any case.
func (c *Candidate) settleLeftovers(st *loopState) error {
	if !st.doubt && len(st.stale) == 0 {
		return nil
	}
	wait := c.sessionTimeout()
	if wait <= 0 {
		wait = defaultSettleWait
	}
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	tick := time.NewTicker(sessionPoll)
	defer tick.Stop()
	waiting := false
	for {
		if st.sessionGone {
			return nil // our nodes went with the session
		}
		if sid := c.cfg.Conn.SessionID(); c.cfg.Conn.State() == zk.StateHasSession && sid != 0 {
			err := c.settle(st, sid)
			if err == nil {
				if waiting {
					c.log.Info("the session is back: deleted what was left of ours")
				}
				return nil
			}
			if !transient(err) {
				return fmt.Errorf("election: close: %w", err)
			}
		} else if !waiting {
			waiting = true
			c.log.Warn("closing without a session: waiting for it to delete our nodes", "nodes", st.stale,
				"doubted_create", st.doubt, "at_most", wait)
		}
		select {
		case _, ok := <-st.events:
			if !ok {
				st.events, st.sessionGone = nil, true
			}
		case <-tick.C:
		case <-deadline.C:
			c.log.Warn("closed without a session: nodes of ours may remain until the session ends",
				"nodes", st.stale, "doubted_create", st.doubt)
			return nil
		}
	}
}

// settle deletes our stale nodes and, after a doubted create, every node
// carrying our guid that is not st.node (adopting the first one owned by sid
// instead while we want a node and have none). It returns the first error;
// what could not be settled is tried again later.
func (c *Candidate) settle(st *loopState, sid int64) error {
	err := c.deleteStale(st)
	if st.doubt {
		if aerr := c.adopt(st, sid); aerr != nil {
			return errors.Join(err, aerr)
		}
		st.doubt = false
	}
	return err
}

// sessionTimeout is the session's timeout, when the Conn tells it
// (*zk.Conn of github.com/zkv-dev/zkv/zk does), else Config.SessionTimeout.
func (c *Candidate) sessionTimeout() time.Duration {
	if t, ok := c.cfg.Conn.(interface{ SessionTimeout() time.Duration }); ok {
		if d := t.SessionTimeout(); d > 0 {
			return d
		}
	}
	return c.cfg.SessionTimeout
}

// reconcile brings our node and the view in line with ZooKeeper. It runs
// after every event, watch, request and retry.
func (c *Candidate) reconcile(st *loopState) {
	if st.sessionGone {
		st.passErr = ErrNoSession
		c.failWaiters(st, ErrNoSession)
		c.suspend(st, "session closed")
		st.want = false
		c.mu.Lock()
		c.want = false
		c.mu.Unlock()
		return
	}
	state, sid := c.cfg.Conn.State(), c.cfg.Conn.SessionID()
	if state != zk.StateHasSession || sid == 0 {
		c.suspend(st, "no zookeeper session")
		st.passErr = errNoSessionNow
		// The next session event brings us back, and so does this poll should
		// that event be lost: Config.Events may be lossy, or shared.
		st.noSession = true
		st.timer.Reset(sessionPoll)
		return
	}
	if st.noSession { // the connection broke, whether or not we heard of it
		st.noSession = false
		st.gen++
	}
	if st.node != "" && st.session != sid {
		c.log.Warn("zookeeper session replaced: registering again",
			"node", st.node, "old_session", sessionHex(st.session), "session", sessionHex(sid))
		c.suspend(st, "session lost")
		c.lose(st)
	}
	if !st.want {
		// Out of the election, yet a node of ours may be left: one a delete
		// missed, or the outcome of a create whose reply was lost.
		if err := c.settle(st, sid); err != nil {
			c.retry(st, "delete our nodes", err)
		}
		c.publish(func(v *View) { v.Connected = true })
		return
	}
	if err := c.deleteStale(st); err != nil {
		c.retry(st, "delete our stale nodes", err) // the pass goes on; a retry comes
	}
	if st.node == "" {
		if err := c.register(st, sid); err != nil {
			if !transient(err) && len(st.waiters) > 0 {
				// Retrying will not help (no auth, bad root...): the
				// waiting Join gets the error and the candidate leaves the
				// election. Without a waiter (re-registering after a loss)
				// it keeps retrying instead, in case an operator fixes it.
				c.log.Error("cannot register: leaving the election", "err", err)
				c.failWaiters(st, err)
				st.want = false
				c.mu.Lock()
				c.want = false
				c.mu.Unlock()
				return
			}
			c.retry(st, "register", err)
			return
		}
	}
	if err := c.follow(st, sid); err != nil {
		c.suspend(st, "cannot verify leadership")
		c.retry(st, "follow", err)
		return
	}
	if st.passErr == nil {
		st.backoff = 0
	}
}

// errNoSessionNow is what a pass reports while the session is away (it may
// come back; ErrNoSession is for a session gone for good).
var errNoSessionNow = fmt.Errorf("election: no zookeeper session: %w", zk.ErrConnectionClosed)

// lose forgets a node that died (or may die) with its session.
func (c *Candidate) lose(st *loopState) {
	if st.node != "" {
		st.stale = append(st.stale, st.node)
		st.node = ""
	}
	st.ownCzxid, st.predIsLeader, st.fastClaim = 0, false, time.Time{}
	st.pred.clear()
	st.lead.clear()
	st.kids.clear()
	c.publish(func(v *View) { v.Self = c.selfMember("", 0) })
}

// deleteStale deletes our stale nodes, keeping those a retry may delete; it
// returns the first error.
func (c *Candidate) deleteStale(st *loopState) error {
	var first error
	kept := st.stale[:0]
	for _, n := range st.stale {
		existed, err := c.deleteOwnNode(n)
		if err != nil {
			c.log.Warn("could not delete a stale node of ours", "node", n, "err", err)
			if transient(err) {
				kept = append(kept, n)
			}
			if first == nil {
				first = fmt.Errorf("election: delete %s: %w", n, err)
			}
			continue
		}
		if existed {
			c.log.Info("deleted a stale node of ours", "node", n)
		}
	}
	st.stale = kept
	return first
}

// retry schedules another reconcile with exponential backoff.
// The pass's first failure is kept for Refresh.
func (c *Candidate) retry(st *loopState, what string, err error) {
	if st.passErr == nil {
		st.passErr = err
	}
	if st.backoff == 0 {
		st.backoff = minBackoff
	} else {
		st.backoff = min(2*st.backoff, maxBackoff)
	}
	c.log.Warn("election step failed; retrying", "step", what, "err", err, "in", st.backoff)
	if h := c.cfg.Hooks.Error; h != nil {
		h(what, err)
	}
	st.timer.Reset(st.backoff)
}

// transient reports errors that a reconnect or a retry may cure.
func transient(err error) bool {
	return errors.Is(err, zk.ErrConnectionClosed) || errors.Is(err, zk.ErrSessionExpired) ||
		errors.Is(err, zk.ErrSessionMoved) || errors.Is(err, zk.ErrNoServer) ||
		errors.Is(err, zk.ErrClosing)
}

func (c *Candidate) failWaiters(st *loopState, err error) {
	for _, w := range st.waiters {
		w <- err
	}
	st.waiters = nil
}

// register creates our node, after adopting one whose create reply was lost.
func (c *Candidate) register(st *loopState, sid int64) error {
	if st.doubt {
		if err := c.adopt(st, sid); err != nil {
			return err
		}
		st.doubt = false
		if st.node != "" {
			return nil
		}
	}
	prefix := c.dir + "/" + nodePrefix
	for attempt := 0; ; attempt++ {
		name, err := c.cfg.Conn.Create(prefix, c.data, zk.FlagEphemeral|zk.FlagSequence, c.acl)
		if errors.Is(err, zk.ErrNoNode) && attempt == 0 {
			if err := c.ensureParents(); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			// The server may have created the node and lost only the
			// reply: look for our guid before creating another.
			st.doubt = !errors.Is(err, zk.ErrNoNode) && !errors.Is(err, zk.ErrNoAuth)
			return fmt.Errorf("election: create %s: %w", prefix, err)
		}
		seq, _ := parseSeq(name[strings.LastIndexByte(name, '/')+1:])
		c.registered(st, name, seq, sid)
		return nil
	}
}

func (c *Candidate) registered(st *loopState, node string, seq, sid int64) {
	st.node, st.seq, st.session = node, seq, sid
	st.ownCzxid, st.predIsLeader, st.fastClaim = 0, false, time.Time{}
	c.log.Info("registered", "node", node, "seq", seq, "session", sessionHex(sid))
	c.publish(func(v *View) { v.Self = c.selfMember(node, seq) })
	c.failWaiters(st, nil)
}

// adopt looks for nodes carrying our guid: while we want a node and have
// none, the first one owned by our session becomes ours; every other one is
// deleted.
func (c *Candidate) adopt(st *loopState, sid int64) error {
	names, _, err := c.cfg.Conn.Children(c.dir)
	if errors.Is(err, zk.ErrNoNode) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("election: list %s: %w", c.dir, err)
	}
	for _, k := range sortChildren(names) {
		p := c.dir + "/" + k.name
		data, stat, err := c.cfg.Conn.Get(p)
		if errors.Is(err, zk.ErrNoNode) {
			continue
		}
		if err != nil {
			return fmt.Errorf("election: read %s: %w", p, err)
		}
		_, d, err := memberFrom(c.dir, k, data)
		if err != nil || d.GUID != c.guid {
			continue
		}
		if p == st.node {
			continue
		}
		if st.want && st.node == "" && stat.EphemeralOwner == sid {
			c.log.Info("found our node after a lost create reply", "node", p)
			c.registered(st, p, k.seq, sid)
			continue
		}
		c.log.Warn("deleting an orphan node of ours", "node", p, "owner", sessionHex(stat.EphemeralOwner))
		if err := c.deleteOwn(p); err != nil {
			st.stale = append(st.stale, p)
			return fmt.Errorf("election: delete %s: %w", p, err)
		}
	}
	return nil
}

// ensureParents creates <Root>/election and its ancestors (persistent).
func (c *Candidate) ensureParents() error {
	p := ""
	for _, part := range strings.Split(strings.TrimPrefix(c.dir, "/"), "/") {
		p += "/" + part
		_, err := c.cfg.Conn.Create(p, nil, 0, c.acl)
		if err != nil && !errors.Is(err, zk.ErrNodeExists) {
			return fmt.Errorf("election: create %s: %w", p, err)
		}
	}
	return nil
}

// follow lists the candidates, then either claims leadership (after
// checking that our node still belongs to our session) or watches the one
// node just before ours.
func (c *Candidate) follow(st *loopState, sid int64) error {
	if at := st.fastClaim; !at.IsZero() {
		st.fastClaim = time.Time{}
		// Our predecessor was the leader, first in line at our last listing, and it is
		// gone. Sequence numbers only grow, so no node can precede ours now: we are first.
		// Our node was created in this very session (st.session == sid), so it is ours,
		// and the watch event came through that session, alive then. So we lead now, in
		// our node's epoch, without the two round trips (list, read our node) of the
		// claim below, which follows at once and steps down if it finds otherwise. The
		// members come with the next view.
		if st.node != "" && st.session == sid && st.ownCzxid != 0 && c.cfg.Conn.SessionID() == sid {
			c.log.Info("our predecessor, the leader, is gone: leading at once", "node", st.node)
			c.lead(c.selfMember(st.node, st.seq), st.ownCzxid, sid, nil, at)
		}
	}
	contact := time.Now() // the session was alive when this round trip began
	names, _, err := c.cfg.Conn.Children(c.dir)
	if err != nil && !errors.Is(err, zk.ErrNoNode) {
		return fmt.Errorf("election: list %s: %w", c.dir, err)
	}
	kids := sortChildren(names)
	own := st.node[strings.LastIndexByte(st.node, '/')+1:]
	idx := -1
	for i, k := range kids {
		if k.name == own {
			idx = i
			break
		}
	}
	if idx < 0 {
		c.log.Warn("our node is gone: registering again", "node", st.node)
		c.stepDown("our node is gone")
		c.lose(st)
		st.dirty = true
		return nil
	}
	if idx == 0 {
		st.predIsLeader = false
		st.lead.clear()
		r := c.readWatched(st.pred, st.gen, st.node)
		c.keepWatch(st, &st.pred, st.node, "own node", r)
		data, stat, err := r.data, r.stat, r.err
		if errors.Is(err, zk.ErrNoNode) {
			st.dirty = true // deleted since the listing: the next pass re-registers
			return nil
		}
		if err != nil {
			return fmt.Errorf("election: read %s: %w", st.node, err)
		}
		if stat.EphemeralOwner != sid {
			// Curator's guard: after a reconnect race the node may belong
			// to another (dead) session; leading on it could make two
			// leaders. Start over with a fresh node.
			c.log.Warn("our node is owned by another session: registering again",
				"node", st.node, "owner", sessionHex(stat.EphemeralOwner), "session", sessionHex(sid))
			c.stepDown("node not owned by our session")
			c.lose(st)
			st.dirty = true
			return nil
		}
		self, _, _ := memberFrom(c.dir, kids[0], data)
		self.Meta = c.cfg.Meta
		// The members go out with the leadership, in one view: the new leader's owner
		// needs them at once (to catch up from the most up-to-date one). The claim
		// itself rests on our own node alone: a member we cannot read now must not
		// turn every later join or leave into a step-down and a claim again.
		ms, merr := c.watchMembers(st)
		c.lead(self, stat.Czxid, sid, ms, contact)
		if t := c.sessionTimeout(); t > 0 {
			st.renew.Reset(t / 3)
		}
		if merr != nil {
			c.retry(st, "read members", merr)
		}
		return nil
	}
	st.kids.clear()

	pred, leaderPath := kids[idx-1], c.dir+"/"+kids[0].name
	predPath := c.dir + "/" + pred.name
	st.predIsLeader = idx == 1
	var ownRead chan int64
	if idx == 1 { // the leader is our predecessor: one watch does for both
		moveWatch(&st.pred, &st.lead, predPath)
		st.lead.clear()
		if st.ownCzxid == 0 {
			// Next in line: learn our node's czxid now, beside the watch below (one round
			// trip for both), so that we can lead at once when the leader goes.
			ownRead = make(chan int64, 1)
			node := st.node
			go func() {
				_, stat, err := c.cfg.Conn.Exists(node)
				if err != nil || stat == nil {
					ownRead <- 0
					return
				}
				ownRead <- stat.Czxid
			}()
		}
	}
	// Further down the line we watch the leader as well as our predecessor, so a
	// new leader is known at once, with no poll. The predecessor's watch alone
	// tells us when our turn comes; the leader's fires only when the leader
	// goes, once per follower per leader change. Both reads go out together,
	// one round trip (go-zookeeper pipelines them).
	var leaderRead chan nodeRead
	if idx > 1 {
		leaderRead = make(chan nodeRead, 1)
		w, gen := st.lead, st.gen
		go func() { leaderRead <- c.readWatched(w, gen, leaderPath) }()
	}
	pr := c.readWatched(st.pred, st.gen, predPath)
	lr := pr
	if leaderRead != nil {
		lr = <-leaderRead // always received: the goroutine never outlives this call
		c.keepWatch(st, &st.lead, leaderPath, "leader", lr)
	}
	c.keepWatch(st, &st.pred, predPath, "predecessor", pr)
	if ownRead != nil {
		st.ownCzxid = <-ownRead // always received: the goroutine never outlives this call
	}
	if errors.Is(pr.err, zk.ErrNoNode) || errors.Is(lr.err, zk.ErrNoNode) {
		st.dirty = true // it left between the listing and now: list again
		return nil
	}
	if pr.err != nil {
		return fmt.Errorf("election: watch %s: %w", predPath, pr.err)
	}
	if lr.err != nil {
		return fmt.Errorf("election: watch %s: %w", leaderPath, lr.err)
	}
	ldata, lstat := lr.data, lr.stat
	leader, _, derr := memberFrom(c.dir, kids[0], ldata)
	if derr != nil && !lr.denied {
		c.log.Warn("unreadable leader node", "node", leader.Node, "err", derr)
	}
	c.stepDown("another node precedes ours")
	if st.following != leader.Node {
		st.following = leader.Node
		c.log.Info("following", "leader", leader.ID, "leader_address", leader.Address,
			"leader_node", leader.Node, "epoch", lstat.Czxid, "node", st.node)
	}
	c.publish(func(v *View) {
		v.Leader, v.Epoch, v.IsLeader, v.Connected = leader, lstat.Czxid, false, true
	})
	return nil
}

// watchMembers, on the leader, lists the candidates with a children watch (set
// again whenever it fires or the connection broke) for View.Members, so the leader
// learns of a new member at once. It returns nil when nothing changed since the last
// listing.
func (c *Candidate) watchMembers(st *loopState) ([]Member, error) {
	watching := st.kids.ch != nil && st.kids.gen == st.gen
	if watching && !st.membersStale {
		return nil, nil
	}
	var names []string
	var err error
	if watching { // the watch stands; only the last reading failed
		names, _, err = c.cfg.Conn.Children(c.dir)
	} else {
		var ch <-chan zk.Event
		names, _, ch, err = c.cfg.Conn.ChildrenW(c.dir)
		if err == nil {
			st.kids = watchSlot{path: c.dir, ch: ch, gen: st.gen}
		}
	}
	if err != nil {
		st.membersStale = true
		return nil, fmt.Errorf("election: watch %s: %w", c.dir, err)
	}
	ms, unreadable, err := c.readMembers(names)
	st.membersStale = err != nil
	for _, n := range unreadable {
		c.noteUnreadable(st, n, "left out of the members")
	}
	return ms, err
}

// noteUnreadable logs, once per node, that we may not read a candidate's node.
func (c *Candidate) noteUnreadable(st *loopState, node, consequence string) {
	if st.unreadable[node] {
		return
	}
	if st.unreadable == nil {
		st.unreadable = map[string]bool{}
	}
	st.unreadable[node] = true
	c.log.Warn("no permission to read a candidate's node (its ACL lacks our identity): "+consequence, "node", node)
}

// existsWatcher is the method of *zk.Conn that sets an exists-watch, which
// ZooKeeper allows without READ permission on the node. Conn does not list
// it, so that the Conns written before it still satisfy Conn; without it a
// node we may not read cannot be watched.
type existsWatcher interface {
	ExistsW(path string) (bool, *zk.Stat, <-chan zk.Event, error)
}

// nodeRead is the outcome of reading one node and keeping a watch on it.
type nodeRead struct {
	data   []byte
	stat   *zk.Stat
	ch     <-chan zk.Event // a new watch; nil when the slot's watch stands
	denied bool            // we may not read it (nil data): ch is an exists-watch
	err    error
}

// readWatched reads path and sets a watch on it, unless w, the slot's watch,
// already stands on it (same path, set since the connection last broke): then
// a plain read, rather than piling up another watch. It touches no loop
// state, so two can run at once.
//
// A node we may not read (zk.ErrNoAuth) is watched with an exists-watch when
// the Conn has ExistsW: its owner is a candidate like any other, whose ACL
// lacks our identity (digest ACLs rolling out).
func (c *Candidate) readWatched(w watchSlot, gen uint64, path string) nodeRead {
	if w.ch != nil && w.path == path && w.gen == gen {
		data, stat, err := c.cfg.Conn.Get(path)
		if !errors.Is(err, zk.ErrNoAuth) {
			return nodeRead{data: data, stat: stat, err: err}
		}
		ok, stat, err := c.cfg.Conn.Exists(path)
		if err == nil && !ok {
			err = zk.ErrNoNode
		}
		return nodeRead{stat: stat, denied: true, err: err}
	}
	data, stat, ch, err := c.cfg.Conn.GetW(path)
	ew, can := c.cfg.Conn.(existsWatcher)
	if !can || !errors.Is(err, zk.ErrNoAuth) {
		return nodeRead{data: data, stat: stat, ch: ch, err: err}
	}
	// If the node went meanwhile, this watch waits for a creation that never
	// comes (sequence numbers are not reused): one idle watch, no more.
	ok, stat, ch, err := ew.ExistsW(path)
	if err == nil && !ok {
		err = zk.ErrNoNode
	}
	return nodeRead{stat: stat, ch: ch, denied: true, err: err}
}

// keepWatch puts r's new watch, if any, in slot.
func (c *Candidate) keepWatch(st *loopState, slot *watchSlot, path, role string, r nodeRead) {
	if r.denied {
		c.noteUnreadable(st, path, "watching it for existence only")
	}
	if r.err != nil || r.ch == nil {
		return
	}
	if slot.path != path {
		c.log.Info("watching "+role, "watched", path, "node", st.node)
	}
	*slot = watchSlot{path: path, ch: r.ch, gen: st.gen}
}

// moveWatch hands from's watch to to when it stands on path and to's does
// not: a watch ZooKeeper holds cannot be removed, so reuse it.
func moveWatch(to, from *watchSlot, path string) {
	if from.ch != nil && from.path == path && (to.ch == nil || to.path != path || to.gen != from.gen) {
		*to = *from
		from.clear()
	}
}

// lead claims leadership (idempotent) and publishes it, with members when they are new.
//
// Nothing logs under mu: a slog handler may call IsLeader.
// contact is when the round trips that found us first began.
func (c *Candidate) lead(self Member, epoch, sid int64, members []Member, contact time.Time) {
	c.mu.Lock()
	became := !c.view.IsLeader || c.leadCtx.Err() != nil // not leading, or the lease ran out
	// A lease that ran out ended the last leadership though the loop has not stepped down yet:
	// the hooks hear of its end, and of the wait since the lease's end.
	lapsed, lapsedEpoch := became && c.view.IsLeader, c.view.Epoch
	if lapsed {
		c.waitingSince = c.leaseUntil
	}
	if became {
		c.leadCtx, c.leadCancel = context.WithCancel(context.Background())
		c.leaseUntil = time.Time{}
	}
	c.leaderSession = sid
	c.extendLease(contact)
	waited := time.Since(c.waitingSince)
	c.mu.Unlock()
	if became { // logged before the view goes out, so it precedes what the view sets off
		c.log.Info("became leader", "epoch", epoch, "node", self.Node, "session", sessionHex(sid))
		if h := c.cfg.Hooks.Leadership; h != nil {
			if lapsed {
				h(false, lapsedEpoch)
			}
			h(true, epoch)
		}
		if h := c.cfg.Hooks.Elected; h != nil {
			h(waited)
		}
	}
	c.publish(func(v *View) {
		v.Self, v.Leader, v.Epoch, v.IsLeader, v.Connected = self, self, epoch, true, true
		if members != nil {
			v.Members = members
		}
	})
}

// leaseMargin is the part of the session timeout the lease leaves unused: the
// server expires a session a session timeout after it last heard from it, and
// it heard from us after our round trip began; the margin absorbs clock-rate
// differences and the time between a check of IsLeader and the act it allows.
const leaseMargin = 5 // a fifth

// extendLease moves the lease's end to sessionTimeout less the margin after
// sent, the start of a round trip that worked, if that is later. Call with mu.
func (c *Candidate) extendLease(sent time.Time) {
	t := c.sessionTimeout()
	if t <= 0 {
		c.leaseUntil = time.Time{}
		return
	}
	until := sent.Add(t - t/leaseMargin)
	if !until.After(c.leaseUntil) {
		return
	}
	c.leaseUntil = until
	if c.leaseTimer == nil {
		c.leaseTimer = time.AfterFunc(time.Until(until), c.leaseRanOut)
	} else {
		c.leaseTimer.Reset(time.Until(until))
	}
}

// leaseExpired reports whether a lease is in force and has run out. Call with mu.
func (c *Candidate) leaseExpired() bool {
	return !c.leaseUntil.IsZero() && !time.Now().Before(c.leaseUntil)
}

// leaseRanOut ends the leadership's context when the lease runs out, even
// while the loop is stuck in a ZooKeeper call that gets no answer, and tells
// the loop, which steps down.
func (c *Candidate) leaseRanOut() {
	c.mu.Lock()
	expired := c.view.IsLeader && c.leaseExpired()
	if expired {
		c.leadCancel()
	}
	c.mu.Unlock()
	if expired {
		select {
		case c.leaseLost <- struct{}{}:
		default:
		}
	}
}

// renewLease, on the leader, makes one round trip to ZooKeeper (it checks our
// node is still ours) and extends the lease from its start.
func (c *Candidate) renewLease(st *loopState) {
	c.mu.Lock()
	leading := c.view.IsLeader
	c.mu.Unlock()
	if !leading || st.node == "" {
		return
	}
	sid := c.cfg.Conn.SessionID()
	if c.cfg.Conn.State() != zk.StateHasSession || sid != st.session {
		st.dirty = true // the session is away or replaced, whether or not we heard: a pass sees to it
		return
	}
	sent := time.Now()
	ok, stat, err := c.cfg.Conn.Exists(st.node)
	switch {
	case err != nil:
		c.log.Debug("lease renewal failed", "err", err) // the lease runs on; the next try may work
	case !ok || stat.EphemeralOwner != sid:
		st.dirty = true // our node is gone or not ours: the pass sees to it
		return
	default:
		c.mu.Lock()
		if c.view.IsLeader && c.leaderSession == sid {
			c.extendLease(sent)
		}
		c.mu.Unlock()
	}
	if t := c.sessionTimeout(); t > 0 {
		st.renew.Reset(t / 3)
	}
}

// stepDown ends our leadership, if any.
func (c *Candidate) stepDown(why string) {
	c.mu.Lock()
	was, epoch := c.view.IsLeader, c.view.Epoch
	if was {
		c.leadCancel()
		c.leadCtx, c.leadCancel = cancelledCtx, nil
		c.leaseUntil = time.Time{}
		if c.leaseTimer != nil {
			c.leaseTimer.Stop()
		}
		c.waitingSince = time.Now()
	}
	c.mu.Unlock()
	if was {
		c.log.Info("stepped down", "why", why, "epoch", epoch)
		if h := c.cfg.Hooks.Leadership; h != nil {
			h(false, epoch)
		}
		c.publish(func(v *View) { v.IsLeader, v.Members = false, nil })
	}
}

// suspend steps down while the session is in doubt; the leader is unknown.
func (c *Candidate) suspend(st *loopState, why string) {
	c.stepDown(why)
	st.following = ""
	c.publish(func(v *View) {
		v.IsLeader, v.Leader, v.Connected, v.Members = false, Member{}, false, nil
	})
}

// publish applies edit to the view and, if it changed, hands it to every
// observer (replacing an unread older view) and wakes Campaign.
func (c *Candidate) publish(edit func(*View)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v := c.view
	edit(&v)
	if v.equal(c.view) {
		return
	}
	c.view = v
	out := c.current()
	for s := range c.subs {
		select {
		case <-s.ch:
		default:
		}
		s.ch <- out
	}
	close(c.changed)
	c.changed = make(chan struct{})
}

func sessionHex(id int64) string { return fmt.Sprintf("0x%x", uint64(id)) }
