package client_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zkv-dev/zkv/driver/client"
)

// scripted is a server that answers each request with the next step of its script (the
// last step repeats) and records what it got.
type scripted struct {
	srv   *httptest.Server
	mu    sync.Mutex
	steps []func(w http.ResponseWriter, r *http.Request)
	got   []string // "METHOD path If-Match If-None-Match"
}

func newScripted(t *testing.T, steps ...func(w http.ResponseWriter, r *http.Request)) *scripted {
	s := &scripted{steps: steps}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		i := min(len(s.got), len(s.steps)-1)
		s.got = append(s.got, r.Method+" "+r.URL.Path+" "+r.Header.Get("If-Match")+" "+r.Header.Get("If-None-Match"))
		step := s.steps[i]
		s.mu.Unlock()
		step(w, r)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *scripted) addr() string { return strings.TrimPrefix(s.srv.URL, "http://") }

func (s *scripted) requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.got...)
}

func answer(code int, errCode, retryAfter string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		if retryAfter != "" {
			w.Header().Set("Retry-After", retryAfter)
		}
		if code == 200 {
			writeJSON(w, 200, map[string]any{"key": "k", "value": "v", "found": true, "version": 3})
			return
		}
		writeJSON(w, code, map[string]any{"error": map[string]any{"code": errCode, "message": errCode, "version": 3, "index": 42, "epoch": 7}})
	}
}

// cut reads the request, then closes the connection without an answer.
func cut(w http.ResponseWriter, r *http.Request) {
	conn, _, err := w.(http.Hijacker).Hijack()
	if err == nil {
		_ = conn.Close()
	}
}

func deadAddr(t *testing.T) string {
	dead := httptest.NewServer(http.NotFoundHandler())
	addr := strings.TrimPrefix(dead.URL, "http://")
	dead.Close()
	return addr
}

func cluster(t *testing.T, addrs ...string) (*client.Client, func() []time.Duration) {
	t.Helper()
	c, err := client.NewCluster(addrs, client.WithTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c, c.RecordWaits()
}

func TestRetryRotatesOn503AndHonoursRetryAfter(t *testing.T) {
	a := newScripted(t, answer(503, "no_leader", "2"))
	b := newScripted(t, answer(200, "", ""))
	c, waits := cluster(t, a.addr(), b.addr())
	kv, err := c.Put(context.Background(), "k", "v")
	if err != nil || kv.Version != 3 {
		t.Fatalf("Put = %+v, %v", kv, err)
	}
	if len(a.requests()) != 1 || len(b.requests()) != 1 {
		t.Fatalf("requests: a %v, b %v", a.requests(), b.requests())
	}
	if w := waits(); len(w) != 1 || w[0] != 2*time.Second {
		t.Fatalf("waits %v, want [2s] (Retry-After)", w)
	}
	// The next call starts at b, which answered.
	if _, err := c.Get(context.Background(), "k"); err != nil || len(b.requests()) != 2 || len(a.requests()) != 1 {
		t.Fatalf("Get after rotation: %v; a %v, b %v", err, a.requests(), b.requests())
	}
}

func TestRetryCapsRetryAfterAndBacksOff(t *testing.T) {
	a := newScripted(t, answer(503, "no_leader", "60"), answer(429, "too_many", ""), answer(503, "no_leader", ""), answer(200, "", ""))
	c, err := client.NewCluster([]string{a.addr()}, client.WithRetry(client.Retry{
		Attempts: 5, Backoff: 10 * time.Millisecond, MaxBackoff: 15 * time.Millisecond, MaxRetryAfter: time.Second}))
	if err != nil {
		t.Fatal(err)
	}
	waits := c.RecordWaits()
	if _, err := c.Put(context.Background(), "k", "v"); err != nil {
		t.Fatal(err)
	}
	want := []time.Duration{time.Second, 10 * time.Millisecond, 15 * time.Millisecond}
	if got := waits(); len(got) != len(want) || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Fatalf("waits %v, want %v", got, want)
	}
}

func TestRetryWriteNotSentGoesElsewhere(t *testing.T) {
	b := newScripted(t, answer(200, "", ""))
	c, _ := cluster(t, deadAddr(t), b.addr())
	if _, err := c.Put(context.Background(), "k", "v"); err != nil {
		t.Fatalf("Put with a dead first endpoint: %v", err)
	}
	if len(b.requests()) != 1 {
		t.Fatalf("b got %v", b.requests())
	}
}

func TestRetryNeverRepeatsAnUnconditionalWriteThatMayHaveApplied(t *testing.T) {
	for name, step := range map[string]func(http.ResponseWriter, *http.Request){
		"504":     answer(504, "not_replicated", ""),
		"lost":    cut,
		"unknown": answer(504, "outcome_unknown", ""),
	} {
		t.Run(name, func(t *testing.T) {
			a := newScripted(t, step)
			b := newScripted(t, answer(200, "", ""))
			c, _ := cluster(t, a.addr(), b.addr())
			_, err := c.Put(context.Background(), "k", "v")
			if !errors.Is(err, client.ErrOutcomeUnknown) {
				t.Fatalf("Put = %v, want ErrOutcomeUnknown", err)
			}
			if len(a.requests()) != 1 || len(b.requests()) != 0 {
				t.Fatalf("retried a write that may have applied: a %v, b %v", a.requests(), b.requests())
			}
			var ae *client.APIError
			if name != "lost" && (!errors.As(err, &ae) || ae.WriteIndex != 42 || ae.WriteEpoch != 7 || !ae.MaybeApplied()) {
				t.Fatalf("504 without its position: %+v", ae)
			}
			if _, err := c.Delete(context.Background(), "k"); !errors.Is(err, client.ErrOutcomeUnknown) {
				t.Fatalf("Delete = %v", err)
			}
		})
	}
}

func TestRetryConditionalWriteAfterUnknownOutcome(t *testing.T) {
	// The retry is safe: it carries the condition. It succeeds: the first try did not apply.
	a := newScripted(t, cut)
	b := newScripted(t, answer(200, "", ""))
	c, _ := cluster(t, a.addr(), b.addr())
	if _, err := c.Put(context.Background(), "k", "v", client.IfMatch(2)); err != nil {
		t.Fatalf("conditional Put after a lost answer: %v", err)
	}
	if got := b.requests(); len(got) != 1 || got[0] != `PUT /v1/kv/k "2" ` {
		t.Fatalf("b got %v", got)
	}

	// The retry fails its condition: the first try may have been the one that applied.
	a = newScripted(t, answer(504, "outcome_unknown", ""))
	b = newScripted(t, answer(412, "precondition_failed", ""))
	c, _ = cluster(t, a.addr(), b.addr())
	_, err := c.Put(context.Background(), "k", "v", client.IfNoneMatch())
	var ae *client.APIError
	if !errors.Is(err, client.ErrOutcomeUnknown) || !errors.Is(err, client.ErrPreconditionFailed) ||
		!errors.As(err, &ae) {
		t.Fatalf("Put = %v, want ErrOutcomeUnknown and ErrPreconditionFailed", err)
	}
	if got := b.requests(); len(got) != 1 || got[0] != "PUT /v1/kv/k  *" {
		t.Fatalf("b got %v", got)
	}
}

func TestRetryPreconditionFailedAlone(t *testing.T) {
	a := newScripted(t, answer(412, "precondition_failed", ""))
	c, _ := cluster(t, a.addr())
	_, err := c.Delete(context.Background(), "k", client.IfMatch(1))
	var ae *client.APIError
	if !errors.Is(err, client.ErrPreconditionFailed) || errors.Is(err, client.ErrOutcomeUnknown) ||
		!errors.As(err, &ae) || ae.CurrentVersion != 3 {
		t.Fatalf("Delete = %v (%+v)", err, ae)
	}
	if len(a.requests()) != 1 {
		t.Fatalf("a 412 was retried: %v", a.requests())
	}
}

func TestRetryReads(t *testing.T) {
	a := newScripted(t, cut)
	b := newScripted(t, answer(504, "x", ""), answer(200, "", ""))
	c, _ := cluster(t, a.addr(), b.addr())
	kv, err := c.Get(context.Background(), "k")
	if err != nil || kv.Value != "v" {
		t.Fatalf("Get = %+v, %v", kv, err)
	}
	if len(a.requests()) != 2 || len(b.requests()) != 2 {
		t.Fatalf("reads: a %v, b %v", a.requests(), b.requests())
	}
}

func TestRetryGivesUp(t *testing.T) {
	// Bad input is not retried.
	a := newScripted(t, answer(400, "bad_request", ""))
	c, _ := cluster(t, a.addr())
	if _, err := c.Put(context.Background(), "k", "v"); err == nil || len(a.requests()) != 1 {
		t.Fatalf("Put = %v after %d requests", err, len(a.requests()))
	}
	// Attempts bound the tries.
	a = newScripted(t, answer(503, "no_leader", "1"))
	c, _ = cluster(t, a.addr())
	_, err := c.Put(context.Background(), "k", "v")
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Code != "no_leader" || len(a.requests()) != client.DefaultRetry.Attempts {
		t.Fatalf("Put = %v after %d requests", err, len(a.requests()))
	}
	// A context that ends while waiting ends the call.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Put(ctx, "k", "v"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Put with a cancelled context = %v", err)
	}
	// New's client of one server tries once.
	a = newScripted(t, answer(503, "no_leader", "1"))
	if _, err := client.New(a.addr()).Put(context.Background(), "k", "v"); err == nil || len(a.requests()) != 1 {
		t.Fatalf("New's client: %v after %d requests", err, len(a.requests()))
	}
	if _, err := client.NewCluster(nil); err == nil {
		t.Fatal("NewCluster(nil) accepted")
	}
}
