package server

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/zkv-dev/zkv/replication"
)

// The server's side of the replication stream (replication.PathStream): a leader's
// appends reach handleStreamAppend, the same path as POST /internal/v1/append; a
// follower's forwarded client requests travel as kindForward calls, served by the
// leader's own router in process (no second HTTP exchange, no new connection).
const (
	kindForward      = replication.KindUser     // forwardRequest -> kindForwardReply
	kindForwardReply = replication.KindUser + 1 // forwardReply
)

// streamHandler serves a stream's calls for s.
type streamHandler struct{ s *Server }

func (h streamHandler) Append(ctx context.Context, req replication.AppendRequest) (replication.AppendResponse, error) {
	return h.s.takeAppend(ctx, req)
}

func (h streamHandler) Call(ctx context.Context, kind byte, payload []byte) (byte, []byte) {
	if kind != kindForward {
		return replication.KindError, replication.EncodeError(http.StatusBadRequest,
			replication.ErrorResponse{Error: replication.ErrorDetail{Code: replication.CodeBadRequest, Message: fmt.Sprintf("unknown call kind %d", kind)}})
	}
	return kindForwardReply, h.s.serveForwarded(ctx, payload)
}

// forwardRequest is a client request a follower passes to the leader.
type forwardRequest struct {
	Method, URI, From string
	IfMatch           []string
	IfNoneMatch       []string
	Body              []byte // nil: none
}

// forwardReply is the leader's answer to one.
type forwardReply struct {
	Status      int
	ContentType string
	Headers     [][2]string // the relayedHeaders the leader set
	Body        []byte
}

func appendBytes(dst, b []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(b)))
	return append(dst, b...)
}

func appendStr(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func appendStrs(dst []byte, ss []string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(ss)))
	for _, s := range ss {
		dst = appendStr(dst, s)
	}
	return dst
}

// encode: method, uri, from (strings), if-match and if-none-match (counted strings),
// a body flag byte and the body.
func (r forwardRequest) encode() []byte {
	b := make([]byte, 0, 64+len(r.URI)+len(r.Body))
	b = appendStr(b, r.Method)
	b = appendStr(b, r.URI)
	b = appendStr(b, r.From)
	b = appendStrs(b, r.IfMatch)
	b = appendStrs(b, r.IfNoneMatch)
	if r.Body == nil {
		return append(b, 0)
	}
	b = append(b, 1)
	return appendBytes(b, r.Body)
}

// fwdReader reads the forward encodings; the first error sticks.
type fwdReader struct {
	b   []byte
	err error
}

func (r *fwdReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errors.New("bad uvarint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *fwdReader) bytes() []byte {
	n := r.uvarint()
	if r.err == nil && n > uint64(len(r.b)) {
		r.err = fmt.Errorf("%d bytes past the end", n)
	}
	if r.err != nil {
		return nil
	}
	out := r.b[:n:n]
	r.b = r.b[n:]
	return out
}

func (r *fwdReader) str() string { return string(r.bytes()) }

func (r *fwdReader) strs() []string {
	n := r.uvarint()
	if r.err == nil && n > uint64(len(r.b)) {
		r.err = fmt.Errorf("%d strings in %d bytes", n, len(r.b))
	}
	var out []string
	for i := uint64(0); i < n && r.err == nil; i++ {
		out = append(out, r.str())
	}
	return out
}

func (r *fwdReader) byte() byte {
	if r.err == nil && len(r.b) == 0 {
		r.err = errors.New("truncated")
	}
	if r.err != nil {
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *fwdReader) done() error {
	if r.err == nil && len(r.b) > 0 {
		r.err = fmt.Errorf("%d trailing bytes", len(r.b))
	}
	return r.err
}

func decodeForwardRequest(p []byte) (forwardRequest, error) {
	r := &fwdReader{b: p}
	req := forwardRequest{Method: r.str(), URI: r.str(), From: r.str(), IfMatch: r.strs(), IfNoneMatch: r.strs()}
	switch r.byte() {
	case 0:
	case 1:
		req.Body = r.bytes()
	default:
		r.err = errors.New("bad body flag")
	}
	if err := r.done(); err != nil {
		return forwardRequest{}, fmt.Errorf("forwarded request: %w", err)
	}
	return req, nil
}

// encode: status (uvarint), content type, header count and name/value pairs, body.
func (r forwardReply) encode() []byte {
	b := make([]byte, 0, 64+len(r.Body))
	b = binary.AppendUvarint(b, uint64(r.Status))
	b = appendStr(b, r.ContentType)
	b = binary.AppendUvarint(b, uint64(len(r.Headers)))
	for _, h := range r.Headers {
		b = appendStr(b, h[0])
		b = appendStr(b, h[1])
	}
	return appendBytes(b, r.Body)
}

func decodeForwardReply(p []byte) (forwardReply, error) {
	r := &fwdReader{b: p}
	rep := forwardReply{Status: int(r.uvarint()), ContentType: r.str()}
	n := r.uvarint()
	if r.err == nil && n > uint64(len(r.b)) {
		r.err = fmt.Errorf("%d headers in %d bytes", n, len(r.b))
	}
	for i := uint64(0); i < n && r.err == nil; i++ {
		rep.Headers = append(rep.Headers, [2]string{r.str(), r.str()})
	}
	rep.Body = r.bytes()
	if err := r.done(); err != nil {
		return forwardReply{}, fmt.Errorf("forwarded answer: %w", err)
	}
	if rep.Status < 100 || rep.Status > 999 {
		return forwardReply{}, fmt.Errorf("forwarded answer: status %d", rep.Status)
	}
	return rep, nil
}

// bufferedResponse is the http.ResponseWriter a forwarded request is served into.
type bufferedResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header { return b.header }

func (b *bufferedResponse) WriteHeader(code int) {
	if b.status == 0 {
		b.status = code
	}
}

func (b *bufferedResponse) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	return b.body.Write(p)
}

// serveForwarded runs a forwarded client request through this server's router, as the
// HTTP forward would (X-Zkv-Forwarded set: it is not forwarded again), and encodes the
// answer.
func (s *Server) serveForwarded(ctx context.Context, payload []byte) []byte {
	fr, err := decodeForwardRequest(payload)
	if err != nil {
		return forwardReply{Status: http.StatusBadRequest, ContentType: echo.MIMEApplicationJSON,
			Body: []byte(`{"error":{"code":"bad_request","message":"malformed forwarded request"}}`)}.encode()
	}
	var body *bytes.Reader
	if fr.Body != nil {
		body = bytes.NewReader(fr.Body)
	}
	var req *http.Request
	if body != nil {
		req, err = http.NewRequestWithContext(ctx, fr.Method, fr.URI, body)
	} else {
		req, err = http.NewRequestWithContext(ctx, fr.Method, fr.URI, http.NoBody)
	}
	if err != nil {
		return forwardReply{Status: http.StatusBadRequest, ContentType: echo.MIMEApplicationJSON,
			Body: []byte(`{"error":{"code":"bad_request","message":"malformed forwarded request line"}}`)}.encode()
	}
	req.RequestURI = fr.URI
	if fr.Body != nil {
		req.Header.Set(echo.HeaderContentType, echo.MIMEApplicationJSON)
	}
	req.Header.Set(HeaderForwarded, fr.From)
	for _, v := range fr.IfMatch {
		req.Header.Add(HeaderIfMatch, v)
	}
	for _, v := range fr.IfNoneMatch {
		req.Header.Add(HeaderIfNoneMatch, v)
	}
	rec := &bufferedResponse{header: make(http.Header)}
	s.echo.ServeHTTP(rec, req)
	rep := forwardReply{Status: rec.status, ContentType: rec.header.Get(echo.HeaderContentType), Body: rec.body.Bytes()}
	if rep.Status == 0 {
		rep.Status = http.StatusOK
	}
	for _, h := range relayedHeaders {
		if v := rec.header.Get(h); v != "" {
			rep.Headers = append(rep.Headers, [2]string{h, v})
		}
	}
	return rep.encode()
}

// streamForward is the follower's side: the request goes to the leader as a call on the
// stream. done is false when the leader has no stream route (an older server): the caller
// forwards over HTTP then.
func (s *Server) streamForward(c echo.Context, leader string, body []byte) (done bool, err error) {
	if s.legacyLeader(leader) {
		return false, nil
	}
	r := c.Request()
	fr := forwardRequest{Method: r.Method, URI: r.URL.RequestURI(), From: s.cfg.ID, Body: body,
		IfMatch: r.Header.Values(HeaderIfMatch), IfNoneMatch: r.Header.Values(HeaderIfNoneMatch)}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.WriteTimeout+2*time.Second)
	defer cancel()
	start := time.Now()
	kind, payload, err := s.fwdStream.Call(ctx, leader, kindForward, fr.encode())
	if errors.Is(err, replication.ErrStreamUnsupported) {
		s.markLegacyLeader(leader)
	}
	if errors.Is(err, replication.ErrStreamUnsupported) || errors.Is(err, replication.ErrStreamHandshake) {
		return false, nil // nothing was sent: the caller forwards over HTTP
	}
	write := r.Method != http.MethodGet
	if err == nil && kind != kindForwardReply {
		err = fmt.Errorf("answer of kind %d", kind)
	}
	var rep forwardReply
	if err == nil {
		rep, err = decodeForwardReply(payload)
	}
	if err != nil {
		sent := !errors.Is(err, replication.ErrStreamNotSent)
		s.requestRefresh()
		s.metrics.forwarded.WithLabelValues("unreachable").Inc()
		s.logger.Warn("forward to the leader failed", "method", r.Method, "leader", leader, "sent", sent, "error", err)
		if write && sent {
			return true, maybeApplied(CodeOutcomeUnknown, ErrOutcomeUnknown, 0, 0,
				"forwarded the write to the leader %s, which did not answer: it may have applied it, or not; read it back at the leader, or retry with If-Match: %v", leader, err)
		}
		return true, unavailable(CodeLeaderUnreachable, ErrLeaderUnreachable, "leader %s: %v", leader, err)
	}
	return true, s.relay(c, leader, start, rep.Status, rep.ContentType, rep.Headers, rep.Body)
}

// legacyLeaders remembers leaders without the stream route, for a minute.
type legacyLeaders struct {
	mu    sync.Mutex
	until map[string]time.Time
}

func (s *Server) legacyLeader(addr string) bool {
	s.legacy.mu.Lock()
	defer s.legacy.mu.Unlock()
	t, ok := s.legacy.until[addr]
	return ok && time.Now().Before(t)
}

func (s *Server) markLegacyLeader(addr string) {
	s.legacy.mu.Lock()
	defer s.legacy.mu.Unlock()
	if s.legacy.until == nil {
		s.legacy.until = make(map[string]time.Time)
	}
	s.legacy.until[addr] = time.Now().Add(time.Minute)
}
