package replication

import "context"

// Transport carries the leader's requests to its replicas: the Fanout's view of the
// network, defined here where it is consumed (hashicorp/raft's Transport is the model).
// [HTTPTransport] speaks the internal routes; [InmemTransport] calls Followers in the same
// process, with faults on demand, for tests.
//
// A replica is named by the address given to [Fanout.SetReplicas]. A refusal by the
// replica comes back as the error [Follower] returned, or one that wraps it: a
// *StaleEpochError, a *LogMismatchError, ErrNewIncarnation, ErrNotLeader,
// ErrInvalidRequest, ErrTooLarge; any other error (unreachable, timed out, answered
// 5xx) leaves the replica's state unknown, and the Fanout probes it again after a backoff.
//
// An implementation may retry a request itself (the HTTP one retries transport errors and
// 5xx), but never an empty append without To: that is the probe of a replica that has not
// answered yet, and a retry would carry the position of its first attempt, which a process
// that starts meanwhile would take as its base (holding writes made before it started).
// Methods are called concurrently, one request at a time per replica from one leader.
type Transport interface {
	// Append sends an append (an empty one is a probe or heartbeat) and returns the
	// replica's answer.
	Append(ctx context.Context, replica string, req AppendRequest) (AppendResponse, error)
	// Snapshot installs a snapshot on the replica and returns its answer.
	Snapshot(ctx context.Context, replica string, req SnapshotRequest) (AppendResponse, error)
}
