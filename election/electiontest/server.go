package electiontest

import (
	"fmt"
	"path"
	"sort"
	"sync"
	"time"

	"github.com/zkv-dev/zkv/zk"
)

// DefaultSessionTimeout is the session timeout a Server grants when
// Options.SessionTimeout is zero.
const DefaultSessionTimeout = time.Second

// eventBuffer is the capacity of each Conn's Events channel.
const eventBuffer = 256

// Options configures a Server.
type Options struct {
	// SessionTimeout is granted to every session (Conn.SessionTimeout): a
	// partitioned or paused session expires that long after it was cut
	// off. Default DefaultSessionTimeout.
	SessionTimeout time.Duration
}

// Server is an in-memory ZooKeeper: a tree of znodes with sequence counters,
// ephemeral owners and one-shot watches, and the sessions connected to it.
// ACLs are accepted and not enforced. Its methods are safe for concurrent use.
type Server struct {
	timeout time.Duration

	mu      sync.Mutex
	nodes   map[string]*node
	zxid    int64
	nextSID int64
	conns   []*Conn
}

type node struct {
	data     []byte
	czxid    int64
	mzxid    int64
	owner    int64 // session of an ephemeral node
	cversion int32 // the next sequence number for children, as in ZooKeeper
}

// NewServer returns an empty Server (only "/" exists).
func NewServer(opts Options) *Server {
	if opts.SessionTimeout <= 0 {
		opts.SessionTimeout = DefaultSessionTimeout
	}
	return &Server{timeout: opts.SessionTimeout, nodes: map[string]*node{"/": {}}, nextSID: 0x100}
}

// Connect opens a session. The Conn has the session at once (State
// zk.StateHasSession) and its first event says so.
func (s *Server) Connect() *Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := &Conn{srv: s, events: make(chan zk.Event, eventBuffer)}
	c.newSessionLocked()
	s.conns = append(s.conns, c)
	return c
}

// Children returns the names of path's children, sorted as strings, or nil
// when path does not exist.
func (s *Server) Children(p string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.nodes[p]; !ok {
		return nil
	}
	return s.childrenLocked(p)
}

// Get returns path's data and whether it exists.
func (s *Server) Get(p string) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ok := s.nodes[p]
	if !ok {
		return nil, false
	}
	return append([]byte(nil), n.data...), true
}

// Delete deletes path as an operator (another client) would, firing the
// watches on it. It fails with zk.ErrNoNode or zk.ErrNotEmpty.
func (s *Server) Delete(p string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.nodes[p]; !ok || p == "/" {
		return zk.ErrNoNode
	}
	if len(s.childrenLocked(p)) > 0 {
		return zk.ErrNotEmpty
	}
	s.deleteLocked(p)
	return nil
}

// SetSequence sets the sequence number the next sequential child of parent
// gets (creating parent if missing), e.g. math.MaxInt32 to see the counter
// wrap to -2147483648 as ZooKeeper's does.
func (s *Server) SetSequence(parent string, next int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ensureLocked(parent)
	s.nodes[parent].cversion = next
}

func (s *Server) ensureLocked(p string) {
	if _, ok := s.nodes[p]; ok {
		return
	}
	s.ensureLocked(path.Dir(p))
	s.zxid++
	s.nodes[p] = &node{czxid: s.zxid, mzxid: s.zxid}
}

func (s *Server) childrenLocked(p string) []string {
	var out []string
	for n := range s.nodes {
		if n != "/" && path.Dir(n) == p {
			out = append(out, path.Base(n))
		}
	}
	sort.Strings(out)
	return out
}

func (s *Server) stat(n *node, p string) *zk.Stat {
	return &zk.Stat{Czxid: n.czxid, Mzxid: n.mzxid, EphemeralOwner: n.owner, Cversion: n.cversion,
		NumChildren: int32(len(s.childrenLocked(p))), DataLength: int32(len(n.data))}
}

// deleteLocked removes p and fires the watches on it and its parent.
func (s *Server) deleteLocked(p string) {
	delete(s.nodes, p)
	s.zxid++
	parent := path.Dir(p)
	if pn, ok := s.nodes[parent]; ok {
		pn.cversion++
	}
	s.fireLocked(p, zk.EventNodeDeleted, watchData, watchExist, watchChild)
	s.fireLocked(parent, zk.EventNodeChildrenChanged, watchChild)
}

// fireLocked fires (and removes) every session's watches of the given kinds
// on p. A paused session keeps them until it resumes.
func (s *Server) fireLocked(p string, typ zk.EventType, kinds ...watchKind) {
	for _, c := range s.conns {
		if c.paused != nil {
			c.deferred = append(c.deferred, firing{p, typ, kinds})
			continue
		}
		c.fireLocked(p, typ, kinds)
	}
}

// expireLocked ends session sid on the server: its ephemeral nodes go.
func (s *Server) expireLocked(sid int64) {
	var gone []string
	for p, n := range s.nodes {
		if n.owner == sid && sid != 0 {
			gone = append(gone, p)
		}
	}
	sort.Strings(gone)
	for _, p := range gone {
		s.deleteLocked(p)
	}
}

// createLocked is the server's half of Conn.Create.
func (s *Server) createLocked(p string, data []byte, flags int32, owner int64) (string, error) {
	parent, ok := s.nodes[path.Dir(p)]
	if !ok || p == "/" {
		return "", zk.ErrNoNode
	}
	if parent.owner != 0 {
		return "", zk.ErrNoChildrenForEphemerals
	}
	if flags&zk.FlagSequence != 0 {
		p += fmt.Sprintf("%010d", parent.cversion)
	}
	if _, ok := s.nodes[p]; ok {
		return "", zk.ErrNodeExists
	}
	s.zxid++
	n := &node{data: append([]byte(nil), data...), czxid: s.zxid, mzxid: s.zxid}
	if flags&zk.FlagEphemeral != 0 {
		n.owner = owner
	}
	s.nodes[p] = n
	parent.cversion++
	s.fireLocked(p, zk.EventNodeCreated, watchExist)
	s.fireLocked(path.Dir(p), zk.EventNodeChildrenChanged, watchChild)
	return p, nil
}
