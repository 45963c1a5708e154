package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/zkv-dev/zkv/kvstore"
	"github.com/zkv-dev/zkv/server"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testClient.CloseIdleConnections() // keep-alive readers are the client's, not leaks
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// tWriter sends log lines to t.Log.
type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// node is one Server under test on a loopback port, with its fake elector and store.
type node struct {
	s     *server.Server
	e     *fakeElector
	store *kvstore.Store
	url   string
	addr  string
}

type nodeOpt func(*server.Config, *server.Deps)

func withRepls(f *fakeRepls) nodeOpt {
	return func(_ *server.Config, d *server.Deps) { d.NewReplicator = f.factory }
}

func withConfig(edit func(*server.Config)) nodeOpt {
	return func(c *server.Config, _ *server.Deps) { edit(c) }
}

// startNode starts a Server on 127.0.0.1:0 in cluster c. It joins the election itself.
func startNode(t testing.TB, c *fakeCluster, id string, opts ...nodeOpt) *node {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	st, err := kvstore.New(kvstore.Config{Shards: 4})
	if err != nil {
		t.Fatal(err)
	}
	n := &node{e: c.elector(id, addr), store: st, url: "http://" + addr, addr: addr}
	c.mu.Lock()
	n.e.inc = fmt.Sprintf("%s-%d", id, time.Now().UnixNano())
	c.mu.Unlock()
	cfg := server.Config{ID: id, Listener: ln, Logger: testLogger(t).With("node", id), Incarnation: n.e.inc,
		WriteTimeout: 3 * time.Second, MemberRefresh: 50 * time.Millisecond}
	deps := server.Deps{Elector: n.e, Store: st, InSync: c.insync}
	for _, o := range opts {
		o(&cfg, &deps)
	}
	n.s, err = server.New(cfg, deps)
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	if err := n.s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.stop(t) })
	return n
}

func (n *node) stop(t testing.TB) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.s.Shutdown(ctx); err != nil {
		t.Errorf("shutdown %s: %v", n.s.ID(), err)
	}
}

// waitFor polls cond until it holds or 10s pass.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

// role polls the node's /v1/status.
func (n *node) status(t testing.TB) server.Status {
	t.Helper()
	var st server.Status
	r := do(t, http.MethodGet, n.url+"/v1/status", "", "")
	if r.code != http.StatusOK {
		t.Fatalf("status: %d %s", r.code, r.body)
	}
	if err := json.Unmarshal(r.body, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// waitRole waits until the node reports role; a leader also until it has caught up and
// takes writes (its /readyz answers 200).
func (n *node) waitRole(t testing.TB, role string) {
	t.Helper()
	waitFor(t, n.s.ID()+" to be "+role, func() bool {
		return n.status(t).Role == role &&
			(role != "leader" || do(t, http.MethodGet, n.url+"/readyz", "", "").code == http.StatusOK)
	})
}

// waitReady waits until the node's /readyz answers 200: a complete follower is then in the
// leader's in-sync set.
func (n *node) waitReady(t testing.TB) {
	t.Helper()
	waitFor(t, n.s.ID()+" to be ready", func() bool {
		return do(t, http.MethodGet, n.url+"/readyz", "", "").code == 200
	})
}

// waitLeading waits until the node takes writes: its role is leader and a probe write
// (a delete of an absent key, which writes nothing) answers 200.
func (n *node) waitLeading(t testing.TB) {
	t.Helper()
	waitFor(t, n.s.ID()+" to lead", func() bool {
		return n.status(t).Role == "leader" && do(t, http.MethodDelete, n.url+"/v1/kv/__probe__", "", "").code == 200
	})
}

type answer struct {
	code int
	hdr  http.Header
	body []byte
}

func (a answer) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(a.body, &m); err != nil {
		t.Fatalf("answer %d is not JSON: %q", a.code, a.body)
	}
	return m
}

func (a answer) errCode(t testing.TB) string {
	t.Helper()
	m := a.json(t)
	e, ok := m["error"].(map[string]any)
	if !ok {
		t.Fatalf("answer %d has no error object: %s", a.code, a.body)
	}
	if _, ok := e["message"].(string); !ok {
		t.Fatalf("answer %d error has no message: %s", a.code, a.body)
	}
	code, _ := e["code"].(string)
	return code
}

var testClient = &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{Proxy: nil}}

func do(t testing.TB, method, url, ct, body string, hdr ...string) answer {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := testClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{code: resp.StatusCode, hdr: resp.Header, body: data}
}

func put(t testing.TB, base, key, value string) answer {
	t.Helper()
	b, _ := json.Marshal(map[string]string{"value": value})
	return do(t, http.MethodPut, base+"/v1/kv/"+key, "application/json", string(bytes.TrimSpace(b)))
}
