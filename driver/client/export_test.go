package client

import (
	"context"
	"net/http"
)

// Do404 requests a route no server has, for the tests of non-API error bodies.
func (c *Client) Do404(ctx context.Context) (http.Header, error) {
	return c.do(ctx, http.MethodGet, "/no/such/route", nil, nil, nil)
}
