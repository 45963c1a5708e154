package server_test

import (
	"context"
	"fmt"
	"sync"

	"github.com/zkv-dev/zkv/election"
	"github.com/zkv-dev/zkv/kvstore"
	"github.com/zkv-dev/zkv/replication"
	"github.com/zkv-dev/zkv/server"
)

// fakeCluster is an in-memory election with ZooKeeper's rules but no ZooKeeper: members
// register in sequence order, the first leads, every change of leader raises the epoch.
type fakeCluster struct {
	mu      sync.Mutex
	seq     int64
	epoch   int64
	leader  string // node of the current leader
	members []*fakeElector
	all     map[*fakeElector]bool
	insync  *server.MemInSync // the cluster's in-sync record, shared as ZooKeeper's would be
}

func newFakeCluster() *fakeCluster {
	return &fakeCluster{epoch: 100, all: map[*fakeElector]bool{}, insync: &server.MemInSync{}}
}

// elector returns a candidate for a server; it takes part after Join.
func (c *fakeCluster) elector(id, addr string) *fakeElector {
	e := &fakeElector{c: c, id: id, addr: addr, connected: true, subs: map[*fakeSub]bool{},
		stop: make(chan struct{})}
	c.mu.Lock()
	c.all[e] = true
	c.recomputeLocked()
	c.mu.Unlock()
	return e
}

// remote registers a member that is not a Server (e.g. a stub leader) and joins it.
func (c *fakeCluster) remote(id, addr string) *fakeElector {
	e := c.elector(id, addr)
	_ = e.Join(context.Background())
	return e
}

func (c *fakeCluster) recomputeLocked() {
	var lead *fakeElector
	if len(c.members) > 0 {
		lead = c.members[0]
	}
	node := ""
	if lead != nil {
		node = lead.node
	}
	if node != c.leader && node != "" {
		c.epoch += 7 // a czxid: grows from one leader to the next
	}
	c.leader = node
	for e := range c.all {
		v := election.View{Self: e.memberLocked(), Epoch: c.epoch, Connected: e.connected}
		if lead != nil && e.connected {
			v.Leader = lead.memberLocked()
			v.IsLeader = lead == e
		}
		e.publishLocked(v)
	}
}

func (c *fakeCluster) epochNow() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.epoch
}

type fakeSub struct{ ch chan election.View }

// fakeElector implements server.Elector over a fakeCluster.
type fakeElector struct {
	c         *fakeCluster
	id, addr  string
	inc       string // the incarnation its server publishes
	node      string // under c.mu
	seq       int64
	connected bool
	view      election.View
	subs      map[*fakeSub]bool
	joins     int
	resigns   int
	closed    bool
	stop      chan struct{}
	wg        sync.WaitGroup
	once      sync.Once
}

var _ server.Elector = (*fakeElector)(nil)

func (e *fakeElector) memberLocked() election.Member {
	m := election.Member{ID: e.id, Address: e.addr, Node: e.node, Seq: e.seq}
	if e.inc != "" {
		m.Meta = map[string]string{"inc": e.inc}
	}
	return m
}

func (e *fakeElector) publishLocked(v election.View) {
	e.view = v
	for s := range e.subs {
		select { // buffer 1, latest wins
		case <-s.ch:
		default:
		}
		s.ch <- v
	}
}

func (e *fakeElector) Join(ctx context.Context) error {
	e.c.mu.Lock()
	defer e.c.mu.Unlock()
	if e.closed {
		return election.ErrClosed
	}
	e.joins++
	if e.node != "" {
		return nil
	}
	e.c.seq++
	e.seq = e.c.seq
	e.node = fmt.Sprintf("/election/server%010d", e.seq)
	e.c.members = append(e.c.members, e)
	e.c.recomputeLocked()
	return nil
}

func (e *fakeElector) leaveLocked() {
	if e.node == "" {
		return
	}
	for i, m := range e.c.members {
		if m == e {
			e.c.members = append(e.c.members[:i:i], e.c.members[i+1:]...)
			break
		}
	}
	e.node, e.seq = "", 0
	e.c.recomputeLocked()
}

func (e *fakeElector) Resign(ctx context.Context) error {
	e.c.mu.Lock()
	defer e.c.mu.Unlock()
	e.resigns++
	e.leaveLocked()
	return nil
}

// setConnected simulates losing (false) or regaining (true) the session; a lost session
// also loses the node, as after expiry.
func (e *fakeElector) setConnected(ok bool) {
	e.c.mu.Lock()
	defer e.c.mu.Unlock()
	e.connected = ok
	if !ok {
		e.leaveLocked()
	}
	e.c.recomputeLocked()
}

func (e *fakeElector) View() election.View {
	e.c.mu.Lock()
	defer e.c.mu.Unlock()
	return e.view
}

func (e *fakeElector) Observe(ctx context.Context) <-chan election.View {
	e.c.mu.Lock()
	defer e.c.mu.Unlock()
	s := &fakeSub{ch: make(chan election.View, 1)}
	if e.closed {
		close(s.ch)
		return s.ch
	}
	e.subs[s] = true
	s.ch <- e.view
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		select {
		case <-ctx.Done():
		case <-e.stop:
		}
		e.c.mu.Lock()
		delete(e.subs, s)
		close(s.ch)
		e.c.mu.Unlock()
	}()
	return s.ch
}

func (e *fakeElector) Members(ctx context.Context) ([]election.Member, error) {
	e.c.mu.Lock()
	defer e.c.mu.Unlock()
	out := make([]election.Member, 0, len(e.c.members))
	for _, m := range e.c.members {
		out = append(out, m.memberLocked())
	}
	return out, nil
}

func (e *fakeElector) Close() error {
	e.once.Do(func() {
		e.c.mu.Lock()
		e.closed = true
		e.leaveLocked()
		delete(e.c.all, e)
		e.c.mu.Unlock()
		close(e.stop)
		e.wg.Wait()
	})
	return nil
}

func (e *fakeElector) counts() (joins, resigns int) {
	e.c.mu.Lock()
	defer e.c.mu.Unlock()
	return e.joins, e.resigns
}

// fakeRepl is a Replicator whose Wait answers what the test says.
type fakeRepl struct {
	mu       sync.Mutex
	epoch    int64
	replicas []string
	entries  []kvstore.Entry
	waitErr  error
	gate     chan struct{} // Wait blocks until closed, when set
	deposed  chan struct{}
	closed   bool

	barriers   int   // Barrier calls
	barrierErr error // Barrier's answer, when set

	apply   func(uint64) error // the server's Apply: Wait applies what it waited for
	applied uint64
	insync  [][]string
}

func (r *fakeRepl) SetInSync(sets ...[]string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.insync = sets
}

func (r *fakeRepl) Commit() (uint64, uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.applied, r.applied
}

func (r *fakeRepl) SetReplicas(addrs []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.replicas = append([]string(nil), addrs...)
}

func (r *fakeRepl) Enqueue(entries ...kvstore.Entry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.entries = append(r.entries, entries...)
}

func (r *fakeRepl) Wait(ctx context.Context, index uint64, mode replication.AckMode) (int, error) {
	r.mu.Lock()
	gate, err, n := r.gate, r.waitErr, len(r.replicas)
	r.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	if err != nil {
		return 0, err
	}
	// The fake commits everything enqueued up to index at once.
	r.mu.Lock()
	defer r.mu.Unlock()
	if index > r.applied && r.apply != nil {
		if err := r.apply(index); err != nil {
			return 0, err
		}
		r.applied = index
	}
	return n, nil
}

// Barrier answers as Wait does, and counts its calls.
func (r *fakeRepl) Barrier(ctx context.Context, mode replication.AckMode) (int, error) {
	r.mu.Lock()
	r.barriers++
	berr := r.barrierErr
	r.mu.Unlock()
	if berr != nil {
		return 0, berr
	}
	return r.Wait(ctx, 0, mode)
}

func (r *fakeRepl) Deposed() <-chan struct{} { return r.deposed }

func (r *fakeRepl) Stats() []replication.ReplicaStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]replication.ReplicaStats, 0, len(r.replicas))
	for _, a := range r.replicas {
		out = append(out, replication.ReplicaStats{Addr: a, Up: true})
	}
	return out
}

func (r *fakeRepl) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	return nil
}

// keyed drops the no-ops (a leadership's first entry) from entries.
func keyed(entries []kvstore.Entry) []kvstore.Entry {
	var out []kvstore.Entry
	for _, e := range entries {
		if !e.Noop {
			out = append(out, e)
		}
	}
	return out
}

// fakeRepls is a ReplicatorFactory that keeps what it made.
type fakeRepls struct {
	mu    sync.Mutex
	made  []*fakeRepl
	setup func(*fakeRepl)
}

func (f *fakeRepls) factory(cfg replication.Config) (server.Replicator, error) {
	r := &fakeRepl{epoch: cfg.Epoch, deposed: make(chan struct{}), apply: cfg.Apply, applied: cfg.Applied}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.setup != nil {
		f.setup(r)
	}
	f.made = append(f.made, r)
	return r, nil
}

func (f *fakeRepls) last() *fakeRepl {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.made) == 0 {
		return nil
	}
	return f.made[len(f.made)-1]
}
