package client_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zkv-dev/zkv/driver/client"
)

// watchFake emulates a server's listings and blocking reads: a global index, each key's
// entry with its modify index, a channel closed at each write.
type watchFake struct {
	mu      sync.Mutex
	index   uint64
	kv      map[string]client.ListEntry // Value "" and Version 0: deleted
	changed chan struct{}
	fail    int // the next fail requests answer 503
	queries []string
	srv     *httptest.Server
}

func newWatchFake(t *testing.T) *watchFake {
	f := &watchFake{kv: map[string]client.ListEntry{}, changed: make(chan struct{})}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *watchFake) write(key, value string, del bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.index++
	e := f.kv[key]
	e.Key, e.Value, e.Index = key, value, f.index
	e.Version++
	if del {
		e.Value, e.Version = "", 0
	}
	f.kv[key] = e
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *watchFake) serve(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f.mu.Lock()
	f.queries = append(f.queries, r.URL.RawQuery)
	if f.fail > 0 {
		f.fail--
		f.mu.Unlock()
		w.Header().Set("Retry-After", "0.01")
		apiErr(w, 503, "too_many_watchers", "full")
		return
	}
	f.mu.Unlock()
	key := strings.TrimPrefix(r.URL.Path, "/v1/kv/")
	prefix, isList := q["prefix"]
	modIndex := func() uint64 {
		var idx uint64
		for k, e := range f.kv {
			if isList && strings.HasPrefix(k, prefix[0]) || !isList && k == key {
				idx = max(idx, e.Index)
			}
		}
		return idx
	}
	if q.Has("index") {
		n, _ := strconv.ParseUint(q.Get("index"), 10, 64)
		wait, _ := time.ParseDuration(q.Get("wait"))
		deadline := time.After(wait)
		for {
			f.mu.Lock()
			idx, ch := modIndex(), f.changed
			f.mu.Unlock()
			if idx > n {
				break
			}
			select {
			case <-ch:
				continue
			case <-deadline:
			case <-r.Context().Done():
			}
			break
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	w.Header().Set(client.HeaderIndex, strconv.FormatUint(modIndex(), 10))
	w.Header().Set(client.HeaderApplied, strconv.FormatUint(f.index, 10))
	if !isList {
		e := f.kv[key]
		writeJSON(w, 200, map[string]any{"key": key, "value": e.Value, "found": e.Version > 0, "version": e.Version})
		return
	}
	var keys []string
	for k, e := range f.kv {
		if strings.HasPrefix(k, prefix[0]) && k > q.Get("after") && e.Version > 0 {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	limit, _ := strconv.Atoi(q.Get("limit"))
	page := map[string]any{"prefix": prefix[0], "entries": []client.ListEntry{}, "more": false}
	var entries []client.ListEntry
	for _, k := range keys {
		if limit > 0 && len(entries) == limit {
			page["more"], page["next"] = true, entries[len(entries)-1].Key
			break
		}
		e := f.kv[k]
		if q.Get("keys") == "true" {
			e.Value = ""
		}
		entries = append(entries, e)
	}
	if entries != nil {
		page["entries"] = entries
	}
	writeJSON(w, 200, page)
}

func TestList(t *testing.T) {
	f := newWatchFake(t)
	for _, k := range []string{"a/2", "a/1", "b", "a/3"} {
		f.write(k, "v"+k, false)
	}
	c := client.New(f.srv.URL)
	defer c.Close()
	p, err := c.List(context.Background(), client.ListOptions{Prefix: "a/", Limit: 2, KeysOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Entries) != 2 || p.Entries[0].Key != "a/1" || p.Entries[0].Value != "" || !p.More || p.Next != "a/2" ||
		p.Index != 4 || p.Applied != 4 {
		t.Fatalf("page %+v", p)
	}
	p, err = c.List(context.Background(), client.ListOptions{Prefix: "a/", After: p.Next})
	if err != nil || len(p.Entries) != 1 || p.Entries[0].Value != "va/3" || p.More {
		t.Fatalf("second page %+v %v", p, err)
	}
	if q := f.queries[0]; q != "keys=true&limit=2&prefix=a%2F" {
		t.Fatalf("query %q", q)
	}
}

func TestWatchKey(t *testing.T) {
	f := newWatchFake(t)
	f.write("k", "v1", false)
	c := client.New(f.srv.URL, client.WithTimeout(2*time.Second))
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ch := c.Watch(ctx, "k", client.WatchOptions{Wait: 10 * time.Second})
	first := <-ch
	if first.Err != nil || first.KV.Value != "v1" || first.Index != 1 {
		t.Fatalf("first change %v", first)
	}
	f.write("other", "x", false) // not k: no change
	f.write("k", "v2", false)
	if c := <-ch; c.Err != nil || c.KV.Value != "v2" || c.Index != 3 {
		t.Fatalf("second change %v", c)
	}
	f.write("k", "", true)
	if c := <-ch; c.Err != nil || c.KV.Found || c.Index != 4 {
		t.Fatalf("delete %v", c)
	}
	// A refused request comes as an error, then the watch goes on from where it was.
	f.mu.Lock()
	f.fail = 1
	f.mu.Unlock()
	f.write("k", "v5", false)
	c1 := <-ch
	if c1.Err == nil {
		// The write may have reached the watch's pending request first.
		if c1.KV.Value != "v5" {
			t.Fatalf("change %v", c1)
		}
	} else if c2 := <-ch; c2.Err != nil || c2.KV.Value != "v5" || c2.Index != 5 {
		t.Fatalf("after an error %v then %v", c1, c2)
	}
	// The request's timeout is the wait's, not the client's 2s.
	for _, q := range f.queries {
		if strings.Contains(q, "wait=") && !strings.Contains(q, "wait=10s") {
			t.Fatalf("query %q", q)
		}
	}
	cancel()
	for range ch {
	}
}

func TestWatchPrefixFrom(t *testing.T) {
	f := newWatchFake(t)
	f.write("p/a", "1", false)
	f.write("p/b", "2", false)
	c := client.New(f.srv.URL)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// From index 2: no first state, the next change under p/ only.
	ch := c.Watch(ctx, "p/", client.WatchOptions{Prefix: true, Index: 2, Wait: 10 * time.Second, List: client.ListOptions{KeysOnly: true}})
	go f.write("p/c", "3", false)
	got := <-ch
	if got.Err != nil || got.Index != 3 || len(got.Page.Entries) != 3 || got.Page.Entries[2].Key != "p/c" || got.Page.Entries[2].Value != "" {
		t.Fatalf("prefix change %v %+v", got, got.Page)
	}
	cancel()
	if _, open := <-ch; open {
		t.Fatal("the channel stays open after ctx ends")
	}
}

func TestChangeJSON(t *testing.T) {
	b, err := json.Marshal(client.Page{Prefix: "p", Entries: []client.ListEntry{{Key: "p/a", Index: 3}}})
	if err != nil || !strings.Contains(string(b), `"entries":[{"key":"p/a","version":0,"index":3}]`) {
		t.Fatalf("%s %v", b, err)
	}
}
