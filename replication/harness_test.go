package replication

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zkv-dev/zkv/kvstore"
)

// testReplica is a replica server: a real Follower and kvstore behind httptest, with knobs
// to make it unreachable or slow.
type testReplica struct {
	t      testing.TB
	store  *kvstore.Store
	log    *Log
	f      *Follower
	srv    *httptest.Server
	token  string
	down   atomic.Bool  // drop connections (transport errors)
	fail   atomic.Bool  // answer 503
	gate   atomic.Value // chan struct{}: appends wait for it to close when set
	posts  atomic.Int64
	snaps  atomic.Int64
	minIdx atomic.Uint64 // smallest entry index ever applied
}

type replicaOpt func(*testReplica)

func withFresh() replicaOpt           { return func(r *testReplica) { r.freshFollower() } }
func withToken(tok string) replicaOpt { return func(r *testReplica) { r.token = tok } }
func withFollower(fc FollowerConfig) replicaOpt {
	return func(r *testReplica) {
		fc.Store, fc.Log, fc.Logger = r.store, r.log, testLogger(r.t)
		f, err := NewFollower(fc)
		if err != nil {
			r.t.Fatal(err)
		}
		r.f = f
	}
}

func (r *testReplica) freshFollower() {
	f, err := NewFollower(FollowerConfig{Store: r.store, Log: r.log, Fresh: true, Logger: testLogger(r.t)})
	if err != nil {
		r.t.Fatal(err)
	}
	r.f = f
}

func newTestReplica(t testing.TB, opts ...replicaOpt) *testReplica {
	t.Helper()
	st, err := kvstore.New(kvstore.Config{Shards: 4})
	if err != nil {
		t.Fatal(err)
	}
	r := &testReplica{t: t, store: st, log: newLog(t, LogConfig{})}
	r.f, err = NewFollower(FollowerConfig{Store: r.store, Log: r.log, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range opts {
		o(r)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+PathAppend, func(w http.ResponseWriter, req *http.Request) {
		if !r.admit(w, req) {
			return
		}
		r.posts.Add(1)
		if g, ok := r.gate.Load().(chan struct{}); ok && g != nil {
			select {
			case <-g:
			case <-req.Context().Done():
				return
			}
		}
		body, err := DecodeAppend(req.Body, 0)
		if err != nil {
			writeErr(w, err)
			return
		}
		resp, err := r.f.Append(req.Context(), body)
		if err != nil {
			writeErr(w, err)
			return
		}
		for _, e := range body.Entries {
			for {
				old := r.minIdx.Load()
				if old != 0 && old <= e.Index || r.minIdx.CompareAndSwap(old, e.Index) {
					break
				}
			}
		}
		writeJSON(w, http.StatusOK, resp)
	})
	mux.HandleFunc("POST "+PathSnapshot, func(w http.ResponseWriter, req *http.Request) {
		if !r.admit(w, req) {
			return
		}
		body, err := DecodeSnapshotBody(req.Header.Get("Content-Type"), req.Body, 0, SnapshotLimits{}, nil)
		if err != nil {
			writeErr(w, err)
			return
		}
		resp, err := r.f.InstallSnapshot(req.Context(), body)
		if err != nil {
			writeErr(w, err)
			return
		}
		r.snaps.Add(1)
		writeJSON(w, http.StatusOK, resp)
	})
	r.srv = httptest.NewServer(mux)
	t.Cleanup(r.srv.Close)
	return r
}

func (r *testReplica) admit(w http.ResponseWriter, req *http.Request) bool {
	if r.down.Load() {
		hj, ok := w.(http.Hijacker)
		if ok {
			if conn, _, err := hj.Hijack(); err == nil {
				conn.Close()
				return false
			}
		}
		panic(http.ErrAbortHandler)
	}
	if r.fail.Load() {
		writeJSON(w, http.StatusServiceUnavailable, ErrorResponse{Error: ErrorDetail{Code: "unavailable", Message: "try later"}})
		return false
	}
	if r.token != "" && req.Header.Get("Authorization") != "Bearer "+r.token {
		writeJSON(w, http.StatusUnauthorized, ErrorResponse{Error: ErrorDetail{Code: "unauthorized", Message: "bad token"}})
		return false
	}
	return true
}

func (r *testReplica) block() chan struct{} {
	g := make(chan struct{})
	r.gate.Store(g)
	return g
}

func (r *testReplica) unblock(g chan struct{}) {
	r.gate.Store((chan struct{})(nil))
	close(g)
}

func writeErr(w http.ResponseWriter, err error) {
	status, body := ErrorStatus(err)
	writeJSON(w, status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// testLeader is a leader's write path: store, log and fanout.
type testLeader struct {
	store *kvstore.Store
	log   *Log
	fan   *Fanout
	epoch int64
}

func newTestLeader(t testing.TB, cfg Config, logCfg LogConfig) *testLeader {
	t.Helper()
	st, err := kvstore.New(kvstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	l := &testLeader{store: st, log: newLog(t, logCfg), epoch: cfg.Epoch}
	if l.epoch == 0 {
		l.epoch = 1
	}
	cfg.Epoch, cfg.Log, cfg.Snapshot = l.epoch, l.log, st.Snapshot
	if cfg.Self == "" {
		cfg.Self = "leader:1"
	}
	if cfg.Mode == AckAll {
		// This leader applies its writes at once (store.Put): it commits them at once too,
		// and each test asks Wait for the mode it checks.
		cfg.Mode = AckLeader
	}
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	if cfg.RetryWaitMax == 0 {
		cfg.RetryWaitMin, cfg.RetryWaitMax = 2*time.Millisecond, 20*time.Millisecond
	}
	l.fan, err = NewFanout(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.fan.Close() })
	return l
}

func (l *testLeader) put(t testing.TB, key, value string) kvstore.Entry {
	t.Helper()
	e := l.store.Put(key, value, l.epoch)
	if err := l.log.Append(e); err != nil {
		t.Fatal(err)
	}
	l.log.SetApplied(e.Index)
	l.fan.Enqueue(e)
	return e
}

func urls(rs ...*testReplica) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.srv.URL)
	}
	return out
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (l *testLeader) del(t testing.TB, key string) {
	t.Helper()
	e, ok := l.store.Delete(key, l.epoch)
	if !ok {
		return
	}
	if err := l.log.Append(e); err != nil {
		t.Fatal(err)
	}
	l.log.SetApplied(e.Index)
	l.fan.Enqueue(e)
}

func (l *testLeader) lastIndex() uint64 {
	i, _ := l.store.Last()
	return i
}

func (l *testLeader) stats(addr string) ReplicaStats {
	for _, s := range l.fan.Stats() {
		if s.Addr == addr {
			return s
		}
	}
	return ReplicaStats{}
}
