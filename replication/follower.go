package replication

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"

	"github.com/zkv-dev/zkv/kvstore"
)

// Store is what a Follower needs of the replica's store; *kvstore.Store has it.
type Store interface {
	Apply(entries ...kvstore.Entry) error
	Last() (index uint64, epoch int64)
	Restore(kvstore.Snapshot)
}

// FollowerConfig configures a Follower.
type FollowerConfig struct {
	// Store receives the applied entries; required.
	Store Store
	// Log holds the entries this replica has received, committed or not; the Store gets
	// them once the leader's commit index covers them. It is reset by snapshots, and lets
	// this server serve catch-up should it lead. Default: a new Log of default bounds.
	Log *Log
	// Fresh marks a replica that started empty: the first append it accepts is taken as its
	// base whatever its prev position, so it holds only writes from then on. A store that
	// already holds writes is never fresh.
	Fresh bool
	// Epoch is the initial fence (e.g. the election's epoch at start).
	Epoch int64
	// CheckLeader, when set, is asked about every append and snapshot before anything else
	// but the epoch; an error (wrap ErrNotLeader) refuses the request. The server uses it
	// to answer 403 to a sender its election view does not name as leader.
	CheckLeader func(leader string, epoch int64) error
	// Logger gets debug and warning records; discarded when nil.
	Logger *slog.Logger
	// Incarnation names this replica's process; a request meant for another (To) is
	// refused with ErrNewIncarnation. Empty: no check.
	Incarnation string
	// UnsafeDisableFencing accepts appends and snapshots from any epoch and skips
	// CheckLeader. For tests only: it shows what fencing prevents (a deposed leader's
	// writes applied on replicas).
	UnsafeDisableFencing bool
}

// Follower is the replica side of replication: it takes a leader's appends into its Log,
// applies to its Store what the leader says is committed, and installs snapshots, under the
// rules of the package documentation. Nothing reaches the Store before it is committed, so
// no read of the Store returns a write that may yet be lost. Safe for concurrent use;
// appends and snapshots are taken one at a time.
type Follower struct {
	store       Store
	log         *Log
	checkLeader func(string, int64) error
	logger      *slog.Logger

	noFence     bool
	incarnation string

	mu      sync.Mutex
	fence   int64
	fresh   bool
	partial bool // took a base after index 0: lacks the writes before it
	inSync  bool // the last append said the leader counts this replica in its in-sync set
}

// InSync reports whether the leader's last append said it counts this replica in its
// in-sync set.
func (f *Follower) InSync() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.inSync
}

// NewFollower validates cfg and returns a Follower.
func NewFollower(cfg FollowerConfig) (*Follower, error) {
	if cfg.Store == nil {
		return nil, fmt.Errorf("%w: FollowerConfig.Store is required", ErrInvalidConfig)
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	idx, ep := cfg.Store.Last()
	rlog := cfg.Log
	if rlog == nil {
		var err error
		if rlog, err = NewLog(LogConfig{}); err != nil {
			return nil, err
		}
	}
	if li, _ := rlog.Last(); li < idx {
		rlog.Reset(idx, ep)
	}
	rlog.SetApplied(idx)
	return &Follower{
		store:       cfg.Store,
		log:         rlog,
		checkLeader: cfg.CheckLeader,
		logger:      logger,
		fence:       cfg.Epoch,
		noFence:     cfg.UnsafeDisableFencing,
		incarnation: cfg.Incarnation,
		fresh:       cfg.Fresh && idx == 0,
	}, nil
}

// Fence returns the newest epoch seen; appends below it are refused.
func (f *Follower) Fence() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fence
}

// ObserveEpoch raises the fence to epoch (if higher), e.g. from the election's view.
func (f *Follower) ObserveEpoch(epoch int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fence = max(f.fence, epoch)
}

// Last returns the replica's last position as the leader sees it: its log's last entry.
func (f *Follower) Last() (index uint64, epoch int64) {
	return f.log.Last()
}

func (f *Follower) applied() uint64 {
	i, _ := f.store.Last()
	return i
}

func (f *Follower) response() AppendResponse {
	idx, ep := f.log.Last()
	return AppendResponse{LastIndex: idx, LastEpoch: ep, Applied: f.applied(), Partial: f.partial, Incarnation: f.incarnation}
}

// sameIncarnation refuses a request meant for another process at this address.
func (f *Follower) sameIncarnation(to string) error {
	if to != "" && f.incarnation != "" && to != f.incarnation {
		return fmt.Errorf("%w: %s, not %s", ErrNewIncarnation, f.incarnation, to)
	}
	return nil
}

func (f *Follower) admit(epoch int64, leader string) error {
	if f.noFence {
		return nil
	}
	if epoch < f.fence {
		return &StaleEpochError{Epoch: f.fence, Got: epoch}
	}
	if f.checkLeader != nil {
		if err := f.checkLeader(leader, epoch); err != nil {
			return err
		}
	}
	return nil
}

// Append takes an append request into the log, applies what its commit index covers, and
// answers the replica's new position.
//
// Errors: *StaleEpochError (epoch below the fence; nothing applied), *LogMismatchError
// (the entries do not continue this replica's log; it carries the replica's last
// position, after the replica dropped the tail beyond its applied index that the leader's
// log does not continue), ErrInvalidRequest, the CheckLeader hook's error, or the
// store's. Entries the replica holds already are skipped, so retried batches are harmless.
func (f *Follower) Append(ctx context.Context, req AppendRequest) (AppendResponse, error) {
	if err := ctx.Err(); err != nil {
		return AppendResponse{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.admit(req.Epoch, req.Leader); err != nil {
		return AppendResponse{}, err
	}
	if err := req.Validate(); err != nil {
		return AppendResponse{}, err
	}
	if err := f.sameIncarnation(req.To); err != nil {
		return AppendResponse{}, err
	}
	f.fence = max(f.fence, req.Epoch)
	f.inSync = req.InSync

	if f.fresh {
		if li, _ := f.log.Last(); li == 0 && f.applied() == 0 {
			return f.takeBase(req)
		}
		f.fresh = false // written to meanwhile (this server led): no longer fresh
	}

	verified, err := f.continueLog(req.PrevIndex, req.PrevEpoch, req.Entries, true)
	if err != nil {
		return AppendResponse{}, err
	}
	if err := f.applyUpTo(min(req.Commit, verified.index)); err != nil {
		return AppendResponse{}, err
	}
	// The position answered is where the log is known to equal the leader's: a tail
	// beyond it, left by a deposed leader, is checked (and dropped) by the next append.
	resp := f.response()
	resp.LastIndex, resp.LastEpoch = verified.index, verified.epoch
	return resp, nil
}

// continueLog appends the entries that follow (prevIndex, prevEpoch) if they continue this
// replica's log (log matching: the epoch they give for an index the log holds is the
// log's own there), skipping those it holds already. It returns the index up to which the
// log is now known to equal the sender's. On a mismatch it drops, when asked to truncate,
// the log's tail beyond the applied index (entries no leader committed, or the sender would hold them too) and
// answers *LogMismatchError with the position it keeps. Called with f.mu held.
func (f *Follower) continueLog(prevIndex uint64, prevEpoch int64, entries []kvstore.Entry, truncate bool) (position, error) {
	last, lastEpoch := f.log.Last()
	end := prevIndex + uint64(len(entries))
	endEpoch := prevEpoch
	if n := len(entries); n > 0 {
		endEpoch = entries[n-1].Epoch
	}
	matched := false
	switch {
	case last == prevIndex:
		matched = lastEpoch == prevEpoch
	case last > prevIndex && last <= end:
		matched = entries[last-prevIndex-1].Epoch == lastEpoch
	case last > end:
		// Everything sent is at or below what we hold: a retry or an old batch, or a probe.
		// The log equals the sender's up to end if it has the same epoch there; below the
		// log's base lies a committed snapshot, which every leader's log agrees with.
		if base, _ := f.log.Base(); end < base {
			return position{end, endEpoch}, nil
		}
		ep, ok := f.log.EpochAt(end)
		if ok && ep == endEpoch {
			return position{end, endEpoch}, nil
		}
	}
	if !matched {
		f.logger.Debug("append does not match", "prev_index", prevIndex, "prev_epoch", prevEpoch,
			"last_index", last, "last_epoch", lastEpoch)
		if !truncate {
			return position{}, &LogMismatchError{LastIndex: last, LastEpoch: lastEpoch}
		}
		if last < prevIndex {
			return position{}, f.gap()
		}
		return position{}, f.mismatch()
	}
	if err := f.log.Append(entries[last-prevIndex:]...); err != nil {
		return position{}, fmt.Errorf("replication: append %d entries after index %d: %w", len(entries), last, err)
	}
	return position{end, endEpoch}, nil
}

// mismatch drops the log's tail beyond the applied index and returns the error that
// tells the leader where this log stands.
func (f *Follower) mismatch() error {
	applied := f.applied()
	if last, _ := f.log.Last(); last > applied && f.log.TruncateAfter(applied) {
		f.logger.Info("dropped a log tail the leader's log does not continue", "from_index", applied+1, "to_index", last)
	}
	idx, ep := f.log.Last()
	return &LogMismatchError{LastIndex: idx, LastEpoch: ep}
}

// gap answers an append that starts past the log's end: entries before it never arrived
// (an append before it in the leader's pipeline failed, or it crossed a reconnect). Nothing
// in it conflicts with the log, so nothing is dropped: the log's tail beyond the applied
// index may be entries this leader counted towards a commit, and only a conflicting entry
// may remove them. The answer is the applied position, which every later leader's log
// holds (it is committed), so the leader resumes from there whatever the tail is: a tail
// that agrees is confirmed by the appends that follow, one that does not is a conflict
// and dropped then.
func (f *Follower) gap() error {
	applied := f.applied()
	if ep, ok := f.log.EpochAt(applied); ok {
		return &LogMismatchError{LastIndex: applied, LastEpoch: ep}
	}
	idx, ep := f.log.Last()
	return &LogMismatchError{LastIndex: idx, LastEpoch: ep}
}

// applyUpTo applies to the store the log's entries up to index. Called with f.mu held.
func (f *Follower) applyUpTo(index uint64) error {
	applied := f.applied()
	if index <= applied {
		return nil
	}
	es, ok := f.log.EntriesFrom(applied+1, int(min(index-applied, 1<<20)))
	if !ok {
		return fmt.Errorf("replication: the log no longer holds index %d to apply", applied+1)
	}
	if len(es) == 0 {
		return nil
	}
	if err := f.store.Apply(es...); err != nil {
		return fmt.Errorf("replication: apply %d entries after index %d: %w", len(es), applied, err)
	}
	f.log.SetApplied(es[len(es)-1].Index)
	return nil
}

// takeBase accepts a fresh replica's first append whatever its prev position. The store is
// empty (a fresh store has applied nothing), so restoring an empty snapshot at the prev
// position loses nothing and moves the store's own position there: should this server lead
// later, its indexes continue the cluster's rather than restart at 1.
func (f *Follower) takeBase(req AppendRequest) (AppendResponse, error) {
	f.store.Restore(kvstore.Snapshot{Index: req.PrevIndex, Epoch: req.PrevEpoch})
	f.log.Reset(req.PrevIndex, req.PrevEpoch)
	if err := f.log.Append(req.Entries...); err != nil {
		f.store.Restore(kvstore.Snapshot{})
		f.log.Reset(0, 0)
		return AppendResponse{}, err
	}
	end := req.PrevIndex + uint64(len(req.Entries))
	if err := f.applyUpTo(min(req.Commit, end)); err != nil {
		return AppendResponse{}, err
	}
	f.fresh = false
	f.partial = req.PrevIndex > 0 && !req.Complete
	f.logger.Info("fresh replica took its base", "prev_index", req.PrevIndex, "last_index", end)
	return f.response(), nil
}

// InstallSnapshot replaces the replica's store with the leader's snapshot (and resets the
// log to its position) and answers the new last position. The fence and CheckLeader rules
// are those of Append.
func (f *Follower) InstallSnapshot(ctx context.Context, req SnapshotRequest) (AppendResponse, error) {
	if err := ctx.Err(); err != nil {
		return AppendResponse{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.admit(req.Epoch, req.Leader); err != nil {
		return AppendResponse{}, err
	}
	if err := req.Validate(); err != nil {
		return AppendResponse{}, err
	}
	if err := f.sameIncarnation(req.To); err != nil {
		return AppendResponse{}, err
	}
	f.fence = max(f.fence, req.Epoch)
	f.adopt(req.Snapshot)
	f.logger.Info("installed snapshot", "index", req.Snapshot.Index, "epoch", req.Snapshot.Epoch,
		"entries", len(req.Snapshot.Entries))
	return f.response(), nil
}

// Position returns this replica's place in the log (see Position).
func (f *Follower) Position() Position {
	f.mu.Lock()
	defer f.mu.Unlock()
	idx, ep := f.log.Last()
	return Position{LastIndex: idx, LastEpoch: ep, Partial: f.partial, Applied: f.applied()}
}

// Extend takes entries that follow (prevIndex, prevEpoch) into the log, as Append does but
// with no leader or fence check and without applying them: a newly elected leader uses it
// to take what a more up-to-date member holds before it leads; they commit with the new
// leader's first entry. A prev position that does not match gives *LogMismatchError.
func (f *Follower) Extend(prevIndex uint64, prevEpoch int64, entries []kvstore.Entry) (Position, error) {
	req := AppendRequest{Epoch: prevEpoch, PrevIndex: prevIndex, PrevEpoch: prevEpoch, Entries: entries}
	for _, e := range entries {
		req.Epoch = max(req.Epoch, e.Epoch)
	}
	if err := req.Validate(); err != nil {
		return Position{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := f.continueLog(prevIndex, prevEpoch, entries, false); err != nil {
		return Position{}, err
	}
	f.fresh = false
	idx, ep := f.log.Last()
	return Position{LastIndex: idx, LastEpoch: ep, Partial: f.partial, Applied: f.applied()}, nil
}

// Adopt replaces the store with snap, as InstallSnapshot does but with no leader or fence
// check: a newly elected leader that is partial or behind adopts a more complete member's
// snapshot before it takes writes. The replica is complete afterwards.
func (f *Follower) Adopt(snap kvstore.Snapshot) Position {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.adopt(snap)
	idx, ep := f.log.Last()
	return Position{LastIndex: idx, LastEpoch: ep, Applied: f.applied()}
}

func (f *Follower) adopt(snap kvstore.Snapshot) {
	f.store.Restore(snap)
	f.fresh, f.partial, f.inSync = false, false, false
	f.log.Reset(snap.Index, snap.Epoch)
}

// ApplyUpTo applies the log's entries up to index to the store: a leader's own writes,
// once committed. Entries it applied already are skipped.
func (f *Follower) ApplyUpTo(index uint64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.applyUpTo(index)
}

// Log returns the log this Follower keeps.
func (f *Follower) Log() *Log { return f.log }
