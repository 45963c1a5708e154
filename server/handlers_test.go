package server_test

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zkv-dev/zkv/replication"
	"github.com/zkv-dev/zkv/server"
)

func checkHeaders(t *testing.T, a answer, leader string) {
	t.Helper()
	if _, ok := a.hdr[http.CanonicalHeaderKey(server.HeaderLeader)]; !ok {
		t.Errorf("answer %d lacks %s", a.code, server.HeaderLeader)
	}
	if got := a.hdr.Get(server.HeaderLeader); got != leader {
		t.Errorf("%s = %q, want %q", server.HeaderLeader, got, leader)
	}
	if _, err := strconv.ParseInt(a.hdr.Get(server.HeaderEpoch), 10, 64); err != nil {
		t.Errorf("%s = %q: %v", server.HeaderEpoch, a.hdr.Get(server.HeaderEpoch), err)
	}
}

func TestLeaderPutGetDelete(t *testing.T) {
	c := newFakeCluster()
	n := startNode(t, c, "a")
	n.waitLeading(t)
	epoch := c.epochNow()

	r := put(t, n.url, "dir/sub/key", "v1")
	if r.code != 200 {
		t.Fatalf("PUT: %d %s", r.code, r.body)
	}
	checkHeaders(t, r, n.addr)
	m := r.json(t)
	if m["key"] != "dir/sub/key" || m["value"] != "v1" || m["version"] != 1.0 || m["epoch"] != float64(epoch) || m["leader"] != n.addr {
		t.Fatalf("PUT answer %s", r.body)
	}
	if r := put(t, n.url, "dir/sub/key", "v2"); r.json(t)["version"] != 2.0 {
		t.Fatalf("second PUT: %s", r.body)
	}
	r = do(t, http.MethodGet, n.url+"/v1/kv/dir/sub/key", "", "")
	checkHeaders(t, r, n.addr)
	if m := r.json(t); r.code != 200 || m["value"] != "v2" || m["found"] != true || m["version"] != 2.0 {
		t.Fatalf("GET: %d %s", r.code, r.body)
	}
	// %2F in the path is a '/' of the key.
	if r := do(t, http.MethodGet, n.url+"/v1/kv/dir%2Fsub%2Fkey", "", ""); r.json(t)["value"] != "v2" {
		t.Fatalf("GET escaped: %s", r.body)
	}
	r = do(t, http.MethodGet, n.url+"/read?key=dir/sub/key", "", "")
	if m := r.json(t); m["key"] != "dir/sub/key" || m["value"] != "v2" {
		t.Fatalf("/read: %s", r.body)
	}
	r = do(t, http.MethodPost, n.url+"/update", "application/json", `{"key":"k2","value":"x"}`)
	if r.code != 200 || r.json(t)["status"] != "updated" {
		t.Fatalf("/update: %d %s", r.code, r.body)
	}
	r = do(t, http.MethodDelete, n.url+"/v1/kv/dir/sub/key", "", "")
	if m := r.json(t); r.code != 200 || m["found"] != true || m["key"] != "dir/sub/key" {
		t.Fatalf("DELETE: %d %s", r.code, r.body)
	}
	r = do(t, http.MethodGet, n.url+"/v1/kv/dir/sub/key", "", "")
	if m := r.json(t); m["found"] != false || m["value"] != "" {
		t.Fatalf("GET after DELETE: %s", r.body)
	}
	if r := do(t, http.MethodDelete, n.url+"/v1/kv/dir/sub/key", "", ""); r.json(t)["found"] != false {
		t.Fatalf("second DELETE: %s", r.body)
	}
	if r := do(t, http.MethodGet, n.url+"/read?key=nope", "", ""); r.code != 200 || r.json(t)["value"] != "" {
		t.Fatalf("/read absent: %s", r.body)
	}
}

func TestStatusShape(t *testing.T) {
	c := newFakeCluster()
	n := startNode(t, c, "a")
	n.waitRole(t, "leader")
	other := c.remote("b", "127.0.0.1:1")
	defer other.Close()
	r := do(t, http.MethodGet, n.url+"/v1/status", "", "")
	m := r.json(t)
	for _, k := range []string{"id", "address", "role", "leader", "epoch", "keys", "members", "applied", "in_sync", "incarnation", "alarms"} {
		if _, ok := m[k]; !ok {
			t.Errorf("status lacks %q: %s", k, r.body)
		}
	}
	if len(m) != 11 {
		t.Errorf("status has extra fields: %s", r.body)
	}
	st := n.status(t)
	if st.ID != "a" || st.Address != n.addr || st.Leader.ID != "a" || st.Leader.Address != n.addr || st.Epoch != c.epochNow() {
		t.Errorf("status %+v", st)
	}
	if len(st.Members) != 2 || st.Members[0].ID != "a" || st.Members[1].Address != "127.0.0.1:1" ||
		!strings.HasPrefix(st.Members[0].Znode, "/election/server") {
		t.Errorf("members %+v", st.Members)
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		if r := do(t, http.MethodGet, n.url+path, "", ""); r.code != 200 {
			t.Errorf("%s: %d %s", path, r.code, r.body)
		}
	}
	metrics := func() string { return string(do(t, http.MethodGet, n.url+"/metrics", "", "").body) }
	waitFor(t, "replica b in the metrics", func() bool {
		return strings.Contains(metrics(), `zkv_replication_lag_entries{replica="127.0.0.1:1"}`)
	})
	body := metrics()
	for _, metric := range []string{"zkv_http_requests_total", `zkv_role{role="leader"} 1`, "zkv_epoch", "zkv_keys",
		`route="/v1/status"`} {
		if !strings.Contains(body, metric) {
			t.Errorf("metrics lack %s", metric)
		}
	}
}

// stubLeader is an httptest server standing in for the leader: it records what reaches it.
type stubLeader struct {
	srv  *httptest.Server
	mu   sync.Mutex
	reqs []stubReq
}

type stubReq struct {
	method, uri, forwarded, ct, body string
}

func newStubLeader(t *testing.T) *stubLeader {
	s := &stubLeader{}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/internal/v1/stream" {
			http.NotFound(w, r) // as a server before the stream: the follower forwards over HTTP
			return
		}
		body := new(strings.Builder)
		_, _ = io.Copy(body, r.Body)
		s.mu.Lock()
		s.reqs = append(s.reqs, stubReq{r.Method, r.RequestURI, r.Header.Get(server.HeaderForwarded), r.Header.Get("Content-Type"), body.String()})
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(`{"from":"stub"}`))
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *stubLeader) addr() string { return strings.TrimPrefix(s.srv.URL, "http://") }

func (s *stubLeader) requests() []stubReq {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]stubReq(nil), s.reqs...)
}

func TestFollowerForwardsToLeader(t *testing.T) {
	c := newFakeCluster()
	stub := newStubLeader(t)
	le := c.remote("leader", stub.addr())
	defer le.Close()
	n := startNode(t, c, "f")
	n.waitRole(t, "follower")

	cases := []struct {
		method, path, ct, body string
	}{
		{http.MethodPut, "/v1/kv/a%2Fb/c", "application/json", `{"value":"v"}`},
		{http.MethodDelete, "/v1/kv/x", "", ""},
		{http.MethodPost, "/update", "application/json", `{"key":"k","value":"v"}`},
		{http.MethodGet, "/v1/kv/x?consistency=leader", "", ""},
		{http.MethodGet, "/read?key=x&consistency=leader", "", ""},
	}
	for i, tc := range cases {
		r := do(t, tc.method, n.url+tc.path, tc.ct, tc.body)
		if r.code != 200 || r.json(t)["from"] != "stub" {
			t.Fatalf("%s %s: %d %s", tc.method, tc.path, r.code, r.body)
		}
		checkHeaders(t, r, stub.addr())
		got := stub.requests()
		if len(got) != i+1 {
			t.Fatalf("%s %s: the leader got %d requests, want %d", tc.method, tc.path, len(got), i+1)
		}
		req := got[i]
		if req.method != tc.method || req.uri != tc.path || req.forwarded != "f" || req.body != tc.body {
			t.Errorf("leader got %+v for %s %s", req, tc.method, tc.path)
		}
	}
	// A local read stays local.
	if r := do(t, http.MethodGet, n.url+"/v1/kv/x", "", ""); r.code != 200 || r.json(t)["found"] != false {
		t.Fatalf("local GET: %d %s", r.code, r.body)
	}
	if len(stub.requests()) != len(cases) {
		t.Fatal("a local read reached the leader")
	}
	// A request forwarded already is not forwarded again: 503 with Retry-After.
	r := do(t, http.MethodPut, n.url+"/v1/kv/x", "application/json", `{"value":"v"}`, server.HeaderForwarded, "someone")
	if r.code != 503 || r.hdr.Get("Retry-After") == "" || r.errCode(t) != server.CodeNotLeader {
		t.Fatalf("forwarded twice: %d %v %s", r.code, r.hdr, r.body)
	}
	if len(stub.requests()) != len(cases) {
		t.Fatal("a forwarded request was forwarded again")
	}
	if n.store.Len() != 0 {
		t.Fatal("a follower wrote to its own store")
	}
}

func TestNoLeader(t *testing.T) {
	c := newFakeCluster()
	n := startNode(t, c, "a")
	n.waitRole(t, "leader")
	n.e.setConnected(false) // session lost: no leader known
	n.waitRole(t, "candidate")
	for _, tc := range []struct{ method, path, body string }{
		{http.MethodPut, "/v1/kv/k", `{"value":"v"}`},
		{http.MethodDelete, "/v1/kv/k", ""},
		{http.MethodPost, "/update", `{"key":"k","value":"v"}`},
		{http.MethodGet, "/v1/kv/k?consistency=leader", ""},
	} {
		r := do(t, tc.method, n.url+tc.path, "application/json", tc.body)
		if r.code != 503 || r.hdr.Get("Retry-After") == "" || r.errCode(t) != server.CodeNoLeader {
			t.Errorf("%s %s without leader: %d %v %s", tc.method, tc.path, r.code, r.hdr, r.body)
		}
		checkHeaders(t, r, "")
	}
	if r := do(t, http.MethodGet, n.url+"/readyz", "", ""); r.code != 503 {
		t.Errorf("readyz without leader: %d", r.code)
	}
	if r := do(t, http.MethodGet, n.url+"/healthz", "", ""); r.code != 200 {
		t.Errorf("healthz: %d", r.code)
	}
	if n.store.Len() != 0 {
		t.Fatal("store changed")
	}
}

func TestNotReplicated(t *testing.T) {
	c := newFakeCluster()
	repls := &fakeRepls{setup: func(r *fakeRepl) { r.waitErr = errors.New("replica b: timeout") }}
	n := startNode(t, c, "a", withRepls(repls))
	n.waitRole(t, "leader")
	waitFor(t, "a fan-out", func() bool { return repls.last() != nil })
	r := put(t, n.url, "k", "v")
	// Logged, so it may still commit: 504, its position given, and no Retry-After (a blind
	// retry could apply it twice).
	if r.code != 504 || r.errCode(t) != server.CodeNotReplicated || r.hdr.Get("Retry-After") != "" {
		t.Fatalf("PUT without acks: %d %v %s", r.code, r.hdr, r.body)
	}
	if e := r.json(t)["error"].(map[string]any); e["index"] != 2.0 || e["epoch"] != float64(c.epochNow()) ||
		r.hdr.Get(server.HeaderWriteIndex) != "2" || r.hdr.Get(server.HeaderWriteEpoch) != strconv.FormatInt(c.epochNow(), 10) {
		t.Fatalf("PUT without acks does not say where it was logged: %v %s", r.hdr, r.body)
	}
	if got := keyed(repls.last().entries); len(got) != 1 || got[0].Key != "k" || got[0].Index != 2 {
		t.Fatalf("enqueued %+v", got)
	}
}

func TestFencedLeaderStepsDown(t *testing.T) {
	c := newFakeCluster()
	repls := &fakeRepls{}
	n := startNode(t, c, "a", withRepls(repls))
	n.waitLeading(t)
	b := c.remote("b", "127.0.0.1:1")
	defer b.Close()
	first := repls.last()
	first.mu.Lock()
	first.waitErr = replication.ErrFenced
	first.mu.Unlock()
	close(first.deposed)

	r := put(t, n.url, "k", "v")
	if r.code == 200 {
		t.Fatalf("a fenced leader answered 200: %s", r.body)
	}
	// Logged before the leader learnt it was deposed: a successor may adopt it, so its
	// outcome is unknown (504), not "nothing applied" (503). Had the leader stepped down
	// first, nothing was logged and the answer is a 503 (b is unreachable).
	first.mu.Lock()
	logged := len(keyed(first.entries))
	first.mu.Unlock()
	switch {
	case r.code == 504 && r.errCode(t) == server.CodeOutcomeUnknown && r.hdr.Get(server.HeaderWriteIndex) != "":
	case r.code == 503 && r.hdr.Get("Retry-After") != "" && logged == 0:
	default:
		t.Fatalf("fenced PUT: %d %v %s", r.code, r.hdr, r.body)
	}
	// It resigned and joined again, behind b: b leads now.
	waitFor(t, "a to step down and rejoin", func() bool {
		j, rs := n.e.counts()
		return rs >= 1 && j >= 2
	})
	n.waitRole(t, "follower")
	if st := n.status(t); st.Leader.ID != "b" || len(st.Members) != 2 || st.Members[1].ID != "a" {
		t.Fatalf("after stepping down: %+v", st)
	}
	first.mu.Lock()
	closed := first.closed
	first.mu.Unlock()
	if !closed {
		t.Fatal("the fenced fan-out was not closed")
	}
}

func TestMethodNotAllowedAndNotFound(t *testing.T) {
	c := newFakeCluster()
	n := startNode(t, c, "a")
	n.waitLeading(t)
	for _, tc := range []struct {
		method, path string
		code         int
		errCode      string
	}{
		{http.MethodPost, "/v1/kv/k", 405, server.CodeMethodNotAllowed},
		{http.MethodPatch, "/v1/kv/k", 405, server.CodeMethodNotAllowed},
		{http.MethodPut, "/v1/status", 405, server.CodeMethodNotAllowed},
		{http.MethodGet, "/update", 405, server.CodeMethodNotAllowed},
		{http.MethodPost, "/read?key=k", 405, server.CodeMethodNotAllowed},
		{http.MethodGet, "/nope", 404, server.CodeNotFound},
	} {
		r := do(t, tc.method, n.url+tc.path, "application/json", `{"value":"v"}`)
		if r.code != tc.code || r.errCode(t) != tc.errCode {
			t.Errorf("%s %s: %d %s", tc.method, tc.path, r.code, r.body)
		}
		checkHeaders(t, r, n.addr)
	}
}

// A leader read (?consistency=leader) answers only once the replicas confirm this leader
// (Barrier); a leader whose replicas have seen a newer epoch answers 503, never its own
// possibly unacknowledged copy.
func TestLeaderReadNeedsConfirmation(t *testing.T) {
	c := newFakeCluster()
	repls := &fakeRepls{}
	n := startNode(t, c, "a", withRepls(repls))
	n.waitLeading(t)
	waitFor(t, "a fan-out", func() bool { return repls.last() != nil })
	if r := put(t, n.url, "k", "v"); r.code != 200 {
		t.Fatalf("PUT: %d %s", r.code, r.body)
	}
	fr := repls.last()
	for _, path := range []string{"/v1/kv/k?consistency=leader", "/read?key=k&consistency=leader"} {
		if r := do(t, http.MethodGet, n.url+path, "", ""); r.code != 200 || !strings.Contains(string(r.body), `"v"`) {
			t.Fatalf("GET %s: %d %s", path, r.code, r.body)
		}
	}
	fr.mu.Lock()
	calls := fr.barriers
	fr.barrierErr = replication.ErrFenced
	fr.mu.Unlock()
	if calls != 2 {
		t.Fatalf("leader reads made %d barrier rounds, want 2", calls)
	}
	for _, path := range []string{"/v1/kv/k?consistency=leader", "/read?key=k&consistency=leader"} {
		r := do(t, http.MethodGet, n.url+path, "", "")
		if r.code != 503 || r.hdr.Get("Retry-After") == "" {
			t.Fatalf("GET %s on a deposed leader: %d %s", path, r.code, r.body)
		}
	}
	// A local read still answers from the local copy.
	if r := do(t, http.MethodGet, n.url+"/v1/kv/k", "", ""); r.code != 200 {
		t.Fatalf("local GET: %d %s", r.code, r.body)
	}
}

// TestSlowBodyIsCut: a PUT whose body trickles in is cut once ReadTimeout has passed; it
// does not hold a connection open for as long as the client likes.
func TestSlowBodyIsCut(t *testing.T) {
	c := newFakeCluster()
	n := startNode(t, c, "a", withConfig(func(cfg *server.Config) { cfg.ReadTimeout = 300 * time.Millisecond }))
	n.waitLeading(t)
	conn, err := net.Dial("tcp", n.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	fmt.Fprintf(conn, "PUT /v1/kv/slow HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n")
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		_, _ = io.Copy(io.Discard, conn) // returns when the server closes the connection
	}()
	for i := 0; i < 50; i++ { // 5s of one byte every 100ms, unless cut
		select {
		case <-closed:
			if took := time.Since(start); took > 2*time.Second {
				t.Fatalf("cut after %v, want about the 300ms read timeout", took)
			}
			if r := do(t, http.MethodGet, n.url+"/v1/kv/slow", "", ""); r.json(t)["found"] != false {
				t.Fatalf("a cut body wrote something: %s", r.body)
			}
			return
		case <-time.After(100 * time.Millisecond):
		}
		if _, err := conn.Write([]byte(" ")); err != nil {
			break // cut: the next select sees it
		}
	}
	select {
	case <-closed:
	case <-time.After(time.Second):
		t.Fatal("a body trickling in for 5s was never cut")
	}
}
