package integration

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zkv-dev/zkv/driver/client"
	"github.com/zkv-dev/zkv/driver/cluster"
)

// TestClusterConditionalWrites: on real servers, If-Match and If-None-Match sent to any
// server are decided by the leader; writers racing on one version through all three servers
// produce exactly one winner, and every server converges on it.
func TestClusterConditionalWrites(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	zc := startCluster(ctx, t)
	leader := zc.members(ctx, 3, 30*time.Second)
	nodes := zc.c.Nodes()
	for _, n := range nodes {
		eventually(ctx, t, 30*time.Second, n.Addr()+" ready", func(ctx context.Context) error { return n.Client().Ready(ctx) })
	}
	follower := zc.others(leader)[0]
	wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
	defer wcancel()

	kv, err := follower.Client().Put(wctx, "cond", "v1", client.IfNoneMatch())
	if err != nil || kv.Version != 1 {
		t.Fatalf("create-only put through a follower: %+v, %v", kv, err)
	}
	_, err = follower.Client().Put(wctx, "cond", "v2", client.IfNoneMatch())
	var ae *client.APIError
	if !errors.Is(err, client.ErrPreconditionFailed) || !errors.As(err, &ae) || ae.CurrentVersion != 1 {
		t.Fatalf("create-only put of an existing key: %v", err)
	}
	// The ETag of a read is the version If-Match takes.
	req, _ := http.NewRequestWithContext(wctx, http.MethodGet, "http://"+leader.Addr()+"/v1/kv/cond", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if got := resp.Header.Get("ETag"); got != `"1"` {
		t.Fatalf("GET ETag %q, want \"1\"", got)
	}

	// Nine writers, three through each server, all If-Match "1": one wins.
	const writers = 9
	var wg sync.WaitGroup
	results := make([]error, writers)
	for i := range writers {
		n := nodes[i%len(nodes)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, results[i] = n.Client().Put(wctx, "cond", fmt.Sprintf("w%d", i), client.IfMatch(1))
		}()
	}
	wg.Wait()
	winner := -1
	for i, err := range results {
		switch {
		case err == nil:
			if winner >= 0 {
				t.Fatalf("writers %d and %d both won If-Match 1: %v", winner, i, results)
			}
			winner = i
		case errors.Is(err, client.ErrPreconditionFailed):
		default:
			t.Fatalf("writer %d: %v", i, err)
		}
	}
	if winner < 0 {
		t.Fatalf("no writer won: %v", results)
	}
	want := fmt.Sprintf("w%d", winner)
	for _, n := range nodes {
		eventually(ctx, t, 10*time.Second, n.Addr()+" holds the winner", func(ctx context.Context) error {
			kv, err := n.Client().Get(ctx, "cond")
			if err != nil {
				return err
			}
			if kv.Value != want || kv.Version != 2 {
				return fmt.Errorf("%s holds %+v, want %s at version 2", n.Addr(), kv, want)
			}
			return nil
		})
	}
	// A conditional delete through a follower.
	if _, err := follower.Client().Delete(wctx, "cond", client.IfMatch(1)); !errors.Is(err, client.ErrPreconditionFailed) {
		t.Fatalf("delete If-Match an old version: %v", err)
	}
	if found, err := follower.Client().Delete(wctx, "cond", client.IfMatch(2)); err != nil || !found {
		t.Fatalf("delete If-Match the current version: %v, %v", found, err)
	}
}

// TestClusterQuota: with -quota_bytes, the leader refuses writes that would pass it (413
// quota_exceeded) from any server, raises NOSPACE, and the cluster stays healthy: reads,
// deletes, and writes after the deletes work.
func TestClusterQuota(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	zc := startCluster(ctx, t, "-quota_bytes", "2048")
	leader := zc.members(ctx, 3, 30*time.Second)
	nodes := zc.c.Nodes()
	for _, n := range nodes {
		eventually(ctx, t, 30*time.Second, n.Addr()+" ready", func(ctx context.Context) error { return n.Client().Ready(ctx) })
	}
	follower := zc.others(leader)[0]
	value := strings.Repeat("x", 498) // key "qN" + 498 bytes: 500 each, 4 fit in 2048
	for i := range 4 {
		put(ctx, t, nodes[i%len(nodes)], fmt.Sprintf("q%d", i), value)
	}
	wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
	defer wcancel()
	_, err := follower.Client().Put(wctx, "q4", value)
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.StatusCode != http.StatusRequestEntityTooLarge || ae.Code != "quota_exceeded" {
		t.Fatalf("put past the quota through a follower: %v", err)
	}
	if st, err := leader.Client().Status(wctx); err != nil || len(st.Alarms) != 1 || st.Alarms[0] != "NOSPACE" {
		t.Fatalf("leader status after a refusal: %+v, %v", st, err)
	}
	if m, err := leader.Client().Metrics(wctx); err != nil || !strings.Contains(m, "zkv_quota_bytes 2048") ||
		!strings.Contains(m, "zkv_store_bytes 2000") {
		t.Fatalf("leader metrics lack the quota gauges: %v", err)
	}
	// Healthy: every server ready, and reads answer everywhere.
	for _, n := range nodes {
		if err := n.Client().Ready(wctx); err != nil {
			t.Fatalf("%s not ready at the quota: %v", n.Addr(), err)
		}
		eventually(ctx, t, 10*time.Second, n.Addr()+" reads q3", func(ctx context.Context) error {
			kv, err := n.Client().Get(ctx, "q3")
			if err != nil || kv.Value != value {
				return fmt.Errorf("get q3 from %s: %v", n.Addr(), err)
			}
			return nil
		})
	}
	// Deletes work, and then writes fit again.
	if found, err := follower.Client().Delete(wctx, "q0"); err != nil || !found {
		t.Fatalf("delete at the quota: %v, %v", found, err)
	}
	put(ctx, t, follower, "q4", value)
	if st, err := leader.Client().Status(wctx); err != nil || len(st.Alarms) != 0 {
		t.Fatalf("leader status once writes fit again: %+v, %v", st, err)
	}
	assertNode := func(n *cluster.Node) {
		eventually(ctx, t, 10*time.Second, n.Addr()+" reads q4", func(ctx context.Context) error {
			kv, err := n.Client().Get(ctx, "q4")
			if err != nil || kv.Value != value {
				return fmt.Errorf("get q4 from %s: %+v %v", n.Addr(), kv, err)
			}
			return nil
		})
	}
	for _, n := range nodes {
		assertNode(n)
	}
}
