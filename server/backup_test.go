package server_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"testing"

	"github.com/zkv-dev/zkv/server"
)

// TestSnapshotStream: GET /v1/snapshot is a header line with the store's index and epoch
// and the count of key lines, then the live keys in order (no tombstones), values byte
// for byte.
func TestSnapshotStream(t *testing.T) {
	c := newFakeCluster()
	a := startNode(t, c, "a")
	a.waitLeading(t)
	values := map[string]string{"b/1": "x", "a": "line\nbreak \"quoted\" <html>", "c": "", "gone": "soon"}
	for k, v := range values {
		if r := put(t, a.url, k, v); r.code != 200 {
			t.Fatalf("PUT %s: %d %s", k, r.code, r.body)
		}
	}
	put(t, a.url, "b/1", "y")
	if r := do(t, http.MethodDelete, a.url+"/v1/kv/gone", "", ""); r.code != 200 {
		t.Fatalf("DELETE: %d %s", r.code, r.body)
	}
	values["b/1"] = "y"
	delete(values, "gone")

	r := do(t, http.MethodGet, a.url+"/v1/snapshot", "", "")
	if r.code != 200 || r.hdr.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("snapshot: %d %s %s", r.code, r.hdr.Get("Content-Type"), r.body)
	}
	sc := bufio.NewScanner(bytes.NewReader(r.body))
	if !sc.Scan() {
		t.Fatal("no header line")
	}
	var h server.SnapshotHeader
	if err := json.Unmarshal(sc.Bytes(), &h); err != nil {
		t.Fatalf("header %q: %v", sc.Text(), err)
	}
	st := a.status(t)
	if h.Format != server.SnapshotFormat || h.Index != st.Applied || h.Epoch == 0 || h.Keys != len(values) || h.Server != a.addr {
		t.Fatalf("header %+v; status applied %d", h, st.Applied)
	}
	if got := r.hdr.Get(server.HeaderApplied); got != strconv.FormatUint(h.Index, 10) {
		t.Fatalf("%s = %q, header index %d", server.HeaderApplied, got, h.Index)
	}
	var keys []string
	for sc.Scan() {
		var k server.SnapshotKey
		if err := json.Unmarshal(sc.Bytes(), &k); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		if want, ok := values[k.Key]; !ok || k.Value != want || k.Version == 0 {
			t.Errorf("key line %+v (want value %q, present %v)", k, want, ok)
		}
		if k.Key == "b/1" && k.Version != 2 {
			t.Errorf("b/1 version %d, want 2", k.Version)
		}
		keys = append(keys, k.Key)
	}
	if want := []string{"a", "b/1", "c"}; len(keys) != 3 || keys[0] != want[0] || keys[1] != want[1] || keys[2] != want[2] {
		t.Fatalf("keys %q, want %q", keys, want)
	}
	if r := do(t, http.MethodPost, a.url+"/v1/snapshot", "application/json", "{}"); r.code != http.StatusMethodNotAllowed {
		t.Fatalf("POST /v1/snapshot: %d", r.code)
	}
}
