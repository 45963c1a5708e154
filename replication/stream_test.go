package replication

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zkv-dev/zkv/kvstore"
)

// streamReplica is a replica that serves the stream (and, when http is set, the HTTP
// append route too): a real Follower and kvstore behind httptest.
type streamReplica struct {
	store   *kvstore.Store
	f       *Follower
	srv     *httptest.Server
	ss      *StreamServer
	appends atomic.Int64 // appends served on the stream
	posts   atomic.Int64 // appends served over HTTP
	delay   atomic.Int64 // nanoseconds each application call waits
}

func (r *streamReplica) Append(ctx context.Context, req AppendRequest) (AppendResponse, error) {
	r.appends.Add(1)
	return r.f.Append(ctx, req)
}

// Call echoes the payload, reversed in kind, after the configured delay.
func (r *streamReplica) Call(ctx context.Context, kind byte, payload []byte) (byte, []byte) {
	if d := time.Duration(r.delay.Load()); d > 0 {
		select {
		case <-time.After(d):
		case <-ctx.Done():
		}
	}
	return kind + 1, payload
}

func newStreamReplica(t *testing.T, token string, stream, http bool) *streamReplica {
	t.Helper()
	st, err := kvstore.New(kvstore.Config{Shards: 4})
	if err != nil {
		t.Fatal(err)
	}
	r := &streamReplica{store: st}
	r.f, err = NewFollower(FollowerConfig{Store: st, Log: newLog(t, LogConfig{}), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	r.ss = &StreamServer{Handler: r, Token: token, Logger: testLogger(t)}
	mux := newMux(r, token, stream, http)
	r.srv = httptest.NewServer(mux)
	t.Cleanup(func() {
		r.ss.Close() // hijacked connections: httptest's Close does not end them
		r.srv.Close()
	})
	return r
}

func newMux(r *streamReplica, token string, stream, withHTTP bool) *http.ServeMux {
	mux := http.NewServeMux()
	if stream {
		mux.Handle("GET "+PathStream, r.ss)
	}
	if withHTTP {
		mux.HandleFunc("POST "+PathAppend, func(w http.ResponseWriter, req *http.Request) {
			if token != "" && req.Header.Get("Authorization") != "Bearer "+token {
				writeJSON(w, http.StatusUnauthorized, ErrorResponse{Error: ErrorDetail{Code: "unauthorized", Message: "bad token"}})
				return
			}
			body, err := DecodeAppend(req.Body, 0)
			if err != nil {
				writeErr(w, err)
				return
			}
			r.posts.Add(1)
			resp, err := r.f.Append(req.Context(), body)
			if err != nil {
				writeErr(w, err)
				return
			}
			writeJSON(w, http.StatusOK, resp)
		})
	}
	return mux
}

func newTestStreamTransport(t *testing.T, token string) *StreamTransport {
	t.Helper()
	h, err := NewHTTPTransport(HTTPTransportConfig{Token: token, RetryMax: -1})
	if err != nil {
		t.Fatal(err)
	}
	st, err := NewStreamTransport(StreamTransportConfig{Token: token, HTTP: h, RequestTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		st.Close()
		h.Close()
	})
	return st
}

// A Fanout over the default transport replicates to stream replicas on the stream, and
// their stores end up equal to the leader's.
func TestFanoutOverStream(t *testing.T) {
	const token = "s3cret"
	r1, r2 := newStreamReplica(t, token, true, false), newStreamReplica(t, token, true, false)
	l := newTestLeader(t, Config{Token: token, Mode: AckAll, HeartbeatInterval: -1}, LogConfig{})
	l.fan.SetReplicas([]string{r1.srv.URL, r2.srv.URL})
	for i := range 200 {
		l.put(t, fmt.Sprintf("k%d", i), "v")
	}
	want := l.lastIndex()
	for _, r := range []*streamReplica{r1, r2} {
		eventually(t, "replica applies every write", func() bool { i, _ := r.store.Last(); return i == want })
		if r.appends.Load() == 0 {
			t.Fatal("no append went over the stream")
		}
		if r.store.Len() != 200 {
			t.Fatalf("replica holds %d keys, want 200", r.store.Len())
		}
	}
}

// The stream carries the same refusals as HTTP: a stale epoch deposes the leader.
func TestStreamRefusalDeposes(t *testing.T) {
	r := newStreamReplica(t, "", true, false)
	r.f.ObserveEpoch(9)
	l := newTestLeader(t, Config{Mode: AckAll, HeartbeatInterval: -1}, LogConfig{})
	l.fan.SetReplicas([]string{r.srv.URL})
	select {
	case <-l.fan.Deposed():
	case <-time.After(10 * time.Second):
		t.Fatal("not deposed by a replica fenced at a newer epoch")
	}
	tr := newTestStreamTransport(t, "")
	_, err := tr.Append(context.Background(), r.srv.URL, AppendRequest{Epoch: 1, Leader: "x"})
	var stale *StaleEpochError
	if !errors.As(err, &stale) || stale.Epoch != 9 {
		t.Fatalf("append below the fence: %v, want *StaleEpochError{Epoch: 9}", err)
	}
}

// Without the right token the upgrade is refused, and so is the HTTP append it falls
// back to: nothing reaches the Follower.
func TestStreamNeedsToken(t *testing.T) {
	r := newStreamReplica(t, "right", true, true)
	tr := newTestStreamTransport(t, "wrong")
	_, err := tr.Append(context.Background(), r.srv.URL, AppendRequest{Epoch: 1, Leader: "x", Entries: []kvstore.Entry{{Key: "k", Index: 1, Epoch: 1}}})
	var refused *RefusedError
	if !errors.As(err, &refused) || refused.Status != http.StatusUnauthorized {
		t.Fatalf("append with a wrong token: %v, want a 401 refusal", err)
	}
	if r.appends.Load() != 0 || r.posts.Load() != 0 || r.store.Len() != 0 {
		t.Fatal("an append with a wrong token reached the follower")
	}
}

// A replica without the stream route (an older server) gets its appends over HTTP.
func TestStreamFallsBackToHTTP(t *testing.T) {
	r := newStreamReplica(t, "", false, true)
	tr := newTestStreamTransport(t, "")
	for i := uint64(1); i <= 3; i++ {
		req := AppendRequest{Epoch: 1, Leader: "x", PrevIndex: i - 1, PrevEpoch: 1, Commit: i,
			Entries: []kvstore.Entry{{Key: fmt.Sprint("k", i), Index: i, Epoch: 1}}}
		if i == 1 {
			req.PrevEpoch = 0
		}
		if _, err := tr.Append(context.Background(), r.srv.URL, req); err != nil {
			t.Fatal(err)
		}
	}
	if r.posts.Load() != 3 || r.appends.Load() != 0 || r.store.Len() != 3 {
		t.Fatalf("posts %d, stream appends %d, keys %d; want 3, 0, 3", r.posts.Load(), r.appends.Load(), r.store.Len())
	}
}

// Calls are pipelined on one connection: concurrent calls whose answers come back in
// another order each get their own answer.
func TestStreamPipelinedCalls(t *testing.T) {
	r := newStreamReplica(t, "", true, false)
	c := NewStreamClient(StreamClientConfig{})
	defer c.Close()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			payload := []byte(fmt.Sprintf("call %d", i))
			kind, got, err := c.Call(context.Background(), r.srv.URL, KindUser, payload)
			switch {
			case err != nil:
				errs <- err
			case kind != KindUser+1 || !bytes.Equal(got, payload):
				errs <- fmt.Errorf("call %d: got kind %d %q", i, kind, got)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	c.mu.Lock()
	n := len(c.conns)
	c.mu.Unlock()
	if n != 1 {
		t.Fatalf("%d connections, want one stream", n)
	}
}

// A call that times out drops the connection (its peer may be gone without a reset); the
// next call dials a new one and succeeds.
func TestStreamTimeoutRedials(t *testing.T) {
	r := newStreamReplica(t, "", true, false)
	c := NewStreamClient(StreamClientConfig{})
	defer c.Close()
	r.delay.Store(int64(time.Hour))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	_, _, err := c.Call(ctx, r.srv.URL, KindUser, []byte("slow"))
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrStreamNotSent) {
		t.Fatalf("slow call: %v, want a sent call that timed out", err)
	}
	r.delay.Store(0)
	if _, got, err := c.Call(context.Background(), r.srv.URL, KindUser, []byte("fast")); err != nil || string(got) != "fast" {
		t.Fatalf("call after a timeout: %q, %v", got, err)
	}
}

// A peer that is not there: the error says nothing was sent.
func TestStreamDialFailureNotSent(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	addr := srv.URL
	srv.Close()
	c := NewStreamClient(StreamClientConfig{})
	defer c.Close()
	_, _, err := c.Call(context.Background(), addr, KindUser, nil)
	if !errors.Is(err, ErrStreamNotSent) {
		t.Fatalf("call to a closed port: %v, want ErrStreamNotSent", err)
	}
}

// A frame above the server's limit ends the stream rather than being read into memory.
func TestStreamFrameLimit(t *testing.T) {
	r := newStreamReplica(t, "", true, false)
	r.ss.MaxFrameBytes = 16
	c := NewStreamClient(StreamClientConfig{})
	defer c.Close()
	_, _, err := c.Call(context.Background(), r.srv.URL, KindUser, make([]byte, 64))
	if err == nil {
		t.Fatal("a frame above the limit was answered")
	}
}

// TestStreamOverTLS: with a TLS config the stream's connection is a TLS one (the peers'
// listeners speak TLS only); without it, the same call to a TLS listener fails.
func TestStreamOverTLS(t *testing.T) {
	r := &streamReplica{}
	r.ss = &StreamServer{Handler: r, Logger: testLogger(t)}
	mux := http.NewServeMux()
	mux.Handle("GET "+PathStream, r.ss)
	srv := httptest.NewTLSServer(mux)
	t.Cleanup(func() {
		r.ss.Close()
		srv.Close()
	})
	tlsCfg := srv.Client().Transport.(*http.Transport).TLSClientConfig
	c := NewStreamClient(StreamClientConfig{TLS: tlsCfg})
	defer c.Close()
	kind, got, err := c.Call(context.Background(), srv.URL, KindUser, []byte("over tls"))
	if err != nil || kind != KindUser+1 || string(got) != "over tls" {
		t.Fatalf("call over TLS: kind %d %q %v", kind, got, err)
	}
	plain := NewStreamClient(StreamClientConfig{DialTimeout: time.Second})
	defer plain.Close()
	if _, _, err := plain.Call(context.Background(), srv.URL, KindUser, []byte("x")); err == nil {
		t.Fatal("a plain stream to a TLS listener worked")
	}
}

// gatedHandler holds every application call until release is closed, and records how many
// run at once.
type gatedHandler struct {
	release       chan struct{}
	running, peak atomic.Int64
	served        atomic.Int64
}

func (h *gatedHandler) Append(context.Context, AppendRequest) (AppendResponse, error) {
	return AppendResponse{}, errors.New("no appends here")
}

func (h *gatedHandler) Call(ctx context.Context, kind byte, payload []byte) (byte, []byte) {
	n := h.running.Add(1)
	for p := h.peak.Load(); n > p && !h.peak.CompareAndSwap(p, n); p = h.peak.Load() {
	}
	<-h.release
	h.running.Add(-1)
	h.served.Add(1)
	return kind + 1, payload
}

// At most MaxConcurrent calls of a stream run at once; the rest wait (the server stops
// reading) and are served as workers free up, every one answered.
func TestStreamServerBoundsConcurrentCalls(t *testing.T) {
	h := &gatedHandler{release: make(chan struct{})}
	var once sync.Once
	release := func() { once.Do(func() { close(h.release) }) }
	ss := &StreamServer{Handler: h, MaxConcurrent: 3, Logger: testLogger(t)}
	mux := http.NewServeMux()
	mux.Handle("GET "+PathStream, ss)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	defer ss.Close()
	c := NewStreamClient(StreamClientConfig{})
	defer c.Close()
	defer release() // first of the deferred: a failed check leaves no call blocked
	const calls = 10
	errs := make(chan error, calls)
	for i := range calls {
		go func() {
			payload := []byte(fmt.Sprintf("call %d", i))
			kind, got, err := c.Call(context.Background(), srv.URL, KindUser, payload)
			if err == nil && (kind != KindUser+1 || !bytes.Equal(got, payload)) {
				err = fmt.Errorf("call %d: got kind %d %q", i, kind, got)
			}
			errs <- err
		}()
	}
	deadline := time.Now().Add(10 * time.Second)
	for h.running.Load() < 3 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // a fourth call, were it let in, would be running by now
	if got := h.running.Load(); got != 3 {
		t.Fatalf("%d calls running, want MaxConcurrent 3", got)
	}
	release()
	for range calls {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if h.served.Load() != calls || h.peak.Load() != 3 {
		t.Fatalf("served %d calls, at most %d at once; want %d, 3", h.served.Load(), h.peak.Load(), calls)
	}
}
