package server_test

import (
	"strings"
	"testing"

	"github.com/zkv-dev/zkv/server"
)

type badInput struct {
	name, method, path, ct, body string
	code                         int
	errCode                      string
}

func badInputs() []badInput {
	long := strings.Repeat("k", 1025)
	big := strings.Repeat("v", 1<<20+1)
	const js = "application/json"
	return []badInput{
		{"put malformed", "PUT", "/v1/kv/k", js, `{"value":`, 400, server.CodeInvalidJSON},
		{"put not an object", "PUT", "/v1/kv/k", js, `["v"]`, 400, server.CodeInvalidJSON},
		{"put empty body", "PUT", "/v1/kv/k", js, ``, 400, server.CodeInvalidJSON},
		{"put null", "PUT", "/v1/kv/k", js, `null`, 400, server.CodeInvalidJSON},
		{"put unknown field", "PUT", "/v1/kv/k", js, `{"value":"v","extra":1}`, 400, server.CodeInvalidJSON},
		{"put number value", "PUT", "/v1/kv/k", js, `{"value":42}`, 400, server.CodeInvalidJSON},
		{"put null value", "PUT", "/v1/kv/k", js, `{"value":null}`, 400, server.CodeMissingValue},
		{"put no value", "PUT", "/v1/kv/k", js, `{}`, 400, server.CodeMissingValue},
		{"put trailing data", "PUT", "/v1/kv/k", js, `{"value":"v"} {"value":"w"}`, 400, server.CodeInvalidJSON},
		{"put trailing garbage", "PUT", "/v1/kv/k", js, `{"value":"v"}x`, 400, server.CodeInvalidJSON},
		{"put invalid utf8 value", "PUT", "/v1/kv/k", js, "{\"value\":\"\xff\xfe\"}", 400, server.CodeInvalidUTF8},
		{"put invalid utf8 key", "PUT", "/v1/kv/%FF", js, `{"value":"v"}`, 400, server.CodeInvalidUTF8},
		{"put empty key", "PUT", "/v1/kv/", js, `{"value":"v"}`, 400, server.CodeMissingKey},
		{"put long key", "PUT", "/v1/kv/" + long, js, `{"value":"v"}`, 414, server.CodeKeyTooLong},
		{"put big value", "PUT", "/v1/kv/k", js, `{"value":"` + big + `"}`, 413, server.CodeValueTooLarge},
		{"put huge body", "PUT", "/v1/kv/k", js, `{"value":"` + strings.Repeat("v", 7<<20) + `"}`, 413, server.CodeBodyTooLarge},
		{"put no content type", "PUT", "/v1/kv/k", "", `{"value":"v"}`, 415, server.CodeUnsupportedMedia},
		{"put text", "PUT", "/v1/kv/k", "text/plain", `{"value":"v"}`, 415, server.CodeUnsupportedMedia},
		{"put bad media type", "PUT", "/v1/kv/k", "application/json; =", `{"value":"v"}`, 415, server.CodeUnsupportedMedia},
		{"update no key", "POST", "/update", js, `{"value":"v"}`, 400, server.CodeMissingKey},
		{"update empty key", "POST", "/update", js, `{"key":"","value":"v"}`, 400, server.CodeMissingKey},
		{"update number key", "POST", "/update", js, `{"key":1,"value":"v"}`, 400, server.CodeInvalidJSON},
		{"update long key", "POST", "/update", js, `{"key":"` + long + `","value":"v"}`, 400, server.CodeKeyTooLong},
		{"update no value", "POST", "/update", js, `{"key":"k"}`, 400, server.CodeMissingValue},
		{"update big value", "POST", "/update", js, `{"key":"k","value":"` + big + `"}`, 413, server.CodeValueTooLarge},
		{"update unknown field", "POST", "/update", js, `{"key":"k","value":"v","ttl":3}`, 400, server.CodeInvalidJSON},
		{"update form", "POST", "/update", "application/x-www-form-urlencoded", `key=k&value=v`, 415, server.CodeUnsupportedMedia},
		{"delete empty key", "DELETE", "/v1/kv/", "", "", 400, server.CodeMissingKey},
		{"delete long key", "DELETE", "/v1/kv/" + long, "", "", 414, server.CodeKeyTooLong},
		{"get empty key", "GET", "/v1/kv/", "", "", 400, server.CodeMissingKey},
		{"get invalid utf8", "GET", "/v1/kv/a%C3", "", "", 400, server.CodeInvalidUTF8},
		{"get bad consistency", "GET", "/v1/kv/k?consistency=strong", "", "", 400, server.CodeBadRequest},
		{"read no key", "GET", "/read", "", "", 400, server.CodeMissingKey},
		{"read long key", "GET", "/read?key=" + long, "", "", 414, server.CodeKeyTooLong},
		{"read invalid utf8", "GET", "/read?key=%FF", "", "", 400, server.CodeInvalidUTF8},
		{"wrong method", "POST", "/v1/kv/k", js, `{"value":"v"}`, 405, server.CodeMethodNotAllowed},
	}
}

// TestBadInput: every bad request gets its 4xx and JSON error body, and changes nothing,
// on the leader and on a follower (which must not forward it either).
func TestBadInput(t *testing.T) {
	c := newFakeCluster()
	leader := startNode(t, c, "a")
	leader.waitLeading(t)
	if r := put(t, leader.url, "k", "original"); r.code != 200 {
		t.Fatalf("seed PUT: %d %s", r.code, r.body)
	}
	follower := startNode(t, c, "b")
	follower.waitRole(t, "follower")
	before := leader.store.Snapshot()
	for _, n := range []*node{leader, follower} {
		for _, tc := range badInputs() {
			r := do(t, tc.method, n.url+tc.path, tc.ct, tc.body)
			if r.code != tc.code || r.errCode(t) != tc.errCode {
				t.Errorf("%s on %s: %d %.200s, want %d %s", tc.name, n.s.ID(), r.code, r.body, tc.code, tc.errCode)
			}
			checkHeaders(t, r, leader.addr)
		}
	}
	after := leader.store.Snapshot()
	if after.Index != before.Index || len(after.Entries) != 1 || after.Entries[0].Value != "original" {
		t.Fatalf("bad input changed the leader's store: %+v", after)
	}
}
