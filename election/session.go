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

// Session is a ZooKeeper connection whose events are delivered without loss
// to each of its subscribers.
//
// go-zookeeper's own event channel has a buffer of 6 and silently drops
// events when it is full; Dial instead installs an event callback that fans
// each event out to an unbounded queue per subscriber, so no session state
// change is ever lost however slowly a subscriber reads. Several candidates
// and observers (elections under different roots) share one Session: give
// each Config.Session, and each subscribes for its own stream.
type Session struct {
	// Conn is the underlying connection; it satisfies Conn.
	Conn *zk.Conn
	// Events is the stream of a subscription Dial makes, for a single
	// reader that takes Conn and Events apart (Config.Conn and
	// Config.Events); prefer Config.Session, or Subscribe. It carries every
	// event go-zookeeper reports (session state changes, EventNotWatching,
	// watch events) in order, and holds them until read: with
	// WithoutEvents it is nil and holds nothing. It is closed by Close;
	// events still queued at that point are dropped.
	Events <-chan zk.Event

	conn      Conn          // Conn, as candidates use it (a fake in unit tests)
	drained   chan struct{} // closed when go-zookeeper's own channel is closed
	closeOnce sync.Once
	wg        sync.WaitGroup

	mu     sync.Mutex
	subs   map[*eventQueue]struct{}
	closed bool
}

// Subscribe returns a new stream of the Session's events, from now on, and
// a cancel func that ends it (closing the channel; idempotent). Like
// Events, the stream loses nothing and holds what is not read, so cancel it
// when done; Close ends every stream. On a closed Session the channel is
// closed at once.
func (s *Session) Subscribe() (<-chan zk.Event, func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := newEventQueue()
	if s.closed {
		close(q.out)
		return q.out, func() {}
	}
	s.subs[q] = struct{}{}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		q.run()
	}()
	return q.out, func() {
		s.mu.Lock()
		delete(s.subs, q)
		s.mu.Unlock()
		q.close()
	}
}

// publish is go-zookeeper's event callback: it must not block.
func (s *Session) publish(ev zk.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for q := range s.subs {
		q.push(ev)
	}
}

// DialOption configures Dial.
type DialOption func(*dialOptions)

type dialOptions struct {
	noEvents  bool
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

// WithoutEvents leaves Session.Events nil, for a program that reads events
// only through Subscribe or Config.Session: an Events nobody reads would
// hold every event until Close.
func WithoutEvents() DialOption {
	return func(o *dialOptions) { o.noEvents = true }
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

	s := &Session{drained: make(chan struct{}), subs: make(map[*eventQueue]struct{})}
	zkOpts := make([]func(*zk.Conn), 0, len(o.zkOptions)+2)
	zkOpts = append(zkOpts, o.zkOptions...)
	zkOpts = append(zkOpts,
		zk.WithEventCallback(s.publish),
		zk.WithLogger(zkLogger{logger.With("component", "zk")}),
	)
	if !o.noEvents {
		s.Events, _ = s.Subscribe() // ended by Close
	}
	conn, raw, err := connectWith(zk.Connect, servers, sessionTimeout, zkOpts)
	if err != nil {
		s.closeSubscribers()
		s.wg.Wait()
		return nil, fmt.Errorf("election: dial %s: %w", strings.Join(servers, ","), err)
	}
	s.Conn, s.conn = conn, conn
	s.wg.Add(1)
	go func() { // go-zookeeper closes raw when its loop has ended for good
		defer s.wg.Done()
		defer close(s.drained)
		for range raw { // everything also arrives through the callback
		}
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
// ephemeral znodes), waits for go-zookeeper to stop and closes Events and
// every subscribed stream. It is idempotent. Close the candidates and
// observers using the Session first.
func (s *Session) Close() {
	s.closeOnce.Do(func() {
		s.Conn.Close()
		<-s.drained // no callback can run after this
		s.closeSubscribers()
		s.wg.Wait()
	})
}

// closeSubscribers ends every stream; Subscribe hands out closed ones from
// now on.
func (s *Session) closeSubscribers() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for q := range s.subs {
		q.close()
	}
	clear(s.subs)
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
