package server_test

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/zkv-dev/zkv/server"
)

// fuzzNode is one leading server for a fuzz target; requests go straight to its handler.
func fuzzNode(f *testing.F) *node {
	c := newFakeCluster()
	repls := &fakeRepls{} // acknowledges at once
	// Logs stay off: a fuzz target must not log through f.
	n := startNode(f, c, "fuzz", withRepls(repls), withConfig(func(cfg *server.Config) {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}))
	n.waitLeading(f)
	return n
}

// serve sends one request to the handler and checks the invariants: no 5xx, and a 4xx
// changes nothing.
func serve(t *testing.T, n *node, req *http.Request) *httptest.ResponseRecorder {
	t.Helper()
	before, _ := n.store.Last()
	beforeHash := n.store.Hash()
	rec := httptest.NewRecorder()
	n.s.Handler().ServeHTTP(rec, req)
	if rec.Code >= 500 {
		t.Fatalf("%s %q: %d %s", req.Method, req.URL.String(), rec.Code, rec.Body.String())
	}
	if rec.Code >= 400 {
		if after, _ := n.store.Last(); after != before || n.store.Hash() != beforeHash {
			t.Fatalf("%s %q answered %d but changed the store", req.Method, req.URL.String(), rec.Code)
		}
		if !strings.Contains(rec.Body.String(), `"error"`) {
			t.Fatalf("%d without an error body: %s", rec.Code, rec.Body.String())
		}
	}
	return rec
}

func newRequest(method, path, ct string, body []byte) *http.Request {
	req := httptest.NewRequest(method, "/", bytes.NewReader(body))
	req.URL.Path, req.URL.RawPath = "", ""
	if u, err := req.URL.Parse(path); err == nil {
		req.URL = u
	}
	req.RequestURI = req.URL.RequestURI()
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	return req
}

func FuzzPut(f *testing.F) {
	n := fuzzNode(f)
	f.Add("k", "application/json", []byte(`{"value":"v"}`))
	f.Add("a%2Fb", "application/json; charset=utf-8", []byte(`{"value":"\u00e9"}`))
	f.Add("k", "application/json", []byte(`{"value":1}`))
	f.Add("", "application/json", []byte(`{"value":"v"}`))
	f.Add("%FF", "application/json", []byte(`{"value":"v"}`))
	f.Add("k", "text/plain", []byte(`{"value":"v"}`))
	f.Add("k", "application/json", []byte("{\"value\":\"\xff\"}"))
	f.Add("k", "application/json", []byte(`{"value":"v"}{}`))
	f.Fuzz(func(t *testing.T, key, ct string, body []byte) {
		if strings.ContainsAny(key, "?#") {
			return // not part of the path
		}
		req := newRequest(http.MethodPut, "/v1/kv/"+key, ct, body)
		rec := serve(t, n, req)
		if rec.Code == 200 && !strings.Contains(rec.Body.String(), `"version"`) {
			t.Fatalf("200 without a version: %s", rec.Body.String())
		}
	})
}

func FuzzUpdate(f *testing.F) {
	n := fuzzNode(f)
	f.Add("application/json", []byte(`{"key":"k","value":"v"}`))
	f.Add("application/json", []byte(`{"key":"","value":"v"}`))
	f.Add("application/json", []byte(`{"key":"k"}`))
	f.Add("application/json", []byte(`{"key":["k"],"value":"v"}`))
	f.Add("application/json", []byte(`[]`))
	f.Add("application/x-www-form-urlencoded", []byte(`key=k&value=v`))
	f.Fuzz(func(t *testing.T, ct string, body []byte) {
		serve(t, n, newRequest(http.MethodPost, "/update", ct, body))
	})
}

func FuzzKeyRoutes(f *testing.F) {
	n := fuzzNode(f)
	f.Add("GET", "/v1/kv/k")
	f.Add("DELETE", "/v1/kv/a/b")
	f.Add("GET", "/read?key=%FF")
	f.Add("GET", "/v1/kv/k?consistency=leader")
	f.Add("POST", "/v1/kv/k")
	f.Add("GET", "/v1/status")
	f.Add("DELETE", "/v1/kv/")
	f.Fuzz(func(t *testing.T, method, path string) {
		switch method {
		case http.MethodGet, http.MethodDelete, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodHead:
		default:
			return
		}
		if path == "" || path[0] != '/' || strings.HasPrefix(path, "/internal/") || strings.HasPrefix(path, "/metrics") {
			return
		}
		if method == http.MethodDelete && n.store.Len() == 0 {
			n.store.Put("k", "v", 1) // something a delete could wrongly remove
		}
		serve(t, n, newRequest(method, path, "application/json", nil))
	})
}
