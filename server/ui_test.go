package server_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/zkv-dev/zkv/server"
)

func clusterView(t *testing.T, n *node) server.ClusterView {
	t.Helper()
	r := do(t, http.MethodGet, n.url+"/v1/cluster", "", "")
	if r.code != http.StatusOK {
		t.Fatalf("/v1/cluster: %d %s", r.code, r.body)
	}
	var cv server.ClusterView
	if err := json.Unmarshal(r.body, &cv); err != nil {
		t.Fatalf("/v1/cluster: %v: %s", err, r.body)
	}
	return cv
}

// TestUIPageAndAssets: /ui is the embedded page, its script and stylesheet are served, and
// an unknown asset is a 404.
func TestUIPageAndAssets(t *testing.T) {
	c := newFakeCluster()
	a := startNode(t, c, "a")
	for _, path := range []string{"/ui", "/ui/"} {
		r := do(t, http.MethodGet, a.url+path, "", "")
		if r.code != 200 || !strings.HasPrefix(r.hdr.Get("Content-Type"), "text/html") ||
			!strings.Contains(string(r.body), `id="leader"`) || !strings.Contains(string(r.body), `/ui/app.js`) {
			t.Fatalf("GET %s: %d %s\n%s", path, r.code, r.hdr.Get("Content-Type"), r.body)
		}
	}
	if r := do(t, http.MethodGet, a.url+"/ui/app.js", "", ""); r.code != 200 || !strings.Contains(string(r.body), "/v1/cluster") ||
		!strings.Contains(r.hdr.Get("Content-Type"), "javascript") {
		t.Fatalf("app.js: %d %s", r.code, r.hdr.Get("Content-Type"))
	}
	if r := do(t, http.MethodGet, a.url+"/ui/style.css", "", ""); r.code != 200 || !strings.HasPrefix(r.hdr.Get("Content-Type"), "text/css") {
		t.Fatalf("style.css: %d %s", r.code, r.hdr.Get("Content-Type"))
	}
	if r := do(t, http.MethodGet, a.url+"/ui/nope.js", "", ""); r.code != 404 {
		t.Fatalf("unknown asset: %d", r.code)
	}
}

// TestClusterView: a follower's /v1/cluster gathers every member's status (role, applied
// index, lag, key count), shows a member that stopped as unreachable, and lists the
// change of leader it saw.
func TestClusterView(t *testing.T) {
	c := newFakeCluster()
	a := startNode(t, c, "a")
	a.waitLeading(t)
	b := startNode(t, c, "b")
	cc := startNode(t, c, "c")
	b.waitReady(t)
	cc.waitReady(t)
	for _, k := range []string{"k1", "k2", "k3"} {
		if r := put(t, a.url, k, "v"); r.code != 200 {
			t.Fatalf("PUT %s: %d %s", k, r.code, r.body)
		}
	}
	cv := clusterView(t, b)
	if cv.Server != b.addr || cv.Leader.Address != a.addr || len(cv.Members) != 3 {
		t.Fatalf("view from b: %+v", cv)
	}
	for _, m := range cv.Members {
		if !m.Reachable || m.Lag == nil || m.Keys != 3 || m.Applied == 0 || m.Epoch != cv.Epoch {
			t.Errorf("member %+v", m)
		}
		if want := map[bool]string{true: "leader", false: "follower"}[m.Address == a.addr]; m.Role != want {
			t.Errorf("%s: role %q, want %q", m.Address, m.Role, want)
		}
		if m.Address == a.addr && m.LastContactMS != 0 || m.Address != a.addr && m.LastContactMS < 0 {
			t.Errorf("%s: last contact %d ms", m.Address, m.LastContactMS)
		}
	}
	if n := len(cv.LeaderChanges); n == 0 || cv.LeaderChanges[n-1].To.Address != a.addr {
		t.Fatalf("leader changes %+v", cv.LeaderChanges)
	}

	// The leader stops: b leads, and c's view records the change from a to b.
	a.stop(t)
	b.waitLeading(t)
	waitFor(t, "c's page to show b leading", func() bool {
		cv = clusterView(t, cc)
		n := len(cv.LeaderChanges)
		return cv.Leader.Address == b.addr && n >= 2 && cv.LeaderChanges[n-1].From.Address == a.addr &&
			cv.LeaderChanges[n-1].To.Address == b.addr
	})
	for _, m := range cv.Members {
		if m.Address == a.addr && m.Reachable {
			t.Errorf("stopped a shown reachable: %+v", m)
		}
	}
}

// TestClusterSelf: ?self=true is this server's own line, no fan-out; a bad value is a 400.
func TestClusterSelf(t *testing.T) {
	c := newFakeCluster()
	a := startNode(t, c, "a")
	a.waitLeading(t)
	r := do(t, http.MethodGet, a.url+"/v1/cluster?self=true", "", "")
	var m server.ClusterMember
	if err := json.Unmarshal(r.body, &m); err != nil || r.code != 200 || m.Address != a.addr || m.Role != "leader" ||
		!m.Reachable || m.LastContactMS != 0 {
		t.Fatalf("self: %d %s (%v)", r.code, r.body, err)
	}
	if r := do(t, http.MethodGet, a.url+"/v1/cluster?self=yes", "", ""); r.code != 400 || r.errCode(t) != "bad_request" {
		t.Fatalf("self=yes: %d %s", r.code, r.body)
	}
}
