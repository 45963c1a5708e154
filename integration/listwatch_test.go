package integration

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/zkv-dev/zkv/driver/client"
	"github.com/zkv-dev/zkv/driver/cluster"
)

// nextChange waits for the watch's next change that is no error, within limit.
func nextChange(t *testing.T, what string, ch <-chan client.Change, limit time.Duration) client.Change {
	t.Helper()
	timer := time.NewTimer(limit)
	defer timer.Stop()
	for {
		select {
		case c, ok := <-ch:
			if !ok {
				t.Fatalf("%s: the watch ended", what)
			}
			if c.Err != nil {
				t.Logf("%s: %v (the watch retries)", what, c.Err)
				continue
			}
			return c
		case <-timer.C:
			t.Fatalf("%s: no change within %v", what, limit)
		}
	}
}

// listAll walks every page of a prefix on n, pages of size limit.
func listAll(ctx context.Context, n *cluster.Node, prefix string, limit int) ([]client.ListEntry, uint64, error) {
	var all []client.ListEntry
	opts := client.ListOptions{Prefix: prefix, Limit: limit}
	for {
		p, err := n.Client().List(ctx, opts)
		if err != nil {
			return nil, 0, err
		}
		all = append(all, p.Entries...)
		if !p.More {
			return all, p.Index, nil
		}
		opts.After = p.Next
	}
}

// TestWatchAndListAcrossServers: a watch on a follower, served from its own copy, wakes when
// a write goes through the leader (and a delete through another follower); listings of every
// server agree once the writes are replicated.
func TestWatchAndListAcrossServers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	zc := startCluster(ctx, t)
	leader := zc.members(ctx, 3, 30*time.Second)
	followers := zc.others(leader)
	for _, f := range followers {
		eventually(ctx, t, 30*time.Second, f.Addr()+" ready", func(ctx context.Context) error { return f.Client().Ready(ctx) })
	}

	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	keyWatch := followers[0].Client().Watch(wctx, "w/k", client.WatchOptions{Wait: time.Minute})
	prefixWatch := followers[1].Client().Watch(wctx, "w/", client.WatchOptions{Prefix: true, Wait: time.Minute})
	if c := nextChange(t, "key watch, initial state", keyWatch, 30*time.Second); c.KV.Found || c.Index != 0 {
		t.Fatalf("initial state of w/k: %v", c)
	}
	if c := nextChange(t, "prefix watch, initial state", prefixWatch, 30*time.Second); len(c.Page.Entries) != 0 {
		t.Fatalf("initial state of w/: %+v", c.Page)
	}

	kv := put(ctx, t, leader, "w/k", "v1")
	c := nextChange(t, "follower's key watch after a put through the leader", keyWatch, 30*time.Second)
	if !c.KV.Found || c.KV.Value != "v1" || c.KV.Version != kv.Version || c.Index == 0 {
		t.Fatalf("key watch on %s: %v", followers[0].Addr(), c)
	}
	putIndex := c.Index
	c = nextChange(t, "follower's prefix watch after a put through the leader", prefixWatch, 30*time.Second)
	if len(c.Page.Entries) != 1 || c.Page.Entries[0].Key != "w/k" || c.Page.Entries[0].Value != "v1" || c.Index != putIndex {
		t.Fatalf("prefix watch on %s: %v %+v", followers[1].Addr(), c, c.Page)
	}

	if found, err := followers[1].Client().Delete(ctx, "w/k"); err != nil || !found {
		t.Fatalf("delete w/k through %s: %v %v", followers[1].Addr(), found, err)
	}
	c = nextChange(t, "key watch after a delete", keyWatch, 30*time.Second)
	if c.KV.Found || c.Index <= putIndex {
		t.Fatalf("key watch after the delete: %v", c)
	}
	if c := nextChange(t, "prefix watch after a delete", prefixWatch, 30*time.Second); len(c.Page.Entries) != 0 || c.Index <= putIndex {
		t.Fatalf("prefix watch after the delete: %v", c)
	}
	wcancel()

	// Listings: keys under l/ written through every server, keys around them, one deleted.
	nodes := zc.c.Nodes()
	var want []string
	for i := range 40 {
		via := nodes[i%len(nodes)]
		k := fmt.Sprintf("l/%02d", i)
		put(ctx, t, via, k, "v"+k)
		want = append(want, k)
		put(ctx, t, via, fmt.Sprintf("m/%02d", i), "x")
	}
	put(ctx, t, leader, "l", "not under l/")
	if _, err := nodes[2].Client().Delete(ctx, "l/07"); err != nil {
		t.Fatal(err)
	}
	want = slices.DeleteFunc(want, func(k string) bool { return k == "l/07" })
	var first []client.ListEntry
	var firstIndex uint64
	eventually(ctx, t, 30*time.Second, "every server lists the same l/", func(ctx context.Context) error {
		for i, n := range nodes {
			got, idx, err := listAll(ctx, n, "l/", 7)
			if err != nil {
				return err
			}
			var keys []string
			for _, e := range got {
				keys = append(keys, e.Key)
			}
			if !slices.Equal(keys, want) {
				return fmt.Errorf("%s lists %v", n.Addr(), keys)
			}
			if i == 0 {
				first, firstIndex = got, idx
			} else if !slices.Equal(got, first) || idx != firstIndex {
				return fmt.Errorf("%s lists %+v at index %d, %s %+v at %d", n.Addr(), got, idx, nodes[0].Addr(), first, firstIndex)
			}
		}
		return nil
	})
	for _, e := range first {
		if e.Value != "v"+e.Key || e.Version != 1 {
			t.Fatalf("entry %+v", e)
		}
	}
}
