package replication

import (
	"errors"
	"fmt"
)

var (
	// ErrInvalidConfig reports a config a constructor refuses.
	ErrInvalidConfig = errors.New("replication: invalid config")
	// ErrStaleEpoch reports an append or snapshot from a leader whose epoch is below the
	// replica's fence. The concrete error is a *StaleEpochError carrying the fence.
	ErrStaleEpoch = errors.New("replication: stale epoch")
	// ErrLogMismatch reports an append that does not continue the replica's log. The
	// concrete error is a *LogMismatchError carrying the replica's last position.
	ErrLogMismatch = errors.New("replication: log mismatch")
	// ErrNewIncarnation reports a request meant for an earlier process at this address: the
	// replica restarted, and the leader must stream to it as to a new replica.
	ErrNewIncarnation = errors.New("replication: the replica is a new incarnation")
	// ErrNotLeader reports an append from an address the replica does not take for the leader.
	ErrNotLeader = errors.New("replication: sender is not the leader")
	// ErrInvalidRequest reports a request that is well-formed JSON but breaks the protocol
	// (empty keys, indexes that do not follow prev_index one by one, ...).
	ErrInvalidRequest = errors.New("replication: invalid request")
	// ErrMalformed reports a body that is not exactly one JSON object of the expected shape.
	ErrMalformed = errors.New("replication: malformed request body")
	// ErrTooLarge reports a body above the decoder's limit.
	ErrTooLarge = errors.New("replication: request body too large")
	// ErrLogGap reports entries appended to a Log that do not follow its last index.
	ErrLogGap = errors.New("replication: log gap")
	// ErrFenced is what Fanout.Wait returns once a replica has refused the leader's epoch:
	// a newer leader exists and this one must step down.
	ErrFenced = errors.New("replication: leader fenced by a newer epoch")
	// ErrClosed is returned by the Fanout's methods after Close.
	ErrClosed = errors.New("replication: closed")
)

// StaleEpochError is the concrete ErrStaleEpoch: Epoch is the replica's fence, the newest
// epoch it has seen.
type StaleEpochError struct {
	Epoch int64 // the replica's fence
	Got   int64 // the refused request's epoch
}

func (e *StaleEpochError) Error() string {
	return fmt.Sprintf("replication: stale epoch %d, fence is %d", e.Got, e.Epoch)
}

// Is makes errors.Is(err, ErrStaleEpoch) hold.
func (e *StaleEpochError) Is(target error) bool { return target == ErrStaleEpoch }

// LogMismatchError is the concrete ErrLogMismatch: the replica's last position, from
// which the leader can resume.
type LogMismatchError struct {
	LastIndex uint64
	LastEpoch int64
}

func (e *LogMismatchError) Error() string {
	return fmt.Sprintf("replication: log mismatch, replica is at index %d epoch %d", e.LastIndex, e.LastEpoch)
}

// Is makes errors.Is(err, ErrLogMismatch) hold.
func (e *LogMismatchError) Is(target error) bool { return target == ErrLogMismatch }
