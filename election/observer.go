package election

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/zkv-dev/zkv/zk"
)

// ObserverConfig configures an Observer. Its fields mean what Config's do.
type ObserverConfig struct {
	Session *Session        // Session, or Conn and Events
	Conn    Conn            // required without Session
	Events  <-chan zk.Event // required with Conn; closed: the session is gone for good
	Root    string          // required; "/" gives /election
	Logger  *slog.Logger    // discarded when nil
}

// absentPoll is how often an Observer looks for an election znode that does not exist yet (the
// Conn need not set a watch on a missing node).
const absentPoll = 500 * time.Millisecond

// Observer follows an election without joining it, like etcd's Election.Observe for a client
// that never campaigns: a router or a client library that wants the leader's address. It holds
// one children watch on the election's znode, so it reads the election again on every join and
// departure; a candidate's own View costs ZooKeeper less, but needs a node in the election.
//
// Its View's Leader is the candidate whose node is first in line, the one every candidate's
// View.Leader names: it leads, or claims the leadership as soon as it reads the election.
// Self, IsLeader and Members stay zero.
type Observer struct {
	cfg  ObserverConfig
	log  *slog.Logger
	dir  string
	stop chan struct{}
	wg   sync.WaitGroup
	once sync.Once

	unsubscribe func() // ends the Session subscription, after run

	mu     sync.Mutex
	view   View
	subs   map[*subscriber]struct{}
	closed bool
}

// NewObserver validates cfg and starts following the election in the background, reading
// the session's events from now on. Call Close to stop it.
func NewObserver(cfg ObserverConfig) (*Observer, error) {
	if err := validSource(cfg.Session, cfg.Conn, cfg.Events); err != nil {
		return nil, err
	}
	if err := validRoot(cfg.Root); err != nil {
		return nil, err
	}
	dir := electionDir(cfg.Root)
	logger := cfg.Logger
	if logger == nil {
		logger = discardLogger()
	}
	o := &Observer{cfg: cfg, log: logger.With("observer", dir), dir: dir, stop: make(chan struct{}),
		subs: make(map[*subscriber]struct{}), unsubscribe: func() {}}
	if cfg.Session != nil {
		o.cfg.Conn = cfg.Session.conn
		o.cfg.Events, o.unsubscribe = cfg.Session.Subscribe()
	}
	o.wg.Add(1)
	go o.run()
	return o, nil
}

// View returns the current view.
func (o *Observer) View() View {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.view
}

// Observe returns a channel of views: the current one at once, then each change, with
// Candidate.Observe's behaviour: a buffer of 1, the latest view wins, never waited for; closed
// when ctx ends or the Observer is closed.
func (o *Observer) Observe(ctx context.Context) <-chan View {
	ch := make(chan View, 1)
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		close(ch)
		return ch
	}
	s := &subscriber{ch: ch}
	o.subs[s] = struct{}{}
	ch <- o.view
	o.wg.Add(1) // safe: run holds the count above zero until closed is set
	go func() {
		defer o.wg.Done()
		select {
		case <-ctx.Done():
		case <-o.stop:
		}
		o.mu.Lock()
		defer o.mu.Unlock()
		if !s.closed {
			s.closed = true
			delete(o.subs, s)
			close(s.ch)
		}
	}()
	return ch
}

// Close stops following, closes every Observe channel and waits for the background work. It
// does not close the Session. It is idempotent.
func (o *Observer) Close() error {
	o.once.Do(func() {
		close(o.stop)
		o.wg.Wait()
		o.unsubscribe()
	})
	return nil
}

func (o *Observer) run() {
	defer o.wg.Done()
	defer func() {
		o.mu.Lock()
		o.closed = true
		o.mu.Unlock()
	}()
	events := o.cfg.Events
	timer := time.NewTimer(0) // the first reading
	defer timer.Stop()
	var (
		watch   <-chan zk.Event
		backoff time.Duration
	)
	for {
		select {
		case <-o.stop:
			return
		case ev, ok := <-events:
			if !ok {
				o.log.Warn("session closed: no longer following the election")
				events, watch = nil, nil
				timer.Stop()
				o.publish(View{})
				continue
			}
			if ev.Type == zk.EventSession || ev.Type == zk.EventNotWatching {
				timer.Reset(0)
			}
			continue
		case <-watch:
			watch = nil
		case <-timer.C:
		}
		if events == nil {
			continue
		}
		w, err := o.read()
		switch {
		case err == nil:
			watch, backoff = w, 0
			continue
		case errors.Is(err, errNoSessionNow):
			o.publish(View{})
			timer.Reset(sessionPoll)
		case errors.Is(err, zk.ErrNoNode):
			o.publish(View{Connected: true})
			timer.Reset(absentPoll)
		default:
			backoff = min(max(2*backoff, minBackoff), maxBackoff)
			o.log.Warn("reading the election failed; retrying", "err", err, "in", backoff)
			timer.Reset(backoff)
		}
		watch = nil
	}
}

// read lists the election with a children watch and publishes its first node as the leader.
func (o *Observer) read() (<-chan zk.Event, error) {
	if o.cfg.Conn.State() != zk.StateHasSession {
		return nil, errNoSessionNow
	}
	for pass := 0; pass < maxPasses; pass++ {
		names, _, watch, err := o.cfg.Conn.ChildrenW(o.dir)
		if err != nil {
			return nil, err
		}
		kids := sortChildren(names)
		if len(kids) == 0 {
			o.publish(View{Connected: true})
			return watch, nil
		}
		first := kids[0]
		data, stat, err := o.cfg.Conn.Get(o.dir + "/" + first.name)
		switch {
		case errors.Is(err, zk.ErrNoNode):
			continue // left meanwhile; the watch has fired too, so list again
		case errors.Is(err, zk.ErrNoAuth):
			// We may not read it, but may know it is there: name it by its node alone.
			ok, st, eerr := o.cfg.Conn.Exists(o.dir + "/" + first.name)
			if eerr != nil {
				return nil, eerr
			}
			if !ok {
				continue
			}
			o.publish(View{Leader: Member{Node: o.dir + "/" + first.name, Seq: first.seq}, Epoch: st.Czxid, Connected: true})
			return watch, nil
		case err != nil:
			return nil, err
		}
		m, _, derr := memberFrom(o.dir, first, data)
		if derr != nil {
			o.log.Warn("unreadable candidate node", "node", m.Node, "err", derr)
		}
		o.publish(View{Leader: m, Epoch: stat.Czxid, Connected: true})
		return watch, nil
	}
	return nil, errors.New("election: tree kept changing")
}

// publish sets the view and, if it changed, hands it to every subscriber (latest wins).
func (o *Observer) publish(v View) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if v.equal(o.view) {
		return
	}
	o.view = v
	for s := range o.subs {
		select {
		case <-s.ch:
		default:
		}
		s.ch <- v
	}
}
