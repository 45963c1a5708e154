package server_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

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
	f.Add("GET", "/v1/kv/?prefix=a&limit=2&after=a")
	f.Add("GET", "/v1/kv/?prefix=&keys=true&limit=10000")
	f.Add("GET", "/v1/kv/?prefix=%FF&after=%C3")
	f.Add("GET", "/v1/kv/?prefix=k&limit=0&keys=maybe")
	f.Add("GET", "/v1/kv/k?index=1&wait=1ms")
	f.Add("GET", "/v1/kv/?prefix=k&index=0&wait=2ms&max_staleness=1s")
	f.Add("GET", "/v1/kv/k?index=-1&wait=x&consistency=leader")
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
		req := newRequest(method, path, "application/json", nil)
		tinyWaits(req)
		rec := serve(t, n, req)
		if rec.Code == http.StatusOK && method == http.MethodGet && req.URL.EscapedPath() == "/v1/kv/" {
			checkListing(t, req, rec)
		}
	})
}

// FuzzConditional sends PUT and DELETE with arbitrary If-Match and If-None-Match: besides
// serve's invariants, a 200 under a plain If-Match: N found the key at version N, and a
// 412 names the key's current version.
func FuzzConditional(f *testing.F) {
	n := fuzzNode(f)
	f.Add(true, "1", "")
	f.Add(false, `"1"`, "")
	f.Add(true, "", "*")
	f.Add(true, "*", "")
	f.Add(true, `W/"1"`, "")
	f.Add(false, "1, 2", `"3"`)
	f.Add(true, "0", "")
	f.Add(true, "*, 1", "")
	f.Add(true, "99999999999999999999", "")
	f.Fuzz(func(t *testing.T, isPut bool, ifMatch, ifNoneMatch string) {
		const key = "k"
		if !isPut && n.store.Len() == 0 {
			n.store.Put(key, "v", 1) // something a delete could wrongly remove
		}
		before, existed := n.store.Get(key)
		method, body := http.MethodDelete, []byte(nil)
		if isPut {
			method, body = http.MethodPut, []byte(`{"value":"v"}`)
		}
		req := newRequest(method, "/v1/kv/"+key, "application/json", body)
		if ifMatch != "" {
			req.Header.Set("If-Match", ifMatch)
		}
		if ifNoneMatch != "" {
			req.Header.Set("If-None-Match", ifNoneMatch)
		}
		rec := serve(t, n, req)
		switch rec.Code {
		case http.StatusOK:
			if v, err := strconv.ParseUint(strings.Trim(ifMatch, `" `), 10, 64); err == nil && (!existed || before.Version != v) {
				t.Fatalf("If-Match %q applied to version %d (exists %v)", ifMatch, before.Version, existed)
			}
			if ifNoneMatch == "*" && existed {
				t.Fatalf("If-None-Match * applied to an existing key")
			}
		case http.StatusPreconditionFailed:
			var eb server.ErrorBody
			if err := json.Unmarshal(rec.Body.Bytes(), &eb); err != nil || eb.Error.Version == nil {
				t.Fatalf("412 without the current version: %s", rec.Body.String())
			}
			want := uint64(0)
			if existed {
				want = before.Version
			}
			if *eb.Error.Version != want {
				t.Fatalf("412 names version %d, the key is at %d", *eb.Error.Version, want)
			}
		}
	})
}

// FuzzRead sends local and leader reads with arbitrary ?max_staleness= and
// ?consistency=: a malformed bound or mode is a 400, a valid one reads.
func FuzzRead(f *testing.F) {
	n := fuzzNode(f)
	n.store.Put("k", "v", 1)
	f.Add("500ms", "")
	f.Add("0s", "local")
	f.Add("-1s", "")
	f.Add("1h", "leader")
	f.Add("abc", "")
	f.Add("", "bogus")
	f.Add("9999999999h", "")
	f.Fuzz(func(t *testing.T, staleness, consistency string) {
		q := url.Values{}
		if staleness != "" {
			q.Set("max_staleness", staleness)
		}
		if consistency != "" {
			q.Set("consistency", consistency)
		}
		for _, path := range []string{"/v1/kv/k", "/read"} {
			qq := url.Values{}
			for k, v := range q {
				qq[k] = v
			}
			if path == "/read" {
				qq.Set("key", "k")
			}
			rec := serve(t, n, newRequest(http.MethodGet, path+"?"+qq.Encode(), "", nil))
			d, err := time.ParseDuration(staleness)
			validBound := staleness == "" || err == nil && d >= 0
			validMode := consistency == "" || consistency == "local" || consistency == "leader"
			switch {
			case rec.Code == http.StatusOK && !(validMode && (validBound || consistency == "leader")):
				t.Fatalf("%s?%s: 200 for an invalid read", path, qq.Encode())
			case rec.Code == http.StatusOK && !strings.Contains(rec.Body.String(), `"v"`):
				t.Fatalf("%s?%s: 200 without the value: %s", path, qq.Encode(), rec.Body.String())
			case rec.Code != http.StatusOK && validMode && validBound:
				t.Fatalf("%s?%s: %d for a valid read on the leader: %s", path, qq.Encode(), rec.Code, rec.Body.String())
			}
		}
	})
}

// tinyWaits keeps a fuzzed watch from blocking: a valid wait (or none, meaning minutes)
// becomes 1ms; an invalid one stays, to be refused.
func tinyWaits(req *http.Request) {
	q := req.URL.Query()
	if !q.Has("index") {
		return
	}
	if d, err := time.ParseDuration(q.Get("wait")); !q.Has("wait") || err == nil && d > time.Millisecond {
		q.Set("wait", "1ms")
		req.URL.RawQuery = q.Encode()
		req.RequestURI = req.URL.RequestURI()
	}
}

// checkListing checks a 200 listing: keys under the prefix, after the cursor, in order,
// no more than the limit.
func checkListing(t *testing.T, req *http.Request, rec *httptest.ResponseRecorder) {
	t.Helper()
	q := req.URL.Query()
	if !q.Has("prefix") {
		return
	}
	var l server.List
	if err := json.Unmarshal(rec.Body.Bytes(), &l); err != nil {
		t.Fatalf("listing %q: %v: %s", req.URL.String(), err, rec.Body.String())
	}
	limit := server.DefaultListLimit
	if q.Has("limit") {
		limit, _ = strconv.Atoi(q.Get("limit"))
	}
	if len(l.Entries) > limit || l.More && l.Next != l.Entries[len(l.Entries)-1].Key {
		t.Fatalf("listing %q: %d entries, limit %d, next %q", req.URL.String(), len(l.Entries), limit, l.Next)
	}
	for i, e := range l.Entries {
		if !strings.HasPrefix(e.Key, q.Get("prefix")) || e.Key <= q.Get("after") || i > 0 && e.Key <= l.Entries[i-1].Key {
			t.Fatalf("listing %q: entry %q out of place: %s", req.URL.String(), e.Key, rec.Body.String())
		}
	}
}
