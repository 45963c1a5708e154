package server

import (
	"context"
	"log/slog"

	"github.com/zkv-dev/zkv/election"
	"github.com/zkv-dev/zkv/kvstore"
	"github.com/zkv-dev/zkv/replication"
)

// Elector is what the server needs of the leader election; *election.Candidate has it.
// Observe's channel has a buffer of one, the latest view winning, and is closed with ctx.
type Elector interface {
	Join(ctx context.Context) error
	View() election.View
	Observe(ctx context.Context) <-chan election.View
	Members(ctx context.Context) ([]election.Member, error)
	Resign(ctx context.Context) error
	Close() error
}

// refresher is the optional part of an Elector: re-read the election now, e.g. when an
// append arrives from a newer epoch than the view knows.
type refresher interface {
	Refresh(ctx context.Context) error
}

// Store is what the server needs of its key-value store; *kvstore.Store has it. Apply and
// Restore come from one writer at a time (the server serialises them); only committed
// entries reach it.
type Store interface {
	Get(key string) (kvstore.Entry, bool)
	// Lookup is Get that also returns a tombstone (a deleted key's version goes on).
	Lookup(key string) (kvstore.Entry, bool)
	Apply(entries ...kvstore.Entry) error
	Last() (index uint64, epoch int64)
	Len() int
	Snapshot() kvstore.Snapshot
	Restore(kvstore.Snapshot)
	// List, PrefixIndex, WatchKey and WatchPrefix serve listings and watches (list.go,
	// watch.go): a page of the live keys under a prefix, the prefix's modify index, and a
	// channel the next write to a key, or under a prefix, closes.
	List(opts kvstore.ListOptions) kvstore.Page
	PrefixIndex(prefix string) uint64
	WatchKey(key string) (<-chan struct{}, func())
	WatchPrefix(prefix string) (<-chan struct{}, func())
}

// Replicator is a leader's fan-out for one epoch; *replication.Fanout has it.
type Replicator interface {
	SetReplicas(addrs []string)
	SetInSync(sets ...[]string)
	Commit() (commit, applied uint64)
	Enqueue(entries ...kvstore.Entry)
	Wait(ctx context.Context, index uint64, mode replication.AckMode) (acked int, err error)
	Barrier(ctx context.Context, mode replication.AckMode) (acked int, err error)
	Deposed() <-chan struct{}
	Stats() []replication.ReplicaStats
	Close() error
}

// ReplicatorFactory makes the fan-out of a new leadership. cfg has Self, Epoch, Log,
// Snapshot, Token, Mode, Applied, EpochStart, Apply, Observer and Logger filled in over
// Config.Replication.
type ReplicatorFactory func(cfg replication.Config) (Replicator, error)

// Deps are the parts a Server composes. Elector is required; a nil Store gets a new
// empty kvstore, a nil NewReplicator gets replication.NewFanout, a nil InSync keeps the
// in-sync record in memory (a single process: tests).
type Deps struct {
	Elector       Elector
	Store         Store
	NewReplicator ReplicatorFactory
	InSync        InSyncStore
}

// NewFanout is the default ReplicatorFactory.
func NewFanout(cfg replication.Config) (Replicator, error) {
	f, err := replication.NewFanout(cfg)
	if err != nil {
		return nil, err
	}
	return f, nil
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
