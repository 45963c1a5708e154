package server_test

import (
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/zkv-dev/zkv/server"
)

func alarms(t *testing.T, n *node) []string { return n.status(t).Alarms }

// TestQuota: a write that would grow the store past QuotaBytes is refused (413
// quota_exceeded, nothing changed, NOSPACE raised); reads, deletes and writes that do not
// grow the store still work; after deletes, writes fit again and the alarm clears.
func TestQuota(t *testing.T) {
	c := newFakeCluster()
	n := startNode(t, c, "a", withConfig(func(cfg *server.Config) { cfg.QuotaBytes = 100 }))
	n.waitLeading(t)
	v60 := strings.Repeat("x", 58) // key "k1" + 58: 60 bytes
	if r := put(t, n.url, "k1", v60); r.code != 200 {
		t.Fatalf("PUT within the quota: %d %s", r.code, r.body)
	}
	if got := alarms(t, n); len(got) != 0 {
		t.Fatalf("alarms %v below the quota", got)
	}
	hash := n.store.Hash()
	r := put(t, n.url, "k2", v60)
	if r.code != 413 || r.errCode(t) != server.CodeQuotaExceeded {
		t.Fatalf("PUT past the quota: %d %s", r.code, r.body)
	}
	if e := r.json(t)["error"].(map[string]any); e["used"] != 120.0 || e["quota"] != 100.0 {
		t.Fatalf("quota_exceeded body: %s", r.body)
	}
	if n.store.Hash() != hash {
		t.Fatal("a refused write changed the store")
	}
	if got := alarms(t, n); len(got) != 1 || got[0] != server.AlarmNoSpace {
		t.Fatalf("alarms %v after a refusal, want [NOSPACE]", got)
	}
	metrics := string(do(t, http.MethodGet, n.url+"/metrics", "", "").body)
	for _, m := range []string{"zkv_store_bytes 60", "zkv_quota_bytes 100", "zkv_alarm_nospace 1",
		`zkv_writes_total{op="put",outcome="quota_exceeded"} 1`} {
		if !strings.Contains(metrics, m) {
			t.Errorf("metrics lack %q", m)
		}
	}
	// Reads, and writes that do not grow the store, still work.
	if r := do(t, http.MethodGet, n.url+"/v1/kv/k1", "", ""); r.code != 200 || r.json(t)["value"] != v60 {
		t.Fatalf("GET at the quota: %d %s", r.code, r.body)
	}
	if r := put(t, n.url, "k1", "short"); r.code != 200 {
		t.Fatalf("PUT that shrinks a value at the quota: %d %s", r.code, r.body)
	}
	if r := do(t, http.MethodDelete, n.url+"/v1/kv/k1", "", ""); r.code != 200 || r.json(t)["found"] != true {
		t.Fatalf("DELETE at the quota: %d %s", r.code, r.body)
	}
	if r := put(t, n.url, "k2", v60); r.code != 200 {
		t.Fatalf("PUT after the delete: %d %s", r.code, r.body)
	}
	if got := alarms(t, n); len(got) != 0 {
		t.Fatalf("alarms %v once a write fits again", got)
	}
}

// TestQuotaCountsLoggedWrites: writes logged but not yet committed count against the
// quota, so two that each fit alone but not together cannot both be taken.
func TestQuotaCountsLoggedWrites(t *testing.T) {
	c := newFakeCluster()
	repls := &fakeRepls{}
	n := startNode(t, c, "a", withRepls(repls), withConfig(func(cfg *server.Config) { cfg.QuotaBytes = 100 }))
	n.waitLeading(t)
	gate := make(chan struct{})
	repl := repls.last()
	repl.mu.Lock()
	repl.gate = gate
	repl.mu.Unlock()

	v60 := strings.Repeat("x", 58)
	codes := make(chan int, 2)
	var wg sync.WaitGroup
	for _, k := range []string{"k1", "k2"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes <- put(t, n.url, k, v60).code
		}()
	}
	first := <-codes // the refused one answers at once; the other waits for its commit
	close(gate)
	wg.Wait()
	second := <-codes
	if first != 413 || second != 200 {
		t.Fatalf("two writes that fit only alone: %d then %d, want 413 then 200", first, second)
	}
}

// TestQuotaOff: a negative QuotaBytes means no quota.
func TestQuotaOff(t *testing.T) {
	c := newFakeCluster()
	n := startNode(t, c, "a", withConfig(func(cfg *server.Config) { cfg.QuotaBytes = -1 }))
	n.waitLeading(t)
	if r := put(t, n.url, "k", strings.Repeat("x", 4096)); r.code != 200 {
		t.Fatalf("PUT without a quota: %d %s", r.code, r.body)
	}
	if !strings.Contains(string(do(t, http.MethodGet, n.url+"/metrics", "", "").body), "zkv_quota_bytes 0") {
		t.Error("zkv_quota_bytes is not 0 without a quota")
	}
}
