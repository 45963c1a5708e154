package server_test

import (
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"testing"

	"github.com/zkv-dev/zkv/server"
)

// errVersion is the current version a 412 reports.
func errVersion(t *testing.T, r answer) any {
	t.Helper()
	e, _ := r.json(t)["error"].(map[string]any)
	return e["version"]
}

func putIf(t *testing.T, base, key, value string, hdr ...string) answer {
	t.Helper()
	return do(t, http.MethodPut, base+"/v1/kv/"+key, "application/json", fmt.Sprintf(`{"value":%q}`, value), hdr...)
}

func TestConditionalWrites(t *testing.T) {
	c := newFakeCluster()
	n := startNode(t, c, "a")
	n.waitLeading(t)

	// Create only.
	if r := putIf(t, n.url, "k", "v1", "If-None-Match", "*"); r.code != 200 || r.hdr.Get("ETag") != `"1"` {
		t.Fatalf("create-only PUT of a new key: %d %v %s", r.code, r.hdr, r.body)
	}
	r := putIf(t, n.url, "k", "other", "If-None-Match", "*")
	if r.code != 412 || r.errCode(t) != server.CodePreconditionFailed || errVersion(t, r) != 1.0 || r.hdr.Get("ETag") != `"1"` {
		t.Fatalf("create-only PUT of an existing key: %d %v %s", r.code, r.hdr, r.body)
	}
	// GET gives the version as an ETag, which If-Match takes back, quoted or bare.
	if r := do(t, http.MethodGet, n.url+"/v1/kv/k", "", ""); r.hdr.Get("ETag") != `"1"` || r.json(t)["value"] != "v1" {
		t.Fatalf("GET: %v %s", r.hdr, r.body)
	}
	if r := putIf(t, n.url, "k", "v2", "If-Match", `"1"`); r.code != 200 || r.json(t)["version"] != 2.0 {
		t.Fatalf("PUT If-Match the current version: %d %s", r.code, r.body)
	}
	if r := putIf(t, n.url, "k", "v3", "If-Match", "1"); r.code != 412 || errVersion(t, r) != 2.0 {
		t.Fatalf("PUT If-Match an old version: %d %s", r.code, r.body)
	}
	if r := putIf(t, n.url, "k", "v3", "If-Match", `"7", "2"`); r.code != 200 || r.json(t)["version"] != 3.0 {
		t.Fatalf("PUT If-Match a list holding the current version: %d %s", r.code, r.body)
	}
	if r := putIf(t, n.url, "k", "v4", "If-None-Match", `"3"`); r.code != 412 {
		t.Fatalf("PUT If-None-Match the current version: %d %s", r.code, r.body)
	}
	// /update takes the headers too.
	if r := do(t, http.MethodPost, n.url+"/update", "application/json", `{"key":"k","value":"x"}`, "If-Match", "2"); r.code != 412 {
		t.Fatalf("/update If-Match an old version: %d %s", r.code, r.body)
	}
	// Conditional deletes.
	if r := do(t, http.MethodDelete, n.url+"/v1/kv/k", "", "", "If-Match", "2"); r.code != 412 || errVersion(t, r) != 3.0 {
		t.Fatalf("DELETE If-Match an old version: %d %s", r.code, r.body)
	}
	if r := do(t, http.MethodDelete, n.url+"/v1/kv/k", "", "", "If-Match", "3"); r.code != 200 || r.json(t)["found"] != true {
		t.Fatalf("DELETE If-Match the current version: %d %s", r.code, r.body)
	}
	// A deleted key does not exist: If-Match * fails (version 0), If-None-Match * creates.
	if r := putIf(t, n.url, "k", "v5", "If-Match", "*"); r.code != 412 || errVersion(t, r) != 0.0 || r.hdr.Get("ETag") != "" {
		t.Fatalf("PUT If-Match * of a deleted key: %d %v %s", r.code, r.hdr, r.body)
	}
	if r := do(t, http.MethodDelete, n.url+"/v1/kv/never", "", "", "If-Match", "*"); r.code != 412 {
		t.Fatalf("DELETE If-Match * of an absent key: %d %s", r.code, r.body)
	}
	if r := putIf(t, n.url, "k", "v5", "If-None-Match", "*"); r.code != 200 || r.json(t)["version"] != 5.0 {
		t.Fatalf("create-only PUT of a deleted key: %d %s", r.code, r.body)
	}
	// Malformed conditions are 400 and change nothing.
	hash, last := n.store.Hash(), func() uint64 { i, _ := n.store.Last(); return i }()
	for _, h := range [][2]string{{"If-Match", "abc"}, {"If-Match", `W/"5"`}, {"If-Match", "0"}, {"If-Match", "*, 5"},
		{"If-None-Match", ","}, {"If-Match", "-1"}, {"If-Match", "18446744073709551616"}} {
		if r := putIf(t, n.url, "k", "bad", h[0], h[1]); r.code != 400 || r.errCode(t) != server.CodeBadRequest {
			t.Errorf("%s: %q: %d %s", h[0], h[1], r.code, r.body)
		}
	}
	if i, _ := n.store.Last(); n.store.Hash() != hash || i != last {
		t.Fatal("a refused conditional write changed the store")
	}
}

// TestConditionalRace: N writers If-Match the same version at once, while the write that
// wins is logged but not yet committed (its acknowledgements are held back). Exactly one
// may win: the check must see the logged entry ahead of it, not only the store.
func TestConditionalRace(t *testing.T) {
	const writers = 16
	c := newFakeCluster()
	repls := &fakeRepls{}
	n := startNode(t, c, "a", withRepls(repls))
	n.waitLeading(t)
	if r := put(t, n.url, "k", "v0"); r.code != 200 || r.hdr.Get("ETag") != `"1"` {
		t.Fatalf("first PUT: %d %s", r.code, r.body)
	}
	gate := make(chan struct{})
	repl := repls.last()
	repl.mu.Lock()
	repl.gate = gate // commits wait until the losers have answered
	repl.mu.Unlock()

	codes := make([]int, writers)
	var done sync.WaitGroup
	var mu sync.Mutex
	answered := 0
	for i := range writers {
		done.Add(1)
		go func() {
			defer done.Done()
			r := putIf(t, n.url, "k", "w"+strconv.Itoa(i), "If-Match", `"1"`)
			mu.Lock()
			codes[i] = r.code
			answered++
			mu.Unlock()
		}()
	}
	waitFor(t, "every loser to answer while the winner waits for its commit", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return answered >= writers-1
	})
	close(gate)
	done.Wait()

	winner, lost := -1, 0
	for i, code := range codes {
		switch code {
		case 200:
			if winner >= 0 {
				t.Fatalf("writers %d and %d both won If-Match \"1\": codes %v", winner, i, codes)
			}
			winner = i
		case 412:
			lost++
		default:
			t.Fatalf("writer %d: %d", i, code)
		}
	}
	if winner < 0 || lost != writers-1 {
		t.Fatalf("codes %v: want one 200 and %d 412", codes, writers-1)
	}
	e, ok := n.store.Get("k")
	if !ok || e.Version != 2 || e.Value != "w"+strconv.Itoa(winner) {
		t.Fatalf("store holds %+v, want the winner's w%d at version 2", e, winner)
	}
}

// TestConditionalThroughFollower: a follower forwards If-Match to the leader, which
// decides, and relays its 412 and ETag.
func TestConditionalThroughFollower(t *testing.T) {
	c := newFakeCluster()
	a := startNode(t, c, "a")
	a.waitLeading(t)
	b := startNode(t, c, "b")
	b.waitReady(t)
	if r := putIf(t, b.url, "k", "v1", "If-None-Match", "*"); r.code != 200 || r.hdr.Get("ETag") != `"1"` {
		t.Fatalf("create-only PUT through b: %d %v %s", r.code, r.hdr, r.body)
	}
	r := putIf(t, b.url, "k", "v2", "If-None-Match", "*")
	if r.code != 412 || r.errCode(t) != server.CodePreconditionFailed || r.hdr.Get("ETag") != `"1"` {
		t.Fatalf("create-only PUT of an existing key through b: %d %v %s", r.code, r.hdr, r.body)
	}
	if r := putIf(t, b.url, "k", "v2", "If-Match", "1"); r.code != 200 || r.json(t)["version"] != 2.0 ||
		r.hdr.Get(server.HeaderWriteIndex) == "" {
		t.Fatalf("PUT If-Match through b: %d %v %s", r.code, r.hdr, r.body)
	}
	if r := do(t, http.MethodDelete, b.url+"/v1/kv/k", "", "", "If-Match", "1"); r.code != 412 {
		t.Fatalf("DELETE If-Match an old version through b: %d %s", r.code, r.body)
	}
	if e, _ := a.store.Get("k"); e.Version != 2 {
		t.Fatalf("leader holds %+v", e)
	}
}
