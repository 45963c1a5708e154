package scenarios_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// fakeCluster emulates n zkv servers over one store: server 0 leads; a write through any
// server is answered by the leader; the store of a server listed in lagging never changes.
type fakeCluster struct {
	mu      sync.Mutex
	stores  []map[string]string
	srvs    []*httptest.Server
	lagging map[int]bool
}

func newFakeCluster(t *testing.T, n int) *fakeCluster {
	f := &fakeCluster{lagging: map[int]bool{}}
	for i := range n {
		f.stores = append(f.stores, map[string]string{})
		f.srvs = append(f.srvs, httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { f.serve(i, w, r) })))
	}
	t.Cleanup(func() {
		for _, s := range f.srvs {
			s.Close()
		}
	})
	return f
}

func (f *fakeCluster) addr(i int) string { return strings.TrimPrefix(f.srvs[i].URL, "http://") }

func (f *fakeCluster) addrs() []string {
	out := make([]string, len(f.srvs))
	for i := range f.srvs {
		out[i] = f.addr(i)
	}
	return out
}

func (f *fakeCluster) serve(i int, w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	leader := f.addr(0)
	w.Header().Set("X-Zkv-Leader", leader)
	w.Header().Set("X-Zkv-Epoch", "5")
	enc := json.NewEncoder(w)
	switch {
	case r.URL.Path == "/healthz":
	case r.URL.Path == "/metrics":
		for j := 1; j < len(f.srvs); j++ {
			_, _ = w.Write([]byte(`zkv_replication_replica_up{replica="` + f.addr(j) + `"} 1` + "\n"))
		}
	case r.URL.Path == "/v1/status":
		role := "follower"
		if i == 0 {
			role = "leader"
		}
		var ms []map[string]string
		for j := range f.srvs {
			ms = append(ms, map[string]string{"id": f.addr(j), "address": f.addr(j), "znode": "/election/server000000000" + string(rune('0'+j))})
		}
		_ = enc.Encode(map[string]any{"id": f.addr(i), "address": f.addr(i), "role": role,
			"leader": map[string]string{"id": leader, "address": leader}, "epoch": 5, "keys": len(f.stores[i]), "members": ms})
	case strings.HasPrefix(r.URL.Path, "/v1/kv/"):
		key := strings.TrimPrefix(r.URL.Path, "/v1/kv/")
		if r.Method == http.MethodPut {
			var in struct{ Value string }
			_ = json.NewDecoder(r.Body).Decode(&in)
			for j := range f.stores {
				if !f.lagging[j] {
					f.stores[j][key] = in.Value
				}
			}
			_ = enc.Encode(map[string]any{"key": key, "value": in.Value, "version": 1, "epoch": 5, "leader": leader})
			return
		}
		v, ok := f.stores[i][key]
		_ = enc.Encode(map[string]any{"key": key, "value": v, "found": ok})
	default:
		http.NotFound(w, r)
	}
}
