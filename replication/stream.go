package replication

import (
	"bufio"
	"context"
	"crypto/subtle"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"time"
)

// The stream is one long-lived TCP connection per (caller, peer) pair that carries
// many calls at once: the leader's appends to a replica, and a follower's forwarded
// client requests to the leader. It begins as an HTTP/1.1 request to PathStream with
// "Upgrade: zkv-stream/1" and the cluster token, so it shares the server's listener and
// its authentication; after "101 Switching Protocols" both sides exchange frames:
//
//	uint32 length (big endian) of what follows | kind (1 byte) | call id (8 bytes) | payload
//
// A call is a frame the dialing side sends with a fresh id; the serving side answers it
// with one frame of the same id. Calls are pipelined: the caller does not wait for an
// answer before it sends the next call, and answers may come in any order. Appends
// (KindAppend) are served one at a time in the order they arrive, so a leader's batches
// reach the Follower in the order sent; other kinds (KindUser and up, the server's) are
// served concurrently, at most StreamServer.MaxConcurrent at once: past that the server
// stops reading, and TCP's flow control pushes back on the sender (no unbounded queue).
const (
	PathStream     = "/internal/v1/stream" // GET with Upgrade: StreamProtocol -> 101, then frames
	StreamProtocol = "zkv-stream/1"
)

// Frame kinds. Kinds from KindUser up are the application's (the server's forwarded
// client requests); the package passes them through to StreamHandler.Call.
const (
	KindAppend   byte = 1  // AppendRequest (EncodeAppend) -> KindAppendOK or KindError
	KindAppendOK byte = 2  // AppendResponse (EncodeAppendResponse)
	KindError    byte = 3  // uint16 HTTP status, then the ErrorResponse as JSON (rare: no hot path)
	KindUser     byte = 64 // first application kind
)

const (
	frameHeaderLen = 4 + 1 + 8
	// DefaultMaxFrameBytes bounds a frame's payload; an append above it is refused
	// before it is sent (the Fanout's MaxBatchBytes keeps batches well below).
	DefaultMaxFrameBytes = DefaultMaxAppendBytes
	// DefaultStreamConcurrency bounds the calls of application kinds a StreamServer
	// serves at once per connection.
	DefaultStreamConcurrency = 1024
	streamWriteTimeout       = 10 * time.Second
)

// Errors of the stream.
var (
	// ErrStreamUnsupported reports a peer that answered the upgrade with anything but 101
	// (an older server answers 404): callers fall back to plain HTTP requests.
	ErrStreamUnsupported = errors.New("replication: the peer does not serve the stream")
	// ErrStreamHandshake reports an upgrade cut before its answer: the connection was
	// made, the stream was not. Callers fall back to an HTTP request for this call.
	ErrStreamHandshake = errors.New("replication: stream handshake failed")
	// ErrStreamNotSent wraps the error of a call whose frame was never written: the
	// peer cannot have seen it (a forwarded write's outcome is known: not applied).
	ErrStreamNotSent = errors.New("replication: call not sent")
	// ErrStreamClosed reports a call on a stream that closed.
	ErrStreamClosed = errors.New("replication: stream closed")
)

// frameWriter coalesces the frames of concurrent writers into few system calls. A writer
// leaves its frame in the buffer and wakes the flusher, which first yields to every
// goroutine already runnable: the answers a commit releases at once, or the forwarded
// writes of many clients, leave in one write(2) rather than one each (on loopback a write
// runs the receiver's TCP path too, so each one saved is a syscall on both sides). A frame
// is in the socket at most one scheduling round after write returns.
//
// A flush that fails closes the connection: the reader on either side then ends the
// stream, and every call whose frame was buffered learns its outcome is unknown, as when a
// write(2) fails part way.
type frameWriter struct {
	conn     net.Conn
	kick     chan struct{} // 1-buffered: the flusher has bytes to write
	stop     chan struct{} // closed by close
	stopOnce sync.Once

	mu      sync.Mutex
	bw      *bufio.Writer
	err     error // sticky: the first write or flush error, or errFrameWriterClosed
	pending bool  // bytes in bw the flusher has been told about
}

var errFrameWriterClosed = errors.New("replication: stream writer closed")

func newFrameWriter(conn net.Conn) *frameWriter {
	w := &frameWriter{conn: conn, bw: bufio.NewWriterSize(conn, 64<<10),
		kick: make(chan struct{}, 1), stop: make(chan struct{})}
	go w.flushLoop()
	return w
}

// write puts one frame in the buffer; the flusher sends it. An error means the frame was
// not buffered (the stream failed or closed before), or that a write(2) of a full buffer
// failed part way.
func (w *frameWriter) write(kind byte, id uint64, payload []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	var hdr [frameHeaderLen]byte
	binary.BigEndian.PutUint32(hdr[0:4], uint32(1+8+len(payload)))
	hdr[4] = kind
	binary.BigEndian.PutUint64(hdr[5:13], id)
	if len(payload)+frameHeaderLen > w.bw.Available() {
		// bufio writes through once the buffer is full: bound that write(2) too.
		_ = w.conn.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
	}
	if _, err := w.bw.Write(hdr[:]); err != nil {
		w.fail(err)
		return err
	}
	if _, err := w.bw.Write(payload); err != nil {
		w.fail(err)
		return err
	}
	if !w.pending {
		w.pending = true
		select {
		case w.kick <- struct{}{}:
		default:
		}
	}
	return nil
}

// fail records err and closes the connection; w.mu is held.
func (w *frameWriter) fail(err error) {
	if w.err == nil {
		w.err = err
	}
	_ = w.conn.Close()
}

func (w *frameWriter) flushLoop() {
	for {
		select {
		case <-w.kick:
		case <-w.stop:
			return
		}
		// Woken, the flusher would run next on this P, before the goroutines the same
		// event made runnable; yielding lets them add their frames first.
		runtime.Gosched()
		w.mu.Lock()
		w.pending = false
		if w.err == nil && w.bw.Buffered() > 0 {
			_ = w.conn.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
			if err := w.bw.Flush(); err != nil {
				w.fail(err)
			}
		}
		w.mu.Unlock()
	}
}

// close closes the connection and stops the flusher; frames still buffered are dropped.
// The connection goes first: a flush blocked on a peer that does not read holds w.mu, and
// returns once it is closed. Idempotent.
func (w *frameWriter) close() {
	_ = w.conn.Close()
	w.mu.Lock()
	if w.err == nil {
		w.err = errFrameWriterClosed
	}
	w.mu.Unlock()
	w.stopOnce.Do(func() { close(w.stop) })
}

// readFrame reads one frame whose payload is at most limit bytes.
func readFrame(r *bufio.Reader, limit int) (kind byte, id uint64, payload []byte, err error) {
	var hdr [frameHeaderLen]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[0:4])
	if n < 9 {
		return 0, 0, nil, fmt.Errorf("%w: frame length %d below its header", ErrMalformed, n)
	}
	if int64(n)-9 > int64(limit) {
		return 0, 0, nil, fmt.Errorf("%w: frame of %d bytes, limit %d", ErrTooLarge, n-9, limit)
	}
	payload = make([]byte, n-9)
	if _, err := io.ReadFull(r, payload); err != nil {
		return 0, 0, nil, fmt.Errorf("replication: read frame: %w", io.ErrUnexpectedEOF)
	}
	return hdr[4], binary.BigEndian.Uint64(hdr[5:13]), payload, nil
}

// --- the dialing side ---

type streamReply struct {
	kind    byte
	payload []byte
}

// streamConn is one dialed stream: calls are written by their callers, answers read by
// one goroutine that hands each to its waiting call.
type streamConn struct {
	conn net.Conn
	w    *frameWriter
	done chan struct{} // closed when the reader stops

	mu    sync.Mutex
	next  uint64
	calls map[uint64]chan streamReply
	err   error // why the stream ended, once it has
}

func (c *streamConn) readLoop(br *bufio.Reader, limit int) {
	defer close(c.done)
	var err error
	for {
		var kind byte
		var id uint64
		var payload []byte
		kind, id, payload, err = readFrame(br, limit)
		if err != nil {
			break
		}
		c.mu.Lock()
		ch, ok := c.calls[id]
		delete(c.calls, id)
		c.mu.Unlock()
		if ok {
			ch <- streamReply{kind, payload} // buffered: never blocks
		}
	}
	c.close(err)
}

// close ends the stream with err; the calls waiting get it.
func (c *streamConn) close(err error) {
	if err == nil {
		err = ErrStreamClosed
	}
	c.mu.Lock()
	if c.err == nil {
		c.err = fmt.Errorf("%w: %w", ErrStreamClosed, err)
	}
	calls := c.calls
	c.calls = nil
	c.mu.Unlock()
	c.w.close() // closes c.conn
	for _, ch := range calls {
		close(ch)
	}
}

func (c *streamConn) broken() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err != nil
}

// call sends one frame and waits for its answer.
func (c *streamConn) call(ctx context.Context, kind byte, payload []byte) (byte, []byte, error) {
	id, ch, err := c.send(kind, payload)
	if err != nil {
		return 0, nil, err
	}
	return c.await(ctx, id, ch)
}

// send writes one frame of a call; await then waits for its answer. Frames are written in
// the order send is called.
func (c *streamConn) send(kind byte, payload []byte) (uint64, chan streamReply, error) {
	ch := make(chan streamReply, 1)
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return 0, nil, fmt.Errorf("%w: %w", ErrStreamNotSent, err)
	}
	c.next++
	id := c.next
	c.calls[id] = ch
	c.mu.Unlock()
	if err := c.w.write(kind, id, payload); err != nil {
		c.close(err)
		// The frame may be partly in the socket: its fate is unknown.
		return 0, nil, fmt.Errorf("replication: stream write: %w", err)
	}
	return id, ch, nil
}

func (c *streamConn) await(ctx context.Context, id uint64, ch chan streamReply) (byte, []byte, error) {
	select {
	case r, ok := <-ch:
		if !ok {
			c.mu.Lock()
			err := c.err
			c.mu.Unlock()
			return 0, nil, err
		}
		return r.kind, r.payload, nil
	case <-ctx.Done():
		c.mu.Lock()
		if c.calls != nil {
			delete(c.calls, id)
		}
		c.mu.Unlock()
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			// A peer that does not answer in time may be gone without a reset (paused,
			// partitioned): drop the connection so the next call dials afresh, as an
			// HTTP request that timed out does.
			c.close(ctx.Err())
		}
		return 0, nil, fmt.Errorf("replication: stream call: %w", ctx.Err())
	}
}

// StreamClientConfig configures a StreamClient.
type StreamClientConfig struct {
	Token         string        // sent as "Authorization: Bearer <Token>" in the upgrade
	DialTimeout   time.Duration // bounds the dial and the upgrade; default 2s
	MaxFrameBytes int           // most payload bytes of an answer; default DefaultMaxFrameBytes
	// TLS, when set, runs the stream over TLS with it (the peers' listeners speak TLS only);
	// its ServerName defaults to the peer's host.
	TLS *tls.Config
}

// StreamClient keeps one stream per peer address and makes calls on it, dialing again
// after a stream breaks. Safe for concurrent use; Close ends every stream.
type StreamClient struct {
	cfg StreamClientConfig

	mu     sync.Mutex
	conns  map[string]*streamConn
	dials  map[string]*dialing
	closed bool
	wg     sync.WaitGroup // the dials in progress
}

type dialing struct {
	done chan struct{}
	c    *streamConn
	err  error
}

// NewStreamClient returns a StreamClient of cfg.
func NewStreamClient(cfg StreamClientConfig) *StreamClient {
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 2 * time.Second
	}
	if cfg.MaxFrameBytes <= 0 {
		cfg.MaxFrameBytes = DefaultMaxFrameBytes
	}
	return &StreamClient{cfg: cfg, conns: make(map[string]*streamConn), dials: make(map[string]*dialing)}
}

// Call sends payload as a call of kind to the peer at addr ("host:port" or a base URL)
// and returns its answer. An error that wraps ErrStreamNotSent means the peer cannot have
// seen the call; ErrStreamUnsupported (wrapped in it) that the peer has no stream route.
func (c *StreamClient) Call(ctx context.Context, addr string, kind byte, payload []byte) (byte, []byte, error) {
	if len(payload) > c.cfg.MaxFrameBytes {
		return 0, nil, fmt.Errorf("%w: %w: payload of %d bytes, limit %d", ErrStreamNotSent, ErrTooLarge, len(payload), c.cfg.MaxFrameBytes)
	}
	sc, err := c.conn(ctx, addr)
	if err != nil {
		return 0, nil, fmt.Errorf("%w: %w", ErrStreamNotSent, err)
	}
	return sc.call(ctx, kind, payload)
}

// Start sends payload as a call of kind to the peer at addr, behind every call started or
// made before it, and returns at once; the returned func waits for the answer (bounded by
// ctx) and must be called once. Errors are Call's.
func (c *StreamClient) Start(ctx context.Context, addr string, kind byte, payload []byte) (func() (byte, []byte, error), error) {
	if len(payload) > c.cfg.MaxFrameBytes {
		return nil, fmt.Errorf("%w: %w: payload of %d bytes, limit %d", ErrStreamNotSent, ErrTooLarge, len(payload), c.cfg.MaxFrameBytes)
	}
	sc, err := c.conn(ctx, addr)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrStreamNotSent, err)
	}
	id, ch, err := sc.send(kind, payload)
	if err != nil {
		return nil, err
	}
	return func() (byte, []byte, error) { return sc.await(ctx, id, ch) }, nil
}

// conn returns the stream to addr, dialing it (once for concurrent callers) if needed.
func (c *StreamClient) conn(ctx context.Context, addr string) (*streamConn, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrStreamClosed
	}
	if sc, ok := c.conns[addr]; ok && !sc.broken() {
		c.mu.Unlock()
		return sc, nil
	}
	d, ok := c.dials[addr]
	if !ok {
		d = &dialing{done: make(chan struct{})}
		c.dials[addr] = d
		c.wg.Add(1) // under c.mu, not closed: Close's Wait comes after
		go func() {
			defer c.wg.Done()
			// The dial serves every caller waiting for it: bounded by DialTimeout, not
			// by the first caller's ctx.
			dctx, cancel := context.WithTimeout(context.Background(), c.cfg.DialTimeout)
			d.c, d.err = c.dial(dctx, addr)
			cancel()
			c.mu.Lock()
			delete(c.dials, addr)
			if d.err == nil {
				if c.closed {
					d.c.close(ErrStreamClosed)
					<-d.c.done
					d.c, d.err = nil, ErrStreamClosed
				} else {
					c.conns[addr] = d.c
				}
			}
			c.mu.Unlock()
			close(d.done)
		}()
	}
	c.mu.Unlock()
	select {
	case <-d.done:
		return d.c, d.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func hostPort(addr string) string {
	if i := strings.Index(addr, "://"); i >= 0 {
		addr = addr[i+3:]
	}
	return strings.TrimSuffix(addr, "/")
}

// dial connects to addr and upgrades the connection to a stream.
func (c *StreamClient) dial(ctx context.Context, addr string) (*streamConn, error) {
	hp := hostPort(addr)
	conn, err := (&net.Dialer{KeepAlive: 15 * time.Second}).DialContext(ctx, "tcp", hp)
	if err != nil {
		return nil, fmt.Errorf("replication: dial %s: %w", hp, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	if c.cfg.TLS != nil {
		tc := c.cfg.TLS.Clone()
		if tc.ServerName == "" {
			if host, _, err := net.SplitHostPort(hp); err == nil {
				tc.ServerName = host
			}
		}
		tlsConn := tls.Client(conn, tc)
		if err := tlsConn.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, fmt.Errorf("%w: TLS with %s: %w", ErrStreamHandshake, hp, err)
		}
		conn = tlsConn
	}
	req, _ := http.NewRequest(http.MethodGet, "http://"+hp+PathStream, nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", StreamProtocol)
	if c.cfg.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.cfg.Token)
	}
	if err := req.Write(conn); err != nil {
		conn.Close()
		return nil, fmt.Errorf("%w: upgrade to %s: %w", ErrStreamHandshake, hp, err)
	}
	br := bufio.NewReaderSize(conn, 64<<10)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("%w: upgrade to %s: %w", ErrStreamHandshake, hp, err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		conn.Close()
		return nil, fmt.Errorf("%w: %s answered the upgrade %d: %s", ErrStreamUnsupported, hp, resp.StatusCode,
			strings.TrimSpace(string(body)))
	}
	_ = conn.SetDeadline(time.Time{})
	sc := &streamConn{conn: conn, w: newFrameWriter(conn), done: make(chan struct{}), calls: make(map[uint64]chan streamReply)}
	go sc.readLoop(br, c.cfg.MaxFrameBytes)
	return sc, nil
}

// Close ends every stream (the calls waiting get an error) and waits for their readers
// and for the dials in progress (each bounded by DialTimeout). Idempotent.
func (c *StreamClient) Close() error {
	c.mu.Lock()
	c.closed = true
	conns := c.conns
	c.conns = map[string]*streamConn{}
	c.mu.Unlock()
	for _, sc := range conns {
		sc.close(ErrStreamClosed)
		<-sc.done
	}
	c.wg.Wait()
	return nil
}

// --- the serving side ---

// StreamHandler serves the calls of a stream.
type StreamHandler interface {
	// Append serves a KindAppend call; calls on one stream come one at a time, in order.
	Append(ctx context.Context, req AppendRequest) (AppendResponse, error)
	// Call serves a call of an application kind (KindUser and up), concurrently with
	// others, and returns the answer's kind and payload.
	Call(ctx context.Context, kind byte, payload []byte) (byte, []byte)
}

// StreamServer serves streams on connections the caller has upgraded (see Upgrade);
// Close ends them all. Safe for concurrent use.
type StreamServer struct {
	Handler StreamHandler
	Token   string // required in the upgrade as "Authorization: Bearer <Token>" when set
	// MaxFrameBytes bounds a call's payload; default DefaultMaxFrameBytes.
	MaxFrameBytes int
	// MaxConcurrent bounds the application calls served at once per stream; default
	// DefaultStreamConcurrency.
	MaxConcurrent int
	Logger        *slog.Logger // discarded when nil

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// ServeHTTP upgrades the request to a stream and serves it until it ends: the handler of
// PathStream. It answers 401 without the token, 400 without the upgrade header.
func (s *StreamServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.Token != "" {
		got := []byte(r.Header.Get("Authorization"))
		if subtle.ConstantTimeCompare(got, []byte("Bearer "+s.Token)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="zkv-internal"`)
			http.Error(w, "stream: missing or wrong cluster token", http.StatusUnauthorized)
			return
		}
	}
	if !strings.EqualFold(r.Header.Get("Upgrade"), StreamProtocol) {
		http.Error(w, "stream: want Upgrade: "+StreamProtocol, http.StatusBadRequest)
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		http.Error(w, "stream: connection cannot be taken over", http.StatusInternalServerError)
		return
	}
	conn, brw, err := hj.Hijack()
	if err != nil {
		return
	}
	_ = conn.SetDeadline(time.Time{}) // the server's read and write timeouts are per request
	if _, err := io.WriteString(conn, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: "+StreamProtocol+"\r\n\r\n"); err != nil {
		conn.Close()
		return
	}
	s.Serve(r.Context(), conn, brw.Reader)
}

// Serve serves the frames of an upgraded connection (br reads it, holding what was
// buffered) until the peer closes it, a frame is malformed, ctx ends or Close is called.
// It closes conn.
func (s *StreamServer) Serve(ctx context.Context, conn net.Conn, br *bufio.Reader) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		conn.Close()
		return
	}
	if s.conns == nil {
		s.conns = make(map[net.Conn]struct{})
	}
	s.conns[conn] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var calls sync.WaitGroup
	defer func() {
		cancel()
		conn.Close()
		calls.Wait()
		s.mu.Lock()
		delete(s.conns, conn)
		s.mu.Unlock()
	}()
	logger := s.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	limit := s.MaxFrameBytes
	if limit <= 0 {
		limit = DefaultMaxFrameBytes
	}
	most := s.MaxConcurrent
	if most <= 0 {
		most = DefaultStreamConcurrency
	}
	// Calls run on workers kept for the stream's life, at most `most` of them: a worker
	// that finished a call takes the next, so a forwarded write does not start a goroutine
	// and grow its stack anew (4% of a leader's CPU did that). Past `most` calls at once,
	// the reader waits for a worker and stops reading: TCP pushes back.
	jobs := make(chan streamJob)
	defer close(jobs) // before calls.Wait above: idle workers end
	workers := 0
	w := newFrameWriter(conn)
	defer w.close()
	work := func(j streamJob) {
		defer calls.Done()
		for ok := true; ok; j, ok = <-jobs {
			rk, reply := s.Handler.Call(ctx, j.kind, j.payload)
			if err := w.write(rk, j.id, reply); err != nil {
				conn.Close() // the reader sees it and ends the stream
			}
		}
	}
	for {
		kind, id, payload, err := readFrame(br, limit)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				logger.Debug("stream ended", "peer", conn.RemoteAddr().String(), "error", err)
			}
			return
		}
		switch {
		case kind == KindAppend:
			rk, reply := s.serveAppend(ctx, payload)
			if err := w.write(rk, id, reply); err != nil {
				return
			}
		case kind >= KindUser:
			j := streamJob{kind: kind, id: id, payload: payload}
			select {
			case jobs <- j: // an idle worker took it
			default:
				if workers < most {
					workers++
					calls.Add(1)
					go work(j)
				} else {
					jobs <- j
				}
			}
		default:
			rk, reply := errorFrame(fmt.Errorf("%w: unknown frame kind %d", ErrInvalidRequest, kind))
			if err := w.write(rk, id, reply); err != nil {
				return
			}
		}
	}
}

// streamJob is one call frame for a worker of StreamServer.Serve.
type streamJob struct {
	kind    byte
	id      uint64
	payload []byte
}

func (s *StreamServer) serveAppend(ctx context.Context, payload []byte) (byte, []byte) {
	req, err := DecodeAppendBinary(payload)
	if err != nil {
		return errorFrame(err)
	}
	resp, err := s.Handler.Append(ctx, req)
	if err != nil {
		return errorFrame(err)
	}
	return KindAppendOK, EncodeAppendResponse(nil, resp)
}

// errorFrame is the KindError answer of err, shaped as ErrorStatus maps it.
func errorFrame(err error) (byte, []byte) {
	status, body := ErrorStatus(err)
	return KindError, EncodeError(status, body)
}

// Close ends every stream and waits for their calls to finish. Idempotent.
func (s *StreamServer) Close() error {
	s.mu.Lock()
	s.closed = true
	for conn := range s.conns {
		conn.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}
