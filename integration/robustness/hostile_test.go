package robustness

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// content reads every key on every running server (its own copy) and from the leader.
func content(ctx context.Context, t testing.TB, c *Cluster, keys []string) map[string]string {
	h := NewHistory()
	cl := NewClient(-1, h, 2*time.Second)
	defer cl.Close()
	out := map[string]string{}
	for _, s := range c.Servers {
		for _, k := range keys {
			for _, leader := range []bool{false, true} {
				op := cl.Get(ctx, s, k, leader)
				out[fmt.Sprintf("server %d %s leader=%v", s.Index, k, leader)] = fmt.Sprintf("%s %v v%d status %d", op.Value, op.Found, op.Version, op.Status)
			}
		}
	}
	return out
}

// seed writes keys through the leader.
func seed(ctx context.Context, t testing.TB, c *Cluster, keys []string) {
	h := NewHistory()
	cl := NewClient(-1, h, 5*time.Second)
	defer cl.Close()
	l, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if op := cl.Put(ctx, l, k, "original-"+k); op.Outcome != OK {
			t.Fatalf("seed %s: %d %s", k, op.Status, op.Err)
		}
	}
	time.Sleep(500 * time.Millisecond) // replication of the seed (ack all makes this moot)
}

type hostile struct {
	name, method, path, ctype string
	body                      []byte
	header                    map[string]string
	literalKey                string // for path tricks: a 200 is fine if it treats the path as this literal key
}

func send(ctx context.Context, addr string, h hostile) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, h.method, "http://"+addr+h.path, bytes.NewReader(h.body))
	if err != nil {
		return 0, "", err
	}
	if h.ctype != "" {
		req.Header.Set("Content-Type", h.ctype)
	}
	for k, v := range h.header {
		req.Header.Set(k, v)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	return resp.StatusCode, strings.TrimSpace(string(b)), nil
}

// recordResult puts res in the report when the test ends, with the time it took.
func recordResult(t *testing.T, res *Result) {
	start := time.Now()
	t.Cleanup(func() {
		res.Elapsed = time.Since(start)
		if t.Skipped() {
			res.Skipped = "no server binary or ZooKeeper"
		}
		env.Record(res)
	})
}

func TestBadInput(t *testing.T) {
	res := &Result{Name: "bad-input", Fault: "hostile requests to the leader and a follower", Ack: "all"}
	recordResult(t, res)
	c := env.Cluster(t, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	keys := []string{"key-0", "key-1", "dir/key-2"}
	seed(ctx, t, c, keys)
	before := content(ctx, t, c, keys)
	huge := bytes.Repeat([]byte("x"), 2<<20)
	long := strings.Repeat("k", 2000)
	js := "application/json"
	cases := []hostile{
		{"malformed JSON", "PUT", "/v1/kv/key-0", js, []byte(`{"value":`), nil, ""},
		{"not JSON at all", "PUT", "/v1/kv/key-0", js, []byte(`hello`), nil, ""},
		{"JSON with trailing garbage", "PUT", "/v1/kv/key-0", js, []byte(`{"value":"x"} trailing`), nil, ""},
		{"two JSON objects", "PUT", "/v1/kv/key-0", js, []byte(`{"value":"x"}{"value":"y"}`), nil, ""},
		{"empty body", "PUT", "/v1/kv/key-0", js, nil, nil, ""},
		{"value is a number", "PUT", "/v1/kv/key-0", js, []byte(`{"value":5}`), nil, ""},
		{"value is an object", "PUT", "/v1/kv/key-0", js, []byte(`{"value":{"a":1}}`), nil, ""},
		{"body is an array", "PUT", "/v1/kv/key-0", js, []byte(`[{"value":"x"}]`), nil, ""},
		{"body is a string", "PUT", "/v1/kv/key-0", js, []byte(`"x"`), nil, ""},
		{"value missing", "PUT", "/v1/kv/key-0", js, []byte(`{"val":"x"}`), nil, ""},
		{"value of 2 MiB (limit 1 MiB)", "PUT", "/v1/kv/key-0", js, append(append([]byte(`{"value":"`), huge...), '"', '}'), nil, ""},
		{"2 MiB of garbage", "PUT", "/v1/kv/key-0", js, huge, nil, ""},
		{"invalid UTF-8 in the value", "PUT", "/v1/kv/key-0", js, []byte("{\"value\":\"\xff\xfe\xfd\"}"), nil, ""},
		{"invalid UTF-8 in the key", "PUT", "/v1/kv/%FF%FE", js, []byte(`{"value":"x"}`), nil, ""},
		{"key of 2000 bytes (limit 1024)", "PUT", "/v1/kv/" + long, js, []byte(`{"value":"x"}`), nil, ""},
		{"read of a 2000-byte key", "GET", "/v1/kv/" + long, "", nil, nil, ""},
		{"empty key", "PUT", "/v1/kv/", js, []byte(`{"value":"x"}`), nil, ""},
		{"content type text/plain", "PUT", "/v1/kv/key-0", "text/plain", []byte(`{"value":"x"}`), nil, ""},
		{"content type form", "PUT", "/v1/kv/key-0", "application/x-www-form-urlencoded", []byte(`value=x`), nil, ""},
		{"content type XML", "PUT", "/v1/kv/key-0", "application/xml", []byte(`<value>x</value>`), nil, ""},
		{"method PATCH", "PATCH", "/v1/kv/key-0", js, []byte(`{"value":"x"}`), nil, ""},
		{"method POST on a key", "POST", "/v1/kv/key-0", js, []byte(`{"value":"x"}`), nil, ""},
		{"method DELETE on /v1/status", "DELETE", "/v1/status", "", nil, nil, ""},
		{"method PUT on /read", "PUT", "/read?key=key-0", js, []byte(`{"value":"x"}`), nil, ""},
		{"/update with malformed JSON", "POST", "/update", js, []byte(`{"key":"key-0","value":`), nil, ""},
		{"/update without a key", "POST", "/update", js, []byte(`{"value":"x"}`), nil, ""},
		{"/update with a numeric value", "POST", "/update", js, []byte(`{"key":"key-0","value":1}`), nil, ""},
		{"/read without a key", "GET", "/read", "", nil, nil, ""},
		{"path traversal to status", "GET", "/v1/kv/../status", "", nil, nil, "../status"},
		{"encoded traversal to an internal route", "PUT", "/v1/kv/%2e%2e/%2e%2e/internal/v1/append", js, []byte(`{"value":"x"}`), nil, "../../internal/v1/append"},
		{"unknown route", "GET", "/v1/nope", "", nil, nil, ""},
		{"internal append with garbage", "POST", "/internal/v1/append", js, []byte(`{"epoch":"x"`), nil, ""},
		{"internal append with an empty key", "POST", "/internal/v1/append", js,
			[]byte(`{"epoch":1,"leader":"127.0.0.1:1","prev_index":0,"prev_epoch":0,"entries":[{"key":"","value":"x","version":1,"index":1,"epoch":1}]}`), nil, ""},
		{"internal snapshot with garbage", "POST", "/internal/v1/snapshot", js, []byte(`[1,2,3]`), nil, ""},
	}
	l, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	targets := []*Server{l, c.Followers(l)[0]}
	bad := 0
	for _, tc := range cases {
		for _, s := range targets {
			status, body, err := send(ctx, s.Addr, tc)
			role := "leader"
			if s != l {
				role = "follower"
			}
			var kv kvAnswer
			if tc.literalKey != "" && status == http.StatusOK && json.Unmarshal([]byte(body), &kv) == nil && kv.Key == tc.literalKey {
				continue // the trick stayed a key: no route was escaped
			}
			if err != nil || status < 400 || status >= 500 {
				bad++
				res.Violations = append(res.Violations, Violation{InvHostileAnswer, fmt.Sprintf("%s to the %s: %d %v %.120s", tc.name, role, status, err, body)})
				t.Errorf("%s to the %s: got %d %v %.120s, want 4xx", tc.name, role, status, err, body)
			}
		}
	}
	res.Counts.Ops = 2 * len(cases)
	for _, s := range c.Servers {
		if !s.Running() {
			res.Violations = append(res.Violations, Violation{InvHostileAnswer, fmt.Sprintf("server %d died", s.Index)})
			t.Errorf("server %d died", s.Index)
		}
	}
	after := content(ctx, t, c, keys)
	changed := 0
	for k, v := range before {
		if after[k] != v {
			changed++
			res.Violations = append(res.Violations, Violation{InvHostileAnswer, fmt.Sprintf("%s was %s, now %s", k, v, after[k])})
			t.Errorf("%s was %s, now %s", k, v, after[k])
		}
	}
	res.Note("%d hostile requests (%d kinds x leader and follower): %d answered other than 4xx; %d of %d reads differ afterwards; every server still up",
		2*len(cases), len(cases), bad, changed, len(before))
}

func TestSecurity(t *testing.T) {
	res := &Result{Name: "security", Fault: "internal routes without, with a wrong, and with the right token", Ack: "all"}
	recordResult(t, res)
	const token = "s3cret-robustness-token"
	c := env.Cluster(t, Config{Token: token})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	keys := []string{"key-0", "sec-evil"}
	seed(ctx, t, c, keys[:1])
	before := content(ctx, t, c, keys)
	l, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.Status(ctx, l)
	if err != nil {
		t.Fatal(err)
	}
	f := c.Followers(l)
	appendBody := func(epoch int64, leader string) []byte {
		b, _ := json.Marshal(map[string]any{"epoch": epoch, "leader": leader, "prev_index": 1 << 40, "prev_epoch": epoch,
			"entries": []map[string]any{{"key": "sec-evil", "value": "evil", "version": 1, "index": 1<<40 + 1, "epoch": epoch},
				{"key": "key-0", "value": "evil", "version": 99, "index": 1<<40 + 2, "epoch": epoch}}})
		return b
	}
	snapBody := func(epoch int64, leader string) []byte {
		b, _ := json.Marshal(map[string]any{"epoch": epoch, "leader": leader,
			"snapshot": map[string]any{"index": 1 << 40, "epoch": epoch, "entries": []map[string]any{{"key": "sec-evil", "value": "evil", "version": 1, "index": 1, "epoch": epoch}}}})
		return b
	}
	bearer := func(tok string) map[string]string { return map[string]string{"Authorization": "Bearer " + tok} }
	js := "application/json"
	cases := []struct {
		hostile
		want int
	}{
		{hostile{"append without a token", "POST", "/internal/v1/append", js, appendBody(st.Epoch, l.PeerAddr), nil, ""}, 401},
		{hostile{"append with a wrong token", "POST", "/internal/v1/append", js, appendBody(st.Epoch, l.PeerAddr), bearer("wrong"), ""}, 401},
		{hostile{"append with a token that is a prefix", "POST", "/internal/v1/append", js, appendBody(st.Epoch, l.PeerAddr), bearer(token[:5]), ""}, 401},
		{hostile{"append with Basic auth", "POST", "/internal/v1/append", js, appendBody(st.Epoch, l.PeerAddr), map[string]string{"Authorization": "Basic " + token}, ""}, 401},
		{hostile{"snapshot install without a token", "POST", "/internal/v1/snapshot", js, snapBody(st.Epoch, l.PeerAddr), nil, ""}, 401},
		{hostile{"snapshot read without a token", "GET", "/internal/v1/snapshot", "", nil, nil, ""}, 401},
		{hostile{"append with the token, claiming to be a non-leader", "POST", "/internal/v1/append", js, appendBody(st.Epoch, f[1].PeerAddr), bearer(token), ""}, 403},
		{hostile{"snapshot with the token, claiming to be a non-leader", "POST", "/internal/v1/snapshot", js, snapBody(st.Epoch, f[1].PeerAddr), bearer(token), ""}, 403},
		// Even with the token, a fence rises only to an epoch seen in ZooKeeper: else one
		// query would make the follower refuse every real leader for good.
		{hostile{"position query with the token, raising the fence to an epoch nobody holds", "GET", "/internal/v1/position?epoch=9000000000000000000", "", nil, bearer(token), ""}, 409},
	}
	for _, tc := range cases {
		status, body, err := send(ctx, f[0].Addr, tc.hostile)
		if err != nil || status != tc.want {
			res.Violations = append(res.Violations, Violation{InvHostileAnswer, fmt.Sprintf("%s: %d %v %.120s, want %d", tc.name, status, err, body, tc.want)})
			t.Errorf("%s: got %d %v %.120s, want %d", tc.name, status, err, body, tc.want)
		}
	}
	res.Counts.Ops = len(cases)
	seed(ctx, t, c, []string{"key-1"}) // the cluster still takes writes (ack all): no fence was raised
	after := content(ctx, t, c, keys)
	changed := 0
	for k, v := range before {
		if after[k] != v {
			changed++
			res.Violations = append(res.Violations, Violation{InvHostileAnswer, fmt.Sprintf("%s was %s, now %s", k, v, after[k])})
			t.Errorf("%s was %s, now %s", k, v, after[k])
		}
	}
	res.Note("%d forged internal requests to a follower: %d answered as expected (401 without/wrong token, 403 for a non-leader sender, 409 for an epoch not in ZooKeeper); writes acknowledged afterwards; %d of %d reads differ",
		len(cases), len(cases)-len(res.Violations)+changed, changed, len(before))
}

// TestSecurityWithoutToken: servers started with the assignment's flags only (no
// -cluster_token) still refuse internal requests from anyone who is not a member: they share
// a random secret kept in ZooKeeper. Before, a forged append planted a value on a follower, one
// position query per follower raised their fence for good, and the snapshot route dumped the
// store.
func TestSecurityWithoutToken(t *testing.T) {
	res := &Result{Name: "security without a token", Fault: "forged internal requests to servers started without -cluster_token", Ack: "all"}
	recordResult(t, res)
	c := env.Cluster(t, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	keys := []string{"key-0", "sec-evil"}
	seed(ctx, t, c, keys[:1])
	before := content(ctx, t, c, keys)
	l, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.Status(ctx, l)
	if err != nil {
		t.Fatal(err)
	}
	forged, _ := json.Marshal(map[string]any{"epoch": st.Epoch, "leader": l.PeerAddr, "prev_index": 1 << 40, "prev_epoch": st.Epoch,
		"entries": []map[string]any{{"key": "sec-evil", "value": "evil", "version": 1, "index": 1<<40 + 1, "epoch": st.Epoch}}, "commit": 1<<40 + 1})
	cases := []hostile{
		{"forged append from the leader's address", "POST", "/internal/v1/append", "application/json", forged, nil, ""},
		{"snapshot read", "GET", "/internal/v1/snapshot", "", nil, nil, ""},
		{"position query raising the fence", "GET", "/internal/v1/position?epoch=9000000000000000000", "", nil, nil, ""},
	}
	for _, f := range c.Followers(l) {
		for _, tc := range cases {
			status, body, err := send(ctx, f.Addr, tc)
			if err != nil || status != http.StatusUnauthorized {
				res.Violations = append(res.Violations, Violation{InvHostileAnswer, fmt.Sprintf("%s to server %d: %d %v %.120s, want 401", tc.name, f.Index, status, err, body)})
				t.Errorf("%s to server %d: got %d %v %.120s, want 401", tc.name, f.Index, status, err, body)
			}
		}
	}
	res.Counts.Ops = 2 * len(cases)
	seed(ctx, t, c, []string{"key-1"}) // the cluster still takes writes: no fence was raised
	after := content(ctx, t, c, keys)
	for k, v := range before {
		if after[k] != v {
			res.Violations = append(res.Violations, Violation{InvHostileAnswer, fmt.Sprintf("%s was %s, now %s", k, v, after[k])})
			t.Errorf("%s was %s, now %s", k, v, after[k])
		}
	}
	res.Note("%d forged internal requests to the followers of a cluster without -cluster_token: %d refused with 401; writes still acknowledged afterwards",
		2*len(cases), 2*len(cases)-len(res.Violations))
}
