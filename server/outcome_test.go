package server_test

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/zkv-dev/zkv/server"
)

// TestForwardLostAnswer: a follower that forwarded a write and lost the leader's answer
// cannot tell whether it applied: 504 outcome_unknown, never a 503 that says nothing did.
// A read that loses its answer is a plain 503.
func TestForwardLostAnswer(t *testing.T) {
	leader := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The request has arrived (it may have applied); the answer is lost.
		hj, ok := w.(http.Hijacker)
		if !ok {
			t.Error("no hijacker")
			return
		}
		conn, _, err := hj.Hijack()
		if err == nil {
			_ = conn.Close()
		}
	}))
	t.Cleanup(leader.Close)
	c := newFakeCluster()
	le := c.remote("leader", strings.TrimPrefix(leader.URL, "http://"))
	defer le.Close()
	n := startNode(t, c, "f")
	n.waitRole(t, "follower")

	for _, tc := range []struct{ method, path, body string }{
		{http.MethodPut, "/v1/kv/k", `{"value":"v"}`},
		{http.MethodDelete, "/v1/kv/k", ""},
		{http.MethodPost, "/update", `{"key":"k","value":"v"}`},
	} {
		r := do(t, tc.method, n.url+tc.path, "application/json", tc.body)
		if r.code != 504 || r.errCode(t) != server.CodeOutcomeUnknown || r.hdr.Get("Retry-After") != "" {
			t.Errorf("%s %s whose answer was lost: %d %v %s", tc.method, tc.path, r.code, r.hdr, r.body)
		}
	}
	r := do(t, http.MethodGet, n.url+"/v1/kv/k?consistency=leader", "", "")
	if r.code != 503 || r.errCode(t) != server.CodeLeaderUnreachable {
		t.Errorf("leader read whose answer was lost: %d %s", r.code, r.body)
	}
}

// TestForwardNotSent: a write the follower could not send (the leader refuses
// connections) applied nothing: 503 leader_unreachable with Retry-After.
func TestForwardNotSent(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	c := newFakeCluster()
	le := c.remote("leader", addr)
	defer le.Close()
	n := startNode(t, c, "f")
	n.waitRole(t, "follower")
	r := put(t, n.url, "k", "v")
	if r.code != 503 || r.errCode(t) != server.CodeLeaderUnreachable || r.hdr.Get("Retry-After") == "" {
		t.Fatalf("PUT to an unreachable leader: %d %v %s", r.code, r.hdr, r.body)
	}
}
