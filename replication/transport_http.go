package replication

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/hashicorp/go-retryablehttp"
)

// HTTPTransportConfig configures an HTTPTransport; zero fields get Config's defaults.
type HTTPTransportConfig struct {
	Token           string        // sent as "Authorization: Bearer <Token>" when set
	RequestTimeout  time.Duration // per attempt of an append; default 2s
	SnapshotTimeout time.Duration // per attempt of a snapshot; default 30s
	RetryWaitMin    time.Duration // backoff floor; default 10ms
	RetryWaitMax    time.Duration // backoff ceiling; default 500ms
	RetryMax        int           // retries of one request; 0: default 3, < 0: none
	// RoundTripper carries the requests; default a private *http.Transport closed by Close.
	RoundTripper http.RoundTripper
	// OnRetry, when set, is called before every retry of a request to replica; it must
	// not block.
	OnRetry func(replica string)
}

// HTTPTransport is the Transport of the internal routes: POST PathAppend and PathSnapshot
// to the replica's address ("host:port" or a base URL), JSON bodies, retries of transport
// errors and 5xx through go-retryablehttp with jittered backoff. Error bodies
// ([ErrorResponse], as [ErrorStatus] writes them) come back as *RefusedError, which
// unwraps to the package's typed errors.
type HTTPTransport struct {
	token   string
	owned   *http.Transport // closed by Close; nil when RoundTripper was given
	onRetry func(string)
	append  *retryablehttp.Client
	snap    *retryablehttp.Client
	first   *retryablehttp.Client // the probes of a replica that never answered: no retries
}

// NewHTTPTransport validates cfg and returns an HTTPTransport.
func NewHTTPTransport(cfg HTTPTransportConfig) (*HTTPTransport, error) {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&cfg.RequestTimeout, DefaultRequestTimeout)
	def(&cfg.SnapshotTimeout, DefaultSnapshotTimeout)
	def(&cfg.RetryWaitMin, DefaultRetryWaitMin)
	def(&cfg.RetryWaitMax, DefaultRetryWaitMax)
	if cfg.RetryMax == 0 {
		cfg.RetryMax = DefaultRetryMax
	} else if cfg.RetryMax < 0 {
		cfg.RetryMax = 0
	}
	if cfg.RequestTimeout < 0 || cfg.SnapshotTimeout < 0 || cfg.RetryWaitMin < 0 || cfg.RetryWaitMax < cfg.RetryWaitMin {
		return nil, fmt.Errorf("%w: timeouts must be positive and RetryWaitMax >= RetryWaitMin", ErrInvalidConfig)
	}
	t := &HTTPTransport{token: cfg.Token, onRetry: cfg.OnRetry}
	rt := cfg.RoundTripper
	if rt == nil {
		t.owned = &http.Transport{
			Proxy:               nil, // internal traffic never goes through a proxy
			DialContext:         (&net.Dialer{Timeout: cfg.RequestTimeout, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        100,
			MaxIdleConnsPerHost: 4,
			IdleConnTimeout:     90 * time.Second,
		}
		rt = t.owned
	}
	client := func(timeout time.Duration, retries int) *retryablehttp.Client {
		return &retryablehttp.Client{
			HTTPClient:   &http.Client{Transport: rt, Timeout: timeout},
			RetryWaitMin: cfg.RetryWaitMin,
			RetryWaitMax: cfg.RetryWaitMax,
			RetryMax:     retries,
			CheckRetry:   retryPolicy,
			Backoff:      jitterBackoff,
			ErrorHandler: retryablehttp.PassthroughErrorHandler,
			RequestLogHook: func(_ retryablehttp.Logger, req *http.Request, attempt int) {
				if attempt > 0 && t.onRetry != nil {
					if replica, ok := req.Context().Value(replicaKey{}).(string); ok {
						t.onRetry(replica)
					}
				}
			},
		}
	}
	t.append = client(cfg.RequestTimeout, cfg.RetryMax)
	t.snap = client(cfg.SnapshotTimeout, cfg.RetryMax)
	t.first = client(cfg.RequestTimeout, 0)
	return t, nil
}

// replicaKey carries the replica's name to the retry hook.
type replicaKey struct{}

// Append implements Transport.
func (t *HTTPTransport) Append(ctx context.Context, replica string, req AppendRequest) (AppendResponse, error) {
	c := t.append
	if len(req.Entries) == 0 && req.To == "" {
		c = t.first
	}
	return t.post(ctx, c, replica, PathAppend, req)
}

// Snapshot implements Transport: the snapshot goes as a stream (see
// ContentTypeSnapshotStream), encoded while it is sent.
func (t *HTTPTransport) Snapshot(ctx context.Context, replica string, req SnapshotRequest) (AppendResponse, error) {
	return t.exchange(ctx, t.snap, replica, PathSnapshot, ContentTypeSnapshotStream, snapshotBody(req), req.Epoch)
}

// Close closes the idle connections of the transport it made; the requests in flight
// are their contexts' to end. Idempotent.
func (t *HTTPTransport) Close() error {
	if t.owned != nil {
		t.owned.CloseIdleConnections()
	}
	return nil
}

// RefusedError is an error answer of a replica's internal route. It unwraps to the typed
// error its code stands for (*StaleEpochError, *LogMismatchError, ErrNewIncarnation,
// ErrNotLeader, ErrInvalidRequest, ErrTooLarge), when there is one.
type RefusedError struct {
	Replica string
	Status  int
	Body    ErrorResponse
	err     error
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("replication: replica %s answered %d %s: %s", e.Replica, e.Status, e.Body.Error.Code, e.Body.Error.Message)
}

// Unwrap returns the typed error of the answer's code, or nil.
func (e *RefusedError) Unwrap() error { return e.err }

// refusal maps an error answer back to the error the replica's Follower returned.
func refusal(replica string, status int, body ErrorResponse, got int64) *RefusedError {
	e := &RefusedError{Replica: replica, Status: status, Body: body}
	switch {
	case status == http.StatusPreconditionFailed && body.Error.Code == CodeStaleEpoch:
		e.err = &StaleEpochError{Epoch: body.Epoch, Got: got}
	case status == http.StatusConflict && body.Error.Code == CodeLogMismatch:
		e.err = &LogMismatchError{LastIndex: body.LastIndex, LastEpoch: body.LastEpoch}
	case status == http.StatusConflict && body.Error.Code == CodeNewIncarnation:
		e.err = ErrNewIncarnation
	case status == http.StatusForbidden && body.Error.Code == CodeNotLeader:
		e.err = ErrNotLeader
	case status == http.StatusBadRequest && body.Error.Code == CodeBadRequest:
		e.err = ErrInvalidRequest
	case status == http.StatusRequestEntityTooLarge && body.Error.Code == CodeTooLarge:
		e.err = ErrTooLarge
	}
	return e
}

func replicaURL(replica, path string) string {
	base := replica
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	return strings.TrimSuffix(base, "/") + path
}

// post sends body as JSON and decodes a 200 answer, or maps an error answer to a
// *RefusedError.
func (t *HTTPTransport) post(ctx context.Context, c *retryablehttp.Client, replica, path string, body any) (AppendResponse, error) {
	buf, err := json.Marshal(body)
	if err != nil {
		return AppendResponse{}, fmt.Errorf("replication: encode request: %w", err)
	}
	var got int64
	switch b := body.(type) {
	case AppendRequest:
		got = b.Epoch
	case SnapshotRequest:
		got = b.Epoch
	}
	return t.exchange(ctx, c, replica, path, "application/json", buf, got)
}

// exchange POSTs body (anything retryablehttp takes, read anew for each attempt) and
// decodes a 200 answer, or maps an error answer to a *RefusedError; got is the request's
// epoch, for a stale_epoch answer.
func (t *HTTPTransport) exchange(ctx context.Context, c *retryablehttp.Client, replica, path, contentType string, body any, got int64) (AppendResponse, error) {
	var resp AppendResponse
	url := replicaURL(replica, path)
	req, err := retryablehttp.NewRequestWithContext(context.WithValue(ctx, replicaKey{}, replica), http.MethodPost, url, body)
	if err != nil {
		return resp, fmt.Errorf("replication: new request: %w", err)
	}
	req.Header.Set("Content-Type", contentType)
	if t.token != "" {
		req.Header.Set("Authorization", "Bearer "+t.token)
	}
	hr, err := c.Do(req)
	if err != nil {
		if hr != nil {
			hr.Body.Close()
		}
		return resp, fmt.Errorf("replication: POST %s: %w", url, err)
	}
	defer hr.Body.Close()
	data, err := io.ReadAll(io.LimitReader(hr.Body, maxResponseBytes))
	if err != nil {
		return resp, fmt.Errorf("replication: POST %s: read answer: %w", url, err)
	}
	if hr.StatusCode == http.StatusOK {
		if err := json.Unmarshal(data, &resp); err != nil {
			return resp, fmt.Errorf("replication: POST %s: decode answer: %w", url, err)
		}
		return resp, nil
	}
	var eresp ErrorResponse
	if err := json.Unmarshal(data, &eresp); err != nil || eresp.Error.Message == "" {
		eresp.Error.Message = strings.TrimSpace(string(bytes.ToValidUTF8(data[:min(len(data), 200)], nil)))
	}
	return resp, refusal(replica, hr.StatusCode, eresp, got)
}

// retryPolicy retries transport errors and 5xx (but 501), never 4xx, never after ctx ends.
func retryPolicy(ctx context.Context, resp *http.Response, err error) (bool, error) {
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	if err != nil {
		return true, nil
	}
	return resp.StatusCode >= 500 && resp.StatusCode != http.StatusNotImplemented, nil
}

// jitterBackoff doubles from min to max per attempt and picks uniformly in [d/2, d], so
// that a leader's workers do not retry in lockstep.
func jitterBackoff(min, max time.Duration, attempt int, _ *http.Response) time.Duration {
	d := min
	for i := 0; i < attempt && d < max; i++ {
		d *= 2
	}
	d = clamp(d, min, max)
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2+1)
}

func clamp(d, lo, hi time.Duration) time.Duration {
	if d < lo {
		return lo
	}
	if d > hi {
		return hi
	}
	return d
}

var _ Transport = (*HTTPTransport)(nil)
