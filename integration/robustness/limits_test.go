package robustness

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"
)

// TestSlowBodyAndSilentLeader plays two more of the hardening issue's findings against real
// processes started without a token: a PUT whose body trickles in stayed open for 40 s and
// more (now the server's read timeout, 10 s, cuts it), and a follower cut off from its leader
// stayed ready and served data of unknown age (now its local reads say how stale they may
// be, ?max_staleness refuses, and /readyz turns 503 while /healthz stays 200).
func TestSlowBodyAndSilentLeader(t *testing.T) {
	res := &Result{Name: "slow body, silent leader", Fault: "PUT body at 1 byte/s; leader -> follower link cut 5s", Ack: "all"}
	recordResult(t, res)
	c := env.Cluster(t, Config{})
	needPeers(t, res.Name, res.Fault)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	seed(ctx, t, c, []string{"key-0"})
	l, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	f := c.Followers(l)[0]

	// A trickling body, straight to the follower's own port.
	conn, err := net.DialTimeout("tcp", f.Addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := `{"value":"trickled"}`
	fmt.Fprintf(conn, "PUT /v1/kv/slow HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", len(body))
	began := time.Now()
	cut := make(chan time.Duration, 1)
	go func() {
		for i := 0; i < len(body); i++ {
			if _, err := conn.Write([]byte{body[i]}); err != nil {
				break
			}
			time.Sleep(time.Second)
		}
		cut <- -1
	}()
	go func() {
		_, _ = io.Copy(io.Discard, conn) // returns when the server closes the connection
		cut <- time.Since(began)
	}()
	var took time.Duration
	select {
	case took = <-cut:
	case <-time.After(30 * time.Second):
		took = -1
	}
	if took < 0 || took > 15*time.Second {
		res.Violations = append(res.Violations, Violation{InvHostileAnswer, fmt.Sprintf("a body at 1 byte/s kept its connection open: %v", took)})
		t.Errorf("a body at 1 byte/s was not cut within 15s (%v)", took)
	}

	// The leader's stream to f goes silent.
	get := func(path string) (*http.Response, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+f.Addr+path, nil)
		resp, err := (&http.Client{Timeout: 2 * time.Second}).Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		return resp, err
	}
	if resp, err := get("/readyz"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("f not ready before the cut: %v %v", resp, err)
	}
	if err := blackhole(&Run{C: c}, fmt.Sprintf("peer-%d", f.Index)); err != nil {
		t.Fatal(err)
	}
	silent := time.Now()
	var readyzAfter time.Duration
	for time.Since(silent) < 10*time.Second {
		if resp, err := get("/readyz"); err == nil && resp.StatusCode == http.StatusServiceUnavailable {
			readyzAfter = time.Since(silent)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	local, err1 := get("/v1/kv/key-0")
	strict, err2 := get("/v1/kv/key-0?max_staleness=500ms")
	health, err3 := get("/healthz")
	c.Links.Heal()
	switch {
	case readyzAfter == 0:
		t.Errorf("f stayed ready 10s after its leader went silent")
	case err1 != nil || local.StatusCode != 200:
		t.Errorf("local read on the cut-off follower: %v %v", local, err1)
	case err2 != nil || strict.StatusCode != http.StatusServiceUnavailable:
		t.Errorf("?max_staleness=500ms on the cut-off follower: %v %v, want 503", strict, err2)
	case err3 != nil || health.StatusCode != 200:
		t.Errorf("/healthz on the cut-off follower: %v %v", health, err3)
	}
	var lastContact time.Duration
	if local != nil {
		ms, _ := strconv.ParseInt(local.Header.Get("X-Zkv-Last-Contact"), 10, 64)
		lastContact = time.Duration(ms) * time.Millisecond
		if lastContact < 2*time.Second {
			t.Errorf("X-Zkv-Last-Contact %q on a follower silent for %v", local.Header.Get("X-Zkv-Last-Contact"), time.Since(silent))
		}
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		if resp, err := get("/readyz"); err == nil && resp.StatusCode == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("f not ready again 15s after the link healed")
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	res.Counts.Ops = 1
	res.Note("a PUT body at 1 byte/s was cut after %v; the follower cut off from its leader: /readyz 503 after %v, local reads 200 with X-Zkv-Last-Contact %v, ?max_staleness=500ms 503, /healthz 200; ready again once healed",
		took.Round(100*time.Millisecond), readyzAfter.Round(100*time.Millisecond), lastContact.Round(100*time.Millisecond))
}
