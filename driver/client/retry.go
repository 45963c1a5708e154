package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Retry is when and how a Client tries a call again. Only what cannot apply a write twice
// is retried:
//
//   - reads, after any failure that may pass (a transport error, 502, 503, 504, 429);
//   - writes answered 503 or 429 (the server says nothing was applied: no_leader,
//     not_leader, leader_unreachable, shutting_down), or whose connection could not be
//     made (nothing was sent);
//   - conditional writes (IfMatch, IfNoneMatch) after a 504 or a lost answer as well: the
//     server checks the condition where it orders the write, so a retry of a write that
//     did apply fails with 412 instead of applying again.
//
// Any other write whose outcome is unknown is returned at once, as an error matching
// ErrOutcomeUnknown. A retry goes to the next endpoint (WithEndpoints) and waits first: the
// answer's Retry-After, capped by MaxRetryAfter, or else Backoff doubling up to MaxBackoff;
// every wait ends with the call's context.
type Retry struct {
	// Attempts bounds the tries of one call over every endpoint; 1 or less: no retry.
	Attempts int
	// Backoff is the wait before the first retry when the answer names none; it doubles
	// with each retry, up to MaxBackoff.
	Backoff    time.Duration
	MaxBackoff time.Duration
	// MaxRetryAfter caps the wait a Retry-After asks for.
	MaxRetryAfter time.Duration
}

// DefaultRetry is NewCluster's policy: enough tries to outlast a leader election of a few
// seconds (the servers ask for Retry-After: 1 while they have no leader).
var DefaultRetry = Retry{Attempts: 8, Backoff: 50 * time.Millisecond, MaxBackoff: time.Second, MaxRetryAfter: 2 * time.Second}

// WithRetry sets the retry policy; New's default makes one attempt.
func WithRetry(r Retry) Option { return func(c *Client) { c.retry = r } }

// WithEndpoints adds servers to try after the one given to New, in order, rotating on
// failures that may pass (see Retry).
func WithEndpoints(addrs ...string) Option {
	return func(c *Client) { c.extra = append(c.extra, addrs...) }
}

// NewCluster returns a client of the servers at addrs that rotates among them and retries
// with DefaultRetry (opts may override it).
func NewCluster(addrs []string, opts ...Option) (*Client, error) {
	if len(addrs) == 0 {
		return nil, errors.New("client: NewCluster needs at least one address")
	}
	return New(addrs[0], append([]Option{WithEndpoints(addrs[1:]...), WithRetry(DefaultRetry)}, opts...)...), nil
}

// WriteOption makes a write conditional.
type WriteOption func(http.Header)

// IfMatch applies the write only while the key is at version (a KV's Version, a GET's
// ETag); else the call fails with ErrPreconditionFailed and nothing changes.
func IfMatch(version uint64) WriteOption {
	return func(h http.Header) { h.Set("If-Match", `"`+strconv.FormatUint(version, 10)+`"`) }
}

// IfNoneMatch applies a Put only while the key does not exist (create only).
func IfNoneMatch() WriteOption { return func(h http.Header) { h.Set("If-None-Match", "*") } }

func writeHeaders(opts []WriteOption) map[string]string {
	if len(opts) == 0 {
		return nil
	}
	h := http.Header{}
	for _, o := range opts {
		o(h)
	}
	out := make(map[string]string, len(h))
	for k := range h {
		out[k] = h.Get(k)
	}
	return out
}

// permanentError is a failure to build a request: nothing was sent, and a retry would
// fail alike.
type permanentError struct{ error }

func (e permanentError) Unwrap() error { return e.error }

// request is one call.
type request struct {
	method, path string
	q            url.Values
	in, out      any
	hdr          map[string]string
	once         bool          // about one server: no retry, no rotation (healthz, readyz, metrics)
	timeout      time.Duration // this request's bound instead of the client's (a watch waits longer); 0: the client's
}

func (r request) write() bool { return r.method != http.MethodGet && r.method != http.MethodHead }

func (r request) conditional() bool {
	_, m := r.hdr["If-Match"]
	_, n := r.hdr["If-None-Match"]
	return m || n
}

// send runs r under the retry policy.
func (c *Client) send(ctx context.Context, r request) (http.Header, error) {
	attempts := max(c.retry.Attempts, 1)
	if r.once {
		attempts = 1
	}
	backoff := c.retry.Backoff
	var unknown error // the first attempt whose write may have applied
	for i := 1; ; i++ {
		base := c.bases[int(c.cur.Load())%len(c.bases)]
		h, sent, err := c.attempt(ctx, base, r)
		if err == nil {
			return h, nil
		}
		retry, maybeApplied := c.judge(ctx, r, sent, err)
		if maybeApplied && unknown == nil {
			unknown = err
		}
		if !retry || i >= attempts {
			return h, c.final(r, err, unknown, maybeApplied)
		}
		if len(c.bases) > 1 {
			c.cur.Add(1) // the next call starts there too
		}
		wait := backoff
		var ae *APIError
		if errors.As(err, &ae) && ae.RetryAfter > 0 {
			wait = min(ae.RetryAfter, c.retry.MaxRetryAfter)
			if c.retry.MaxRetryAfter <= 0 {
				wait = ae.RetryAfter
			}
		} else if c.retry.MaxBackoff > 0 {
			backoff = min(2*backoff, c.retry.MaxBackoff)
		}
		if serr := c.sleep(ctx, wait); serr != nil {
			return h, c.final(r, fmt.Errorf("client: %s %s: giving up while waiting to retry: %w (last error: %w)",
				r.method, r.path, serr, err), unknown, false)
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// judge says whether a failed attempt may be retried, and whether its write may have
// applied.
func (c *Client) judge(ctx context.Context, r request, sent bool, err error) (retry, maybeApplied bool) {
	if ctx.Err() != nil {
		return false, r.write() && sent
	}
	var ae *APIError
	var pe permanentError
	if errors.As(err, &pe) {
		return false, false // nothing was sent, and nothing would be on a retry
	}
	if !errors.As(err, &ae) {
		if errors.Is(err, ErrBadAnswer) {
			return false, false // a 2xx we could not read: it applied
		}
		// A transport error: before a connection was made, nothing was sent.
		maybeApplied = r.write() && sent
		return !maybeApplied || r.conditional(), maybeApplied
	}
	switch ae.StatusCode {
	case http.StatusServiceUnavailable, http.StatusTooManyRequests:
		return true, false // nothing applied, by the API's contract
	case http.StatusBadGateway, http.StatusGatewayTimeout:
		maybeApplied = r.write()
		return !maybeApplied || r.conditional(), maybeApplied
	}
	return false, ae.MaybeApplied() && r.write()
}

// final is the error a call returns: err, and, when an earlier attempt may have applied the
// write, that too (so errors.Is(err, ErrOutcomeUnknown) holds: a 412 after it may be the
// write's own doing).
func (c *Client) final(r request, err, unknown error, lastMaybe bool) error {
	switch {
	case unknown == nil:
		return err
	case lastMaybe && err == unknown:
		if errors.Is(err, ErrOutcomeUnknown) {
			return err
		}
		return fmt.Errorf("%w: %w", ErrOutcomeUnknown, err)
	}
	return fmt.Errorf("%w: %s %s: an earlier try may have applied the write (%v); the last try: %w",
		ErrOutcomeUnknown, r.method, r.path, unknown, err)
}
