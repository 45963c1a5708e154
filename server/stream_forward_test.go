package server_test

import (
	"net/http"
	"testing"

	"github.com/zkv-dev/zkv/server"
)

// A follower forwards on its stream to the leader: the leader evaluates the
// preconditions where it orders the write, and its status, error body, ETag and write
// position reach the client as if it had asked the leader; a leader read is forwarded too.
func TestForwardOverStream(t *testing.T) {
	c := newFakeCluster()
	a := startNode(t, c, "a")
	a.waitLeading(t)
	b := startNode(t, c, "b")
	b.waitRole(t, "follower")
	b.waitReady(t)

	r := putIf(t, b.url, "k", "v1", "If-None-Match", "*")
	if r.code != 200 || r.hdr.Get("ETag") != `"1"` || r.hdr.Get(server.HeaderWriteIndex) == "" || r.json(t)["leader"] != a.addr {
		t.Fatalf("create through the follower: %d %v %s", r.code, r.hdr, r.body)
	}
	r = putIf(t, b.url, "k", "v2", "If-Match", `"7"`)
	if r.code != 412 || r.errCode(t) != server.CodePreconditionFailed || r.hdr.Get("ETag") != `"1"` {
		t.Fatalf("a failed precondition through the follower: %d %v %s", r.code, r.hdr, r.body)
	}
	if r := do(t, http.MethodGet, b.url+"/v1/kv/k?consistency=leader", "", ""); r.code != 200 || r.json(t)["value"] != "v1" {
		t.Fatalf("leader read through the follower: %d %s", r.code, r.body)
	}
	if r := do(t, http.MethodDelete, b.url+"/v1/kv/k", "", ""); r.code != 200 {
		t.Fatalf("delete through the follower: %d %s", r.code, r.body)
	}
	if hasValue(a, "k", "v1") {
		t.Fatal("the leader still holds k after a forwarded delete")
	}
}
