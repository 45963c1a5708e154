package replication

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// ErrUnreachable is what an InmemTransport returns for a request or an answer the link
// lost: the replica is partitioned, unknown, or a drop was asked for.
var ErrUnreachable = errors.New("replication: replica unreachable")

// InmemTransport is a Transport that calls Followers registered in this process, for tests:
// no sockets, no encoding (requests are copied, so that no slice is shared). Faults are set
// per replica, on the link from every leader using the transport to it, and take effect on
// the next request: Partition, Delay, DropNext (the request is lost), DropReplies (the
// request is applied, its answer lost) and Hold/Release (requests wait, then arrive in
// reverse order). It never retries. Safe for concurrent use.
type InmemTransport struct {
	timeout time.Duration

	mu        sync.Mutex
	followers map[string]*Follower
	links     map[string]*inmemLink
}

type inmemLink struct {
	partitioned bool
	delay       time.Duration
	dropNext    int
	dropReplies int
	held        bool
	queue       []*inmemMessage // held requests, in order of arrival
	delivered   int
}

type inmemMessage struct {
	call      func(context.Context) (AppendResponse, error)
	dropReply bool
	done      chan inmemResult // capacity 1: Release never blocks on a sender that gave up
}

type inmemResult struct {
	resp AppendResponse
	err  error
}

// NewInmemTransport returns an InmemTransport without replicas. timeout bounds how long a
// sender waits for a delayed or held request (like an HTTP client's timeout); 0: as long
// as its context lasts.
func NewInmemTransport(timeout time.Duration) *InmemTransport {
	return &InmemTransport{timeout: timeout, followers: make(map[string]*Follower), links: make(map[string]*inmemLink)}
}

// Register makes f the replica named replica (the address given to Fanout.SetReplicas);
// registering another Follower under the same name is a restarted process. A nil f removes
// the replica: requests to it fail with ErrUnreachable. The link's faults are kept.
func (t *InmemTransport) Register(replica string, f *Follower) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if f == nil {
		delete(t.followers, replica)
		return
	}
	t.followers[replica] = f
}

// link returns replica's link; call with t.mu held.
func (t *InmemTransport) link(replica string) *inmemLink {
	l, ok := t.links[replica]
	if !ok {
		l = &inmemLink{}
		t.links[replica] = l
	}
	return l
}

// Partition cuts the link to replica: requests fail at once with ErrUnreachable.
func (t *InmemTransport) Partition(replica string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.link(replica).partitioned = true
}

// Heal clears the link's partition, delay and pending drops; held requests stay held
// until Release.
func (t *InmemTransport) Heal(replica string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	l := t.link(replica)
	l.partitioned, l.delay, l.dropNext, l.dropReplies = false, 0, 0, 0
}

// Delay makes every request to replica take d before it arrives; one that would take
// longer than the transport's timeout is lost and its sender gets a timeout.
func (t *InmemTransport) Delay(replica string, d time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.link(replica).delay = d
}

// DropNext loses the next n requests to replica: they never arrive, and their senders
// get ErrUnreachable.
func (t *InmemTransport) DropNext(replica string, n int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.link(replica).dropNext += n
}

// DropReplies loses the answers of the next n requests to replica: they arrive and take
// effect, and their senders get ErrUnreachable.
func (t *InmemTransport) DropReplies(replica string, n int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.link(replica).dropReplies += n
}

// Hold makes requests to replica wait (in flight) until Release. A sender whose timeout
// or context ends meanwhile gets an error, but its request stays in flight.
func (t *InmemTransport) Hold(replica string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.link(replica).held = true
}

// Held returns how many requests to replica are held.
func (t *InmemTransport) Held(replica string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.link(replica).queue)
}

// Release stops holding requests to replica and delivers the held ones in reverse order
// of arrival, the newest first, one after the other in the caller's goroutine; each
// sender still waiting gets its answer. It returns how many it delivered.
func (t *InmemTransport) Release(replica string) int {
	t.mu.Lock()
	l := t.link(replica)
	queue := l.queue
	l.queue, l.held = nil, false
	l.delivered += len(queue)
	t.mu.Unlock()
	for _, m := range slices.Backward(queue) {
		resp, err := m.call(context.Background()) // in flight: its sender may be gone
		m.done <- t.answer(replica, m.dropReply, resp, err)
	}
	return len(queue)
}

// Delivered returns how many requests have reached replica.
func (t *InmemTransport) Delivered(replica string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.link(replica).delivered
}

// Append implements Transport by calling the replica's Follower.Append.
func (t *InmemTransport) Append(ctx context.Context, replica string, req AppendRequest) (AppendResponse, error) {
	req.Entries = slices.Clone(req.Entries)
	return t.send(ctx, replica, func(f *Follower) func(context.Context) (AppendResponse, error) {
		return func(ctx context.Context) (AppendResponse, error) { return f.Append(ctx, req) }
	})
}

// Snapshot implements Transport by calling the replica's Follower.InstallSnapshot.
func (t *InmemTransport) Snapshot(ctx context.Context, replica string, req SnapshotRequest) (AppendResponse, error) {
	req.Snapshot.Entries = slices.Clone(req.Snapshot.Entries)
	return t.send(ctx, replica, func(f *Follower) func(context.Context) (AppendResponse, error) {
		return func(ctx context.Context) (AppendResponse, error) { return f.InstallSnapshot(ctx, req) }
	})
}

func (t *InmemTransport) send(ctx context.Context, replica string, bind func(*Follower) func(context.Context) (AppendResponse, error)) (AppendResponse, error) {
	if err := ctx.Err(); err != nil {
		return AppendResponse{}, err
	}
	t.mu.Lock()
	l := t.link(replica)
	f, ok := t.followers[replica]
	switch {
	case !ok:
		t.mu.Unlock()
		return AppendResponse{}, fmt.Errorf("%w: %s: no such replica", ErrUnreachable, replica)
	case l.partitioned:
		t.mu.Unlock()
		return AppendResponse{}, fmt.Errorf("%w: %s: partitioned", ErrUnreachable, replica)
	case l.dropNext > 0:
		l.dropNext--
		t.mu.Unlock()
		return AppendResponse{}, fmt.Errorf("%w: %s: request lost", ErrUnreachable, replica)
	}
	m := &inmemMessage{call: bind(f), done: make(chan inmemResult, 1)}
	if l.dropReplies > 0 {
		l.dropReplies--
		m.dropReply = true
	}
	delay, held := l.delay, l.held
	if held {
		l.queue = append(l.queue, m)
	}
	t.mu.Unlock()

	var timeout <-chan time.Time
	if t.timeout > 0 {
		tm := time.NewTimer(t.timeout)
		defer tm.Stop()
		timeout = tm.C
	}
	if !held {
		if delay > 0 {
			d := time.NewTimer(delay)
			defer d.Stop()
			select {
			case <-d.C:
			case <-timeout:
				return AppendResponse{}, fmt.Errorf("replication: %s: request lost after %v: %w", replica, t.timeout, context.DeadlineExceeded)
			case <-ctx.Done():
				return AppendResponse{}, ctx.Err()
			}
		}
		t.mu.Lock()
		l.delivered++
		t.mu.Unlock()
		resp, err := m.call(ctx)
		r := t.answer(replica, m.dropReply, resp, err)
		return r.resp, r.err
	}
	select {
	case r := <-m.done:
		return r.resp, r.err
	case <-timeout:
		return AppendResponse{}, fmt.Errorf("replication: %s: no answer after %v: %w", replica, t.timeout, context.DeadlineExceeded)
	case <-ctx.Done():
		return AppendResponse{}, ctx.Err()
	}
}

// answer is what the sender gets for a delivered request.
func (t *InmemTransport) answer(replica string, dropReply bool, resp AppendResponse, err error) inmemResult {
	if dropReply {
		return inmemResult{err: fmt.Errorf("%w: %s: answer lost", ErrUnreachable, replica)}
	}
	if err != nil {
		return inmemResult{err: fmt.Errorf("replication: replica %s: %w", replica, err)}
	}
	return inmemResult{resp: resp}
}

var _ Transport = (*InmemTransport)(nil)
