package election

import (
	"fmt"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/zkv-dev/zkv/zk"
)

// fakeServer is an in-memory ZooKeeper: a znode tree with per-parent
// sequence counters, ephemeral owners and one-shot data watches.
type fakeServer struct {
	mu       sync.Mutex
	nodes    map[string]*fakeNode
	zxid     int64
	nextSess int64
	conns    []*fakeConn
}

type fakeNode struct {
	data     []byte
	czxid    int64
	owner    int64
	cversion int32          // sequence counter for children, as in ZooKeeper
	version  int32          // data version, bumped by a multi's SetData
	noRead   map[int64]bool // sessions its ACL denies READ (Get, GetW: ErrNoAuth)
}

type fakeWatch struct {
	path  string
	ch    chan zk.Event
	child bool // a children watch on path (ChildrenW), else a data watch
}

type deferredFire struct {
	path  string
	child bool
	typ   zk.EventType
}

// fakeConn is one client session of a fakeServer; it implements Conn.
type fakeConn struct {
	srv     *fakeServer
	sid     int64
	state   zk.State
	events  chan zk.Event
	watches []fakeWatch

	ops        int  // ZooKeeper calls made (State and SessionID are local, not counted)
	dropEvents bool // session events are lost, as on a full zk.Connect channel

	// While paused (see pause) calls wait for this channel to close, and the
	// watches that fire are kept for resume.
	paused       chan struct{}
	deferred     []deferredFire
	pauseExpired bool  // the server expired the session during the pause
	readFault    error // Children, ChildrenW, Get and GetW fail with it while set

	// Faults, consumed by the next matching call.
	loseCreateReply bool // create the node, then disconnect and fail
	stealOwner      bool // after the next create, make the node owned by another session
	failCreate      error
}

func newFakeServer() *fakeServer {
	return &fakeServer{nodes: map[string]*fakeNode{"/": {}}, nextSess: 0x1000}
}

func (s *fakeServer) connect() *fakeConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextSess++
	c := &fakeConn{srv: s, sid: s.nextSess, state: zk.StateHasSession, events: make(chan zk.Event, 1000)}
	c.events <- zk.Event{Type: zk.EventSession, State: zk.StateHasSession}
	s.conns = append(s.conns, c)
	return c
}

// setCounter sets the next sequence number issued under parent.
func (s *fakeServer) setCounter(parent string, v int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ensure(parent)
	s.nodes[parent].cversion = v
}

func (s *fakeServer) ensure(p string) {
	if p == "/" {
		return
	}
	s.ensure(path.Dir(p))
	if _, ok := s.nodes[p]; !ok {
		s.zxid++
		s.nodes[p] = &fakeNode{czxid: s.zxid}
	}
}

// children returns the sorted child names of p.
func (s *fakeServer) children(p string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.childrenLocked(p)
}

func (s *fakeServer) childrenLocked(p string) []string {
	var out []string
	for n := range s.nodes {
		if n != "/" && path.Dir(n) == p {
			out = append(out, path.Base(n))
		}
	}
	sort.Strings(out)
	return out
}

// watchCounts returns how many live data watches exist per path, over all sessions.
func (s *fakeServer) watchCounts() map[string]int { return s.countWatches(false) }

// childWatchCounts returns how many live children watches exist per path.
func (s *fakeServer) childWatchCounts() map[string]int { return s.countWatches(true) }

func (s *fakeServer) countWatches(child bool) map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]int{}
	for _, c := range s.conns {
		for _, w := range c.watches {
			if w.child == child {
				out[w.path]++
			}
		}
	}
	return out
}

// fireLocked fires (and removes) the watches on p of one kind.
func (s *fakeServer) fireLocked(p string, child bool, typ zk.EventType) {
	for _, c := range s.conns {
		if c.paused != nil { // it hears of it when it resumes
			c.deferred = append(c.deferred, deferredFire{p, child, typ})
			continue
		}
		c.fireOwnLocked(p, child, typ)
	}
}

// fireOwnLocked fires (and removes) this session's watches on p of one kind.
func (c *fakeConn) fireOwnLocked(p string, child bool, typ zk.EventType) {
	kept := c.watches[:0]
	for _, w := range c.watches {
		if w.path == p && w.child == child {
			w.ch <- zk.Event{Type: typ, State: zk.StateHasSession, Path: p}
			close(w.ch)
			continue
		}
		kept = append(kept, w)
	}
	c.watches = kept
}

func (s *fakeServer) owner(p string) (int64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ok := s.nodes[p]
	if !ok {
		return 0, false
	}
	return n.owner, true
}

// deleteLocked removes p and fires the watches set on it.
func (s *fakeServer) deleteLocked(p string) {
	delete(s.nodes, p)
	if parent, ok := s.nodes[path.Dir(p)]; ok {
		parent.cversion++
	}
	s.fireLocked(p, false, zk.EventNodeDeleted)
	s.fireLocked(p, true, zk.EventNodeDeleted)
	s.fireLocked(path.Dir(p), true, zk.EventNodeChildrenChanged)
}

func (c *fakeConn) emit(state zk.State) {
	if !c.dropEvents {
		c.events <- zk.Event{Type: zk.EventSession, State: state}
	}
}

// opCount returns how many ZooKeeper calls the session has made.
func (c *fakeConn) opCount() int {
	c.srv.mu.Lock()
	defer c.srv.mu.Unlock()
	return c.ops
}

// failReads makes the session's reads fail with err (nil: succeed again).
func (c *fakeConn) failReads(err error) {
	c.srv.mu.Lock()
	defer c.srv.mu.Unlock()
	c.readFault = err
}

// loseEvents makes the session's events get lost (or not) from now on.
func (c *fakeConn) loseEvents(lose bool) {
	c.srv.mu.Lock()
	defer c.srv.mu.Unlock()
	c.dropEvents = lose
}

// disconnect drops the connection; the session and its watches survive.
func (c *fakeConn) disconnect() {
	c.srv.mu.Lock()
	defer c.srv.mu.Unlock()
	c.state = zk.StateDisconnected
	c.emit(zk.StateDisconnected)
}

// silentDisconnect drops the connection without telling the client's event stream,
// as when the event is lost or still on its way: only State shows it.
func (c *fakeConn) silentDisconnect() {
	c.srv.mu.Lock()
	defer c.srv.mu.Unlock()
	c.state = zk.StateDisconnected
}

// reconnect restores the same session.
func (c *fakeConn) reconnect() {
	c.srv.mu.Lock()
	defer c.srv.mu.Unlock()
	c.state = zk.StateHasSession
	c.emit(zk.StateHasSession)
}

// expire ends the session as the server does (its ephemeral nodes go, its
// watches end with EventNotWatching), then connects a new session on the
// same conn, as go-zookeeper does.
func (c *fakeConn) expire() {
	c.srv.mu.Lock()
	defer c.srv.mu.Unlock()
	c.state = zk.StateDisconnected
	c.emit(zk.StateDisconnected)
	c.expireLocked()
	c.srv.nextSess++
	c.sid = c.srv.nextSess
	c.state = zk.StateHasSession
	c.emit(zk.StateHasSession)
}

func (c *fakeConn) expireLocked() {
	for p, n := range c.srv.nodes {
		if n.owner == c.sid {
			c.srv.deleteLocked(p)
		}
	}
	c.notWatchingLocked(zk.ErrSessionExpired)
	c.state = zk.StateExpired
	c.emit(zk.StateExpired)
	c.sid = 0
}

// notWatching ends every watch of this session with EventNotWatching.
func (c *fakeConn) notWatching() {
	c.srv.mu.Lock()
	defer c.srv.mu.Unlock()
	c.notWatchingLocked(zk.ErrConnectionClosed)
}

func (c *fakeConn) notWatchingLocked(err error) {
	for _, w := range c.watches {
		ev := zk.Event{Type: zk.EventNotWatching, State: zk.StateDisconnected, Path: w.path, Err: err}
		c.events <- ev
		w.ch <- ev
		close(w.ch)
	}
	c.watches = nil
}

// close ends the session like zk.Conn.Close.
func (c *fakeConn) close() {
	c.srv.mu.Lock()
	defer c.srv.mu.Unlock()
	if c.sid != 0 {
		c.expireLocked()
	}
	c.state = zk.StateDisconnected
	close(c.events)
}

// check, called with srv.mu held at the start of every call, waits out a pause and
// fails the call if the session is not there (or was replaced meanwhile).
func (c *fakeConn) check() error {
	sid := c.sid
	for c.paused != nil {
		ch := c.paused
		c.srv.mu.Unlock()
		<-ch
		c.srv.mu.Lock()
	}
	if c.sid != sid {
		return zk.ErrSessionExpired
	}
	if c.state != zk.StateHasSession {
		return zk.ErrConnectionClosed
	}
	return nil
}

// pause makes the client hear nothing: its calls hang and no event reaches it, while
// its State still reports the session, as for a paused process or in the moments before
// its receive timeout fires. The server hears nothing either and expires the session
// fakeSessionTimeout later, deleting its nodes.
func (c *fakeConn) pause() {
	c.srv.mu.Lock()
	defer c.srv.mu.Unlock()
	ch := make(chan struct{})
	c.paused = ch
	time.AfterFunc(fakeSessionTimeout, func() {
		c.srv.mu.Lock()
		defer c.srv.mu.Unlock()
		if c.paused != ch {
			return // resumed in time
		}
		c.pauseExpired = true
		for p, n := range c.srv.nodes {
			if n.owner == c.sid {
				c.srv.deleteLocked(p)
			}
		}
	})
}

// resume ends a pause: the client hears what it missed, or, if the session expired
// meanwhile, learns so and gets a new session, as after expire.
func (c *fakeConn) resume() {
	c.srv.mu.Lock()
	defer c.srv.mu.Unlock()
	if c.paused == nil {
		return
	}
	close(c.paused)
	c.paused = nil
	deferred := c.deferred
	c.deferred = nil
	if !c.pauseExpired {
		for _, d := range deferred {
			c.fireOwnLocked(d.path, d.child, d.typ)
		}
		return
	}
	c.pauseExpired = false
	c.state = zk.StateDisconnected
	c.emit(zk.StateDisconnected)
	c.expireLocked()
	c.srv.nextSess++
	c.sid = c.srv.nextSess
	c.state = zk.StateHasSession
	c.emit(zk.StateHasSession)
}

func (c *fakeConn) stat(n *fakeNode) *zk.Stat {
	return &zk.Stat{Czxid: n.czxid, EphemeralOwner: n.owner, Cversion: n.cversion, Version: n.version}
}

func (c *fakeConn) Create(p string, data []byte, flags int32, _ []zk.ACL) (string, error) {
	c.srv.mu.Lock()
	defer c.srv.mu.Unlock()
	c.ops++
	if err := c.check(); err != nil {
		return "", err
	}
	if err := c.failCreate; err != nil {
		c.failCreate = nil
		return "", err
	}
	parent, ok := c.srv.nodes[path.Dir(p)]
	if !ok {
		return "", zk.ErrNoNode
	}
	if flags&zk.FlagSequence != 0 {
		p += fmt.Sprintf("%010d", parent.cversion)
	}
	if _, ok := c.srv.nodes[p]; ok {
		return "", zk.ErrNodeExists
	}
	c.srv.zxid++
	n := &fakeNode{data: append([]byte(nil), data...), czxid: c.srv.zxid}
	if flags&zk.FlagEphemeral != 0 {
		n.owner = c.sid
	}
	if c.stealOwner && flags&zk.FlagSequence != 0 {
		c.stealOwner = false
		n.owner = c.sid + 0x7777
	}
	c.srv.nodes[p] = n
	parent.cversion++
	c.srv.fireLocked(path.Dir(p), true, zk.EventNodeChildrenChanged)
	if c.loseCreateReply && flags&zk.FlagSequence != 0 {
		c.loseCreateReply = false
		c.state = zk.StateDisconnected
		c.emit(zk.StateDisconnected)
		return "", zk.ErrConnectionClosed
	}
	return p, nil
}

func (c *fakeConn) Children(p string) ([]string, *zk.Stat, error) {
	c.srv.mu.Lock()
	defer c.srv.mu.Unlock()
	c.ops++
	if err := c.check(); err != nil {
		return nil, nil, err
	}
	if c.readFault != nil {
		return nil, nil, c.readFault
	}
	n, ok := c.srv.nodes[p]
	if !ok {
		return nil, nil, zk.ErrNoNode
	}
	return c.srv.childrenLocked(p), c.stat(n), nil
}

func (c *fakeConn) ChildrenW(p string) ([]string, *zk.Stat, <-chan zk.Event, error) {
	c.srv.mu.Lock()
	defer c.srv.mu.Unlock()
	c.ops++
	if err := c.check(); err != nil {
		return nil, nil, nil, err
	}
	if c.readFault != nil {
		return nil, nil, nil, c.readFault
	}
	n, ok := c.srv.nodes[p]
	if !ok {
		return nil, nil, nil, zk.ErrNoNode
	}
	ch := make(chan zk.Event, 1)
	c.watches = append(c.watches, fakeWatch{path: p, ch: ch, child: true})
	return c.srv.childrenLocked(p), c.stat(n), ch, nil
}

func (c *fakeConn) Get(p string) ([]byte, *zk.Stat, error) {
	c.srv.mu.Lock()
	defer c.srv.mu.Unlock()
	c.ops++
	if err := c.check(); err != nil {
		return nil, nil, err
	}
	if c.readFault != nil {
		return nil, nil, c.readFault
	}
	n, ok := c.srv.nodes[p]
	if !ok {
		return nil, nil, zk.ErrNoNode
	}
	if n.noRead[c.sid] {
		return nil, nil, zk.ErrNoAuth
	}
	return append([]byte(nil), n.data...), c.stat(n), nil
}

// ExistsW sets an exists-watch, which ZooKeeper allows without READ permission. On an
// existing node it fires as a data watch does, so the fake keeps it as one.
func (c *fakeConn) ExistsW(p string) (bool, *zk.Stat, <-chan zk.Event, error) {
	c.srv.mu.Lock()
	defer c.srv.mu.Unlock()
	c.ops++
	if err := c.check(); err != nil {
		return false, nil, nil, err
	}
	ch := make(chan zk.Event, 1)
	n, ok := c.srv.nodes[p]
	if !ok {
		// A watch for the node's creation; the election never asks for one.
		return false, &zk.Stat{}, nil, fmt.Errorf("fake: exists-watch on missing %s not supported", p)
	}
	c.watches = append(c.watches, fakeWatch{path: p, ch: ch})
	return true, c.stat(n), ch, nil
}

func (c *fakeConn) GetW(p string) ([]byte, *zk.Stat, <-chan zk.Event, error) {
	c.srv.mu.Lock()
	defer c.srv.mu.Unlock()
	c.ops++
	if err := c.check(); err != nil {
		return nil, nil, nil, err
	}
	if c.readFault != nil {
		return nil, nil, nil, c.readFault
	}
	n, ok := c.srv.nodes[p]
	if !ok {
		return nil, nil, nil, zk.ErrNoNode
	}
	if n.noRead[c.sid] {
		return nil, nil, nil, zk.ErrNoAuth
	}
	ch := make(chan zk.Event, 1)
	c.watches = append(c.watches, fakeWatch{path: p, ch: ch})
	return append([]byte(nil), n.data...), c.stat(n), ch, nil
}

func (c *fakeConn) Exists(p string) (bool, *zk.Stat, error) {
	c.srv.mu.Lock()
	defer c.srv.mu.Unlock()
	c.ops++
	if err := c.check(); err != nil {
		return false, nil, err
	}
	n, ok := c.srv.nodes[p]
	if !ok {
		return false, &zk.Stat{}, nil
	}
	return true, c.stat(n), nil
}

func (c *fakeConn) Delete(p string, _ int32) error {
	c.srv.mu.Lock()
	defer c.srv.mu.Unlock()
	c.ops++
	if err := c.check(); err != nil {
		return err
	}
	if _, ok := c.srv.nodes[p]; !ok {
		return zk.ErrNoNode
	}
	if len(c.srv.childrenLocked(p)) > 0 {
		return zk.ErrNotEmpty
	}
	c.srv.deleteLocked(p)
	return nil
}

func (c *fakeConn) SessionID() int64 {
	c.srv.mu.Lock()
	defer c.srv.mu.Unlock()
	return c.sid
}

// SessionTimeout is the timeout the fake grants every session; the election reads it
// through an optional interface, as it does *zk.Conn's.
func (c *fakeConn) SessionTimeout() time.Duration { return fakeSessionTimeout }

const fakeSessionTimeout = time.Second

func (c *fakeConn) State() zk.State {
	c.srv.mu.Lock()
	defer c.srv.mu.Unlock()
	return c.state
}

// nodesWithPrefix lists the children of dir whose data contains needle.
func (s *fakeServer) nodesWithData(dir, needle string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, n := range s.childrenLocked(dir) {
		if strings.Contains(string(s.nodes[dir+"/"+n].data), needle) {
			out = append(out, n)
		}
	}
	return out
}

// put creates a node directly on the server, as another client would.
func (s *fakeServer) put(p string, data []byte, owner int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ensure(path.Dir(p))
	s.zxid++
	s.nodes[p] = &fakeNode{data: data, czxid: s.zxid, owner: owner}
	s.nodes[path.Dir(p)].cversion++
	s.fireLocked(path.Dir(p), true, zk.EventNodeChildrenChanged)
}

// denyRead makes p unreadable to the sessions of conns, as an ACL that lacks their
// identities would (a digest ACL rolled out to some servers before others).
func (s *fakeServer) denyRead(p string, conns ...*fakeConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.nodes[p]
	if n.noRead == nil {
		n.noRead = map[int64]bool{}
	}
	for _, c := range conns {
		n.noRead[c.sid] = true
	}
}

// remove deletes a node as another client (an operator) would.
func (s *fakeServer) remove(p string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deleteLocked(p)
}

// Multi applies ops all or none, as ZooKeeper does: on a failed op, that op's response carries
// its error, those after it zk.ErrAPIError (ZooKeeper's runtime inconsistency), and the call
// returns the first error. Creates are not sequential here.
func (c *fakeConn) Multi(ops ...any) ([]zk.MultiResponse, error) {
	c.srv.mu.Lock()
	defer c.srv.mu.Unlock()
	c.ops++
	if err := c.check(); err != nil {
		return nil, err
	}
	res := make([]zk.MultiResponse, len(ops))
	versionOK := func(p string, v int32) error {
		n, ok := c.srv.nodes[p]
		switch {
		case !ok:
			return zk.ErrNoNode
		case v >= 0 && n.version != v:
			return zk.ErrBadVersion
		}
		return nil
	}
	for i, op := range ops {
		var err error
		switch o := op.(type) {
		case *zk.CheckVersionRequest:
			err = versionOK(o.Path, o.Version)
		case *zk.SetDataRequest:
			err = versionOK(o.Path, o.Version)
		case *zk.DeleteRequest:
			err = versionOK(o.Path, o.Version)
		case *zk.CreateRequest:
			if _, ok := c.srv.nodes[path.Dir(o.Path)]; !ok {
				err = zk.ErrNoNode
			} else if _, ok := c.srv.nodes[o.Path]; ok {
				err = zk.ErrNodeExists
			}
		default:
			return nil, fmt.Errorf("unknown operation type %T", op)
		}
		if err != nil {
			res[i].Error = err
			for j := i + 1; j < len(res); j++ {
				res[j].Error = zk.ErrAPIError
			}
			return res, err
		}
	}
	for i, op := range ops {
		switch o := op.(type) {
		case *zk.SetDataRequest:
			n := c.srv.nodes[o.Path]
			n.data = append([]byte(nil), o.Data...)
			n.version++
			c.srv.fireLocked(o.Path, false, zk.EventNodeDataChanged)
		case *zk.DeleteRequest:
			c.srv.deleteLocked(o.Path)
		case *zk.CreateRequest:
			c.srv.zxid++
			n := &fakeNode{data: append([]byte(nil), o.Data...), czxid: c.srv.zxid}
			if o.Flags&zk.FlagEphemeral != 0 {
				n.owner = c.sid
			}
			c.srv.nodes[o.Path] = n
			c.srv.nodes[path.Dir(o.Path)].cversion++
			c.srv.fireLocked(path.Dir(o.Path), true, zk.EventNodeChildrenChanged)
			res[i].String = o.Path
		}
	}
	return res, nil
}
