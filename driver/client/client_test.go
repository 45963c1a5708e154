package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/zkv-dev/zkv/driver/client"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeServer emulates the public API of one zkv server that leads, well enough for the client.
type fakeServer struct {
	mu      sync.Mutex
	kv      map[string]client.KV
	paths   []string // escaped request paths seen
	auth    []string
	noLead  bool // writes answer 503 with Retry-After
	leader  string
	epoch   int64
	srv     *httptest.Server
	queries []string
}

func newFake(t *testing.T) *fakeServer {
	f := &fakeServer{kv: map[string]client.KV{}, leader: "10.0.0.1:5000", epoch: 7}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeServer) addr() string { return strings.TrimPrefix(f.srv.URL, "http://") }

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func apiErr(w http.ResponseWriter, code int, c, msg string) {
	writeJSON(w, code, map[string]any{"error": map[string]string{"code": c, "message": msg}})
}

func (f *fakeServer) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.paths = append(f.paths, r.URL.EscapedPath())
	f.auth = append(f.auth, r.Header.Get("Authorization"))
	f.queries = append(f.queries, r.URL.RawQuery)
	w.Header().Set(client.HeaderLeader, f.leader)
	w.Header().Set(client.HeaderEpoch, "7")
	switch {
	case strings.HasPrefix(r.URL.Path, "/v1/kv/"):
		key := strings.TrimPrefix(r.URL.Path, "/v1/kv/")
		switch r.Method {
		case http.MethodGet:
			kv, ok := f.kv[key]
			if !ok {
				writeJSON(w, 200, map[string]any{"key": key, "value": "", "found": false})
				return
			}
			writeJSON(w, 200, map[string]any{"key": key, "value": kv.Value, "found": true, "version": kv.Version})
		case http.MethodPut:
			if f.noLead {
				w.Header().Set("Retry-After", "2")
				apiErr(w, 503, "no_leader", "no leader can take the write")
				return
			}
			var in struct {
				Value *string `json:"value"`
			}
			if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.Value == nil {
				apiErr(w, 400, "bad_request", "body must be {\"value\":...}")
				return
			}
			kv := f.kv[key]
			kv.Key, kv.Value, kv.Version = key, *in.Value, kv.Version+1
			f.kv[key] = kv
			writeJSON(w, 200, map[string]any{"key": key, "value": kv.Value, "version": kv.Version, "epoch": f.epoch, "leader": f.leader})
		case http.MethodDelete:
			_, ok := f.kv[key]
			delete(f.kv, key)
			writeJSON(w, 200, map[string]any{"key": key, "found": ok})
		default:
			apiErr(w, 405, "method_not_allowed", r.Method)
		}
	case r.URL.Path == "/v1/status":
		writeJSON(w, 200, map[string]any{
			"id": "a", "address": f.leader, "role": "leader",
			"leader": map[string]string{"id": "a", "address": f.leader}, "epoch": f.epoch, "keys": len(f.kv),
			"members": []map[string]string{{"id": "a", "address": f.leader, "znode": "/election/server0000000003"}},
		})
	case r.URL.Path == "/read":
		writeJSON(w, 200, map[string]string{"key": r.URL.Query().Get("key"), "value": f.kv[r.URL.Query().Get("key")].Value})
	case r.URL.Path == "/update" && r.Method == http.MethodPost:
		var in struct{ Key, Value string }
		_ = json.NewDecoder(r.Body).Decode(&in)
		f.kv[in.Key] = client.KV{Key: in.Key, Value: in.Value, Version: f.kv[in.Key].Version + 1}
		writeJSON(w, 200, map[string]string{"status": "updated"})
	case r.URL.Path == "/metrics":
		_, _ = w.Write([]byte("zkv_keys 1\n"))
	case r.URL.Path == "/healthz":
		w.WriteHeader(200)
	case r.URL.Path == "/readyz":
		apiErr(w, 503, "not_ready", "no ZooKeeper session")
	default:
		http.NotFound(w, r) // a plain-text answer, not the API's error shape
	}
}

func TestPutGetDelete(t *testing.T) {
	f := newFake(t)
	c := client.New(f.addr())
	defer func() { _ = c.Close() }()
	ctx := context.Background()

	kv, err := c.Get(ctx, "k")
	if err != nil || kv.Found || kv.Value != "" || kv.Key != "k" {
		t.Fatalf("Get absent = %+v, %v", kv, err)
	}
	if kv.Leader != "10.0.0.1:5000" || kv.Epoch != 7 {
		t.Fatalf("Get absent leader/epoch from headers = %q/%d", kv.Leader, kv.Epoch)
	}
	kv, err = c.Put(ctx, "k", "v1")
	if err != nil || kv.Version != 1 || kv.Leader != "10.0.0.1:5000" || kv.Epoch != 7 || !kv.Found || kv.Value != "v1" {
		t.Fatalf("Put = %+v, %v", kv, err)
	}
	kv, err = c.Get(ctx, "k")
	if err != nil || !kv.Found || kv.Value != "v1" || kv.Version != 1 {
		t.Fatalf("Get = %+v, %v", kv, err)
	}
	found, err := c.Delete(ctx, "k")
	if err != nil || !found {
		t.Fatalf("Delete = %v, %v", found, err)
	}
	found, err = c.Delete(ctx, "k")
	if err != nil || found {
		t.Fatalf("Delete again = %v, %v", found, err)
	}
}

func TestKeyEscaping(t *testing.T) {
	f := newFake(t)
	c := client.New("http://" + f.addr() + "/")
	ctx := context.Background()
	cases := map[string]string{
		"a/b/c":      "/v1/kv/a/b/c",
		"sp ace/q?x": "/v1/kv/sp%20ace/q%3Fx",
		"pct%/hash#": "/v1/kv/pct%25/hash%23",
		"../etc":     "/v1/kv/%2E%2E/etc",
		"./x/.":      "/v1/kv/%2E/x/%2E",
		"ünï/κλειδί": "/v1/kv/%C3%BCn%C3%AF/%CE%BA%CE%BB%CE%B5%CE%B9%CE%B4%CE%AF",
	}
	for key, want := range cases {
		got, err := client.KeyPath(key)
		if err != nil || got != want {
			t.Errorf("KeyPath(%q) = %q, %v; want %q", key, got, err, want)
		}
		if _, err := c.Put(ctx, key, "v"); err != nil {
			t.Fatalf("Put(%q): %v", key, err)
		}
		f.mu.Lock()
		sent := f.paths[len(f.paths)-1]
		_, stored := f.kv[key]
		f.mu.Unlock()
		if sent != want {
			t.Errorf("Put(%q) sent path %q, want %q", key, sent, want)
		}
		if !stored {
			t.Errorf("Put(%q): server decoded another key", key)
		}
		kv, err := c.Get(ctx, key)
		if err != nil || kv.Value != "v" || kv.Key != key {
			t.Errorf("Get(%q) = %+v, %v", key, kv, err)
		}
	}
	if _, err := c.Get(ctx, ""); !errors.Is(err, client.ErrInvalidKey) {
		t.Fatalf("Get(\"\") err = %v, want ErrInvalidKey", err)
	}
	if err := c.Update(ctx, "", "v"); !errors.Is(err, client.ErrInvalidKey) {
		t.Fatalf("Update(\"\") err = %v, want ErrInvalidKey", err)
	}
}

func TestLeaderReadAndToken(t *testing.T) {
	f := newFake(t)
	c := client.New(f.addr(), client.WithToken("s3cret"))
	if _, err := c.Get(context.Background(), "k", client.Leader()); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.queries[0] != "consistency=leader" {
		t.Fatalf("query = %q", f.queries[0])
	}
	if f.auth[0] != "Bearer s3cret" {
		t.Fatalf("Authorization = %q", f.auth[0])
	}
}

func TestAPIErrors(t *testing.T) {
	f := newFake(t)
	c := client.New(f.addr())
	ctx := context.Background()

	f.mu.Lock()
	f.noLead = true
	f.mu.Unlock()
	_, err := c.Put(ctx, "k", "v")
	var ae *client.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("Put with no leader: %v, want *APIError", err)
	}
	if ae.StatusCode != 503 || ae.Code != "no_leader" || ae.RetryAfter != 2*time.Second || !ae.Temporary() || ae.Leader != "10.0.0.1:5000" {
		t.Fatalf("APIError = %+v", ae)
	}
	if !strings.Contains(ae.Error(), "503 no_leader: no leader can take the write") {
		t.Fatalf("Error() = %q", ae.Error())
	}

	err = c.Ready(ctx)
	if !errors.As(err, &ae) || ae.StatusCode != 503 || ae.Code != "not_ready" {
		t.Fatalf("Ready = %v", err)
	}
	if err := c.Healthy(ctx); err != nil {
		t.Fatalf("Healthy = %v", err)
	}

	// A route the server does not know answers in plain text: still an APIError.
	nc := client.New(f.addr())
	_, err = nc.Do404(ctx)
	if !errors.As(err, &ae) || ae.StatusCode != 404 || ae.Code != "not_found" || ae.Temporary() {
		t.Fatalf("404 = %v (%+v)", err, ae)
	}
}

func TestReadUpdateStatus(t *testing.T) {
	f := newFake(t)
	c := client.New(f.addr())
	ctx := context.Background()
	if v, err := c.Read(ctx, "a/b"); err != nil || v != "" {
		t.Fatalf("Read absent = %q, %v", v, err)
	}
	if err := c.Update(ctx, "a/b", "x y"); err != nil {
		t.Fatal(err)
	}
	if v, err := c.Read(ctx, "a/b"); err != nil || v != "x y" {
		t.Fatalf("Read = %q, %v", v, err)
	}
	if m, err := c.Metrics(ctx); err != nil || m != "zkv_keys 1\n" {
		t.Fatalf("Metrics = %q, %v", m, err)
	}
	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m, ok := st.LeaderMember()
	if st.Role != client.RoleLeader || st.Epoch != 7 || st.Keys != 1 || !ok || m.Znode != "/election/server0000000003" {
		t.Fatalf("Status = %+v", st)
	}
}

func TestTimeoutAndTransportError(t *testing.T) {
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	defer close(release)
	c := client.New(slow.URL, client.WithTimeout(50*time.Millisecond))
	start := time.Now()
	err := c.Healthy(context.Background())
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want DeadlineExceeded", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatalf("timeout took %v", time.Since(start))
	}

	// A closed port: the error names the request.
	dead := httptest.NewServer(http.NotFoundHandler())
	addr := dead.URL
	dead.Close()
	err = client.New(addr).Healthy(context.Background())
	if err == nil || !strings.Contains(err.Error(), "GET "+addr+"/healthz") {
		t.Fatalf("err = %v", err)
	}
}

func TestWithHTTPClientAndBadAnswer(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("not json"))
	}))
	defer srv.Close()
	hc := srv.Client()
	c := client.New(srv.URL, client.WithHTTPClient(hc))
	if _, err := c.Status(context.Background()); !errors.Is(err, client.ErrBadAnswer) {
		t.Fatalf("err = %v, want ErrBadAnswer", err)
	}
	_ = c.Close()
	_ = c.Close()
}
