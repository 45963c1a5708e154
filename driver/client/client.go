package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
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
)

// Client talks to one zkv server.
type Client struct {
	addr    string
	base    string // "http://host:port"
	hc      *http.Client
	own     bool // hc was created here, so Close may close its idle connections
	timeout time.Duration
	token   string
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
func New(addr string, opts ...Option) *Client {
	base := strings.TrimRight(addr, "/")
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	c := &Client{addr: addr, base: base, timeout: DefaultTimeout}
	for _, o := range opts {
		o(c)
	}
	if c.hc == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = 16
		c.hc, c.own = &http.Client{Transport: t}, true
	}
	return c
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
// and 504 (the leader a follower forwarded to was unreachable), 429.
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
func (c *Client) Put(ctx context.Context, key, value string) (KV, error) {
	p, err := KeyPath(key)
	if err != nil {
		return KV{}, err
	}
	var kv KV
	h, err := c.do(ctx, http.MethodPut, p, nil, map[string]string{"value": value}, &kv)
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

// Delete removes key through this server (routed to the leader) and reports whether it existed.
func (c *Client) Delete(ctx context.Context, key string) (bool, error) {
	p, err := KeyPath(key)
	if err != nil {
		return false, err
	}
	var kv KV
	if _, err := c.do(ctx, http.MethodDelete, p, nil, nil, &kv); err != nil {
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
func (c *Client) Update(ctx context.Context, key, value string) error {
	if key == "" {
		return fmt.Errorf("%w: empty", ErrInvalidKey)
	}
	_, err := c.do(ctx, http.MethodPost, "/update", nil, map[string]string{"key": key, "value": value}, nil)
	return err
}

// Healthy returns nil while the server process serves (GET /healthz).
func (c *Client) Healthy(ctx context.Context) error {
	_, err := c.do(ctx, http.MethodGet, "/healthz", nil, nil, nil)
	return err
}

// Ready returns nil once the server has a ZooKeeper session and knows a leader (GET /readyz).
func (c *Client) Ready(ctx context.Context) error {
	_, err := c.do(ctx, http.MethodGet, "/readyz", nil, nil, nil)
	return err
}

// Metrics returns the server's GET /metrics (Prometheus text format) as it is.
func (c *Client) Metrics(ctx context.Context) (string, error) {
	var raw rawBody
	_, err := c.do(ctx, http.MethodGet, "/metrics", nil, nil, &raw)
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

// do sends one request and decodes a 2xx JSON answer into out (nil: body ignored).
func (c *Client) do(ctx context.Context, method, path string, q url.Values, in, out any) (http.Header, error) {
	return c.doWithin(ctx, c.timeout, method, path, q, in, out)
}

// doWithin is do bounded by timeout instead of the client's (a watch waits longer).
func (c *Client) doWithin(ctx context.Context, timeout time.Duration, method, path string, q url.Values, in, out any) (http.Header, error) {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	u := c.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("client: %s %s: %w", method, u, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, fmt.Errorf("client: %s %s: %w", method, u, err)
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
		return nil, fmt.Errorf("client: %s %s: %w", method, u, err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return resp.Header, fmt.Errorf("client: %s %s: reading answer: %w", method, u, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.Header, apiError(resp, b)
	}
	if raw, ok := out.(*rawBody); ok {
		*raw = b
		return resp.Header, nil
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.Header, fmt.Errorf("%w: %s %s: %v: %q", ErrBadAnswer, method, u, err, snippet(b))
		}
	}
	return resp.Header, nil
}

func apiError(resp *http.Response, b []byte) *APIError {
	e := &APIError{StatusCode: resp.StatusCode, Leader: resp.Header.Get(HeaderLeader)}
	var env struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
		Message string `json:"message"` // a framework's default error shape
	}
	if json.Unmarshal(b, &env) == nil && (env.Error.Code != "" || env.Error.Message != "" || env.Message != "") {
		e.Code, e.Message = env.Error.Code, env.Error.Message
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
