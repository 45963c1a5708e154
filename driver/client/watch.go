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

// Headers of a read: the modify index of the key (or prefix) it answers, and the last
// write the answering copy holds.
const (
	HeaderIndex   = "X-Zkv-Index"
	HeaderApplied = "X-Zkv-Applied-Index"
)

// ListOptions selects a page of List.
type ListOptions struct {
	Prefix   string // keys that start with it; empty: every key
	After    string // keys after it: the Next of the previous page
	Limit    int    // at most this many (the server's default 1000 when 0; at most 10000)
	KeysOnly bool   // leave the values out
}

// ListEntry is one key of a Page; Value is empty with KeysOnly.
type ListEntry struct {
	Key     string `json:"key"`
	Value   string `json:"value,omitempty"`
	Version uint64 `json:"version"`
	Index   uint64 `json:"index"`
}

// Page is one page of a listing, as GET /v1/kv/?prefix= answered it.
type Page struct {
	Prefix  string      `json:"prefix"`
	Entries []ListEntry `json:"entries"`
	More    bool        `json:"more"`           // keys follow: ask again with After = Next
	Next    string      `json:"next,omitempty"` // the cursor of the next page
	Index   uint64      `json:"index"`          // the prefix's modify index (X-Zkv-Index)
	Applied uint64      `json:"applied"`        // the answering copy's last write (X-Zkv-Applied-Index)
}

func (o ListOptions) query() url.Values {
	q := url.Values{"prefix": {o.Prefix}}
	if o.After != "" {
		q.Set("after", o.After)
	}
	if o.Limit != 0 {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	if o.KeysOnly {
		q.Set("keys", "true")
	}
	return q
}

// List returns one page of the keys under opts.Prefix, in order, from this server's copy.
func (c *Client) List(ctx context.Context, opts ListOptions) (Page, error) {
	return c.list(ctx, c.timeout, opts.query())
}

func (c *Client) list(ctx context.Context, timeout time.Duration, q url.Values) (Page, error) {
	var p Page
	h, err := c.doWithin(ctx, timeout, http.MethodGet, "/v1/kv/", q, nil, &p)
	if err != nil {
		return Page{}, err
	}
	p.Index, p.Applied = headerUint(h, HeaderIndex), headerUint(h, HeaderApplied)
	return p, nil
}

func headerUint(h http.Header, name string) uint64 {
	v, _ := strconv.ParseUint(h.Get(name), 10, 64)
	return v
}

// WatchOptions configures Watch.
type WatchOptions struct {
	// Prefix watches every key under the target (a listing) instead of one key.
	Prefix bool
	// Index is where to start: changes past it. Zero starts from the current state, sent
	// as the first Change.
	Index uint64
	// Wait is each blocking request's wait; the server's default (5m) when 0.
	Wait time.Duration
	// List shapes a prefix watch's page (its Prefix is the watch's target).
	List ListOptions
	// RetryAfter is the pause after a failed request when the server names none; 1s when 0.
	RetryAfter time.Duration
}

// Change is what a watch saw: the key's state (KV) or the prefix's first page (Page), at
// Index; or an error (Err) after which the watch retries.
type Change struct {
	Index uint64
	KV    KV
	Page  Page
	Err   error
}

// Watch follows a key (or, with opts.Prefix, every key under target) with blocking
// queries (?index=N&wait=D) and sends a Change each time its modify index moves (a put or
// a delete), and when a request fails. The channel is unbuffered: the watch waits for the
// reader, and drops nothing; writes that land meanwhile come as one Change, the latest
// state. It is closed once ctx ends. An index that goes back (the server restarted empty,
// or was swapped for another) is taken as it is: the next Change follows it.
func (c *Client) Watch(ctx context.Context, target string, opts WatchOptions) <-chan Change {
	ch := make(chan Change)
	go func() {
		defer close(ch)
		idx, first := opts.Index, opts.Index == 0
		for ctx.Err() == nil {
			ch2, err := c.watchOnce(ctx, target, opts, idx, first)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				pause := opts.RetryAfter
				if pause <= 0 {
					pause = time.Second
				}
				var ae *APIError
				if errors.As(err, &ae) && ae.RetryAfter > 0 {
					pause = ae.RetryAfter
				}
				if !send(ctx, ch, Change{Index: idx, Err: err}) || !sleep(ctx, pause) {
					return
				}
				continue
			}
			changed := first || ch2.Index != idx
			first, idx = false, ch2.Index
			if changed && !send(ctx, ch, ch2) {
				return
			}
		}
	}()
	return ch
}

// watchOnce sends one request: a plain read when first, else a blocking one from idx.
func (c *Client) watchOnce(ctx context.Context, target string, opts WatchOptions, idx uint64, first bool) (Change, error) {
	q := url.Values{}
	timeout := c.timeout
	if !first {
		q.Set("index", strconv.FormatUint(idx, 10))
		wait := opts.Wait
		if wait <= 0 {
			wait = 5 * time.Minute
		}
		q.Set("wait", wait.String())
		// The server answers by the wait plus its jitter (a sixteenth) at the latest.
		timeout = wait + wait/16 + max(c.timeout, 10*time.Second)
	}
	if opts.Prefix {
		lo := opts.List
		lo.Prefix = target
		for k, v := range lo.query() {
			q[k] = v
		}
		p, err := c.list(ctx, timeout, q)
		return Change{Index: p.Index, Page: p}, err
	}
	p, err := KeyPath(target)
	if err != nil {
		return Change{}, err
	}
	var kv KV
	h, err := c.doWithin(ctx, timeout, http.MethodGet, p, q, nil, &kv)
	if err != nil {
		return Change{}, err
	}
	kv.fill(target, h)
	return Change{Index: headerUint(h, HeaderIndex), KV: kv}, nil
}

func send(ctx context.Context, ch chan<- Change, c Change) bool {
	select {
	case ch <- c:
		return true
	case <-ctx.Done():
		return false
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// String is a one-line account of a change, for logs.
func (c Change) String() string {
	if c.Err != nil {
		return fmt.Sprintf("index %d: error: %v", c.Index, c.Err)
	}
	if c.Page.Prefix != "" || c.Page.Entries != nil {
		return fmt.Sprintf("index %d: %d keys under %q", c.Index, len(c.Page.Entries), c.Page.Prefix)
	}
	return fmt.Sprintf("index %d: %s=%q found=%v", c.Index, c.KV.Key, c.KV.Value, c.KV.Found)
}
