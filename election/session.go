package election

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/zkv-dev/zkv/zk"
)

// Session is a ZooKeeper connection whose session events are delivered
// without loss on Events.
//
// go-zookeeper's own event channel has a buffer of 6 and silently drops
// events when it is full; Dial instead installs an event callback feeding an
// unbounded queue, so no session state change is ever lost however slowly
// Events is read. Hand Conn and Events to exactly one reader, typically
// Config.Conn and Config.Events of a Candidate.
type Session struct {
	// Conn is the underlying connection; it satisfies Conn.
	Conn *zk.Conn
	// Events carries every event go-zookeeper reports (session state
	// changes, EventNotWatching, watch events) in order. It is closed by
	// Close; events still queued at that point are dropped.
	Events <-chan zk.Event

	queue     *eventQueue
	drained   chan struct{} // closed when go-zookeeper's own channel is closed
	closeOnce sync.Once
	wg        sync.WaitGroup
}

// DialOption configures Dial.
type DialOption func(*dialOptions)

type dialOptions struct {
	logger    *slog.Logger
	auth      []authCred
	zkOptions []func(*zk.Conn)
}

type authCred struct{ scheme, secret string }

// WithLogger sends go-zookeeper's log lines to logger (component=zk) instead
// of the standard library's log package. By default they are discarded.
func WithLogger(logger *slog.Logger) DialOption {
	return func(o *dialOptions) { o.logger = logger }
}

// WithDigestAuth authenticates the connection with ZooKeeper's digest scheme
// as user:password; go-zookeeper re-sends the credentials after every
// reconnect. Pair it with Config.ACL = DigestACL(user, password) so only
// holders of the secret can touch the election's znodes.
func WithDigestAuth(user, password string) DialOption {
	return func(o *dialOptions) {
		o.auth = append(o.auth, authCred{scheme: "digest", secret: user + ":" + password})
	}
}

// WithZKOptions passes options straight to zk.Connect, e.g. zk.WithDialer.
// Options that replace the event callback or the logger are overridden by
// Dial's own.
func WithZKOptions(opts ...func(*zk.Conn)) DialOption {
	return func(o *dialOptions) { o.zkOptions = append(o.zkOptions, opts...) }
}

// DigestACL returns an ACL granting every permission to the digest identity
// user:password, for Config.ACL when the session uses WithDigestAuth.
func DigestACL(user, password string) []zk.ACL {
	return zk.DigestACL(zk.PermAll, user, password)
}

// Dial connects to the ZooKeeper ensemble servers ("host:port" each) and
// asks for sessionTimeout (the server clamps it to 2..20 tickTime). It
// returns at once without waiting for a session, unless credentials were
// given with WithDigestAuth: then it waits for the server to take them, and
// fails if ctx ends first or no server of the list answers (go-zookeeper
// reports zk.ErrNoServer after trying each once). Use DialContext to bound
// that wait.
func Dial(servers []string, sessionTimeout time.Duration, opts ...DialOption) (*Session, error) {
	return DialContext(context.Background(), servers, sessionTimeout, opts...)
}

// DialContext is Dial with a context bounding the wait for authentication.
func DialContext(ctx context.Context, servers []string, sessionTimeout time.Duration, opts ...DialOption) (*Session, error) {
	if len(servers) == 0 {
		return nil, fmt.Errorf("election: dial: %w", errors.New("no servers given"))
	}
	if sessionTimeout <= 0 {
		return nil, fmt.Errorf("election: dial: session timeout %v must be positive", sessionTimeout)
	}
	var o dialOptions
	for _, opt := range opts {
		opt(&o)
	}
	logger := o.logger
	if logger == nil {
		logger = discardLogger()
	}

	q := newEventQueue()
	zkOpts := make([]func(*zk.Conn), 0, len(o.zkOptions)+2)
	zkOpts = append(zkOpts, o.zkOptions...)
	zkOpts = append(zkOpts,
		zk.WithEventCallback(q.push),
		zk.WithLogger(zkLogger{logger.With("component", "zk")}),
	)
	conn, raw, err := connectWith(zk.Connect, servers, sessionTimeout, zkOpts)
	if err != nil {
		return nil, fmt.Errorf("election: dial %s: %w", strings.Join(servers, ","), err)
	}
	s := &Session{Conn: conn, Events: q.out, queue: q, drained: make(chan struct{})}
	s.wg.Add(2)
	go func() { // go-zookeeper closes raw when its loop has ended for good
		defer s.wg.Done()
		defer close(s.drained)
		for range raw { // everything also arrives through the callback
		}
	}()
	go func() {
		defer s.wg.Done()
		q.run()
	}()

	for _, a := range o.auth {
		if err := s.addAuth(ctx, a); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

// connectWith calls connect (zk.Connect) with opts converted to its
// unexported option type O, which type inference recovers from connect.
func connectWith[O ~func(*zk.Conn)](
	connect func([]string, time.Duration, ...O) (*zk.Conn, <-chan zk.Event, error),
	servers []string, timeout time.Duration, opts []func(*zk.Conn),
) (*zk.Conn, <-chan zk.Event, error) {
	conv := make([]O, len(opts))
	for i, o := range opts {
		conv[i] = O(o)
	}
	return connect(servers, timeout, conv...)
}

// addAuth waits for the server to accept a credential, giving up with ctx.
func (s *Session) addAuth(ctx context.Context, a authCred) error {
	done := make(chan error, 1)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		done <- s.Conn.AddAuth(a.scheme, []byte(a.secret))
	}()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("election: add %s auth: %w", a.scheme, err)
		}
		return nil
	case <-ctx.Done():
		// Closing the connection makes AddAuth return, so the goroutine ends.
		return fmt.Errorf("election: add %s auth: %w", a.scheme, ctx.Err())
	}
}

// Close closes the connection (the server then deletes the session's
// ephemeral znodes), waits for go-zookeeper to stop and closes Events. It is
// idempotent.
func (s *Session) Close() {
	s.closeOnce.Do(func() {
		s.Conn.Close()
		<-s.drained // no callback can run after this
		s.queue.close()
		s.wg.Wait()
	})
}

// eventQueue is an unbounded FIFO between go-zookeeper's callback (which
// must not block) and a reader that may be slow.
type eventQueue struct {
	mu     sync.Mutex
	items  []zk.Event
	signal chan struct{} // buffer 1: "items may be non-empty"
	done   chan struct{}
	out    chan zk.Event
	once   sync.Once
}

func newEventQueue() *eventQueue {
	return &eventQueue{
		signal: make(chan struct{}, 1),
		done:   make(chan struct{}),
		out:    make(chan zk.Event),
	}
}

func (q *eventQueue) push(ev zk.Event) {
	q.mu.Lock()
	q.items = append(q.items, ev)
	q.mu.Unlock()
	select {
	case q.signal <- struct{}{}:
	default:
	}
}

func (q *eventQueue) close() { q.once.Do(func() { close(q.done) }) }

// run delivers queued events until close; it closes out when it returns.
func (q *eventQueue) run() {
	defer close(q.out)
	for {
		q.mu.Lock()
		var ev zk.Event
		ok := len(q.items) > 0
		if ok {
			ev = q.items[0]
			q.items[0] = zk.Event{}
			q.items = q.items[1:]
		}
		q.mu.Unlock()
		if !ok {
			select {
			case <-q.signal:
				continue
			case <-q.done:
				return
			}
		}
		select {
		case q.out <- ev:
		case <-q.done:
			return
		}
	}
}

// zkLogger adapts *slog.Logger to zk.Logger.
type zkLogger struct{ l *slog.Logger }

func (z zkLogger) Printf(format string, args ...any) {
	z.l.Info(fmt.Sprintf(format, args...))
}

func discardLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}
