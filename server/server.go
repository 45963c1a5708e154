package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/zkv-dev/zkv/election"
	"github.com/zkv-dev/zkv/kvstore"
	"github.com/zkv-dev/zkv/replication"
	"golang.org/x/net/netutil"
)

// Headers every answer carries, and the one a forwarded request carries.
const (
	HeaderLeader    = "X-Zkv-Leader"
	HeaderEpoch     = "X-Zkv-Epoch"
	HeaderForwarded = "X-Zkv-Forwarded"
	// HeaderApplied (every read) is the index of the last committed write the answering
	// store holds; HeaderLastContact (local reads) is how long ago, in milliseconds, this
	// server last heard from its leader's stream: 0 on the leader, -1 if never (compare
	// Consul's X-Consul-Index and X-Consul-LastContact).
	HeaderApplied     = "X-Zkv-Applied-Index"
	HeaderLastContact = "X-Zkv-Last-Contact"
)

// Server is one zkv server: the REST API over a store, a role driven by the election's
// view, the leader's fan-out and the replica's apply side. Create it with New (or Open),
// then Run it, or Start it and later Shutdown.
type Server struct {
	cfg    Config
	ack    replication.AckMode
	logger *slog.Logger
	// writeLevel is the level of the per-write log lines (Config.LogWrites).
	writeLevel slog.Level
	elector    Elector
	store      Store
	newRepl    ReplicatorFactory
	insync     InSyncStore
	log        *replication.Log
	follower   *replication.Follower
	echo       *echo.Echo
	metrics    *metrics
	fwd        *http.Client
	fwdTr      *http.Transport
	// fwdStream forwards client requests to the leader on the stream; streams serves the
	// streams other servers open to this one (their appends and forwards).
	fwdStream *replication.StreamClient
	streams   *replication.StreamServer
	legacy    legacyLeaders
	tls       *tlsConfigs     // nil without TLS
	replTr    *http.Transport // the fan-outs' requests over TLS; nil without

	// writeMu serialises the leader's writes and the role changes: a write sees one
	// leadership from its check to its Enqueue.
	writeMu  sync.Mutex
	lead     *leadership // nil unless leading; written under writeMu
	draining bool        // under writeMu: no new leader writes
	inflight sync.WaitGroup

	leadPtr atomic.Pointer[leadership] // lead, for readers outside writeMu (metrics)
	// pending holds the newest entry of each key that the leader has logged but not yet
	// applied: a write's version follows it, not the store's (which holds only committed
	// entries). Guarded by pendMu.
	pendMu  sync.Mutex
	pending map[string]kvstore.Entry
	synced  atomic.Bool // the -sync_on_join copy is done (or not wanted)
	syncing atomic.Bool
	members atomic.Pointer[[]election.Member] // last members read, for /v1/status fallback
	refused atomic.Value                      // string: the last refusal logged at info
	refresh chan struct{}                     // buffer 1: ask the loop to re-read the election
	// rejoin (buffer 1) asks the leader's loop to re-read the members now: a follower said
	// hello. streamEpoch is the epoch of the last append or snapshot this server accepted:
	// a follower is in its leader's stream (and ready) once it equals the view's epoch.
	rejoin      chan struct{}
	streamEpoch atomic.Int64
	recLoading  atomic.Bool  // a follower's refresh of the remembered in-sync record runs
	lastContact atomic.Int64 // unix nanoseconds of the last append or snapshot accepted from a leader
	// followed is the leader this server last followed while its session was good: it
	// takes that leader's appends, at that epoch, while its session is in doubt.
	followed atomic.Pointer[followedLeader]
	helloing atomic.Bool
	noSpace  atomic.Bool // the leader refused a write for the quota; a growing write that fits clears it
	// leaders remembers the recent changes of leader for /v1/cluster and /ui.
	leaders  *leaderHistory
	watchers atomic.Int64 // requests blocked in a watch (watch.go)

	ctx    context.Context // the server's lifetime; cancelled by Shutdown
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine the server starts

	startOnce    sync.Once
	started      atomic.Bool
	listener     net.Listener
	httpSrv      *http.Server
	stopped      chan struct{} // closed when Shutdown begins
	serveErr     chan error    // buffer 1
	shutdownOnce sync.Once
	shutdownErr  error
}

type followedLeader struct {
	address string
	epoch   int64
}

// leadership is one term as leader: its epoch, its fan-out and its in-sync set.
type leadership struct {
	epoch      int64
	repl       Replicator
	since      time.Time
	epochStart uint64 // index of its no-op, the first entry of its epoch
	guard      string // its election node: a record write needs it to exist
	unclean    bool
	done       chan struct{} // closed when the leadership ends
	// projected is the size (kvstore.Size) of the state after every entry logged so far:
	// what the quota is checked against. Under the server's writeMu.
	projected int64

	mu         sync.Mutex // guards the record fields
	rec        InSyncRecord
	recVersion int32
	members    atomic.Pointer[[]election.Member] // the members last read while leading
	// inSyncAddrs is the in-sync set as last handed to the fan-out (addresses); only
	// becomeLeader, then keepInSync, touch it.
	inSyncAddrs []string
}

func (ld *leadership) record() InSyncRecord {
	ld.mu.Lock()
	defer ld.mu.Unlock()
	return ld.rec
}

// New validates cfg and returns a Server composing deps. Nothing runs until Start or Run;
// Shutdown closes deps.Elector.
func New(cfg Config, deps Deps) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if deps.Elector == nil {
		return nil, fmt.Errorf("%w: Deps.Elector is required", ErrInvalidConfig)
	}
	if cfg.Address == "" {
		return nil, fmt.Errorf("%w: no address: set Address, Port or Listener", ErrInvalidConfig)
	}
	logger := cfg.Logger
	if logger == nil {
		logger = discardLogger()
	}
	store := deps.Store
	if store == nil {
		st, err := kvstore.New(kvstore.Config{})
		if err != nil {
			return nil, err
		}
		store = st
	}
	newRepl := deps.NewReplicator
	if newRepl == nil {
		newRepl = NewFanout
	}
	rlog, err := replication.NewLog(replication.LogConfig{})
	if err != nil {
		return nil, err
	}
	idx, ep := store.Last()
	rlog.Reset(idx, ep)
	insync := deps.InSync
	if insync == nil {
		insync = &MemInSync{}
	}
	if cfg.Incarnation == "" {
		cfg.Incarnation = newIncarnation()
	}

	s := &Server{
		cfg:     cfg,
		ack:     cfg.ackMode(),
		logger:  logger,
		elector: deps.Elector,
		writeLevel: func() slog.Level {
			if cfg.LogWrites {
				return slog.LevelInfo
			}
			return slog.LevelDebug
		}(),
		store:    store,
		newRepl:  newRepl,
		insync:   insync,
		pending:  make(map[string]kvstore.Entry),
		log:      rlog,
		refresh:  make(chan struct{}, 1),
		rejoin:   make(chan struct{}, 1),
		stopped:  make(chan struct{}),
		serveErr: make(chan error, 1),
		leaders:  newLeaderHistory(time.Now()),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if cfg.UnsafeDisableFencing {
		logger.Warn("UNSAFE: fencing is off (-unsafe_disable_fencing): a deposed leader's writes reach the replicas; for tests only")
	}
	s.synced.Store(!cfg.SyncOnJoin)
	s.follower, err = replication.NewFollower(replication.FollowerConfig{
		Store:       store,
		Log:         rlog,
		Fresh:       !cfg.SyncOnJoin,
		Incarnation: cfg.Incarnation,
		CheckLeader: s.checkSender,
		Logger:      logger.With("component", "follower"),

		UnsafeDisableFencing: cfg.UnsafeDisableFencing,
	})
	if err != nil {
		return nil, err
	}
	s.fwdTr = &http.Transport{
		Proxy:        nil, // server-to-server traffic never goes through a proxy
		DialContext:  (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns: 1024,
		// As many idle connections as concurrent forwards: a smaller pool closes the
		// surplus after each burst and dials again (a TCP handshake per forwarded write).
		MaxIdleConnsPerHost: 512,
		IdleConnTimeout:     60 * time.Second,
	}
	if s.tls, err = loadTLS(cfg); err != nil {
		return nil, err
	}
	if s.tls != nil {
		s.fwdTr.TLSClientConfig = s.tls.client.Clone()
		s.replTr = s.fwdTr.Clone()
	}
	s.fwd = &http.Client{Transport: s.fwdTr, Timeout: cfg.WriteTimeout + 2*time.Second}
	scfg := replication.StreamClientConfig{Token: cfg.ClusterToken}
	if s.tls != nil {
		scfg.TLS = s.tls.client
	}
	s.fwdStream = replication.NewStreamClient(scfg)
	s.streams = &replication.StreamServer{Handler: streamHandler{s}, MaxFrameBytes: int(cfg.appendLimit()),
		Logger: logger.With("component", "stream")}
	s.metrics = newMetrics(
		func() float64 { return float64(s.store.Len()) },
		func() float64 { i, _ := s.store.Last(); return float64(i) },
		s.replicaStats,
	)
	s.registerQuotaMetrics()
	s.echo = s.routes()
	return s, nil
}

// Handler returns the server's HTTP handler (public and internal routes), e.g. for
// httptest. The role loop runs only after Start.
func (s *Server) Handler() http.Handler { return s.echo }

// Address is the address this server publishes.
func (s *Server) Address() string { return s.cfg.Address }

// ID is this server's name in the cluster.
func (s *Server) ID() string { return s.cfg.ID }

// Start listens (on Config.Listener, or Host:Port), serves HTTP in the background, joins
// the election and follows its view. It returns once the listener is open; ctx bounds
// nothing after that. Use Shutdown to stop.
func (s *Server) Start(ctx context.Context) error {
	err := ErrStarted
	s.startOnce.Do(func() { err = s.start(ctx) })
	return err
}

func (s *Server) start(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	ln := s.cfg.Listener
	if ln == nil {
		var err error
		ln, err = net.Listen("tcp", net.JoinHostPort(s.cfg.Host, fmt.Sprint(s.cfg.Port)))
		if err != nil {
			return fmt.Errorf("server: listen: %w", err)
		}
	}
	s.listener = ln
	if s.cfg.MaxConns > 0 {
		ln = netutil.LimitListener(ln, s.cfg.MaxConns)
	}
	if s.tls != nil {
		ln = tls.NewListener(ln, s.tls.server)
	}
	s.httpSrv = &http.Server{
		Handler: s.echo,
		// A request's headers and body must arrive within ReadTimeout (a body that trickles
		// in is cut), and its answer leave within the write deadline, which covers a write's
		// wait for its acknowledgements and a forwarded request's round trip.
		ReadHeaderTimeout: min(10*time.Second, s.cfg.ReadTimeout),
		ReadTimeout:       s.cfg.ReadTimeout,
		WriteTimeout:      s.cfg.ReadTimeout + s.cfg.WriteTimeout + 5*time.Second,
		IdleTimeout:       s.cfg.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(s.logger.Handler(), slog.LevelWarn),
	}
	s.started.Store(true)
	s.goFunc(func() {
		if err := s.httpSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.serveErr <- fmt.Errorf("server: serve: %w", err)
		}
	})
	s.startRole()
	s.logger.Info("serving", "id", s.cfg.ID, "address", s.cfg.Address, "listen", ln.Addr().String())
	return nil
}

// startRole joins the election and starts following its view. Join may wait for a
// ZooKeeper session, so it runs beside the loop.
func (s *Server) startRole() {
	views := s.elector.Observe(s.ctx)
	s.goFunc(func() { s.loop(views) })
	s.goFunc(func() {
		if err := s.elector.Join(s.ctx); err != nil && s.ctx.Err() == nil {
			// Without a node this server can never lead nor be replicated to: Run fails.
			s.logger.Error("join the election", "error", err)
			select {
			case s.serveErr <- fmt.Errorf("server: join the election: %w", err):
			default:
			}
		}
	})
}

// Run starts the server and serves until ctx ends, then shuts down gracefully within
// Config.ShutdownTimeout. It returns nil after a clean stop.
func (s *Server) Run(ctx context.Context) error {
	if err := s.Start(ctx); err != nil {
		return err
	}
	var serveErr error
	select {
	case <-ctx.Done():
	case <-s.stopped:
	case serveErr = <-s.serveErr:
		s.logger.Error("serving stopped", "error", serveErr)
	}
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	return errors.Join(serveErr, s.Shutdown(sctx))
}

// Shutdown stops the server gracefully: new leader writes are refused, those in flight
// get their acknowledgements, the server leaves the election (a leader resigns first, so
// a successor takes over at once), in-flight HTTP requests finish, then everything is
// closed. ctx bounds the waits. Idempotent: later calls return the first one's result.
func (s *Server) Shutdown(ctx context.Context) error {
	s.shutdownOnce.Do(func() { s.shutdownErr = s.shutdown(ctx) })
	return s.shutdownErr
}

func (s *Server) shutdown(ctx context.Context) error {
	close(s.stopped)
	s.writeMu.Lock()
	s.draining = true
	wasLeader := s.lead != nil
	s.writeMu.Unlock()
	s.logger.Info("shutting down", "leader", wasLeader)

	var errs []error
	done := make(chan struct{})
	go func() { s.inflight.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		errs = append(errs, fmt.Errorf("server: wait for in-flight writes: %w", ctx.Err()))
	}

	if s.started.Load() {
		if err := s.elector.Resign(ctx); err != nil {
			errs = append(errs, fmt.Errorf("server: resign: %w", err))
		} else if wasLeader {
			s.logger.Info("resigned leadership")
		}
		if err := s.httpSrv.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("server: http shutdown: %w", err))
			_ = s.httpSrv.Close()
		}
	}
	_ = s.streams.Close() // hijacked: http.Server.Shutdown neither waits for nor closes them
	s.cancel()
	s.wg.Wait()
	s.writeMu.Lock()
	ld := s.lead
	s.lead = nil
	s.leadPtr.Store(nil)
	s.writeMu.Unlock()
	if ld != nil {
		close(ld.done)
		_ = ld.repl.Close()
	}
	s.fwdTr.CloseIdleConnections()
	if s.replTr != nil {
		s.replTr.CloseIdleConnections()
	}
	_ = s.fwdStream.Close()
	if err := s.elector.Close(); err != nil {
		errs = append(errs, fmt.Errorf("server: close election: %w", err))
	}
	s.logger.Info("stopped")
	return errors.Join(errs...)
}

func (s *Server) goFunc(f func()) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f()
	}()
}

// loop follows the election's view and drives the role: it creates and closes the
// fan-out, keeps its replica set current, steps down when fenced and syncs on join.
func (s *Server) loop(views <-chan election.View) {
	tick := time.NewTicker(s.cfg.MemberRefresh)
	defer tick.Stop()
	hello := time.NewTicker(helloInterval)
	defer hello.Stop()
	var last election.View
	for {
		var deposed <-chan struct{}
		if ld := s.leadPtr.Load(); ld != nil {
			deposed = ld.repl.Deposed()
		}
		select {
		case <-s.ctx.Done():
			return
		case v, ok := <-views:
			if !ok {
				return
			}
			s.onView(last, v)
			last = v
		case <-tick.C:
			v := s.elector.View()
			s.onView(last, v)
			last = v
			if v.Connected && !v.IsLeader && !s.recLoading.Swap(true) {
				// A follower keeps a recent copy of the in-sync record (the store remembers
				// what it reads): should ZooKeeper lose its data, whoever leads next still
				// knows whom to wait for.
				s.goFunc(func() {
					defer s.recLoading.Store(false)
					ctx, cancel := context.WithTimeout(s.ctx, s.cfg.WriteTimeout)
					defer cancel()
					_, _, _, _ = s.insync.Load(ctx)
				})
			}
		case <-deposed:
			s.stepDown("a replica has seen a newer epoch")
		case <-s.rejoin:
			s.refreshReplicas()
		case <-hello.C:
			s.sayHello(last)
		case <-s.refresh:
			if r, ok := s.elector.(refresher); ok {
				ctx, cancel := context.WithTimeout(s.ctx, s.cfg.WriteTimeout)
				if err := r.Refresh(ctx); err != nil && s.ctx.Err() == nil {
					s.logger.Debug("refresh the election", "error", err)
				}
				cancel()
			}
		}
	}
}

// onView applies a view: fence, role, replica set, sync.
func (s *Server) onView(prev, v election.View) {
	if v.Connected {
		s.follower.ObserveEpoch(v.Epoch)
	}
	if v.Connected && !v.IsLeader && v.Leader.Address != "" {
		s.followed.Store(&followedLeader{address: v.Leader.Address, epoch: v.Epoch})
	}
	s.leaders.observe(v, s.lastContactTime(), time.Now())
	s.metrics.epoch.Set(float64(v.Epoch))
	s.metrics.setRole(roleOf(v))
	if prev.Connected != v.Connected {
		if v.Connected {
			s.logger.Info("zookeeper session in good standing", "znode", v.Self.Node)
		} else {
			s.logger.Warn("zookeeper session lost or in doubt: candidate")
		}
	}
	if prev.Leader.Node != v.Leader.Node || prev.Epoch != v.Epoch {
		switch {
		case v.Leader.Address == "":
			s.logger.Info("no leader known", "epoch", v.Epoch)
		case !v.IsLeader:
			s.logger.Info("following leader", "leader", v.Leader.ID, "leader_address", v.Leader.Address, "epoch", v.Epoch)
		}
	}
	if v.IsLeader && v.Connected {
		if ld := s.leadPtr.Load(); ld == nil || ld.epoch != v.Epoch {
			s.becomeLeader(v.Epoch, v.Members)
		}
		s.refreshReplicas(v.Members...)
		if !s.synced.Load() {
			s.synced.Store(true) // the leader's store is the one to copy: nothing to fetch
		}
	} else if s.leadPtr.Load() != nil {
		s.endLeadership("lost leadership")
	}
	// A leader named by our own ID or address is our previous incarnation, its node not yet
	// expired: there is nothing to copy from it (this process would answer itself with its
	// own empty store and count as synced). Wait for the real leader's view.
	ghost := v.Leader.ID == s.cfg.ID || v.Leader.Address == s.cfg.Address
	if !s.synced.Load() && v.Leader.Address != "" && !v.IsLeader && !ghost && !s.syncing.Swap(true) {
		s.goFunc(func() {
			defer s.syncing.Store(false)
			s.syncOnJoin(v)
		})
	}
}

func roleOf(v election.View) string {
	switch {
	case !v.Connected:
		return "candidate"
	case v.IsLeader:
		return "leader"
	}
	return "follower"
}

// becomeLeader starts a leadership for epoch: it catches up (see catchUp), logs the no-op
// that opens its epoch, records itself in the in-sync set, and starts a fan-out whose
// commit rule counts that set.
func (s *Server) becomeLeader(epoch int64, members []election.Member) {
	if members == nil {
		ctx, cancel := context.WithTimeout(s.ctx, s.cfg.WriteTimeout)
		ms, err := s.elector.Members(ctx)
		cancel()
		if err != nil && s.ctx.Err() == nil {
			s.logger.Warn("list members before catching up", "error", err)
		}
		members = ms
	}
	t, ok := s.catchUp(s.ctx, epoch, members)
	if !ok {
		return
	}
	caught := s.follower.Position() // what the catch-up took, before this epoch's no-op
	last, _ := s.log.Last()
	noop := kvstore.Entry{Index: last + 1, Epoch: epoch, Noop: true}
	if err := s.log.Append(noop); err != nil {
		s.logger.Error("cannot lead: log the epoch's first entry", "epoch", epoch, "error", err)
		return
	}
	rec := InSyncRecord{Epoch: epoch, Leader: s.cfg.ID, Ack: s.cfg.Ack, Members: []Replica{s.self()}}
	if t.found && !t.unclean {
		// This server now holds every committed write: adding it keeps every commit quorum.
		for _, m := range t.rec.Members {
			if m != s.self() {
				rec.Members = append(rec.Members, m)
			}
		}
		rec.Members = s.withoutDeparted(rec.Members, caught, t.peers, members)
	}
	rec.Addresses = t.rec.Addresses
	rec = rec.withAddresses(members)
	if ms := s.members.Load(); ms != nil {
		rec = rec.withAddresses(*ms)
	}
	guard := s.elector.View().Self.Node
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.WriteTimeout)
	version, err := s.insync.Save(ctx, rec, t.version, t.found, guard)
	cancel()
	if err != nil {
		s.logger.Warn("cannot lead yet: record the in-sync set", "epoch", epoch, "error", err)
		return
	}
	applied, _ := s.store.Last()
	s.rebuildPending(applied)
	rc := s.cfg.Replication
	rc.Self = s.cfg.Address
	rc.Epoch = epoch
	rc.Log = s.log
	rc.Snapshot = s.store.Snapshot
	rc.Token = s.cfg.ClusterToken
	if s.replTr != nil && rc.Transport == nil && rc.Peers == nil {
		rc.Transport = httpsOnly{s.replTr}
		rc.StreamTLS = s.tls.client
	}
	rc.Mode = s.ack
	rc.Applied = applied
	rc.EpochStart = noop.Index
	rc.Apply = s.applyCommitted
	rc.Complete = s.historyEmpty
	rc.LagMax = s.cfg.ReplicaLagMax
	rc.Observer = s.metrics
	rc.Logger = s.logger
	repl, err := s.newRepl(rc)
	if err != nil {
		s.logger.Error("cannot lead: fan-out", "epoch", epoch, "error", err)
		return
	}
	ld := &leadership{epoch: epoch, repl: repl, since: time.Now(), epochStart: noop.Index, guard: guard,
		unclean: t.unclean, done: make(chan struct{}), rec: rec, recVersion: version, projected: s.projectedBytes()}
	ld.inSyncAddrs = s.inSyncAddrs(rec, members)
	repl.SetInSync(ld.inSyncAddrs)
	s.writeMu.Lock()
	if s.draining {
		s.writeMu.Unlock()
		_ = repl.Close()
		return
	}
	old := s.lead
	s.lead = ld
	s.leadPtr.Store(ld)
	s.writeMu.Unlock()
	if old != nil {
		close(old.done)
		_ = old.repl.Close()
	}
	repl.Enqueue(noop)
	s.goFunc(func() { s.keepInSync(ld) })
	s.logger.Info("elected leader", "id", s.cfg.ID, "epoch", epoch, "last_index", noop.Index, "applied", applied,
		"ack", s.cfg.Ack, "in_sync", rec.Members, "unclean", t.unclean)
}

// applyCommitted is the fan-out's Apply: the leader's store takes its committed entries
// from the log, and their keys leave the pending map.
func (s *Server) applyCommitted(index uint64) error {
	if err := s.follower.ApplyUpTo(index); err != nil {
		return err
	}
	s.pendMu.Lock()
	for k, e := range s.pending {
		if e.Index <= index {
			delete(s.pending, k)
		}
	}
	s.pendMu.Unlock()
	return nil
}

// historyEmpty reports whether this leader's history up to index holds no key: its store
// has never held one and its log holds only no-ops up to index.
func (s *Server) historyEmpty(index uint64) bool {
	if index == 0 {
		return true
	}
	st, ok := s.store.(interface{ Stats() kvstore.Stats })
	if !ok {
		return false
	}
	if stats := st.Stats(); stats.Keys+stats.Tombstones > 0 {
		return false
	}
	if base, _ := s.log.Base(); base > 0 {
		return false
	}
	es, ok := s.log.EntriesFrom(1, int(min(index, 1<<16)))
	if !ok || uint64(len(es)) < index {
		return false
	}
	for _, e := range es {
		if !e.Noop {
			return false
		}
	}
	return true
}

// rebuildPending fills the pending map from the log's entries after applied: a new
// leader's writes continue the versions of the entries it took over.
func (s *Server) rebuildPending(applied uint64) {
	es, _ := s.log.EntriesFrom(applied+1, 0)
	s.pendMu.Lock()
	defer s.pendMu.Unlock()
	clear(s.pending)
	for _, e := range es {
		if !e.Noop {
			s.pending[e.Key] = e
		}
	}
}

// latest returns the newest entry of key, logged or applied (tombstones included).
func (s *Server) latest(key string) (kvstore.Entry, bool) {
	s.pendMu.Lock()
	e, ok := s.pending[key]
	s.pendMu.Unlock()
	if ok {
		return e, true
	}
	return s.store.Lookup(key)
}

// endLeadership closes the current fan-out; writes waiting on it answer 503.
func (s *Server) endLeadership(why string) {
	s.writeMu.Lock()
	ld := s.lead
	s.lead = nil
	s.leadPtr.Store(nil)
	s.writeMu.Unlock()
	if ld == nil {
		return
	}
	close(ld.done)
	s.metrics.stepDowns.Inc()
	s.logger.Warn("stepped down", "reason", why, "epoch", ld.epoch, "led_for", time.Since(ld.since).Round(time.Millisecond))
	_ = ld.repl.Close()
}

// stepDown ends a fenced leadership and leaves and rejoins the election, so a newer
// leader is not contested by a stale node of ours.
func (s *Server) stepDown(why string) {
	s.endLeadership(why)
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.SessionTimeout+s.cfg.WriteTimeout)
	defer cancel()
	if err := s.elector.Resign(ctx); err != nil && s.ctx.Err() == nil {
		s.logger.Warn("resign after fencing", "error", err)
	}
	if s.ctx.Err() != nil {
		return
	}
	if err := s.elector.Join(ctx); err != nil && s.ctx.Err() == nil {
		s.logger.Error("rejoin after fencing", "error", err)
		return
	}
	s.logger.Info("rejoined the election after stepping down")
}

// refreshReplicas points the fan-out at every other member: those of the view when it
// lists them (the leader's children watch keeps them current), else read from ZooKeeper.
func (s *Server) refreshReplicas(known ...election.Member) {
	ld := s.leadPtr.Load()
	if ld == nil {
		return
	}
	ms := known
	if ms == nil {
		ctx, cancel := context.WithTimeout(s.ctx, s.cfg.WriteTimeout)
		defer cancel()
		var err error
		ms, err = s.elector.Members(ctx)
		if err != nil {
			if s.ctx.Err() == nil {
				s.logger.Warn("list members", "error", err)
			}
			return
		}
	}
	prev := s.members.Swap(&ms)
	// Members of the in-sync set that are not registered (their session lost) may still
	// hold what no one else does: the leader keeps replicating to them at their recorded
	// address, and they stay in the set for as long as they keep up.
	all := withRecorded(ms, ld.record(), s.self())
	ld.members.Store(&all)
	addrs := make([]string, 0, len(all))
	for _, m := range all {
		if m.Address != "" && m.Address != s.cfg.Address {
			addrs = append(addrs, m.Address)
		}
	}
	if prev == nil || !sameMembers(*prev, ms) {
		s.logger.Info("replicas", "epoch", ld.epoch, "replicas", addrs)
	}
	ld.repl.SetReplicas(addrs)
}

func sameMembers(a, b []election.Member) bool {
	return slices.EqualFunc(a, b, func(x, y election.Member) bool { return x.Node == y.Node && x.Address == y.Address })
}

// helloInterval is how often a follower that its leader does not replicate to yet says
// hello to it.
const helloInterval = 200 * time.Millisecond

// sayHello tells the leader of v that this follower exists, unless the leader's stream
// reaches it already. Without it a leader would learn of a new member only at its next
// MemberRefresh, and writes acknowledged meanwhile would skip the newcomer for good (it
// starts empty and takes the first append it gets as its base).
func (s *Server) sayHello(v election.View) {
	if v.IsLeader || !v.Connected || v.Leader.Address == "" || s.streamEpoch.Load() == v.Epoch {
		return
	}
	if s.helloing.Swap(true) {
		return
	}
	s.goFunc(func() {
		defer s.helloing.Store(false)
		ctx, cancel := context.WithTimeout(s.ctx, helloInterval*5)
		defer cancel()
		body := fmt.Sprintf(`{"id":%q,"address":%q,"epoch":%d}`, s.cfg.ID, s.cfg.Address, v.Epoch)
		req, err := http.NewRequestWithContext(ctx, http.MethodPost,
			s.peerURL(v.Leader.Address, "/internal/v1/hello"), strings.NewReader(body))
		if err != nil {
			return
		}
		req.Header.Set(echo.HeaderContentType, echo.MIMEApplicationJSON)
		if s.cfg.ClusterToken != "" {
			req.Header.Set("Authorization", "Bearer "+s.cfg.ClusterToken)
		}
		resp, err := s.fwd.Do(req)
		if err != nil {
			s.logger.Debug("hello to the leader", "leader", v.Leader.Address, "error", err)
			return
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		s.logger.Debug("said hello to the leader", "leader", v.Leader.Address, "status", resp.StatusCode)
	})
}

// requestRefresh asks the loop to re-read the election; never blocks.
func (s *Server) requestRefresh() {
	select {
	case s.refresh <- struct{}{}:
	default:
	}
}

// checkSender is the Follower's CheckLeader: an append or snapshot is taken only from the
// leader this server's view names, for that epoch.
func (s *Server) checkSender(leader string, epoch int64) error {
	v := s.elector.View()
	if v.Leader.Address != "" && v.Leader.Address == leader && v.Epoch == epoch && !v.IsLeader {
		return nil
	}
	// Without a session this server cannot tell who leads; the leader it followed last,
	// at that epoch, is still fenced by epochs like any leader: its appends are taken, so
	// that a member of its in-sync set keeps holding what it acknowledges.
	if f := s.followed.Load(); v.Leader.Address == "" && !v.IsLeader && f != nil && f.address == leader && f.epoch == epoch {
		return nil
	}
	if epoch > v.Epoch || v.Leader.Address == "" {
		s.requestRefresh() // a newer leader this view has not heard of yet
	}
	return fmt.Errorf("%w: %s in epoch %d; this server's view: leader %q in epoch %d",
		replication.ErrNotLeader, leader, epoch, v.Leader.Address, v.Epoch)
}

func (s *Server) replicaStats() []replicaStat {
	ld := s.leadPtr.Load()
	if ld == nil {
		return nil
	}
	st := ld.repl.Stats()
	out := make([]replicaStat, len(st))
	for i, r := range st {
		out[i] = replicaStat{addr: r.Addr, lag: r.Lag, match: r.MatchIndex, up: r.Up}
	}
	return out
}
