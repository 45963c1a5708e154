package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// DefaultTimeout bounds each request when WithTimeout is not given.
const DefaultTimeout = 10 * time.Second

// Response headers every zkv answer carries.
const (
	HeaderLeader = "X-Zkv-Leader"
	HeaderEpoch  = "X-Zkv-Epoch"
)

// maxBody caps how much of an answer is read; values are at most 1 MiB by default.
const maxBody = 64 << 20

// Errors returned before or after a request; check them with errors.Is.
var (
	ErrInvalidKey = errors.New("client: invalid key")
	ErrBadAnswer  = errors.New("client: malformed answer")
	// ErrOutcomeUnknown: a write may or may not have applied (a 504 from the server, or a
	// request that reached it and lost its answer), and the client did not retry it since
	// a retry could apply it twice. Read the key back at the leader, or write with IfMatch.
	ErrOutcomeUnknown = errors.New("client: write outcome unknown")
	// ErrPreconditionFailed: IfMatch or IfNoneMatch did not hold (412); nothing changed.
	// The *APIError's CurrentVersion is the key's version (0: it does not exist).
	ErrPreconditionFailed = errors.New("client: precondition failed")
)

// Client talks to one zkv server, or to several given with WithEndpoints, rotating to the
// next when one is unavailable (see Retry).
type Client struct {
	addr    string
	base    string   // "http://host:port" of addr
	bases   []string // base, then the WithEndpoints ones
	cur     atomic.Uint32
	retry   Retry
	hc      *http.Client
	own     bool // hc was created here, so Close may close its idle connections
	timeout time.Duration
	token   string
	tls     *tls.Config // WithTLS: https to host:port addresses
	extra   []string    // WithEndpoints' addresses, until New makes them bases
	// sleep waits d before a retry, or until ctx ends; tests record the waits instead.
	sleep func(ctx context.Context, d time.Duration) error
}

// Option configures New.
type Option func(*Client)

// WithHTTPClient makes the client use hc (its Timeout applies in addition to WithTimeout).
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) {
		if hc != nil {
			c.hc, c.own = hc, false
		}
	}
}

// WithTimeout bounds each request, on top of the caller's context; 0 or less means no bound
// beyond the context.
func WithTimeout(d time.Duration) Option { return func(c *Client) { c.timeout = d } }

// WithToken sends "Authorization: Bearer <token>" with every request.
func WithToken(token string) Option { return func(c *Client) { c.token = token } }

// New returns a client of the server at addr ("host:port", or a URL "http://host:port").
// It makes one attempt per call unless WithRetry says otherwise.
func New(addr string, opts ...Option) *Client {
	base := baseURL(addr)
	c := &Client{addr: addr, base: base, timeout: DefaultTimeout, retry: Retry{Attempts: 1}, sleep: sleepCtx}
	for _, o := range opts {
		o(c)
	}
	if c.tls != nil {
		c.base = c.baseURL(addr)
	}
	c.bases = []string{c.base}
	for _, a := range c.extra {
		c.bases = append(c.bases, c.baseURL(a))
	}
	c.extra = nil
	if c.hc == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = 16
		t.TLSClientConfig = c.tls
		c.hc, c.own = &http.Client{Transport: t}, true
	}
	return c
}

// WithTLS makes the client speak https to the addresses given as host:port, verifying
// the servers with cfg (its RootCAs: the cluster's CA, see CAPool). A client given its
// own http.Client (WithHTTPClient) uses that client's TLS settings.
func WithTLS(cfg *tls.Config) Option { return func(c *Client) { c.tls = cfg } }

// CAPool reads a PEM file of CA certificates, e.g. the servers' -tls_ca, for WithTLS.
func CAPool(file string) (*x509.CertPool, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("client: CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("client: CA file %s holds no PEM certificate", file)
	}
	return pool, nil
}

func (c *Client) baseURL(addr string) string {
	base := baseURL(addr)
	if c.tls != nil && !strings.Contains(addr, "://") {
		base = "https://" + strings.TrimPrefix(base, "http://")
	}
	return base
}

func baseURL(addr string) string {
	base := strings.TrimRight(addr, "/")
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	return base
}

// Addr returns the address the client was created with.
func (c *Client) Addr() string { return c.addr }

// Close closes the idle connections of the client's own transport (not of one passed with
// WithHTTPClient). It is idempotent; the client remains usable.
func (c *Client) Close() error {
	if c.own {
		c.hc.CloseIdleConnections()
	}
	return nil
}

// KV is a key's state as a server answered it.
type KV struct {
	Key     string `json:"key"`
	Value   string `json:"value"`
	Found   bool   `json:"found"`
	Version uint64 `json:"version,omitempty"`
	Epoch   int64  `json:"epoch,omitempty"`  // the body's epoch, else X-Zkv-Epoch
	Leader  string `json:"leader,omitempty"` // the body's leader, else X-Zkv-Leader
}

// Member is one server registered in the election.
type Member struct {
	ID      string `json:"id"`
	Address string `json:"address"`
	Znode   string `json:"znode"`
}

// Peer names a server.
type Peer struct {
	ID      string `json:"id"`
	Address string `json:"address"`
}

// Roles a server reports in Status.Role.
const (
	RoleLeader    = "leader"
	RoleFollower  = "follower"
	RoleCandidate = "candidate"
)

// Status is a server's view of the cluster (GET /v1/status).
type Status struct {
	ID      string   `json:"id"`
	Address string   `json:"address"`
	Role    string   `json:"role"`
	Leader  Peer     `json:"leader"`
	Epoch   int64    `json:"epoch"`
	Keys    int      `json:"keys"`
	Members []Member `json:"members"`
	// Alarms lists what refuses some writes: "NOSPACE" while the quota is reached.
	Alarms []string `json:"alarms,omitempty"`
	// Applied is the index of the last committed write the server's store holds.
	Applied uint64 `json:"applied"`
	// InSync is, on the leader, the in-sync set ("id/incarnation" each).
	InSync      []string `json:"in_sync,omitempty"`
	Incarnation string   `json:"incarnation,omitempty"`
}

// MemberStatus is a server's own line of the cluster table (GET /v1/cluster?self=true): its
// status and how long ago it last heard from its leader.
type MemberStatus struct {
	ID      string `json:"id"`
	Address string `json:"address"`
	Role    string `json:"role"`
	Leader  string `json:"leader"` // the leader's address in its view
	Epoch   int64  `json:"epoch"`
	Applied uint64 `json:"applied"`
	Keys    int    `json:"keys"`
	// LastContactMS: milliseconds since it last heard from its leader's stream; 0 on the
	// leader, -1 if never.
	LastContactMS int64 `json:"last_contact_ms"`
}

// Member returns the server's own line of the cluster table.
func (c *Client) Member(ctx context.Context) (MemberStatus, error) {
	var m MemberStatus
	_, err := c.do(ctx, http.MethodGet, "/v1/cluster", url.Values{"self": {"true"}}, nil, &m)
	return m, err
}

// LeaderMember returns the member entry of the leader, if the status lists it.
func (s Status) LeaderMember() (Member, bool) {
	for _, m := range s.Members {
		if (s.Leader.Address != "" && m.Address == s.Leader.Address) || (s.Leader.ID != "" && m.ID == s.Leader.ID) {
			return m, true
		}
	}
	return Member{}, false
}

// APIError is a non-2xx answer.
type APIError struct {
	StatusCode int
	Code       string        // the server's error code, or the HTTP status text
	Message    string        // the server's message, or the start of the body
	RetryAfter time.Duration // from Retry-After, 0 when absent
	Leader     string        // X-Zkv-Leader of the answer
	// CurrentVersion (412 precondition_failed): the key's version, 0 when it does not exist.
	CurrentVersion uint64
	// WriteIndex and WriteEpoch (504): where the leader logged the write, when it says.
	WriteIndex uint64
	WriteEpoch int64
}

// MaybeApplied reports an answer whose write may have applied: a 504 (not_replicated,
// outcome_unknown). Every other error answer applied nothing.
func (e *APIError) MaybeApplied() bool {
	return e.StatusCode == http.StatusGatewayTimeout || e.Code == "outcome_unknown"
}

// Is makes errors.Is(err, ErrOutcomeUnknown) hold for a MaybeApplied answer, and
// errors.Is(err, ErrPreconditionFailed) for a 412.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrOutcomeUnknown:
		return e.MaybeApplied()
	case ErrPreconditionFailed:
		return e.StatusCode == http.StatusPreconditionFailed
	}
	return false
}

func (e *APIError) Error() string {
	s := fmt.Sprintf("client: %d %s", e.StatusCode, e.Code)
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.RetryAfter > 0 {
		s += fmt.Sprintf(" (retry after %v)", e.RetryAfter)
	}
	return s
}

// Temporary reports whether the same request may succeed later: 503 (no leader for now), 502
// and 504 (an answer lost on the way), 429. Only 503 and 429 say nothing was applied: see
// MaybeApplied before retrying a write.
func (e *APIError) Temporary() bool {
	switch e.StatusCode {
	case http.StatusServiceUnavailable, http.StatusBadGateway, http.StatusGatewayTimeout, http.StatusTooManyRequests:
		return true
	}
	return false
}

// ReadOption changes how Get reads.
type ReadOption func(url.Values)

// Leader makes the server forward the read to the leader (?consistency=leader).
func Leader() ReadOption { return func(q url.Values) { q.Set("consistency", "leader") } }

// KeyPath returns the escaped path of key under /v1/kv/, each '/'-separated segment escaped
// on its own.
func KeyPath(key string) (string, error) {
	if key == "" {
		return "", fmt.Errorf("%w: empty", ErrInvalidKey)
	}
	segs := strings.Split(key, "/")
	for i, s := range segs {
		switch s {
		case ".":
			segs[i] = "%2E"
		case "..":
			segs[i] = "%2E%2E"
		default:
			segs[i] = url.PathEscape(s)
		}
	}
	return "/v1/kv/" + strings.Join(segs, "/"), nil
}

// Get reads key from this server's copy (possibly stale), or from the leader with Leader().
// A key the server lacks is no error: Found is false and Value empty.
func (c *Client) Get(ctx context.Context, key string, opts ...ReadOption) (KV, error) {
	p, err := KeyPath(key)
	if err != nil {
		return KV{}, err
	}
	q := url.Values{}
	for _, o := range opts {
		o(q)
	}
	var kv KV
	h, err := c.do(ctx, http.MethodGet, p, q, nil, &kv)
	if err != nil {
		return KV{}, err
	}
	kv.fill(key, h)
	return kv, nil
}

// Put writes key=value through this server, which forwards it to the leader when it follows.
// IfMatch or IfNoneMatch make it conditional (and so safe to retry after an unknown outcome).
func (c *Client) Put(ctx context.Context, key, value string, opts ...WriteOption) (KV, error) {
	p, err := KeyPath(key)
	if err != nil {
		return KV{}, err
	}
	var kv KV
	h, err := c.send(ctx, request{method: http.MethodPut, path: p, in: map[string]string{"value": value}, out: &kv,
		hdr: writeHeaders(opts)})
	if err != nil {
		return KV{}, err
	}
	kv.fill(key, h)
	if kv.Value == "" {
		kv.Value = value
	}
	kv.Found = true
	return kv, nil
}

// Delete removes key through this server (routed to the leader) and reports whether it
// existed. IfMatch makes it conditional.
func (c *Client) Delete(ctx context.Context, key string, opts ...WriteOption) (bool, error) {
	p, err := KeyPath(key)
	if err != nil {
		return false, err
	}
	var kv KV
	if _, err := c.send(ctx, request{method: http.MethodDelete, path: p, out: &kv, hdr: writeHeaders(opts)}); err != nil {
		return false, err
	}
	return kv.Found, nil
}

// Status returns the server's view of the cluster.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var s Status
	_, err := c.do(ctx, http.MethodGet, "/v1/status", nil, nil, &s)
	return s, err
}

// Read is the assignment's GET /read?key=k: the value, "" when the server lacks the key.
func (c *Client) Read(ctx context.Context, key string) (string, error) {
	if key == "" {
		return "", fmt.Errorf("%w: empty", ErrInvalidKey)
	}
	var ans struct {
		Value string `json:"value"`
	}
	_, err := c.do(ctx, http.MethodGet, "/read", url.Values{"key": {key}}, nil, &ans)
	return ans.Value, err
}

// Update is the assignment's POST /update: writes key=value, routed to the leader like Put.
func (c *Client) Update(ctx context.Context, key, value string, opts ...WriteOption) error {
	if key == "" {
		return fmt.Errorf("%w: empty", ErrInvalidKey)
	}
	_, err := c.send(ctx, request{method: http.MethodPost, path: "/update", in: map[string]string{"key": key, "value": value},
		hdr: writeHeaders(opts)})
	return err
}

// Healthy returns nil while the server process serves (GET /healthz).
func (c *Client) Healthy(ctx context.Context) error {
	_, err := c.send(ctx, request{method: http.MethodGet, path: "/healthz", once: true})
	return err
}

// Ready returns nil once the server has a ZooKeeper session and knows a leader (GET /readyz).
func (c *Client) Ready(ctx context.Context) error {
	_, err := c.send(ctx, request{method: http.MethodGet, path: "/readyz", once: true})
	return err
}

// Metrics returns the server's GET /metrics (Prometheus text format) as it is.
func (c *Client) Metrics(ctx context.Context) (string, error) {
	var raw rawBody
	_, err := c.send(ctx, request{method: http.MethodGet, path: "/metrics", out: &raw, once: true})
	return string(raw), err
}

// rawBody receives an answer undecoded.
type rawBody []byte

// fill completes kv from the request's key and the answer's headers.
func (kv *KV) fill(key string, h http.Header) {
	if kv.Key == "" {
		kv.Key = key
	}
	if kv.Leader == "" {
		kv.Leader = h.Get(HeaderLeader)
	}
	if kv.Epoch == 0 {
		kv.Epoch, _ = strconv.ParseInt(h.Get(HeaderEpoch), 10, 64)
	}
}

// do sends a request (with the client's retries) and decodes a 2xx JSON answer into out
// (nil: body ignored).
func (c *Client) do(ctx context.Context, method, path string, q url.Values, in, out any) (http.Header, error) {
	return c.send(ctx, request{method: method, path: path, q: q, in: in, out: out})
}

// doWithin is do bounded by timeout instead of the client's (a watch waits longer).
func (c *Client) doWithin(ctx context.Context, timeout time.Duration, method, path string, q url.Values, in, out any) (http.Header, error) {
	return c.send(ctx, request{method: method, path: path, q: q, in: in, out: out, timeout: timeout})
}

// attempt sends one request to base. sent reports whether a connection to the server was
// made: before that, nothing reached it.
func (c *Client) attempt(ctx context.Context, base string, r request) (h http.Header, sent bool, err error) {
	method, path, q, in, out := r.method, r.path, r.q, r.in, r.out
	timeout := c.timeout
	if r.timeout != 0 {
		timeout = r.timeout
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	var gotConn atomic.Bool
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{GotConn: func(httptrace.GotConnInfo) { gotConn.Store(true) }})
	u := base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, false, permanentError{fmt.Errorf("client: %s %s: %w", method, u, err)}
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, false, permanentError{fmt.Errorf("client: %s %s: %w", method, u, err)}
	}
	for k, v := range r.hdr {
		req.Header.Set(k, v)
	}
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, gotConn.Load(), fmt.Errorf("client: %s %s: %w", method, u, err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return resp.Header, true, fmt.Errorf("client: %s %s: reading answer: %w", method, u, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.Header, true, apiError(resp, b)
	}
	if raw, ok := out.(*rawBody); ok {
		*raw = b
		return resp.Header, true, nil
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.Header, true, fmt.Errorf("%w: %s %s: %v: %q", ErrBadAnswer, method, u, err, snippet(b))
		}
	}
	return resp.Header, true, nil
}

func apiError(resp *http.Response, b []byte) *APIError {
	e := &APIError{StatusCode: resp.StatusCode, Leader: resp.Header.Get(HeaderLeader)}
	var env struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
			Version uint64 `json:"version"`
			Index   uint64 `json:"index"`
			Epoch   int64  `json:"epoch"`
		} `json:"error"`
		Message string `json:"message"` // a framework's default error shape
	}
	if json.Unmarshal(b, &env) == nil && (env.Error.Code != "" || env.Error.Message != "" || env.Message != "") {
		e.Code, e.Message = env.Error.Code, env.Error.Message
		e.CurrentVersion, e.WriteIndex, e.WriteEpoch = env.Error.Version, env.Error.Index, env.Error.Epoch
		if e.Message == "" {
			e.Message = env.Message
		}
	} else {
		e.Message = snippet(b)
	}
	if e.Code == "" {
		e.Code = strings.ToLower(strings.ReplaceAll(http.StatusText(resp.StatusCode), " ", "_"))
	}
	e.RetryAfter = retryAfter(resp.Header.Get("Retry-After"))
	return e
}

// retryAfter parses Retry-After as seconds or an HTTP date.
func retryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil && s >= 0 {
		return time.Duration(s * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := time.Until(t); d > 0 {
			return d
		}
	}
	return 0
}

func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}
