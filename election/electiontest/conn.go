package electiontest

import (
	"time"

	"github.com/zkv-dev/zkv/zk"
)

type watchKind int

const (
	watchData watchKind = iota
	watchExist
	watchChild
)

type watch struct {
	path string
	kind watchKind
	ch   chan zk.Event
}

type firing struct {
	path  string
	typ   zk.EventType
	kinds []watchKind
}

// Conn is one client session of a Server; it satisfies election.Conn, and
// has ExistsW and SessionTimeout as *zk.Conn does. Its methods are safe for
// concurrent use.
type Conn struct {
	srv    *Server
	events chan zk.Event

	// Guarded by srv.mu.
	sid        int64
	state      zk.State
	closed     bool
	watches    []watch
	dropEvents bool
	loseReply  bool
	cutoff     *time.Timer   // expires the session while partitioned or paused
	paused     chan struct{} // closed by Resume
	deferred   []firing      // watches that fired while paused
	expired    bool          // the server expired the session while cut off
}

// Events returns the session's event stream (Config.Events): state changes
// and EventNotWatching. It is closed by Close.
func (c *Conn) Events() <-chan zk.Event { return c.events }

// SessionTimeout returns the session timeout the Server grants.
func (c *Conn) SessionTimeout() time.Duration { return c.srv.timeout }

// SessionID returns the current session's ID; 0 while there is none.
func (c *Conn) SessionID() int64 {
	c.srv.mu.Lock()
	defer c.srv.mu.Unlock()
	return c.sid
}

// State returns the connection's state as the client sees it.
func (c *Conn) State() zk.State {
	c.srv.mu.Lock()
	defer c.srv.mu.Unlock()
	return c.state
}

// emitLocked sends a session event unless events are dropped; a full buffer
// drops it too, as go-zookeeper's channel does.
func (c *Conn) emitLocked(state zk.State) {
	if c.dropEvents || c.closed {
		return
	}
	select {
	case c.events <- zk.Event{Type: zk.EventSession, State: state}:
	default:
	}
}

func (c *Conn) newSessionLocked() {
	c.srv.nextSID++
	c.sid = c.srv.nextSID
	c.state = zk.StateHasSession
	c.emitLocked(zk.StateHasSession)
}

// fireLocked fires (and removes) this session's watches of kinds on p.
func (c *Conn) fireLocked(p string, typ zk.EventType, kinds []watchKind) {
	kept := c.watches[:0]
	for _, w := range c.watches {
		if w.path == p && hasKind(kinds, w.kind) {
			w.ch <- zk.Event{Type: typ, State: zk.StateHasSession, Path: p}
			close(w.ch)
			continue
		}
		kept = append(kept, w)
	}
	c.watches = kept
}

func hasKind(kinds []watchKind, k watchKind) bool {
	for _, x := range kinds {
		if x == k {
			return true
		}
	}
	return false
}

// endWatchesLocked ends every watch with EventNotWatching, on its channel
// and on Events, as go-zookeeper does when a session expires or closes.
func (c *Conn) endWatchesLocked(err error) {
	for _, w := range c.watches {
		ev := zk.Event{Type: zk.EventNotWatching, State: zk.StateDisconnected, Path: w.path, Err: err}
		if !c.closed {
			select {
			case c.events <- ev:
			default:
			}
		}
		w.ch <- ev
		close(w.ch)
	}
	c.watches = nil
}

// begin starts a call, with srv.mu held: it waits out a pause, then fails
// the call if there is no session (or another one came meanwhile).
func (c *Conn) begin() error {
	sid := c.sid
	for c.paused != nil {
		ch := c.paused
		c.srv.mu.Unlock()
		<-ch
		c.srv.mu.Lock()
	}
	switch {
	case c.closed:
		return zk.ErrClosing
	case c.sid != sid:
		return zk.ErrSessionExpired
	case c.state != zk.StateHasSession:
		return zk.ErrConnectionClosed
	}
	return nil
}

func (c *Conn) addWatchLocked(p string, kind watchKind) <-chan zk.Event {
	ch := make(chan zk.Event, 1)
	c.watches = append(c.watches, watch{path: p, kind: kind, ch: ch})
	return ch
}

// Create creates a znode; flags as zk.Create (zk.FlagEphemeral,
// zk.FlagSequence). ACLs are not enforced.
func (c *Conn) Create(p string, data []byte, flags int32, _ []zk.ACL) (string, error) {
	c.srv.mu.Lock()
	defer c.srv.mu.Unlock()
	if err := c.begin(); err != nil {
		return "", err
	}
	name, err := c.srv.createLocked(p, data, flags, c.sid)
	if err == nil && c.loseReply {
		c.loseReply = false
		c.partitionLocked()
		return "", zk.ErrConnectionClosed
	}
	return name, err
}

// Delete deletes a znode; version -1 matches any.
func (c *Conn) Delete(p string, version int32) error {
	c.srv.mu.Lock()
	defer c.srv.mu.Unlock()
	if err := c.begin(); err != nil {
		return err
	}
	_, ok := c.srv.nodes[p]
	switch {
	case !ok || p == "/":
		return zk.ErrNoNode
	case version != -1 && version != 0:
		return zk.ErrBadVersion // data is never set: every version is 0
	case len(c.srv.childrenLocked(p)) > 0:
		return zk.ErrNotEmpty
	}
	c.srv.deleteLocked(p)
	if c.loseReply {
		c.loseReply = false
		c.partitionLocked()
		return zk.ErrConnectionClosed
	}
	return nil
}

// Get returns a znode's data and stat.
func (c *Conn) Get(p string) ([]byte, *zk.Stat, error) {
	data, stat, _, err := c.get(p, false)
	return data, stat, err
}

// GetW is Get, also setting a data watch.
func (c *Conn) GetW(p string) ([]byte, *zk.Stat, <-chan zk.Event, error) {
	return c.get(p, true)
}

func (c *Conn) get(p string, watch bool) ([]byte, *zk.Stat, <-chan zk.Event, error) {
	c.srv.mu.Lock()
	defer c.srv.mu.Unlock()
	if err := c.begin(); err != nil {
		return nil, nil, nil, err
	}
	n, ok := c.srv.nodes[p]
	if !ok {
		return nil, nil, nil, zk.ErrNoNode
	}
	var ch <-chan zk.Event
	if watch {
		ch = c.addWatchLocked(p, watchData)
	}
	return append([]byte(nil), n.data...), c.srv.stat(n, p), ch, nil
}

// Children returns the names of a znode's children (sorted) and its stat.
func (c *Conn) Children(p string) ([]string, *zk.Stat, error) {
	kids, stat, _, err := c.children(p, false)
	return kids, stat, err
}

// ChildrenW is Children, also setting a children watch.
func (c *Conn) ChildrenW(p string) ([]string, *zk.Stat, <-chan zk.Event, error) {
	return c.children(p, true)
}

func (c *Conn) children(p string, watch bool) ([]string, *zk.Stat, <-chan zk.Event, error) {
	c.srv.mu.Lock()
	defer c.srv.mu.Unlock()
	if err := c.begin(); err != nil {
		return nil, nil, nil, err
	}
	n, ok := c.srv.nodes[p]
	if !ok {
		return nil, nil, nil, zk.ErrNoNode
	}
	var ch <-chan zk.Event
	if watch {
		ch = c.addWatchLocked(p, watchChild)
	}
	return c.srv.childrenLocked(p), c.srv.stat(n, p), ch, nil
}

// Exists reports whether a znode exists, with its stat.
func (c *Conn) Exists(p string) (bool, *zk.Stat, error) {
	ok, stat, _, err := c.exists(p, false)
	return ok, stat, err
}

// ExistsW is Exists, also setting an exists-watch (which fires when the node
// is created, deleted or changed).
func (c *Conn) ExistsW(p string) (bool, *zk.Stat, <-chan zk.Event, error) {
	return c.exists(p, true)
}

func (c *Conn) exists(p string, watch bool) (bool, *zk.Stat, <-chan zk.Event, error) {
	c.srv.mu.Lock()
	defer c.srv.mu.Unlock()
	if err := c.begin(); err != nil {
		return false, nil, nil, err
	}
	var ch <-chan zk.Event
	if watch {
		ch = c.addWatchLocked(p, watchExist)
	}
	n, ok := c.srv.nodes[p]
	if !ok {
		return false, &zk.Stat{}, ch, nil
	}
	return true, c.srv.stat(n, p), ch, nil
}

// LoseNextReply makes the next Create or Delete take effect on the server
// and then lose its reply with the connection: the call returns
// zk.ErrConnectionClosed and the Conn is partitioned (see Partition).
func (c *Conn) LoseNextReply() {
	c.srv.mu.Lock()
	defer c.srv.mu.Unlock()
	c.loseReply = true
}

// Partition drops the connection: calls fail with zk.ErrConnectionClosed
// and a Disconnected event is sent. The session lives on on the server for
// a session timeout, then expires (its ephemeral nodes go) unless Heal
// comes first.
func (c *Conn) Partition() {
	c.srv.mu.Lock()
	defer c.srv.mu.Unlock()
	if !c.closed && c.state == zk.StateHasSession && c.paused == nil {
		c.partitionLocked()
	}
}

func (c *Conn) partitionLocked() {
	c.state = zk.StateDisconnected
	c.emitLocked(zk.StateDisconnected)
	c.startCutoffLocked()
}

// startCutoffLocked arms the server's expiry of the session, a session
// timeout from now.
func (c *Conn) startCutoffLocked() {
	sid := c.sid
	c.cutoff = time.AfterFunc(c.srv.timeout, func() {
		c.srv.mu.Lock()
		defer c.srv.mu.Unlock()
		if c.closed || c.sid != sid || c.expired || (c.state == zk.StateHasSession && c.paused == nil) {
			return // reconnected or resumed in time, or already over
		}
		c.expired = true
		c.srv.expireLocked(sid)
	})
}

func (c *Conn) stopCutoffLocked() {
	if c.cutoff != nil {
		c.cutoff.Stop()
		c.cutoff = nil
	}
}

// Heal ends a partition: the same session comes back (a HasSession event)
// if the server has not expired it; otherwise the Conn reports the expiry
// (Expired, with EventNotWatching for each watch) and opens a new session.
func (c *Conn) Heal() {
	c.srv.mu.Lock()
	defer c.srv.mu.Unlock()
	if c.closed || c.state == zk.StateHasSession {
		return
	}
	c.stopCutoffLocked()
	c.reconnectLocked()
}

// reconnectLocked brings the client back after a cut-off.
func (c *Conn) reconnectLocked() {
	if !c.expired {
		c.state = zk.StateHasSession
		c.emitLocked(zk.StateHasSession)
		return
	}
	c.expired = false
	c.state = zk.StateExpired
	c.endWatchesLocked(zk.ErrSessionExpired)
	c.emitLocked(zk.StateExpired)
	c.newSessionLocked()
}

// Expire makes the server expire the session now, as after a long
// partition: its ephemeral nodes go, the client sees Disconnected and
// Expired, then gets a new session on the same Conn, as go-zookeeper does.
func (c *Conn) Expire() {
	c.srv.mu.Lock()
	defer c.srv.mu.Unlock()
	if c.closed {
		return
	}
	if c.paused != nil {
		c.resumeLocked()
	}
	c.stopCutoffLocked()
	if c.state == zk.StateHasSession {
		c.state = zk.StateDisconnected
		c.emitLocked(zk.StateDisconnected)
	}
	if !c.expired {
		c.srv.expireLocked(c.sid)
		c.expired = true
	}
	c.reconnectLocked()
}

// Pause makes the client hear nothing: its calls wait, no event reaches it,
// and its State still reports the session, as for a paused process or a
// link gone silent before the client's receive timeout fires. The server
// hears nothing either and expires the session a session timeout later
// unless Resume comes first.
func (c *Conn) Pause() {
	c.srv.mu.Lock()
	defer c.srv.mu.Unlock()
	if c.closed || c.paused != nil || c.state != zk.StateHasSession {
		return
	}
	c.paused = make(chan struct{})
	c.startCutoffLocked()
}

// Resume ends a pause: the calls that waited go on, and the client hears
// what it missed, or, if the server expired the session meanwhile, learns so
// (Disconnected, Expired) and gets a new session.
func (c *Conn) Resume() {
	c.srv.mu.Lock()
	defer c.srv.mu.Unlock()
	if c.paused != nil {
		c.resumeLocked()
	}
}

func (c *Conn) resumeLocked() {
	close(c.paused)
	c.paused = nil
	c.stopCutoffLocked()
	deferred := c.deferred
	c.deferred = nil
	if !c.expired {
		for _, f := range deferred {
			c.fireLocked(f.path, f.typ, f.kinds)
		}
		return
	}
	c.state = zk.StateDisconnected
	c.emitLocked(zk.StateDisconnected)
	c.reconnectLocked()
}

// DropEvents makes session events get lost from now on (true), or arrive
// again (false).
func (c *Conn) DropEvents(drop bool) {
	c.srv.mu.Lock()
	defer c.srv.mu.Unlock()
	c.dropEvents = drop
}

// Close ends the session like zk.Conn.Close: the server deletes its
// ephemeral nodes, its watches end, and Events is closed. It is idempotent.
func (c *Conn) Close() {
	c.srv.mu.Lock()
	defer c.srv.mu.Unlock()
	if c.closed {
		return
	}
	if c.paused != nil {
		close(c.paused)
		c.paused = nil
		c.deferred = nil
	}
	c.stopCutoffLocked()
	if !c.expired {
		c.srv.expireLocked(c.sid)
	}
	c.endWatchesLocked(zk.ErrClosing)
	c.state = zk.StateDisconnected
	c.emitLocked(zk.StateDisconnected)
	c.closed = true
	c.sid = 0
	close(c.events)
	conns := c.srv.conns[:0]
	for _, o := range c.srv.conns {
		if o != c {
			conns = append(conns, o)
		}
	}
	c.srv.conns = conns
}
