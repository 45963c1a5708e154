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
	// Log, when set, gets every applied entry (and is reset by snapshots), so that this
	// server can serve catch-up if it becomes leader.
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
	// UnsafeDisableFencing accepts appends and snapshots from any epoch and skips
	// CheckLeader. For tests only: it shows what fencing prevents (a deposed leader's
	// writes applied on replicas).
	UnsafeDisableFencing bool
}

// Follower is the replica side of replication: it applies a leader's appends and snapshots
// to its Store under the rules of the package documentation. Safe for concurrent use;
// appends and snapshots are applied one at a time.
type Follower struct {
	store       Store
	log         *Log
	checkLeader func(string, int64) error
	logger      *slog.Logger

	noFence bool

	mu      sync.Mutex
	fence   int64
	fresh   bool
	partial bool // took a base after index 0: lacks the writes before it
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
	idx, _ := cfg.Store.Last()
	return &Follower{
		store:       cfg.Store,
		log:         cfg.Log,
		checkLeader: cfg.CheckLeader,
		logger:      logger,
		fence:       cfg.Epoch,
		noFence:     cfg.UnsafeDisableFencing,
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

// Last returns the replica's last position as the leader sees it.
func (f *Follower) Last() (index uint64, epoch int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.position()
}

func (f *Follower) position() (uint64, int64) {
	return f.store.Last()
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

// Append applies an append request and answers the replica's new last position.
//
// Errors: *StaleEpochError (epoch below the fence; nothing applied), *LogMismatchError
// (the entries do not continue this replica's log; it carries the replica's last
// position), ErrInvalidRequest, the CheckLeader hook's error, or the store's. Entries at
// or below the replica's last index are skipped, so retried batches are harmless.
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
	f.fence = req.Epoch

	if f.fresh {
		if idx, _ := f.store.Last(); idx == 0 {
			return f.takeBase(req)
		}
		f.fresh = false // written to meanwhile (this server led): no longer fresh
	}

	return f.continueLog(req.PrevIndex, req.PrevEpoch, req.Entries)
}

// continueLog applies the entries that follow (prevIndex, prevEpoch) if they continue this
// replica's log (log matching: the epoch they give for its last index is its own); the
// entries it holds already are skipped. Called with f.mu held.
func (f *Follower) continueLog(prevIndex uint64, prevEpoch int64, entries []kvstore.Entry) (AppendResponse, error) {
	last, lastEpoch := f.position()
	var at int64 // epoch the request gives for index `last`
	var known bool
	end := prevIndex + uint64(len(entries))
	switch {
	case last == prevIndex:
		at, known = prevEpoch, true
	case last > prevIndex && last <= end:
		at, known = entries[last-prevIndex-1].Epoch, true
	case last > end:
		// Everything sent is at or below what we hold: a retry or an old batch. Answer our
		// position; the leader checks it against its own log.
		return AppendResponse{LastIndex: last, LastEpoch: lastEpoch}, nil
	}
	if !known || at != lastEpoch {
		f.logger.Debug("append does not match", "prev_index", prevIndex, "prev_epoch", prevEpoch,
			"last_index", last, "last_epoch", lastEpoch)
		return AppendResponse{}, &LogMismatchError{LastIndex: last, LastEpoch: lastEpoch}
	}
	if err := f.apply(last, lastEpoch, entries[last-prevIndex:]); err != nil {
		return AppendResponse{}, err
	}
	idx, ep := f.position()
	return AppendResponse{LastIndex: idx, LastEpoch: ep}, nil
}

// takeBase accepts a fresh replica's first append whatever its prev position. The store is
// empty (a fresh store has applied nothing), so restoring an empty snapshot at the prev
// position loses nothing and moves the store's own position there: should this server lead
// later, its indexes continue the cluster's rather than restart at 1.
func (f *Follower) takeBase(req AppendRequest) (AppendResponse, error) {
	f.store.Restore(kvstore.Snapshot{Index: req.PrevIndex, Epoch: req.PrevEpoch})
	if err := f.apply(req.PrevIndex, req.PrevEpoch, req.Entries); err != nil {
		f.store.Restore(kvstore.Snapshot{})
		return AppendResponse{}, err
	}
	f.fresh = false
	f.partial = req.PrevIndex > 0
	idx, ep := f.position()
	f.logger.Info("fresh replica took its base", "prev_index", req.PrevIndex, "last_index", idx)
	return AppendResponse{LastIndex: idx, LastEpoch: ep}, nil
}

// apply hands entries following (prevIndex, prevEpoch) to the store and the log.
func (f *Follower) apply(prevIndex uint64, prevEpoch int64, entries []kvstore.Entry) error {
	if err := f.store.Apply(entries...); err != nil {
		return fmt.Errorf("replication: apply %d entries after index %d: %w", len(entries), prevIndex, err)
	}
	if f.log == nil {
		return nil
	}
	if li, _ := f.log.Last(); li != prevIndex {
		f.log.Reset(prevIndex, prevEpoch)
	}
	if err := f.log.Append(entries...); err != nil {
		// The store took them; a log that cannot follow restarts at the new last position.
		f.logger.Warn("log reset after append failure", "error", err)
		idx, ep := f.position()
		f.log.Reset(idx, ep)
	}
	return nil
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
	f.fence = req.Epoch
	f.adopt(req.Snapshot)
	f.logger.Info("installed snapshot", "index", req.Snapshot.Index, "epoch", req.Snapshot.Epoch,
		"entries", len(req.Snapshot.Entries))
	idx, ep := f.position()
	return AppendResponse{LastIndex: idx, LastEpoch: ep}, nil
}

// Position returns this replica's place in the log (see Position).
func (f *Follower) Position() Position {
	f.mu.Lock()
	defer f.mu.Unlock()
	idx, ep := f.position()
	return Position{LastIndex: idx, LastEpoch: ep, Partial: f.partial}
}

// Extend applies entries that follow (prevIndex, prevEpoch), as Append does but with no
// leader or fence check: a newly elected leader uses it to take what a more up-to-date
// member holds before it takes writes. Entries at or below the last index are skipped; a
// prev position that does not match this replica's log gives *LogMismatchError.
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
	resp, err := f.continueLog(prevIndex, prevEpoch, entries)
	if err != nil {
		return Position{}, err
	}
	f.fresh = false
	return Position{LastIndex: resp.LastIndex, LastEpoch: resp.LastEpoch, Partial: f.partial}, nil
}

// Adopt replaces the store with snap, as InstallSnapshot does but with no leader or fence
// check: a newly elected leader that is partial or behind adopts a more complete member's
// snapshot before it takes writes. The replica is complete afterwards.
func (f *Follower) Adopt(snap kvstore.Snapshot) Position {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.adopt(snap)
	idx, ep := f.position()
	return Position{LastIndex: idx, LastEpoch: ep}
}

func (f *Follower) adopt(snap kvstore.Snapshot) {
	f.store.Restore(snap)
	f.fresh, f.partial = false, false
	if f.log != nil {
		f.log.Reset(snap.Index, snap.Epoch)
	}
}
