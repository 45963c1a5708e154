package server_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/zkv-dev/zkv/server"
)

func listOf(t *testing.T, a answer) server.List {
	t.Helper()
	if a.code != http.StatusOK {
		t.Fatalf("listing: %d %s", a.code, a.body)
	}
	var l server.List
	if err := json.Unmarshal(a.body, &l); err != nil {
		t.Fatalf("listing %s: %v", a.body, err)
	}
	return l
}

func listKeys(l server.List) []string {
	out := []string{}
	for _, e := range l.Entries {
		out = append(out, e.Key)
	}
	return out
}

func headerUint(t *testing.T, a answer, name string) uint64 {
	t.Helper()
	v, err := strconv.ParseUint(a.hdr.Get(name), 10, 64)
	if err != nil {
		t.Fatalf("%s = %q: %v", name, a.hdr.Get(name), err)
	}
	return v
}

func TestList(t *testing.T) {
	c := newFakeCluster()
	n := startNode(t, c, "a", withRepls(&fakeRepls{}))
	n.waitLeading(t)
	for _, k := range []string{"app/b", "app/a", "app/c/d", "apple", "b", "app/é"} {
		if r := put(t, n.url, k, "v-"+k); r.code != 200 {
			t.Fatalf("PUT %s: %d %s", k, r.code, r.body)
		}
	}
	del := do(t, http.MethodDelete, n.url+"/v1/kv/app/c/d", "", "")
	if del.code != 200 {
		t.Fatalf("DELETE: %d %s", del.code, del.body)
	}

	r := do(t, http.MethodGet, n.url+"/v1/kv/?prefix=app/", "", "")
	checkHeaders(t, r, n.addr)
	l := listOf(t, r)
	if got := listKeys(l); !slices.Equal(got, []string{"app/a", "app/b", "app/é"}) || l.More || l.Next != "" || l.Prefix != "app/" {
		t.Fatalf("listing app/: %s", r.body)
	}
	if e := l.Entries[0]; e.Value == nil || *e.Value != "v-app/a" || e.Version != 1 || e.Index == 0 {
		t.Fatalf("entry %+v", e)
	}
	applied, _ := n.store.Last()
	if headerUint(t, r, server.HeaderApplied) != applied || r.hdr.Get(server.HeaderLastContact) != "0" {
		t.Fatalf("headers %v, applied %d", r.hdr, applied)
	}
	// The prefix's index is its last write: the delete of app/c/d, a tombstone.
	if got := headerUint(t, r, server.HeaderIndex); got != n.store.PrefixIndex("app/") || got == 0 {
		t.Fatalf("%s = %d", server.HeaderIndex, got)
	}
	if !strings.Contains(string(r.body), `"value"`) {
		t.Fatal("values are included by default")
	}

	// Pages of one, walked with the cursor, keys only.
	var walked []string
	after := ""
	for range 10 {
		q := url.Values{"prefix": {"app"}, "limit": {"1"}, "keys": {"true"}, "after": {after}}
		r := do(t, http.MethodGet, n.url+"/v1/kv/?"+q.Encode(), "", "")
		l := listOf(t, r)
		if strings.Contains(string(r.body), `"value"`) {
			t.Fatalf("keys=true answered values: %s", r.body)
		}
		walked = append(walked, listKeys(l)...)
		if !l.More {
			break
		}
		after = l.Next
	}
	if !slices.Equal(walked, []string{"app/a", "app/b", "app/é", "apple"}) {
		t.Fatalf("walked %v", walked)
	}
	// The empty prefix lists every key; a prefix nothing has gives an empty list, not null.
	if got := listKeys(listOf(t, do(t, http.MethodGet, n.url+"/v1/kv/?prefix=", "", ""))); len(got) != 5 {
		t.Fatalf("every key: %v", got)
	}
	if r := do(t, http.MethodGet, n.url+"/v1/kv/?prefix=zzz", "", ""); !strings.Contains(string(r.body), `"entries":[]`) ||
		r.hdr.Get(server.HeaderIndex) != "0" {
		t.Fatalf("empty listing: %s %v", r.body, r.hdr)
	}
	// GET /v1/kv/ without ?prefix stays what it was: a read without a key.
	if r := do(t, http.MethodGet, n.url+"/v1/kv/", "", ""); r.code != 400 || r.errCode(t) != server.CodeMissingKey {
		t.Fatalf("GET /v1/kv/: %d %s", r.code, r.body)
	}
	// A plain GET carries the key's modify index.
	if r := do(t, http.MethodGet, n.url+"/v1/kv/app/a", "", ""); headerUint(t, r, server.HeaderIndex) != l.Entries[0].Index {
		t.Fatalf("GET app/a: %v", r.hdr)
	}
	if r := do(t, http.MethodGet, n.url+"/v1/kv/app/c/d", "", ""); headerUint(t, r, server.HeaderIndex) == 0 || r.json(t)["found"] != false {
		t.Fatalf("GET of a deleted key carries the delete's index: %v %s", r.hdr, r.body)
	}
}

func TestListBadInput(t *testing.T) {
	c := newFakeCluster()
	n := startNode(t, c, "a", withRepls(&fakeRepls{}), withConfig(func(cfg *server.Config) { cfg.MaxKeyBytes = 16 }))
	n.waitLeading(t)
	put(t, n.url, "k", "v")
	for _, tc := range []struct {
		query string
		code  int
		err   string
	}{
		{"prefix=k&limit=0", 400, server.CodeBadRequest},
		{"prefix=k&limit=-3", 400, server.CodeBadRequest},
		{"prefix=k&limit=ten", 400, server.CodeBadRequest},
		{"prefix=k&limit=10001", 400, server.CodeBadRequest},
		{"prefix=k&limit=", 400, server.CodeBadRequest},
		{"prefix=k&keys=maybe", 400, server.CodeBadRequest},
		{"prefix=%FF", 400, server.CodeInvalidUTF8},
		{"prefix=k&after=%C3", 400, server.CodeInvalidUTF8},
		{"prefix=12345678901234567", 414, server.CodeKeyTooLong},
		{"prefix=k&consistency=leader", 400, server.CodeBadRequest},
		{"prefix=k&max_staleness=soon", 400, server.CodeBadRequest},
		{"prefix=k&wait=1s", 400, server.CodeBadRequest},
		{"prefix=k&index=-1", 400, server.CodeBadRequest},
		{"prefix=k&index=1&wait=forever", 400, server.CodeBadRequest},
		{"prefix=k&index=1&wait=-1s", 400, server.CodeBadRequest},
	} {
		before := n.store.Hash()
		r := do(t, http.MethodGet, n.url+"/v1/kv/?"+tc.query, "", "")
		if r.code != tc.code || r.errCode(t) != tc.err {
			t.Errorf("?%s: %d %s, want %d %s", tc.query, r.code, r.body, tc.code, tc.err)
		}
		if n.store.Hash() != before {
			t.Errorf("?%s changed the store", tc.query)
		}
	}
	for _, q := range []string{"index=x", "index=1&wait=0s", "wait=1s", "index=1&consistency=leader", "index=1&max_staleness=x"} {
		if r := do(t, http.MethodGet, n.url+"/v1/kv/k?"+q, "", ""); r.code != 400 || r.errCode(t) != server.CodeBadRequest {
			t.Errorf("GET /v1/kv/k?%s: %d %s", q, r.code, r.body)
		}
	}
}
