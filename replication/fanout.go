package replication

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/zkv-dev/zkv/kvstore"
)

// AckMode says when a write counts as replicated.
type AckMode int

const (
	// AckAll waits for every current replica.
	AckAll AckMode = iota
	// AckMajority waits until the leader plus the replicas that hold the write form a
	// majority of the servers (replicas + 1).
	AckMajority
	// AckLeader does not wait.
	AckLeader
)

// ParseAckMode parses "all", "majority" or "leader".
func ParseAckMode(s string) (AckMode, error) {
	switch s {
	case "all":
		return AckAll, nil
	case "majority":
		return AckMajority, nil
	case "leader":
		return AckLeader, nil
	}
	return 0, fmt.Errorf("replication: unknown ack mode %q (want all, majority or leader)", s)
}

func (m AckMode) String() string {
	switch m {
	case AckAll:
		return "all"
	case AckMajority:
		return "majority"
	case AckLeader:
		return "leader"
	}
	return fmt.Sprintf("AckMode(%d)", int(m))
}

// Observer is told about replication events, e.g. to count them in metrics. Its methods are
// called from the replica workers, outside the Fanout's locks, and must not block.
type Observer interface {
	OnRetry(replica string)             // a request to replica is retried
	OnAck(replica string, index uint64) // replica holds the leader's log up to index
	OnSnapshot(replica string)          // replica installed a snapshot
}

// Defaults of Config.
const (
	DefaultRequestTimeout    = 2 * time.Second
	DefaultSnapshotTimeout   = 30 * time.Second
	DefaultRetryWaitMin      = 10 * time.Millisecond
	DefaultRetryWaitMax      = 500 * time.Millisecond
	DefaultRetryMax          = 3
	DefaultMaxBatch          = 512
	DefaultMaxInFlight       = 4
	DefaultMinPipelinedBatch = 64
	DefaultMaxBatchBytes     = 8 << 20
	DefaultHeartbeatInterval = time.Second
	maxResponseBytes         = 1 << 20
)

// LogReader is what a Fanout reads of the leader's log; *Log has it.
type LogReader interface {
	// Last returns the position of the newest entry.
	Last() (index uint64, epoch int64)
	// EpochAt returns the epoch of the entry at index, if the log still holds it.
	EpochAt(index uint64) (epoch int64, ok bool)
	// EntriesFrom returns up to max entries from index on; false once index is gone.
	EntriesFrom(index uint64, max int) ([]kvstore.Entry, bool)
}

// Config configures a Fanout: one per leadership (Epoch is fixed).
type Config struct {
	Self     string                  // this leader's address, sent as "leader"; ignored in SetReplicas
	Epoch    int64                   // this leadership's epoch; required > 0
	Log      LogReader               // the leader's log, source of every append; required (a *Log)
	Snapshot func() kvstore.Snapshot // a consistent snapshot of the leader's store; required
	Token    string                  // sent as "Authorization: Bearer <Token>" when set

	// Mode is the commit rule: an entry commits once the leader and enough in-sync
	// replicas hold it (every one for AckAll, a majority of the set with the leader for
	// AckMajority, none for AckLeader), in every in-sync set given to SetInSync.
	Mode AckMode
	// Applied is the index the leader's store has applied when the leadership begins;
	// entries up to it count as committed.
	Applied uint64
	// EpochStart is the index of this leadership's first entry (its no-op). The commit
	// index never stops between Applied and EpochStart: entries taken over from earlier
	// epochs commit together with the first entry of this one (Raft's rule, without which
	// an entry counted on a majority could still be overwritten).
	EpochStart uint64
	// Apply, when set, applies the log's entries up to index to the leader's store once
	// they commit; called in order, one call at a time, never with f's locks held.
	Apply func(index uint64) error
	// LagMax, when set, makes Wait under AckAll also wait for the replicas outside the
	// in-sync sets (a restarted, partial server) to apply a write, unless they have lacked
	// an entry for longer than LagMax or their last request failed: "all" is every live
	// replica, with a bounded wait. A replica not heard from yet counts from when it was
	// added.
	LagMax time.Duration
	// Complete, when set, reports whether the leader's history up to index holds no key:
	// a fresh replica whose base is there misses nothing (see AppendRequest.Complete).
	Complete func(index uint64) bool

	RequestTimeout  time.Duration // per HTTP attempt of an append; default 2s
	SnapshotTimeout time.Duration // per HTTP attempt of a snapshot; default 30s
	RetryWaitMin    time.Duration // backoff floor (HTTP retries and the probes after a failure); default 10ms
	RetryWaitMax    time.Duration // backoff ceiling; default 500ms
	RetryMax        int           // retries of one request by retryablehttp; 0: default 3, < 0: none
	MaxBatch        int           // most entries per append; default 512
	MaxBatchBytes   int64         // most key+value bytes per append (one entry at least); default 8 MiB
	// MaxInFlight bounds the appends in flight to one replica when Peers is a Pipeliner
	// (the stream is): the worker sends what is new without waiting for the answers to
	// what it sent before, up to this many; default 4, 1: one at a time. Together with
	// MaxBatch and MaxBatchBytes it bounds what a slow replica can have outstanding.
	MaxInFlight int
	// MinPipelinedBatch is the fewest new entries worth a second append while one is in
	// flight (fewer wait for an answer, or for more); default 64, 1: send at once.
	MinPipelinedBatch int
	HeartbeatInterval time.Duration // idle replicas get an empty append this often; default 1s, < 0: off

	// Peers carries the requests to the replicas; default a StreamTransport (appends on one
	// long-lived binary stream per replica) over an HTTPTransport (snapshots, and replicas
	// without the stream) made of Token, RequestTimeout, SnapshotTimeout, RetryWait*,
	// RetryMax and Transport, both closed by Close.
	// When set, those fields (but RetryWait*, the Fanout's own backoff) are ignored, and
	// Close leaves it open.
	Peers Transport
	// Transport carries the default HTTPTransport's requests; default a private
	// *http.Transport closed by Close.
	Transport http.RoundTripper
	// NoStream makes the default Peers send appends as HTTP requests too, one per batch.
	NoStream bool
	// StreamTLS runs the default StreamTransport's streams over TLS (the peers' listeners
	// speak TLS only); nil: plain TCP.
	StreamTLS *tls.Config
	Observer  Observer     // optional
	Logger    *slog.Logger // discarded when nil
}

func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.RequestTimeout, DefaultRequestTimeout)
	def(&c.SnapshotTimeout, DefaultSnapshotTimeout)
	def(&c.RetryWaitMin, DefaultRetryWaitMin)
	def(&c.RetryWaitMax, DefaultRetryWaitMax)
	def(&c.HeartbeatInterval, DefaultHeartbeatInterval)
	if c.RetryMax == 0 {
		c.RetryMax = DefaultRetryMax
	} else if c.RetryMax < 0 {
		c.RetryMax = 0
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.MinPipelinedBatch == 0 {
		c.MinPipelinedBatch = DefaultMinPipelinedBatch
	}
	if c.MaxBatch == 0 {
		c.MaxBatch = DefaultMaxBatch
	}
	if c.MaxBatchBytes == 0 {
		c.MaxBatchBytes = DefaultMaxBatchBytes
	}
	return c
}

// Validate reports whether the config (after defaults) is usable.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if c.Epoch <= 0 {
		errs = append(errs, errors.New("epoch must be positive"))
	}
	if c.Log == nil {
		errs = append(errs, errors.New("a Log is required"))
	}
	if c.Snapshot == nil {
		errs = append(errs, errors.New("a Snapshot func is required"))
	}
	if c.RequestTimeout < 0 || c.SnapshotTimeout < 0 || c.RetryWaitMin < 0 || c.RetryWaitMax < c.RetryWaitMin {
		errs = append(errs, errors.New("timeouts must be positive and RetryWaitMax >= RetryWaitMin"))
	}
	if c.MaxInFlight < 0 || c.MinPipelinedBatch < 0 {
		errs = append(errs, fmt.Errorf("MaxInFlight %d and MinPipelinedBatch %d must not be negative", c.MaxInFlight, c.MinPipelinedBatch))
	}
	if c.MaxBatch < 1 || c.MaxBatchBytes < 1 {
		errs = append(errs, errors.New("MaxBatch and MaxBatchBytes must be positive"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	return nil
}

// ReplicaStats describes one replica's stream.
type ReplicaStats struct {
	Addr       string `json:"addr"`
	MatchIndex uint64 `json:"match_index"` // the replica holds the leader's log up to here
	Lag        uint64 `json:"lag"`         // last enqueued index - MatchIndex
	Retries    uint64 `json:"retries"`
	Snapshots  uint64 `json:"snapshots"`
	LastError  string `json:"last_error,omitempty"`
	Up         bool   `json:"up"` // the last request got an answer
	Applied    uint64 `json:"applied"`
	Partial    bool   `json:"partial,omitempty"`
	// InFlight is how many appends to the replica await their answer (at most
	// Config.MaxInFlight); PeakInFlight the most at once in this leadership.
	InFlight     int `json:"in_flight"`
	PeakInFlight int `json:"peak_in_flight"`
	// CaughtUp is when the replica last held everything the leader had enqueued (zero:
	// never in this leadership).
	CaughtUp time.Time `json:"caught_up"`
	// LaggingSince is when the oldest entry the replica lacks was enqueued: zero while it
	// holds everything; when its stream began while it has never answered.
	LaggingSince time.Time `json:"lagging_since"`
}

type position struct {
	index uint64
	epoch int64
}

type replica struct {
	addr string
	// Guarded by Fanout.mu, like the fields below.
	applied    uint64    // the replica's store has applied up to here (it said so)
	partial    bool      // the replica lacks the writes before its base
	caughtUp   time.Time // when the replica last held everything the leader had enqueued
	sentCommit uint64    // the commit index the replica has been told
	inc        string    // the replica's incarnation, once it has answered
	added      time.Time // when its stream began
	cancel     context.CancelFunc
	notify     chan struct{} // capacity 1: "the log grew"
	committed  chan struct{} // capacity 1: "the commit index moved" (commitLoop)

	// Guarded by Fanout.mu.
	match     uint64
	acked     bool   // match is confirmed by the replica
	confirmed uint64 // the newest Barrier round a request sent after it began has answered
	retries   uint64
	snapshots uint64
	inFlight  int // appends in flight now (the pipeline's window in use)
	peak      int // the most appends ever in flight at once
	lastErr   string
	up        bool
}

// Fanout is the leader's side of replication: one worker goroutine per replica streams
// the Log to it in order (group commit: whatever is pending, up to MaxBatch, goes in one
// request), and Wait reports when a write is acknowledged under an AckMode.
//
// The per-replica queue is the window of the shared Log between what the replica holds and
// the last enqueued index, so a slow or dead replica costs no memory beyond the Log; one
// that falls behind the Log's base gets a snapshot.
type Fanout struct {
	cfg    Config
	logger *slog.Logger
	peers  Transport
	owned  *HTTPTransport // the default transport, closed by Close; nil when cfg.Peers was given
	stream *StreamTransport

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once

	mu          sync.Mutex
	replicas    map[string]*replica
	last        position        // highest enqueued
	waits       [2][3]waitQueue // blocked Wait (kind 0) and Barrier (kind 1) calls, by AckMode
	lagTicking  bool            // lagLoop runs (started by the first Wait that needs it)
	closed      bool
	deposed     chan struct{}
	isDeposed   bool
	fencedEpoch int64
	round       uint64 // Barrier rounds begun

	enqueued []enqueueTime // when entries were enqueued, oldest first; trimmed as replicas ack

	commit  uint64     // highest committed index
	applied uint64     // highest index Apply has applied
	insync  [][]string // the in-sync sets (replica addresses, the leader not named); nil: every replica
	since   time.Time  // when this leadership began
	applyMu sync.Mutex // one Apply call at a time, in order
}

// NewFanout validates cfg and returns a Fanout with no replicas; its stream starts after
// the Log's last entry.
func NewFanout(cfg Config) (*Fanout, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	f := &Fanout{
		cfg:      cfg,
		logger:   logger.With("component", "fanout", "epoch", cfg.Epoch),
		replicas: make(map[string]*replica),
		deposed:  make(chan struct{}),
	}
	f.peers = cfg.Peers
	if f.peers == nil {
		retries := cfg.RetryMax // after withDefaults, 0 means none
		if retries == 0 {
			retries = -1
		}
		t, err := NewHTTPTransport(HTTPTransportConfig{Token: cfg.Token, RequestTimeout: cfg.RequestTimeout,
			SnapshotTimeout: cfg.SnapshotTimeout, RetryWaitMin: cfg.RetryWaitMin, RetryWaitMax: cfg.RetryWaitMax,
			RetryMax: retries, RoundTripper: cfg.Transport, OnRetry: f.noteRetry})
		if err != nil {
			return nil, err
		}
		f.peers, f.owned = t, t
		if !cfg.NoStream {
			st, err := NewStreamTransport(StreamTransportConfig{Token: cfg.Token, RequestTimeout: cfg.RequestTimeout, HTTP: t, TLS: cfg.StreamTLS})
			if err != nil {
				return nil, err
			}
			f.peers, f.stream = st, st
		}
	}
	f.last.index, f.last.epoch = cfg.Log.Last()
	f.commit, f.applied, f.since = cfg.Applied, cfg.Applied, time.Now()
	f.ctx, f.cancel = context.WithCancel(context.Background())
	return f, nil
}

type enqueueTime struct {
	index uint64 // the last index of one Enqueue call
	at    time.Time
}

// laggingSince returns when the oldest entry after match was enqueued; call with f.mu held.
func (f *Fanout) laggingSince(r *replica) time.Time {
	if !r.acked {
		return r.added
	}
	if r.match >= f.last.index {
		return time.Time{}
	}
	i, _ := slices.BinarySearchFunc(f.enqueued, r.match+1, func(e enqueueTime, idx uint64) int { return cmpAsc(e.index, idx) })
	if i < len(f.enqueued) {
		return f.enqueued[i].at
	}
	return f.since
}

func cmpAsc(a, b uint64) int { return -cmpDesc(a, b) }

// trimEnqueued forgets the enqueue times every replica is past; call with f.mu held.
func (f *Fanout) trimEnqueued() {
	low := f.last.index
	for _, r := range f.replicas {
		if r.acked {
			low = min(low, r.match)
		} else {
			low = 0
		}
	}
	n := 0
	for n < len(f.enqueued) && f.enqueued[n].index <= low {
		n++
	}
	const most = 1 << 16
	if len(f.enqueued)-n > most {
		n = len(f.enqueued) - most
	}
	if n > 0 {
		f.enqueued = slices.Delete(f.enqueued, 0, n)
	}
}

// Quorum returns how many of n servers (the leader among them) must hold an entry for it
// to commit under mode.
func Quorum(mode AckMode, n int) int {
	switch mode {
	case AckAll:
		return n
	case AckMajority:
		return n/2 + 1
	}
	return 1
}

// SetInSync sets the in-sync sets the commit rule counts over: the replicas (by the
// addresses given to SetReplicas; the leader is implied) whose acknowledgement can commit
// an entry. With more than one set an entry commits only once it is committed in each:
// the server passes the old and the new set while it changes the set recorded in
// ZooKeeper. No set at all means every current replica.
func (f *Fanout) SetInSync(sets ...[]string) {
	f.mu.Lock()
	if len(sets) == 0 {
		f.insync = nil
	} else {
		f.insync = make([][]string, len(sets))
		for i, set := range sets {
			f.insync[i] = slices.Clone(set)
		}
	}
	advanced := f.recomputeCommit()
	f.broadcast()
	f.mu.Unlock()
	if advanced {
		f.applyCommitted()
	}
}

// inSyncLocked reports whether addr is in an in-sync set; call with f.mu held.
func (f *Fanout) inSyncLocked(addr string) bool {
	for _, set := range f.sets() {
		if slices.Contains(set, addr) {
			return true
		}
	}
	return false
}

// sets returns the in-sync sets to count over; call with f.mu held.
func (f *Fanout) sets() [][]string {
	if f.insync != nil {
		return f.insync
	}
	all := make([]string, 0, len(f.replicas))
	for addr := range f.replicas {
		all = append(all, addr)
	}
	return [][]string{all}
}

// recomputeCommit moves the commit index to the highest index that the leader and a
// quorum of every in-sync set hold, if that is at or past EpochStart. It reports whether
// the commit index advanced. Call with f.mu held.
func (f *Fanout) recomputeCommit() bool {
	c := f.last.index
	for _, set := range f.sets() {
		held := make([]uint64, 0, len(set)+1)
		held = append(held, f.last.index) // the leader holds all it enqueued
		for _, addr := range set {
			if r, ok := f.replicas[addr]; ok && r.acked {
				held = append(held, r.match)
			} else {
				held = append(held, 0)
			}
		}
		slices.SortFunc(held, func(a, b uint64) int { return cmpDesc(a, b) })
		c = min(c, held[Quorum(f.cfg.Mode, len(held))-1])
	}
	if c < f.cfg.EpochStart || c <= f.commit {
		return false
	}
	f.commit = c
	f.broadcast()
	return true
}

func cmpDesc(a, b uint64) int {
	switch {
	case a > b:
		return -1
	case a < b:
		return 1
	}
	return 0
}

// applyCommitted hands what has committed to Config.Apply, in order, and wakes the
// waiters and the workers (who tell the replicas the new commit index).
func (f *Fanout) applyCommitted() {
	f.applyMu.Lock()
	defer f.applyMu.Unlock()
	f.mu.Lock()
	from, to := f.applied, f.commit
	f.mu.Unlock()
	if to <= from {
		return
	}
	if f.cfg.Apply != nil {
		if err := f.cfg.Apply(to); err != nil {
			f.logger.Error("apply committed entries", "from_index", from+1, "to_index", to, "error", err)
			return
		}
	}
	f.mu.Lock()
	f.applied = max(f.applied, to)
	f.broadcast()
	for _, r := range f.replicas {
		select {
		case r.notify <- struct{}{}:
		default:
		}
		select {
		case r.committed <- struct{}{}:
		default:
		}
	}
	f.mu.Unlock()
}

// Commit returns the commit index and the index the leader's store has applied.
func (f *Fanout) Commit() (commit, applied uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.commit, f.applied
}

// SetReplicas sets the replicas to stream to ("host:port" or a base URL). New ones get a
// worker whose stream starts at the leader's current last position (a replica that lacks
// earlier entries is caught up from the Log or by snapshot; a fresh one takes it as base);
// removed ones have their worker stopped and no longer count for Wait. Self, duplicates and
// empty addresses are ignored. Does nothing after Close or once deposed.
func (f *Fanout) SetReplicas(addrs []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed || f.isDeposed {
		return
	}
	want := make(map[string]bool, len(addrs))
	for _, a := range addrs {
		if a != "" && a != f.cfg.Self {
			want[a] = true
		}
	}
	changed := false
	for addr, r := range f.replicas {
		if !want[addr] {
			r.cancel()
			delete(f.replicas, addr)
			changed = true
			f.logger.Info("replica removed", "replica", addr)
		}
	}
	for addr := range want {
		if _, ok := f.replicas[addr]; ok {
			continue
		}
		r := f.newReplica(addr)
		ctx, cancel := context.WithCancel(f.ctx)
		r.cancel = cancel
		f.replicas[addr] = r
		changed = true
		f.wg.Add(1)
		go f.run(ctx, r, f.last)
		if f.cfg.Mode == AckAll {
			f.wg.Add(1)
			go f.commitLoop(ctx, r)
		}
		f.logger.Info("replica added", "replica", addr, "from_index", f.last.index)
	}
	if changed {
		f.broadcast()
	}
}

func (f *Fanout) newReplica(addr string) *replica {
	return &replica{addr: addr, notify: make(chan struct{}, 1), committed: make(chan struct{}, 1), added: time.Now()}
}

// Enqueue tells the workers the Log has grown to include entries. The caller appends them
// to the Log first, in index order, and enqueues in that order. No-op after Close or once
// deposed.
func (f *Fanout) Enqueue(entries ...kvstore.Entry) {
	if len(entries) == 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed || f.isDeposed {
		return
	}
	for _, e := range entries {
		if e.Index > f.last.index {
			f.last = position{e.Index, e.Epoch}
		}
	}
	f.enqueued = append(f.enqueued, enqueueTime{index: f.last.index, at: time.Now()})
	if len(f.enqueued) > 1<<17 {
		f.trimEnqueued()
	}
	for _, r := range f.replicas {
		select {
		case r.notify <- struct{}{}:
		default:
		}
	}
	f.recomputeCommit() // a leader alone, or AckLeader, commits at once; Wait applies
}

// Wait blocks until the write at index has committed and the leader's store has applied
// it, and, under AckAll, until every in-sync replica has applied it too (so that a read
// on any of them returns it); it returns how many replicas hold it (the leader not
// counted). The condition is re-evaluated on every ack, SetReplicas and SetInSync.
// Errors: ErrFenced once a replica refused this leader's epoch, ErrClosed after Close,
// or the ctx's error, wrapped.
func (f *Fanout) Wait(ctx context.Context, index uint64, mode AckMode) (acked int, err error) {
	if mode != AckAll && mode != AckMajority && mode != AckLeader {
		return 0, fmt.Errorf("replication: invalid ack mode %v", mode)
	}
	f.applyCommitted()
	return f.awaitKey(ctx, kindWait, mode, index)
}

// waitCondLocked is Wait's condition for index under mode; call with f.mu held. It is
// monotone in index: what holds for an index holds for every smaller one.
func (f *Fanout) waitCondLocked(index uint64, mode AckMode) (int, bool) {
	acked := 0
	for _, r := range f.replicas {
		if r.acked && r.match >= index {
			acked++
		}
	}
	if f.applied < index {
		return acked, false
	}
	if mode == AckAll && f.cfg.LagMax > 0 {
		for addr, r := range f.replicas {
			// A replica that has not answered yet counts too, from when it was added (a
			// new leader's first writes would otherwise pass a live replica it has not
			// reached yet); one whose last request failed (noteError: not up, with an
			// error; the only way an answered replica stops being up) does not.
			if f.inSyncLocked(addr) || r.applied >= index || (!r.up && r.lastErr != "") {
				continue
			}
			if ls := f.laggingSince(r); ls.IsZero() || time.Since(ls) < f.cfg.LagMax {
				return acked, false
			}
		}
	}
	// The commit rule is Config.Mode's; a stricter mode asked here is checked too.
	for _, set := range f.sets() {
		holding := 1 // the leader
		for _, addr := range set {
			r, ok := f.replicas[addr]
			switch {
			case mode == AckAll && (!ok || r.applied < index):
				return acked, false
			case ok && r.acked && r.match >= index:
				holding++
			}
		}
		if holding < Quorum(mode, len(set)+1) {
			return acked, false
		}
	}
	return acked, true
}

// barrierCondLocked is Barrier's condition for round under mode; call with f.mu held. It
// is monotone in round.
func (f *Fanout) barrierCondLocked(round uint64, mode AckMode) (int, bool) {
	acked := 0
	for _, r := range f.replicas {
		if r.confirmed >= round {
			acked++
		}
	}
	n := len(f.replicas)
	switch mode {
	case AckAll:
		return acked, acked == n
	case AckMajority:
		return acked, 1+acked >= (n+1)/2+1
	}
	return acked, true
}

const (
	kindWait    = 0 // a Wait: its key is the index it waits for
	kindBarrier = 1 // a Barrier: its key is its round
)

func (f *Fanout) condLocked(kind int, mode AckMode, key uint64) (int, bool) {
	if kind == kindBarrier {
		return f.barrierCondLocked(key, mode)
	}
	return f.waitCondLocked(key, mode)
}

// waiter is one blocked Wait or Barrier call.
type waiter struct {
	key   uint64
	ready chan struct{} // closed by wakeLocked, after it set ok and acked
	ok    bool          // the condition held when ready was closed
	acked int
}

// waitQueue holds the blocked calls of one kind and mode, by key ascending. Both
// conditions are monotone in the key, so a change releases the queue's head for as long
// as the condition holds and stops at the first waiter for which it does not: a change
// costs the waiters it releases plus one check, not a wake-up and a check per waiter
// (with every ack waking every waiter, a leader under 64 clients spent a sixth of its
// CPU in waiters that went back to sleep).
type waitQueue struct {
	ws []*waiter
}

func (q *waitQueue) insert(w *waiter) {
	i := len(q.ws)
	for i > 0 && q.ws[i-1].key > w.key { // keys mostly arrive in order: a short walk
		i--
	}
	q.ws = slices.Insert(q.ws, i, w)
}

func (q *waitQueue) remove(w *waiter) {
	if i := slices.Index(q.ws, w); i >= 0 {
		q.ws = slices.Delete(q.ws, i, i+1)
	}
}

// broadcast re-evaluates the blocked calls after a change they may care about, and wakes
// those whose condition now holds; once closed or deposed, it wakes every one. Call with
// f.mu held.
func (f *Fanout) broadcast() {
	all := f.closed || f.isDeposed
	for kind := range f.waits {
		for m := range f.waits[kind] {
			q := &f.waits[kind][m]
			n := 0
			for _, w := range q.ws {
				acked, ok := f.condLocked(kind, AckMode(m), w.key)
				if !ok && !all {
					break
				}
				w.ok, w.acked = ok, acked
				close(w.ready)
				n++
			}
			if n > 0 {
				clear(q.ws[:n]) // the backing array must not keep released waiters alive
				q.ws = q.ws[n:]
				if len(q.ws) == 0 {
					q.ws = nil
				}
			}
		}
	}
}

// awaitKey blocks until the condition of kind for key under mode holds.
func (f *Fanout) awaitKey(ctx context.Context, kind int, mode AckMode, key uint64) (acked int, err error) {
	f.mu.Lock()
	acked, ok := f.condLocked(kind, mode, key)
	if ok || f.closed || f.isDeposed {
		err := f.doneErrLocked(ok)
		f.mu.Unlock()
		return acked, err
	}
	w := &waiter{key: key, ready: make(chan struct{})}
	q := &f.waits[kind][mode]
	q.insert(w)
	if kind == kindWait && mode == AckAll && f.cfg.LagMax > 0 && !f.lagTicking {
		// A replica's lag passing LagMax changes the answer, not an event: lagLoop
		// re-evaluates the waits on a tick (one ticker per Fanout, not one per wait).
		// Started under f.mu while not closed, so Close's wg.Wait sees it.
		f.lagTicking = true
		f.wg.Add(1)
		go f.lagLoop()
	}
	f.mu.Unlock()

	for {
		select {
		case <-w.ready:
			f.mu.Lock()
			err := f.doneErrLocked(w.ok)
			f.mu.Unlock()
			return w.acked, err
		case <-ctx.Done():
			f.mu.Lock()
			q.remove(w)
			acked, _ := f.condLocked(kind, mode, key) // how far it got
			f.mu.Unlock()
			select {
			case <-w.ready: // released meanwhile
				if w.ok {
					return w.acked, nil
				}
			default:
			}
			what := "barrier"
			if kind == kindWait {
				what = fmt.Sprintf("wait for index %d", key)
			}
			return acked, fmt.Errorf("replication: %s (ack %s): %w", what, mode, ctx.Err())
		}
	}
}

// lagLoop re-evaluates the blocked waits every LagMax/4 until Close: under AckAll, a
// replica outside the in-sync set holds a write up only for LagMax (waitCondLocked), and
// that passing is no event of its own.
func (f *Fanout) lagLoop() {
	defer f.wg.Done()
	t := time.NewTicker(f.cfg.LagMax / 4)
	defer t.Stop()
	for {
		select {
		case <-f.ctx.Done():
			return
		case <-t.C:
			f.mu.Lock()
			if len(f.waits[kindWait][AckAll].ws) > 0 {
				f.broadcast()
			}
			f.mu.Unlock()
		}
	}
}

// doneErrLocked is what a blocked call returns once woken: nil if its condition held,
// else why it stopped waiting. Call with f.mu held.
func (f *Fanout) doneErrLocked(ok bool) error {
	switch {
	case ok:
		return nil
	case f.isDeposed:
		return fmt.Errorf("%w: a replica has seen epoch %d", ErrFenced, f.fencedEpoch)
	case f.closed:
		return ErrClosed
	}
	return nil
}

// Barrier returns once replicas have answered, under mode, a request this leader sent
// after Barrier began: proof that, at some moment during the call, they still took this
// leader's epoch. A leader-path read uses it, after its index has committed, so that a
// deposed leader that has not noticed yet (paused past its session, say) cannot answer
// with what it alone holds. Concurrent calls share one round per replica. AckLeader
// counts as AckMajority here: a read confirmed by the leader alone proves nothing.
// Errors are Wait's.
func (f *Fanout) Barrier(ctx context.Context, mode AckMode) (acked int, err error) {
	if mode == AckLeader {
		mode = AckMajority
	}
	f.mu.Lock()
	f.round++
	want := f.round
	for _, r := range f.replicas {
		select {
		case r.notify <- struct{}{}:
		default:
		}
	}
	f.mu.Unlock()
	return f.awaitKey(ctx, kindBarrier, mode, want)
}

// Deposed is closed when a replica answers stale_epoch: a newer leader exists. The Fanout
// has stopped sending by then; the server should step down.
func (f *Fanout) Deposed() <-chan struct{} { return f.deposed }

// Stats returns every current replica's state, sorted by address.
func (f *Fanout) Stats() []ReplicaStats {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]ReplicaStats, 0, len(f.replicas))
	for _, r := range f.replicas {
		s := ReplicaStats{Addr: r.addr, MatchIndex: r.match, Retries: r.retries, Snapshots: r.snapshots,
			LastError: r.lastErr, Up: r.up, Applied: r.applied, Partial: r.partial, CaughtUp: r.caughtUp,
			LaggingSince: f.laggingSince(r), InFlight: r.inFlight, PeakInFlight: r.peak}
		if f.last.index > r.match {
			s.Lag = f.last.index - r.match
		}
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b ReplicaStats) int { return strings.Compare(a.Addr, b.Addr) })
	return out
}

// Close stops every worker, waits for them, and wakes every Wait with ErrClosed.
// Idempotent; always returns nil.
func (f *Fanout) Close() error {
	f.once.Do(func() {
		f.mu.Lock()
		f.closed = true
		f.broadcast()
		f.mu.Unlock()
		f.cancel()
		f.wg.Wait()
		if f.stream != nil {
			f.stream.Close()
		}
		if f.owned != nil {
			f.owned.Close()
		}
	})
	return nil
}

func (f *Fanout) depose(from string, epoch int64) {
	f.mu.Lock()
	if !f.isDeposed && !f.closed {
		f.isDeposed, f.fencedEpoch = true, epoch
		close(f.deposed)
		f.broadcast()
		f.logger.Warn("deposed: a replica has seen a newer epoch", "replica", from, "replica_epoch", epoch)
	}
	f.mu.Unlock()
	f.cancel()
}

// noteRetry counts a retry by the transport of a request to addr.
func (f *Fanout) noteRetry(addr string) {
	f.mu.Lock()
	if r, ok := f.replicas[addr]; ok {
		r.retries++
	}
	f.mu.Unlock()
	if f.cfg.Observer != nil {
		f.cfg.Observer.OnRetry(addr)
	}
}

func (f *Fanout) noteError(r *replica, err error) {
	f.mu.Lock()
	wasUp := r.up
	r.up, r.lastErr = false, err.Error()
	f.mu.Unlock()
	if wasUp {
		f.logger.Warn("replica unreachable", "replica", r.addr, "error", err)
	} else {
		f.logger.Debug("replica request failed", "replica", r.addr, "error", err)
	}
}

// setMatch records that the replica holds the leader's log up to index and has applied
// what resp says.
func (f *Fanout) setMatch(r *replica, index uint64, resp AppendResponse, snapshot bool) {
	f.mu.Lock()
	if !r.up && r.lastErr != "" {
		f.logger.Info("replica reachable again", "replica", r.addr)
	}
	r.up, r.lastErr = true, ""
	advanced := !r.acked || r.match != index || r.applied != resp.Applied
	r.match, r.acked = index, true
	r.applied, r.partial = resp.Applied, resp.Partial
	if index >= f.last.index {
		r.caughtUp = time.Now()
	}
	f.trimEnqueued()
	if snapshot {
		r.snapshots++
	}
	committed := false
	if advanced {
		committed = f.recomputeCommit()
		f.broadcast()
	}
	f.mu.Unlock()
	if committed {
		f.applyCommitted()
	}
	if obs := f.cfg.Observer; obs != nil {
		if snapshot {
			obs.OnSnapshot(r.addr)
		}
		if advanced {
			obs.OnAck(r.addr, index)
		}
	}
}

var (
	errDeposed   = errors.New("replication: deposed")
	errRestarted = errors.New("replication: the replica restarted")
)

// run is a replica's worker: it sends whatever the replica lacks, in order, until the
// replica is removed, the Fanout closes or is deposed.
func (f *Fanout) run(ctx context.Context, r *replica, pos position) {
	defer f.wg.Done()
	// An empty append comes first, and again after every failure: it learns where the
	// replica is (and whether it is there at all) before any batch or snapshot is built.
	probe := true
	failures := 0
	for {
		if !probe && !f.waitWork(ctx, r, pos.index) {
			return
		}
		if ctx.Err() != nil {
			return
		}
		var err error
		wasProbe := probe
		f.mu.Lock()
		round := f.round // a success of what is sent now answers the Barrier rounds begun so far
		f.mu.Unlock()
		if probe {
			f.mu.Lock()
			if !r.acked {
				// Never answered yet: whatever process answers first starts from the last
				// entry as of now (a fresh one takes it as base and holds only what follows;
				// one that holds more or less answers where it stands).
				pos = f.last
			}
			f.mu.Unlock()
			pos, err = f.sendAppend(ctx, r, pos, nil)
		} else if f.pipelined(r) {
			pos, err = f.pipeline(ctx, r, pos)
			if errors.Is(err, errNeedSnapshot) {
				pos, err = f.sendSnapshot(ctx, r, pos)
			}
		} else if entries, ok := f.cfg.Log.EntriesFrom(pos.index+1, f.cfg.MaxBatch); ok {
			pos, err = f.sendAppend(ctx, r, pos, trimBatch(entries, f.cfg.MaxBatchBytes))
		} else {
			pos, err = f.sendSnapshot(ctx, r, pos)
		}
		probe = false
		if err == nil {
			f.confirm(r, round)
			if !wasProbe {
				failures = 0 // the backoff grows across probes until real progress
			}
			continue
		}
		if errors.Is(err, errDeposed) || ctx.Err() != nil {
			return
		}
		if errors.Is(err, errRestarted) {
			f.mu.Lock()
			pos = f.last
			f.mu.Unlock()
			probe = true
			continue
		}
		failures++
		probe = true
		f.noteError(r, err)
		t := time.NewTimer(jitterBackoff(f.cfg.RetryWaitMin, f.cfg.RetryWaitMax, failures, nil))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

var errNeedSnapshot = errors.New("replication: the replica needs a snapshot")

// pipelined reports whether r's worker keeps several appends in flight: the transport
// pipelines, the window is over one, and r has answered (its first append, the probe, goes
// alone).
func (f *Fanout) pipelined(r *replica) bool {
	if _, ok := f.peers.(Pipeliner); !ok || f.cfg.MaxInFlight <= 1 {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return r.acked && r.inc != ""
}

// flight is an append in flight.
type flight struct {
	prev, end position // where it starts (the replica must hold prev) and ends
	round     uint64   // the Barrier rounds begun when it was sent
	commit    uint64   // the commit index it carries
	p         *PendingAppend
}

// pipeline streams the Log to r from pos with up to MaxInFlight appends in flight: it sends
// what is new (or an empty append for a heartbeat, a Barrier round or a new commit index)
// whenever the window has room, and takes the answers in the order sent. It returns once
// an answer is anything but "holds up to the end of that append": the appends still in
// flight are let come back (the replica refuses those after a failed one, whose previous
// position it lacks, and never drops entries for it: see Follower), and it returns what
// sendAppend would have for that answer. errNeedSnapshot: the Log no longer holds what r
// lacks. It returns the position r is known to hold.
func (f *Fanout) pipeline(ctx context.Context, r *replica, pos position) (position, error) {
	var q []flight
	next := pos // where the next append starts
	f.mu.Lock()
	sentRound, sentCommit := r.confirmed, r.sentCommit
	f.mu.Unlock()
	force := true // the caller's waitWork said there is work
	inFlight := func(n int) {
		f.mu.Lock()
		r.inFlight, r.peak = n, max(r.peak, n)
		f.mu.Unlock()
	}
	for {
		for len(q) < f.cfg.MaxInFlight {
			entries, ok := f.cfg.Log.EntriesFrom(next.index+1, f.cfg.MaxBatch)
			if !ok {
				if len(q) == 0 {
					return pos, errNeedSnapshot
				}
				break
			}
			f.mu.Lock()
			round, commit, inSync, inc := f.round, f.commit, f.inSyncLocked(r.addr), r.inc
			f.mu.Unlock()
			// A new commit index alone is worth an empty append only where no commitLoop
			// sends it (under AckAll one does, at once).
			newCommit := commit > sentCommit && f.cfg.Mode != AckAll
			// One empty append in flight at a time: its answer confirms the Barrier
			// rounds begun before it, and the next one those begun since (a leader
			// read begins a round each, which would otherwise cost an append each).
			emptyInFlight := slices.ContainsFunc(q, func(fl flight) bool { return fl.end == fl.prev })
			if len(entries) == 0 && !force && (emptyInFlight || round <= sentRound && !newCommit) {
				break
			}
			// With appends already in flight, a few new entries wait for more (or for an
			// answer): each append costs both servers a frame, a decode and a lock round
			// whatever it holds, and on busy cores small batches cost more than the wait.
			if len(q) > 0 && len(entries) > 0 && len(entries) < f.cfg.MinPipelinedBatch && (round <= sentRound || emptyInFlight) {
				break
			}
			force = false
			entries = trimBatch(entries, f.cfg.MaxBatchBytes)
			fl := flight{prev: next, end: next, round: round, commit: commit}
			if n := len(entries); n > 0 {
				fl.end = position{entries[n-1].Index, entries[n-1].Epoch}
			} else {
				entries = []kvstore.Entry{}
			}
			req := AppendRequest{Epoch: f.cfg.Epoch, Leader: f.cfg.Self, PrevIndex: next.index, PrevEpoch: next.epoch,
				Entries: entries, Commit: commit, InSync: inSync, To: inc}
			fl.p = startAppend(ctx, f.peers, r.addr, req)
			q = append(q, fl)
			inFlight(len(q))
			next, sentRound, sentCommit = fl.end, round, commit
		}
		if len(q) == 0 {
			if !f.waitWork(ctx, r, next.index) {
				return pos, ctx.Err()
			}
			force = true
			continue
		}
		select {
		case <-q[0].p.Done():
		case <-r.notify:
			continue // more to send, if the window has room
		case <-ctx.Done():
			inFlight(0)
			return pos, ctx.Err() // what is in flight ends with ctx
		}
		fl := q[0]
		q = q[1:]
		inFlight(len(q))
		resp, err := fl.p.Result()
		if f.accepted(r, fl.end, fl.commit, resp, err) {
			f.confirm(r, fl.round)
			pos = fl.end
			continue
		}
		for _, later := range q {
			<-later.p.Done() // each is bounded by the transport's request timeout
		}
		inFlight(0)
		return f.rejected(ctx, r, fl.prev, resp, err) // fl.prev is pos: answers come in order
	}
}

// commitLoop tells the replica a new commit index as soon as it moves, without waiting
// for the worker's append in flight to come back: under AckAll a write waits for every
// in-sync replica to apply it, and a replica applies only what it knows is committed, so
// this saves a write up to a round trip.
//
// Its append is empty and starts at the replica's acknowledged position (match): the
// replica holds that entry with that epoch already (a leader's own entries are never
// dropped by a replica it streams to in order), so the append can only confirm it and
// apply up to min(commit, match); it changes nothing else. Notices go only to a replica
// that named its incarnation (every server does): To then makes a restarted process at the
// address refuse it, rather than take it as a fresh replica's base. Its answer only raises
// what the replica has applied; any error is left to the worker, which finds it on its
// next append (a new incarnation, a newer epoch, an unreachable replica).
func (f *Fanout) commitLoop(ctx context.Context, r *replica) {
	defer f.wg.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.committed:
		}
		f.mu.Lock()
		commit, match, acked, inc := f.commit, r.match, r.acked, r.inc
		stale := !acked || inc == "" || commit <= r.sentCommit || r.applied >= min(commit, match)
		inSync := f.inSyncLocked(r.addr)
		f.mu.Unlock()
		if stale {
			continue
		}
		epoch, ok := f.cfg.Log.EpochAt(match)
		if !ok {
			continue // the worker is sending a snapshot, or will
		}
		req := AppendRequest{Epoch: f.cfg.Epoch, Leader: f.cfg.Self, PrevIndex: match, PrevEpoch: epoch,
			Entries: []kvstore.Entry{}, Commit: commit, InSync: inSync, To: inc}
		resp, err := f.peers.Append(ctx, r.addr, req)
		if err != nil || resp.Incarnation != inc {
			f.logger.Debug("commit notice not taken", "replica", r.addr, "commit", commit, "error", err)
			continue
		}
		f.mu.Lock()
		changed := false
		if r.inc == inc && r.acked {
			r.sentCommit = max(r.sentCommit, commit)
			if resp.Applied > r.applied {
				r.applied, changed = resp.Applied, true
			}
		}
		if changed {
			f.broadcast()
		}
		f.mu.Unlock()
	}
}

// confirm records that the replica answered a request sent during Barrier round.
func (f *Fanout) confirm(r *replica, round uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if round > r.confirmed {
		r.confirmed = round
		f.broadcast()
	}
}

// waitWork returns true once the leader has entries after index, a Barrier round waits
// for this replica, or it is time for a heartbeat; false when ctx ends.
func (f *Fanout) waitWork(ctx context.Context, r *replica, index uint64) bool {
	var heartbeat <-chan time.Time
	if f.cfg.HeartbeatInterval > 0 {
		t := time.NewTimer(f.cfg.HeartbeatInterval)
		defer t.Stop()
		heartbeat = t.C
	}
	for {
		f.mu.Lock()
		last, pending := f.last.index, f.round > r.confirmed || (r.acked && f.commit > r.sentCommit)
		f.mu.Unlock()
		if last > index || pending {
			return true
		}
		select {
		case <-r.notify:
		case <-heartbeat:
			return true // an empty append: keeps Up current and finds out about fencing
		case <-ctx.Done():
			return false
		}
	}
}

func trimBatch(entries []kvstore.Entry, maxBytes int64) []kvstore.Entry {
	var size int64
	for i := range entries {
		size += int64(len(entries[i].Key) + len(entries[i].Value))
		if size > maxBytes && i > 0 {
			return entries[:i]
		}
	}
	return entries
}

// sendAppend sends entries following pos and returns the replica's new position.
func (f *Fanout) sendAppend(ctx context.Context, r *replica, pos position, entries []kvstore.Entry) (position, error) {
	f.mu.Lock()
	commit, inSync := f.commit, f.inSyncLocked(r.addr)
	f.mu.Unlock()
	req := AppendRequest{Epoch: f.cfg.Epoch, Leader: f.cfg.Self, PrevIndex: pos.index, PrevEpoch: pos.epoch, Entries: entries,
		Commit: commit, InSync: inSync, To: r.inc}
	if !r.acked && f.cfg.Complete != nil {
		req.Complete = f.cfg.Complete(pos.index)
	}
	if entries == nil {
		req.Entries = []kvstore.Entry{}
	}
	resp, err := f.peers.Append(ctx, r.addr, req)
	end := pos
	if n := len(entries); n > 0 {
		end = position{entries[n-1].Index, entries[n-1].Epoch}
	}
	if f.accepted(r, end, commit, resp, err) {
		return end, nil
	}
	return f.rejected(ctx, r, pos, resp, err)
}

// accepted reports whether an append's answer says the replica holds the leader's log up to
// end, and if so records it (with the commit index the append carried).
func (f *Fanout) accepted(r *replica, end position, commit uint64, resp AppendResponse, err error) bool {
	if err != nil || resp.LastIndex != end.index || resp.LastEpoch != end.epoch {
		return false
	}
	f.mu.Lock()
	r.sentCommit = max(r.sentCommit, commit)
	r.inc = resp.Incarnation
	f.mu.Unlock()
	f.setMatch(r, end.index, resp, false)
	return true
}

// rejected acts on an answer accepted did not take, to an append that started at prev: the
// replica's own position resumes the stream (or a snapshot does), a refusal is refused's.
func (f *Fanout) rejected(ctx context.Context, r *replica, prev position, resp AppendResponse, err error) (position, error) {
	var mismatch *LogMismatchError
	switch {
	case err == nil:
		return f.reconcile(ctx, r, prev, position{resp.LastIndex, resp.LastEpoch}, resp)
	case errors.As(err, &mismatch):
		return f.reconcile(ctx, r, prev, position{mismatch.LastIndex, mismatch.LastEpoch}, AppendResponse{})
	}
	return prev, f.refused(r, err)
}

// refused acts on a request's error: a newer epoch deposes this leader, a new incarnation
// restarts the replica's stream; any other error is returned as is.
func (f *Fanout) refused(r *replica, err error) error {
	var stale *StaleEpochError
	if errors.As(err, &stale) {
		f.depose(r.addr, stale.Epoch)
		return errDeposed
	}
	if errors.Is(err, ErrNewIncarnation) {
		// The process at this address restarted: it is a new replica, whose stream starts
		// at the leader's last entry (it holds only what comes after, as it should).
		f.mu.Lock()
		r.inc, r.acked, r.match, r.applied, r.partial, r.sentCommit = "", false, 0, 0, false, 0
		r.added = time.Now()
		f.mu.Unlock()
		f.logger.Info("replica restarted: its stream starts again", "replica", r.addr)
		return errRestarted
	}
	return err
}

// reconcile resumes from the replica's position at if the Log holds that entry with the
// same epoch (then every entry before it matches too); otherwise it sends a snapshot.
func (f *Fanout) reconcile(ctx context.Context, r *replica, pos, at position, resp AppendResponse) (position, error) {
	if ep, ok := f.cfg.Log.EpochAt(at.index); ok && ep == at.epoch {
		f.logger.Debug("resuming replica from its position", "replica", r.addr, "index", at.index)
		if resp.Applied == 0 {
			f.mu.Lock()
			resp.Applied, resp.Partial = r.applied, r.partial
			f.mu.Unlock()
		}
		f.setMatch(r, at.index, resp, false)
		return at, nil
	}
	return f.sendSnapshot(ctx, r, pos)
}

// sendSnapshot installs the leader's snapshot on the replica; on error it returns pos.
func (f *Fanout) sendSnapshot(ctx context.Context, r *replica, pos position) (position, error) {
	snap := f.cfg.Snapshot()
	f.logger.Info("sending snapshot", "replica", r.addr, "index", snap.Index, "entries", len(snap.Entries))
	f.mu.Lock()
	to := r.inc
	f.mu.Unlock()
	req := SnapshotRequest{Epoch: f.cfg.Epoch, Leader: f.cfg.Self, Snapshot: snap, To: to}
	resp, err := f.peers.Snapshot(ctx, r.addr, req)
	if err != nil {
		return pos, f.refused(r, err)
	}
	at := position{resp.LastIndex, resp.LastEpoch}
	if at.index != snap.Index || at.epoch != snap.Epoch {
		return pos, fmt.Errorf("replication: replica %s answered position %d/%d to snapshot %d/%d",
			r.addr, at.index, at.epoch, snap.Index, snap.Epoch)
	}
	f.mu.Lock()
	r.inc = resp.Incarnation
	f.mu.Unlock()
	f.setMatch(r, at.index, resp, true)
	return at, nil
}
