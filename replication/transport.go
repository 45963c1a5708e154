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

// Pipeliner is implemented by a Transport that can have several appends to one replica in
// flight. StartAppend puts req on the wire behind every append the caller started before
// it to the same replica and returns without waiting for the answer; the replica serves
// them in the order sent (a replica that misses one refuses the ones after it, whose
// previous position it then lacks). The Fanout's worker is the only caller per replica.
// [StreamTransport] is one; a Transport that is not gets one append at a time.
type Pipeliner interface {
	StartAppend(ctx context.Context, replica string, req AppendRequest) *PendingAppend
}

// PendingAppend is an append on its way: Done is closed once its answer, or its error, is
// in, and Result returns them.
type PendingAppend struct {
	done chan struct{}
	resp AppendResponse
	err  error
}

func newPendingAppend() *PendingAppend { return &PendingAppend{done: make(chan struct{})} }

// finish records the answer and closes Done; called once.
func (p *PendingAppend) finish(resp AppendResponse, err error) {
	p.resp, p.err = resp, err
	close(p.done)
}

// Done is closed once the answer is in.
func (p *PendingAppend) Done() <-chan struct{} { return p.done }

// Result returns the answer; call it after Done is closed.
func (p *PendingAppend) Result() (AppendResponse, error) {
	<-p.done
	return p.resp, p.err
}

// startAppend starts req on t: pipelined if t is a Pipeliner, otherwise sent and answered
// before it returns.
func startAppend(ctx context.Context, t Transport, replica string, req AppendRequest) *PendingAppend {
	if p, ok := t.(Pipeliner); ok {
		return p.StartAppend(ctx, replica, req)
	}
	p := newPendingAppend()
	p.finish(t.Append(ctx, replica, req))
	return p
}
