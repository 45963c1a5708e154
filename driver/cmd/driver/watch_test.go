package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/zkv-dev/zkv/driver/client"
)

func TestListAndWatchCommands(t *testing.T) {
	var mu sync.Mutex
	var got []string
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, r.URL.RequestURI())
		calls++
		switch {
		case r.URL.Path == "/v1/kv/" && r.URL.Query().Get("after") == "":
			w.Header().Set("X-Zkv-Index", "7")
			_, _ = w.Write([]byte(`{"prefix":"p/","entries":[{"key":"p/a","value":"1","version":1,"index":3}],"more":true,"next":"p/a"}`))
		case r.URL.Path == "/v1/kv/":
			w.Header().Set("X-Zkv-Index", "7")
			_, _ = w.Write([]byte(`{"prefix":"p/","entries":[{"key":"p/b","value":"2","version":1,"index":7}],"more":false}`))
		default: // a key watch: each answer one write later
			w.Header().Set("X-Zkv-Index", strings.Repeat("1", calls))
			_, _ = w.Write([]byte(`{"key":"k","value":"v","found":true,"version":1}`))
		}
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	var out, errOut bytes.Buffer
	if code := Main(context.Background(), []string{"list", "-addr", addr, "p/", "-limit", "1", "-all"}, &out, &errOut); code != 0 {
		t.Fatalf("list: exit %d: %s", code, errOut.String())
	}
	var page struct {
		Entries []struct{ Key string }
		Index   uint64
	}
	if err := json.Unmarshal(out.Bytes(), &page); err != nil || len(page.Entries) != 2 || page.Index != 7 {
		t.Fatalf("list -all printed %s (%v)", out.String(), err)
	}
	out.Reset()
	if code := Main(context.Background(), []string{"watch", "-addr", addr, "k", "-count", "2", "-wait", "1s"}, &out, &errOut); code != 0 {
		t.Fatalf("watch: exit %d: %s", code, errOut.String())
	}
	if lines := strings.Split(strings.TrimSpace(out.String()), "\n"); len(lines) != 3 || !strings.Contains(lines[0], `"index":111}`) || !strings.Contains(lines[2], `"index":11111}`) {
		t.Fatalf("watch printed %q: want the initial state and 2 changes", out.String())
	}
	if code := Main(context.Background(), []string{"watch", "-addr", addr}, &out, &errOut); code != 2 {
		t.Fatalf("watch without a key: exit %d", code)
	}
	mu.Lock()
	defer mu.Unlock()
	if got[0] != "/v1/kv/?limit=1&prefix=p%2F" || got[2] != "/v1/kv/k" || got[3] != "/v1/kv/k?index=111&wait=1s" {
		t.Fatalf("requests %q", got)
	}
}

func TestDiffPage(t *testing.T) {
	seen := map[string]uint64{}
	p := pageOf(5, "a", 1, "b", 5)
	if lines := diffPage(seen, p, 0); len(lines) != 2 {
		t.Fatalf("initial %v", lines)
	}
	if lines := diffPage(seen, pageOf(8, "b", 5, "c", 8), 0); len(lines) != 2 || lines[0].Key != "c" || lines[1].Key != "a" || !lines[1].Deleted {
		t.Fatalf("change %v", lines)
	}
}

func pageOf(index uint64, kv ...any) client.Page {
	p := client.Page{Index: index}
	for i := 0; i+1 < len(kv); i += 2 {
		p.Entries = append(p.Entries, client.ListEntry{Key: kv[i].(string), Index: uint64(kv[i+1].(int))})
	}
	return p
}
