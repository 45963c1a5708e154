package election

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/zkv-dev/zkv/zk"
)

// Sentinel errors; match them with errors.Is.
var (
	// ErrClosed is returned by calls on a Candidate after Close.
	ErrClosed = errors.New("election: closed")
	// ErrNotLeader is returned by CheckLeader when this candidate does not
	// lead, or leads in another epoch than the one asked about.
	ErrNotLeader = errors.New("election: not leader")
	// ErrNoSession is returned when the ZooKeeper session is gone for good
	// (its events stream was closed, i.e. the Session was closed).
	ErrNoSession = errors.New("election: no session")
	// ErrResigned is returned by a Join or Campaign still waiting when
	// Resign is called.
	ErrResigned = errors.New("election: resigned")
	// ErrInvalidConfig is wrapped by New for a Config it cannot use.
	ErrInvalidConfig = errors.New("election: invalid config")
)

// Conn is the part of *zk.Conn the election uses, so tests can fake it.
type Conn interface {
	Create(path string, data []byte, flags int32, acl []zk.ACL) (string, error)
	Children(path string) ([]string, *zk.Stat, error)
	ChildrenW(path string) ([]string, *zk.Stat, <-chan zk.Event, error)
	Get(path string) ([]byte, *zk.Stat, error)
	GetW(path string) ([]byte, *zk.Stat, <-chan zk.Event, error)
	Exists(path string) (bool, *zk.Stat, error)
	Delete(path string, version int32) error
	SessionID() int64
	State() zk.State
}

// Config configures a Candidate.
type Config struct {
	// Session is the ZooKeeper session (from Dial) the candidate uses; it
	// may be shared with other candidates and observers, each under its own
	// Root. The candidate subscribes to its events (Session.Subscribe) and
	// ends the subscription on Close. Set either Session, or Conn and Events.
	Session *Session
	// Conn is the ZooKeeper connection, for a Conn that is not a Session's
	// (a fake in tests): required unless Session is set.
	Conn Conn
	// Events carries Conn's session events; required with Conn. A closed
	// Events means the session is gone for good. Events only hasten what
	// the candidate would do anyway: while it has no session it polls the
	// session state every 100ms, so a lost event (zk.Connect's own channel
	// has 6 slots and drops the rest; a channel shared with another reader
	// loses what that reader takes) delays it, never stalls it. A Session's
	// streams lose nothing.
	Events <-chan zk.Event
	// Root is the parent of the "election" znode: "/zkv" gives
	// /zkv/election, "/" gives /election. Required, so that two services
	// do not meet in one election by default. Missing parents are created
	// (persistent).
	Root string
	// ID names this candidate. Required.
	ID string
	// Address is where this candidate serves, published to the others.
	Address string
	// Meta is extra data stored in the znode.
	Meta map[string]string
	// ACL applies to every znode created; default zk.WorldACL(zk.PermAll).
	// See DigestACL.
	ACL []zk.ACL
	// Logger receives the election's events; discarded when nil. Its
	// handler may call the Candidate (e.g. IsLeader to tag each line): the
	// candidate never logs while holding its lock.
	Logger *slog.Logger
	// SessionTimeout is the session timeout the server granted, for a Conn
	// that cannot tell it: the Conn's own SessionTimeout method, when it has
	// one (*zk.Conn of github.com/zkv-dev/zkv/zk does), wins. It sizes the
	// leader's lease (see IsLeader) and how long Close waits for a session;
	// zero with such a Conn: no lease. Never set it above the granted one.
	SessionTimeout time.Duration
	// LeaderPoll, when positive, re-reads the election that often as well,
	// as a backstop. Default (0) and negative: no poll. Followers need none:
	// each watches its predecessor, and one further down the line watches
	// the leader too, so it learns of a new leader at once.
	LeaderPoll time.Duration
	// Hooks receive the candidate's transitions, for metrics; nil ones are
	// skipped (zkv's server feeds them to Prometheus).
	Hooks Hooks
}

// Hooks are callbacks for metrics (counters of elections and errors, a
// histogram of time to elect, a gauge of leading). They run on the
// candidate's loop goroutine, never under its lock: they must return
// quickly and must not call Join, Campaign, Resign, Refresh or Close, which
// wait for that goroutine; View, IsLeader and the like are fine.
type Hooks struct {
	// Leadership is called when this candidate starts leading (leading
	// true) and when that leadership ends, with its epoch.
	Leadership func(leading bool, epoch int64)
	// Elected is called when this candidate starts leading, with how long
	// it waited: since Join asked, or since its previous leadership ended.
	Elected func(wait time.Duration)
	// Error is called for each failed step the candidate will retry (step
	// names it: "register", "follow", ...); the same failures are logged.
	Error func(step string, err error)
}

func (cfg *Config) validate() error {
	if err := validSource(cfg.Session, cfg.Conn, cfg.Events); err != nil {
		return err
	}
	if cfg.ID == "" {
		return fmt.Errorf("%w: ID is required", ErrInvalidConfig)
	}
	return validRoot(cfg.Root)
}

// validSource checks that a config names its session one way only.
func validSource(sess *Session, conn Conn, events <-chan zk.Event) error {
	switch {
	case sess != nil && (conn != nil || events != nil):
		return fmt.Errorf("%w: set Session, or Conn and Events, not both", ErrInvalidConfig)
	case sess != nil && sess.conn == nil:
		return fmt.Errorf("%w: Session has no connection (make it with Dial)", ErrInvalidConfig)
	case sess != nil:
		return nil
	case conn == nil:
		return fmt.Errorf("%w: Session or Conn is required", ErrInvalidConfig)
	case events == nil:
		return fmt.Errorf("%w: Events is required with Conn", ErrInvalidConfig)
	}
	return nil
}

func validRoot(root string) error {
	if root == "" {
		return fmt.Errorf("%w: Root is required (\"/\" for /election)", ErrInvalidConfig)
	}
	if err := validPath(electionDir(root)); err != nil {
		return fmt.Errorf("%w: Root %q: %v", ErrInvalidConfig, root, err)
	}
	return nil
}

// validPath rejects what ZooKeeper would refuse later, with a clearer error.
func validPath(p string) error {
	for i := 0; i < len(p); i++ {
		if p[i] == 0 {
			return errors.New("contains a NUL byte")
		}
		if p[i] == '/' && i+1 < len(p) && p[i+1] == '.' {
			return errors.New(`contains a "." or ".." element`)
		}
	}
	return nil
}

// Member is one registered candidate. Its Meta map is shared: treat it as
// read-only.
type Member struct {
	ID      string
	Address string
	Node    string // full znode path, e.g. /election/server0000000007
	Seq     int64  // the sequence number ZooKeeper appended
	Meta    map[string]string
}

func (m Member) equal(o Member) bool {
	return m.ID == o.ID && m.Address == o.Address && m.Node == o.Node && m.Seq == o.Seq && maps.Equal(m.Meta, o.Meta)
}

// View is a candidate's picture of the election at one moment.
type View struct {
	Self      Member // our own node; Node empty while unregistered
	Leader    Member // zero while unknown (unregistered, or session in doubt)
	Epoch     int64  // the leader node's czxid: grows from one leader to the next; keeps its last value while Leader is unknown
	IsLeader  bool
	Connected bool // session in good standing
	// Members, while this candidate leads, lists every registered candidate in
	// election order, kept current by a watch on the election's children that
	// only the leader holds (one watch: no herd). Nil while following: call
	// Candidate.Members.
	Members []Member
}

func (v View) equal(o View) bool {
	return v.Self.equal(o.Self) && v.Leader.equal(o.Leader) && v.Epoch == o.Epoch &&
		v.IsLeader == o.IsLeader && v.Connected == o.Connected &&
		slices.EqualFunc(v.Members, o.Members, Member.equal)
}

// Candidate takes part in one leader election, like Apache Curator's
// LeaderLatch. Its methods are safe for concurrent use.
type Candidate struct {
	cfg  Config
	log  *slog.Logger
	dir  string
	guid string
	data []byte
	acl  []zk.ACL

	reqs      chan request
	stop      chan struct{}
	closeOnce sync.Once
	closeErr  error
	wg        sync.WaitGroup

	unsubscribe func() // ends the Session subscription, after the loop

	mu            sync.Mutex
	leaseUntil    time.Time   // zero: no lease (not leading, or no session timeout known)
	leaseTimer    *time.Timer // cancels leadCtx when the lease runs out
	leaseLost     chan struct{}
	view          View
	changed       chan struct{} // closed and replaced on every new view
	leadCtx       context.Context
	leadCancel    context.CancelFunc
	leaderSession int64
	want          bool      // mirrors the loop's: joined and not resigned
	waitingSince  time.Time // when this candidate last began to wait for leadership (Hooks.Elected)
	subs          map[*subscriber]struct{}
	closed        bool
}

type subscriber struct {
	ch     chan View
	closed bool
}

type requestKind int

const (
	reqJoin requestKind = iota
	reqResign
	reqRefresh
)

type request struct {
	kind  requestKind
	reply chan error // buffer 1
}

var cancelledCtx = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

// New validates cfg and starts the candidate's background loop, which reads
// the session's events from now on. The candidate does not take part until Join or
// Campaign. Call Close to stop it.
func New(cfg Config) (*Candidate, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.ACL == nil {
		cfg.ACL = zk.WorldACL(zk.PermAll)
	}
	cfg.Meta = maps.Clone(cfg.Meta)
	logger := cfg.Logger
	if logger == nil {
		logger = discardLogger()
	}
	var raw [16]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return nil, fmt.Errorf("election: guid: %w", err)
	}
	guid := hex.EncodeToString(raw[:])
	data, err := json.Marshal(nodeData{ID: cfg.ID, Address: cfg.Address, GUID: guid, Meta: cfg.Meta})
	if err != nil {
		return nil, fmt.Errorf("election: encode node data: %w", err)
	}
	c := &Candidate{
		cfg:       cfg,
		log:       logger.With("candidate", cfg.ID),
		dir:       electionDir(cfg.Root),
		guid:      guid,
		data:      data,
		acl:       cfg.ACL,
		reqs:      make(chan request),
		stop:      make(chan struct{}),
		changed:   make(chan struct{}),
		subs:      make(map[*subscriber]struct{}),
		leadCtx:   cancelledCtx,
		leaseLost: make(chan struct{}, 1),
	}
	c.view = View{Self: c.selfMember("", 0)}
	c.unsubscribe = func() {}
	if cfg.Session != nil {
		c.cfg.Conn = cfg.Session.conn
		c.cfg.Events, c.unsubscribe = cfg.Session.Subscribe()
	}
	c.wg.Add(1)
	go c.run()
	return c, nil
}

func (c *Candidate) selfMember(node string, seq int64) Member {
	return Member{ID: c.cfg.ID, Address: c.cfg.Address, Node: node, Seq: seq, Meta: c.cfg.Meta}
}

// Join registers this candidate (an EPHEMERAL_SEQUENTIAL znode under
// <Root>/election) and returns once the node exists; from then on the
// candidate follows the election in the background and leads when its turn
// comes. It waits for a session if there is none yet. Join on a joined
// candidate returns nil at once. If ctx ends first, Join returns ctx's error
// but registration goes on in the background; Resign withdraws.
func (c *Candidate) Join(ctx context.Context) error {
	return c.send(ctx, reqJoin)
}

// Campaign joins (see Join) and then waits until this candidate leads, and
// returns the Term it won, taken atomically with the claim: the epoch and node
// of that leadership, and a Ctx cancelled when it ends. A Term whose Ctx is
// already done may come back if the leadership ended in the meantime. If ctx
// ends first it returns ctx's error and the candidate stays in the election,
// as with Curator's LeaderLatch.await; call Resign to withdraw.
func (c *Candidate) Campaign(ctx context.Context) (Term, error) {
	if err := c.Join(ctx); err != nil {
		return Term{}, err
	}
	for {
		c.mu.Lock()
		leading := c.view.IsLeader && c.holds()
		term := Term{Ctx: c.leadCtx, Epoch: c.view.Epoch, Node: c.view.Self.Node}
		closed, want, changed := c.closed, c.want, c.changed
		c.mu.Unlock()
		switch {
		case closed:
			return Term{}, ErrClosed
		case leading:
			return term, nil
		case !want:
			return Term{}, ErrResigned
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return Term{}, ctx.Err()
		}
	}
}

// Term is one leadership of a candidate, from its claim to its end.
type Term struct {
	// Ctx is cancelled when this leadership ends: on Resign or Close, when
	// the session is in doubt or the lease runs out (see IsLeader), when
	// our node goes. Work done as the leader should run under it.
	Ctx context.Context
	// Epoch is the leader node's czxid (View.Epoch): it grows from one
	// leader to the next, so it can fence a deposed leader's writes.
	Epoch int64
	// Node is our znode, e.g. /election/server0000000007.
	Node string
}

// CampaignTerm is Campaign.
//
// Deprecated: Campaign returns the Term now; CampaignTerm stays for the
// callers of v0.1.
func (c *Candidate) CampaignTerm(ctx context.Context) (Term, error) {
	return c.Campaign(ctx)
}

// View returns the current view.
func (c *Candidate) View() View {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.current()
}

// current is the view as handed out: IsLeader only while the session that made
// us leader holds, whether or not the loop has heard otherwise. Call with mu.
func (c *Candidate) current() View {
	v := c.view
	v.IsLeader = v.IsLeader && c.holds()
	return v
}

// holds reports whether the session that made us leader is still in good
// standing right now, ahead of the loop hearing about it, and the lease has
// not run out. Call with mu.
func (c *Candidate) holds() bool {
	return c.cfg.Conn.State() == zk.StateHasSession && c.cfg.Conn.SessionID() == c.leaderSession &&
		(c.leaseUntil.IsZero() || time.Now().Before(c.leaseUntil))
}

// IsLeader reports whether this candidate leads. It is false as soon as the
// session is in doubt, even before the loop has processed the event, and
// once the lease runs out: when the session timeout less a fifth has passed
// since the start of the last ZooKeeper round trip that worked. The leader
// makes one every third of the session timeout, so the lease runs out only
// when ZooKeeper stops answering (a paused process, a silent link), before
// the server can expire the session and let another candidate lead, even if
// no Disconnected event has come. The lease needs the session timeout: from
// the Conn when it has a SessionTimeout method (*zk.Conn of
// github.com/zkv-dev/zkv/zk has), else Config.SessionTimeout; without
// either there is no lease.
func (c *Candidate) IsLeader() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.view.IsLeader && c.holds()
}

// Leading returns a context cancelled when the current leadership ends, and
// true, while this candidate leads; otherwise an already cancelled context
// and false.
func (c *Candidate) Leading() (context.Context, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.view.IsLeader && c.holds() {
		return c.leadCtx, true
	}
	return cancelledCtx, false
}

// CheckLeader returns nil if this candidate leads in epoch, else an error
// wrapping ErrNotLeader. A writer calls it under its own lock before
// accepting a write stamped with epoch.
func (c *Candidate) CheckLeader(epoch int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.checkLeaderLocked(epoch)
}

// checkLeaderLocked is CheckLeader. Call with mu.
func (c *Candidate) checkLeaderLocked(epoch int64) error {
	switch {
	case !c.view.IsLeader || !c.holds():
		return ErrNotLeader
	case c.view.Epoch != epoch:
		return fmt.Errorf("%w: epoch %d, current %d", ErrNotLeader, epoch, c.view.Epoch)
	}
	return nil
}

// Observe returns a channel of views: the current one at once, then each
// change. The channel has a buffer of 1 and the latest view wins: a slow
// reader may miss intermediate views but always receives the latest, and
// the election never waits for a reader. It is closed when ctx ends or the
// candidate is closed. A view's IsLeader passed the same check as IsLeader
// when it was sent; it may have ended since: act on IsLeader, CheckLeader or
// the Leading context, not on a view alone.
func (c *Candidate) Observe(ctx context.Context) <-chan View {
	ch := make(chan View, 1)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		close(ch)
		return ch
	}
	s := &subscriber{ch: ch}
	c.subs[s] = struct{}{}
	ch <- c.current()
	c.wg.Add(1) // safe: the loop holds the count above zero until closed is set
	go func() {
		defer c.wg.Done()
		select {
		case <-ctx.Done():
		case <-c.stop:
		}
		c.mu.Lock()
		c.dropSubscriber(s)
		c.mu.Unlock()
	}()
	return ch
}

// dropSubscriber closes s's channel once. Call with mu.
func (c *Candidate) dropSubscriber(s *subscriber) {
	if !s.closed {
		s.closed = true
		delete(c.subs, s)
		close(s.ch)
	}
}

// Members lists the registered candidates in election order (the leader
// first). A candidate whose node this session may not read (zk.ErrNoAuth, as
// while digest ACLs roll out) is left out. go-zookeeper calls take no
// context: ctx is checked between them.
func (c *Candidate) Members(ctx context.Context) ([]Member, error) {
	names, _, err := c.cfg.Conn.Children(c.dir)
	if errors.Is(err, zk.ErrNoNode) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("election: list %s: %w", c.dir, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ms, _, err := c.readMembers(names)
	return ms, err
}

// readMembers reads the data of the candidate nodes among names, all at once (go-zookeeper
// pipelines concurrent requests on one connection, so this costs one round trip, not one
// per member), and returns them in election order. A node gone meanwhile is left out, and
// so is one we may not read, whose path is returned in unreadable.
func (c *Candidate) readMembers(names []string) (ms []Member, unreadable []string, err error) {
	kids := sortChildren(names)
	type result struct {
		m      Member
		ok     bool
		denied bool
		err    error
	}
	res := make([]result, len(kids))
	var wg sync.WaitGroup
	for i, k := range kids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			data, _, err := c.cfg.Conn.Get(c.dir + "/" + k.name)
			switch {
			case errors.Is(err, zk.ErrNoNode):
				return // left meanwhile
			case errors.Is(err, zk.ErrNoAuth):
				res[i].denied = true
				return
			case err != nil:
				res[i].err = fmt.Errorf("election: read %s/%s: %w", c.dir, k.name, err)
				return
			}
			m, _, derr := memberFrom(c.dir, k, data)
			if derr != nil {
				c.log.Warn("unreadable candidate node", "node", m.Node, "err", derr)
			}
			res[i] = result{m: m, ok: true}
		}()
	}
	wg.Wait()
	out := make([]Member, 0, len(kids))
	for i, r := range res {
		switch {
		case r.err != nil:
			return nil, nil, r.err
		case r.denied:
			unreadable = append(unreadable, c.dir+"/"+kids[i].name)
		case r.ok:
			out = append(out, r.m)
		}
	}
	return out, unreadable, nil
}

// Resign steps down, deletes this candidate's node (its successor learns at
// once) and stops taking part; Join may be called again later. Even when it
// returns an error the candidate has stopped taking part: a node it could
// not delete is deleted when the session returns, or vanishes with it. So is
// the node of a Join whose create reply was lost (Join returned with its ctx
// and the create's outcome is unknown): the candidate finds it by its GUID.
func (c *Candidate) Resign(ctx context.Context) error {
	return c.send(ctx, reqResign)
}

// Refresh re-reads the election now and returns once the View reflects it.
// A follower calls it when it has reason to think its View.Leader is stale:
// a request from a newer epoch, or a leader that does not answer. If the
// reading failed it returns why (the candidate retries by itself): without a
// session an error wrapping zk.ErrConnectionClosed, once the Session is
// closed ErrNoSession.
func (c *Candidate) Refresh(ctx context.Context) error {
	return c.send(ctx, reqRefresh)
}

func (c *Candidate) send(ctx context.Context, kind requestKind) error {
	req := request{kind: kind, reply: make(chan error, 1)}
	select {
	case c.reqs <- req:
	case <-c.stop:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-req.reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close steps down, deletes this candidate's node so its successor is told
// at once, closes every Observe channel and stops the background loop,
// waiting for it. It does not close the Session: close the Candidate first.
//
// Without a session Close waits for one, at most a session timeout (10s when
// the Conn does not tell its timeout), to delete the node, and also any node
// a create whose reply was lost may have left: a node left behind while the
// Session stays open would sit first in line with nobody leading from it.
// Past that wait the session has expired with its nodes, unless the whole
// ensemble was down; closing the Session removes them in any case. Close
// returns an error only when a node of ours could not be deleted for another
// reason than the session (e.g. zk.ErrNoAuth). It is idempotent; later calls
// return nil.
func (c *Candidate) Close() error {
	first := false
	c.closeOnce.Do(func() {
		first = true
		close(c.stop)
		c.wg.Wait()
		c.unsubscribe()
	})
	if first {
		return c.closeErr
	}
	return nil
}
