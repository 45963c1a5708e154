package client

import (
	"context"
	"net/http"
	"sync"
	"time"
)

// Do404 requests a route no server has, for the tests of non-API error bodies.
func (c *Client) Do404(ctx context.Context) (http.Header, error) {
	return c.do(ctx, http.MethodGet, "/no/such/route", nil, nil, nil)
}

// RecordWaits makes the client record its waits before retries instead of sleeping.
func (c *Client) RecordWaits() func() []time.Duration {
	var mu sync.Mutex
	var waits []time.Duration
	c.sleep = func(ctx context.Context, d time.Duration) error {
		mu.Lock()
		defer mu.Unlock()
		waits = append(waits, d)
		return ctx.Err()
	}
	return func() []time.Duration {
		mu.Lock()
		defer mu.Unlock()
		return append([]time.Duration(nil), waits...)
	}
}
