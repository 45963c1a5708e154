package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/zkv-dev/zkv/server"
)

// get is do for goroutines: an error instead of t.Fatal, and the caller's context.
func get(ctx context.Context, url string) (answer, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return answer{}, err
	}
	resp, err := testClient.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return answer{code: resp.StatusCode, hdr: resp.Header, body: data}, err
}

type watched struct {
	a   answer
	err error
}

// watchAsync starts a blocking GET; its answer comes on the channel. A refusal by the
// watch cap (a waitWatching probe may hold the only slot for a moment) is retried.
func watchAsync(ctx context.Context, url string) <-chan watched {
	ch := make(chan watched, 1)
	go func() {
		for {
			a, err := get(ctx, url)
			if err == nil && a.code == http.StatusServiceUnavailable && strings.Contains(string(a.body), server.CodeTooManyWatchers) {
				continue
			}
			ch <- watched{a, err}
			return
		}
	}()
	return ch
}

// within bounds a test's wait for a watch that a write must wake: far longer than a wake
// takes, far shorter than the watch's own wait, so only a missed wake-up reaches it.
const within = 10 * time.Second

func receive(t *testing.T, what string, ch <-chan watched) answer {
	t.Helper()
	select {
	case w := <-ch:
		if w.err != nil {
			t.Fatalf("%s: %v", what, w.err)
		}
		return w.a
	case <-time.After(within):
		t.Fatalf("%s: no answer within %v: the write did not wake the watch", what, within)
	}
	return answer{}
}

func TestWatchKey(t *testing.T) {
	c := newFakeCluster()
	n := startNode(t, c, "a", withRepls(&fakeRepls{}))
	n.waitLeading(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// A key never held has index 0: a watch from 0 waits for it to appear.
	r := do(t, http.MethodGet, n.url+"/v1/kv/w", "", "")
	if r.hdr.Get(server.HeaderIndex) != "0" {
		t.Fatalf("absent key: %s = %q", server.HeaderIndex, r.hdr.Get(server.HeaderIndex))
	}
	ch := watchAsync(ctx, n.url+"/v1/kv/w?index=0&wait=1m")
	p := put(t, n.url, "w", "v1")
	r = receive(t, "watch for a new key", ch)
	idx := headerUint(t, r, server.HeaderIndex)
	if m := r.json(t); r.code != 200 || m["value"] != "v1" || m["found"] != true || idx == 0 || m["version"] != p.json(t)["version"] {
		t.Fatalf("woken watch: %d %s %v", r.code, r.body, r.hdr)
	}
	checkHeaders(t, r, n.addr)
	if r.hdr.Get(server.HeaderApplied) == "" || r.hdr.Get(server.HeaderLastContact) == "" {
		t.Fatalf("a watch answers with a local read's headers: %v", r.hdr)
	}

	// A write to another key does not wake it; the wait ends with the same state, 200.
	put(t, n.url, "other", "x")
	r = do(t, http.MethodGet, n.url+"/v1/kv/w?index="+strconv.FormatUint(idx, 10)+"&wait=50ms", "", "")
	if r.code != 200 || headerUint(t, r, server.HeaderIndex) != idx || r.json(t)["value"] != "v1" {
		t.Fatalf("a watch that times out: %d %s %v", r.code, r.body, r.hdr)
	}
	// An index behind the key's answers at once.
	if r := do(t, http.MethodGet, n.url+"/v1/kv/w?index="+strconv.FormatUint(idx-1, 10)+"&wait=1m", "", ""); headerUint(t, r, server.HeaderIndex) != idx {
		t.Fatalf("a stale index: %v", r.hdr)
	}

	// A delete wakes it, and answers found=false with the tombstone's index.
	ch = watchAsync(ctx, n.url+"/v1/kv/w?index="+strconv.FormatUint(idx, 10)+"&wait=1m")
	do(t, http.MethodDelete, n.url+"/v1/kv/w", "", "")
	r = receive(t, "watch across a delete", ch)
	if m := r.json(t); m["found"] != false || headerUint(t, r, server.HeaderIndex) <= idx {
		t.Fatalf("watch after delete: %s %v", r.body, r.hdr)
	}
}

func TestWatchPrefix(t *testing.T) {
	c := newFakeCluster()
	n := startNode(t, c, "a", withRepls(&fakeRepls{}))
	n.waitLeading(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	put(t, n.url, "dir/a", "1")
	r := do(t, http.MethodGet, n.url+"/v1/kv/?prefix=dir/", "", "")
	idx := headerUint(t, r, server.HeaderIndex)

	put(t, n.url, "elsewhere", "x")
	r = do(t, http.MethodGet, fmt.Sprintf("%s/v1/kv/?prefix=dir/&index=%d&wait=50ms", n.url, idx), "", "")
	if headerUint(t, r, server.HeaderIndex) != idx || len(listOf(t, r).Entries) != 1 {
		t.Fatalf("a write elsewhere moved the prefix: %s %v", r.body, r.hdr)
	}

	ch := watchAsync(ctx, fmt.Sprintf("%s/v1/kv/?prefix=dir/&index=%d&wait=1m&keys=true", n.url, idx))
	put(t, n.url, "dir/b", "2")
	r = receive(t, "prefix watch", ch)
	if l := listOf(t, r); len(l.Entries) != 2 || l.Entries[1].Key != "dir/b" || headerUint(t, r, server.HeaderIndex) <= idx {
		t.Fatalf("prefix watch answer: %s %v", r.body, r.hdr)
	}
	idx = headerUint(t, r, server.HeaderIndex)
	ch = watchAsync(ctx, fmt.Sprintf("%s/v1/kv/?prefix=dir/&index=%d&wait=1m", n.url, idx))
	do(t, http.MethodDelete, n.url+"/v1/kv/dir/a", "", "")
	r = receive(t, "prefix watch across a delete", ch)
	if l := listOf(t, r); len(l.Entries) != 1 || l.Entries[0].Key != "dir/b" {
		t.Fatalf("prefix watch after delete: %s", r.body)
	}
}

// TestWatchNeverMisses: a writer puts and deletes one key many times while watchers loop
// index to index, as a client does. Each must see the final value, and its index must never
// go back.
func TestWatchNeverMisses(t *testing.T) {
	c := newFakeCluster()
	n := startNode(t, c, "a", withRepls(&fakeRepls{}))
	n.waitLeading(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const writes = 300
	final := fmt.Sprint("final-", writes)
	type result struct {
		name   string
		err    error
		wakes  int
		values map[string]bool
	}
	results := make(chan result, 4)
	loop := func(name, url string, valueOf func(answer) (string, error)) {
		res := result{name: name, values: map[string]bool{}}
		defer func() { results <- res }()
		var idx uint64
		for {
			a, err := get(ctx, fmt.Sprintf(url, idx))
			if err != nil {
				res.err = err
				return
			}
			if a.code != 200 {
				res.err = fmt.Errorf("%d %s", a.code, a.body)
				return
			}
			got, err := strconv.ParseUint(a.hdr.Get(server.HeaderIndex), 10, 64)
			if err != nil || got < idx {
				res.err = fmt.Errorf("index %q after %d: went back (%v)", a.hdr.Get(server.HeaderIndex), idx, err)
				return
			}
			idx = got
			res.wakes++
			v, err := valueOf(a)
			if err != nil {
				res.err = err
				return
			}
			res.values[v] = true
			if v == final {
				return
			}
		}
	}
	keyValue := func(a answer) (string, error) {
		var kv server.KV
		err := json.Unmarshal(a.body, &kv)
		return kv.Value, err
	}
	listValue := func(a answer) (string, error) {
		var l server.List
		if err := json.Unmarshal(a.body, &l); err != nil || len(l.Entries) == 0 {
			return "", err
		}
		return *l.Entries[0].Value, nil
	}
	for i := range 2 {
		go loop(fmt.Sprint("key watcher ", i), n.url+"/v1/kv/nm/k?index=%d&wait=20s", keyValue)
		go loop(fmt.Sprint("prefix watcher ", i), n.url+"/v1/kv/?prefix=nm/&index=%d&wait=20s", listValue)
	}
	for i := range writes {
		if i%10 == 9 {
			do(t, http.MethodDelete, n.url+"/v1/kv/nm/k", "", "")
			continue
		}
		if r := put(t, n.url, "nm/k", fmt.Sprint(i)); r.code != 200 {
			t.Fatalf("PUT: %d %s", r.code, r.body)
		}
	}
	put(t, n.url, "nm/k", final)
	for range 4 {
		res := <-results
		if res.err != nil {
			t.Errorf("%s: %v", res.name, res.err)
		}
		t.Logf("%s: %d answers, %d distinct values", res.name, res.wakes, len(res.values))
	}
}

// waitWatching waits until a watch is blocked on n, whose MaxWatchers is 1: another one
// is refused.
func waitWatching(t *testing.T, n *node) {
	t.Helper()
	waitFor(t, "a watch to be waiting", func() bool {
		r := do(t, http.MethodGet, n.url+"/v1/kv/probe?index=99999&wait=1ms", "", "")
		return r.code == http.StatusServiceUnavailable && r.errCode(t) == server.CodeTooManyWatchers
	})
}

func TestWatchersCapped(t *testing.T) {
	c := newFakeCluster()
	n := startNode(t, c, "a", withRepls(&fakeRepls{}), withConfig(func(cfg *server.Config) { cfg.MaxWatchers = 1 }))
	n.waitLeading(t)
	ctx, cancel := context.WithCancel(context.Background())
	ch := watchAsync(ctx, n.url+"/v1/kv/k?index=0&wait=1m")
	waitWatching(t, n)
	r := do(t, http.MethodGet, n.url+"/v1/kv/?prefix=&index=99999&wait=1ms", "", "")
	if r.code != 503 || r.hdr.Get("Retry-After") == "" || r.errCode(t) != server.CodeTooManyWatchers {
		t.Fatalf("a watch past the cap: %d %s", r.code, r.body)
	}
	// A plain read is no watch: it still answers.
	if r := do(t, http.MethodGet, n.url+"/v1/kv/k", "", ""); r.code != 200 {
		t.Fatalf("plain GET beside a full watch cap: %d", r.code)
	}
	cancel() // the client leaves: its slot is freed
	<-ch
	waitFor(t, "the slot to be freed", func() bool {
		return do(t, http.MethodGet, n.url+"/v1/kv/k?index=99999&wait=1ms", "", "").code == 200
	})
}

// TestWatchEndsOnShutdown: a watch waiting for minutes answers when its server shuts
// down, so the shutdown does not wait for it.
func TestWatchEndsOnShutdown(t *testing.T) {
	c := newFakeCluster()
	n := startNode(t, c, "a", withRepls(&fakeRepls{}), withConfig(func(cfg *server.Config) {
		cfg.MaxWatchers = 1
		cfg.ShutdownTimeout = 5 * time.Second
	}))
	n.waitLeading(t)
	put(t, n.url, "k", "v")
	ch := watchAsync(context.Background(), n.url+"/v1/kv/k?index=99999&wait=10m")
	waitWatching(t, n)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := n.s.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown with a watch waiting: %v", err)
	}
	r := receive(t, "a watch at shutdown", ch)
	if r.code != 200 || r.json(t)["value"] != "v" {
		t.Fatalf("watch at shutdown: %d %s", r.code, r.body)
	}
}

// TestWatchOnFollower: a watch on a follower, from its own copy, wakes when a write goes
// through the leader and reaches it by replication (real fan-out and HTTP).
func TestWatchOnFollower(t *testing.T) {
	c := newFakeCluster()
	a := startNode(t, c, "a")
	a.waitLeading(t)
	b := startNode(t, c, "b")
	b.waitReady(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := do(t, http.MethodGet, b.url+"/v1/kv/f", "", "")
	ch := watchAsync(ctx, b.url+"/v1/kv/f?index="+r.hdr.Get(server.HeaderIndex)+"&wait=1m")
	lch := watchAsync(ctx, b.url+"/v1/kv/?prefix=f&index=0&wait=1m")
	if r := put(t, a.url, "f", "from the leader"); r.code != 200 {
		t.Fatalf("PUT: %d %s", r.code, r.body)
	}
	if r := receive(t, "follower's key watch", ch); r.json(t)["value"] != "from the leader" || r.hdr.Get(server.HeaderLastContact) == "" {
		t.Fatalf("follower's watch: %s %v", r.body, r.hdr)
	}
	if l := listOf(t, receive(t, "follower's prefix watch", lch)); len(l.Entries) != 1 || *l.Entries[0].Value != "from the leader" {
		t.Fatalf("follower's prefix watch: %+v", l)
	}
}
