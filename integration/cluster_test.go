package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/zkv-dev/zkv/driver/client"
	"github.com/zkv-dev/zkv/driver/cluster"
)

// serverSession is the servers' -session_timeout: 8 ticks of zkTick.
const serverSession = 2 * time.Second

// zkvCluster is three bin/server processes on a single ZooKeeper node of their own (the servers
// use the fixed /election root, so clusters cannot share a ZooKeeper).
type zkvCluster struct {
	t *testing.T
	c *cluster.Cluster
}

func startCluster(ctx context.Context, t *testing.T, args ...string) *zkvCluster {
	t.Helper()
	bin := serverBinary(t)
	z := startZooKeeper(ctx, t, 1)
	dir := logDir(t, "servers")
	sctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	c, err := cluster.Start(sctx, cluster.Options{
		Binary:    bin,
		Servers:   3,
		ZooKeeper: z.Servers(),
		LogDir:    dir,
		Args:      append([]string{"-session_timeout", serverSession.String()}, args...),
		Logger:    testLogger(t),
	})
	if err != nil {
		tailLogs(t, dir, 40)
		t.Fatalf("start cluster: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() && os.Getenv("ZKV_TEST_SIGQUIT") == "1" {
			for _, n := range c.Nodes() {
				_ = n.Signal(syscall.SIGQUIT)
			}
			wctx, wcancel := context.WithTimeout(context.Background(), 5*time.Second)
			for _, n := range c.Nodes() {
				_ = n.Wait(wctx)
			}
			wcancel()
		}
		if err := c.Close(); err != nil {
			t.Logf("close cluster: %v", err) // killed processes report their signal
		}
		if t.Failed() {
			tailLogs(t, dir, 60)
		}
	})
	zc := &zkvCluster{t: t, c: c}
	zc.leader(ctx, 30*time.Second)
	zc.members(ctx, 3, 30*time.Second)
	internalToken.Store(readSecret(ctx, t, z.Servers()))
	return zc
}

// internalToken is the cluster secret of the running test's servers (they have no
// -cluster_token, so they share one kept in ZooKeeper): the tests that call the internal
// routes read it as a member would.
var internalToken atomic.Value

func readSecret(ctx context.Context, t *testing.T, servers []string) string {
	t.Helper()
	conn := ctDial(ctx, t, servers, "")
	defer conn.Close()
	data, _, err := conn.Get("/zkv/secret")
	if err != nil {
		t.Fatalf("read the cluster secret: %v", err)
	}
	return string(data)
}

// withToken sets the cluster secret on an internal request.
func withToken(req *http.Request) {
	if tok, _ := internalToken.Load().(string); tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
}

// leader waits for the running servers to agree on a leader.
func (zc *zkvCluster) leader(ctx context.Context, limit time.Duration) *cluster.Node {
	zc.t.Helper()
	lctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	n, err := zc.c.Leader(lctx)
	if err != nil {
		zc.t.Fatalf("leader: %v", err)
	}
	return n
}

// members waits until the leader lists want members and every running node agrees on it.
func (zc *zkvCluster) members(ctx context.Context, want int, limit time.Duration) *cluster.Node {
	zc.t.Helper()
	var leader *cluster.Node
	eventually(ctx, zc.t, limit, fmt.Sprintf("%d members around one leader", want), func(ctx context.Context) error {
		var err error
		leader, err = zc.c.Leader(ctx)
		if err != nil {
			return err
		}
		for _, n := range zc.running() {
			st, err := n.Client().Status(ctx)
			if err != nil {
				return err
			}
			if len(st.Members) != want || st.Leader.Address != leader.Addr() {
				return fmt.Errorf("%s: %d members, leader %q", n.Addr(), len(st.Members), st.Leader.Address)
			}
		}
		return nil
	})
	return leader
}

func (zc *zkvCluster) running() []*cluster.Node {
	var out []*cluster.Node
	for _, n := range zc.c.Nodes() {
		if n.Running() && !n.Paused() {
			out = append(out, n)
		}
	}
	return out
}

func (zc *zkvCluster) others(n *cluster.Node) []*cluster.Node {
	var out []*cluster.Node
	for _, m := range zc.c.Nodes() {
		if m != n {
			out = append(out, m)
		}
	}
	return out
}

// put writes through n and fails t on any error.
func put(ctx context.Context, t *testing.T, n *cluster.Node, key, value string) client.KV {
	t.Helper()
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	kv, err := n.Client().Put(pctx, key, value)
	if err != nil {
		t.Fatalf("put %s=%s through %s: %v", key, value, n.Addr(), err)
	}
	if kv.Value != value || kv.Key != key || kv.Version == 0 {
		t.Fatalf("put %s=%s through %s answered %+v", key, value, n.Addr(), kv)
	}
	return kv
}

// get reads key from n's own copy and fails t on any error.
func get(ctx context.Context, t *testing.T, n *cluster.Node, key string) client.KV {
	t.Helper()
	gctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	kv, err := n.Client().Get(gctx, key)
	if err != nil {
		t.Fatalf("get %s from %s: %v", key, n.Addr(), err)
	}
	return kv
}

// putUntilAcked writes through n until a write is acknowledged by a leader other than notBy
// (any leader when empty), retrying what fails; it returns the answer and when it came.
func putUntilAcked(ctx context.Context, t *testing.T, n *cluster.Node, key, value, notBy string, limit time.Duration) (client.KV, time.Time) {
	t.Helper()
	var kv client.KV
	var last error
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	for ctx.Err() == nil {
		pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
		got, err := n.Client().Put(pctx, key, value)
		pcancel()
		if err == nil && got.Leader != notBy {
			return got, time.Now()
		}
		if err == nil {
			last = fmt.Errorf("acknowledged by the old leader %s", got.Leader)
		} else {
			last = err
		}
		kv = got
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Millisecond):
		}
	}
	t.Fatalf("no write through %s acknowledged within %v (last %+v, %v)", n.Addr(), limit, kv, last)
	return kv, time.Time{}
}

// staleAppend sends n an append of key "fenced" in epoch (POST /internal/v1/append) as leader
// would, and returns the answer's status code and body.
func staleAppend(ctx context.Context, t *testing.T, n *cluster.Node, epoch int64, leader string) (int, string) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{
		"epoch": epoch, "leader": leader, "prev_index": 1<<40 - 1, "prev_epoch": epoch,
		"entries": []map[string]any{{"key": "fenced", "value": "old-epoch", "version": 1, "index": 1 << 40, "epoch": epoch}},
	})
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+n.Addr()+"/internal/v1/append", strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	withToken(req)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("append to %s: %v", n.Addr(), err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

// isReplica reports (nil) whether leader's fan-out has a queue for addr, from its
// zkv_replication_replica_up{replica="addr"} metric.
func isReplica(ctx context.Context, leader *cluster.Node, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+leader.Addr()+"/metrics", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	want := `zkv_replication_replica_up{replica="` + addr + `"}`
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, want) {
			return nil
		}
	}
	return fmt.Errorf("%s does not replicate to %s (no %s in /metrics)", leader.Addr(), addr, want)
}

// entry is a key's state in a server's snapshot.
type entry struct {
	Value   string
	Version uint64
}

// contents returns n's live keys, from the internal snapshot route (GET /internal/v1/snapshot).
func contents(ctx context.Context, n *cluster.Node) (map[string]entry, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+n.Addr()+"/internal/v1/snapshot", nil)
	if err != nil {
		return nil, err
	}
	withToken(req)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: snapshot: %s", n.Addr(), resp.Status)
	}
	var snap struct {
		Entries []struct {
			Key     string `json:"key"`
			Value   string `json:"value"`
			Version uint64 `json:"version"`
			Deleted bool   `json:"deleted"`
		} `json:"entries"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&snap); err != nil {
		return nil, fmt.Errorf("%s: snapshot: %w", n.Addr(), err)
	}
	out := map[string]entry{}
	for _, e := range snap.Entries {
		if !e.Deleted {
			out[e.Key] = entry{e.Value, e.Version}
		}
	}
	return out, nil
}

// converged waits until every node in nodes holds the same live keys, values and versions, and
// returns that content.
func converged(ctx context.Context, t *testing.T, nodes []*cluster.Node, limit time.Duration) map[string]entry {
	t.Helper()
	var want map[string]entry
	eventually(ctx, t, limit, "servers converge", func(ctx context.Context) error {
		want = nil
		for _, n := range nodes {
			got, err := contents(ctx, n)
			if err != nil {
				return err
			}
			if want == nil {
				want = got
				continue
			}
			if !maps.Equal(got, want) {
				return fmt.Errorf("%s holds %s; %s holds %s", nodes[0].Addr(), describe(want), n.Addr(), describe(got))
			}
		}
		return nil
	})
	return want
}

func describe(m map[string]entry) string {
	keys := slices.Sorted(maps.Keys(m))
	if len(keys) > 12 {
		return fmt.Sprintf("%d keys (%v ...)", len(keys), keys[:12])
	}
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%s@%d", k, m[k].Value, m[k].Version))
	}
	return "{" + strings.Join(parts, " ") + "}"
}

// rawPut writes PUT /v1/kv/key on a connection of its own and returns a function that reads the
// answer (waiting at most 15s), so the request can be sent to a stopped process.
func rawPut(ctx context.Context, addr, key, value string) (func() (client.KV, error), error) {
	var d net.Dialer
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := d.DialContext(dctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	body, _ := json.Marshal(map[string]string{"value": value})
	req := fmt.Sprintf("PUT /v1/kv/%s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		key, addr, len(body), body)
	_ = conn.SetDeadline(time.Now().Add(15 * time.Second))
	if _, err := io.WriteString(conn, req); err != nil {
		conn.Close()
		return nil, err
	}
	return func() (client.KV, error) {
		defer conn.Close()
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			return client.KV{}, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return client.KV{}, err
		}
		if resp.StatusCode != http.StatusOK {
			return client.KV{}, fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(b)))
		}
		var kv client.KV
		if err := json.Unmarshal(b, &kv); err != nil {
			return client.KV{}, fmt.Errorf("decode %q: %w", b, err)
		}
		if kv.Leader == "" {
			kv.Leader = resp.Header.Get("X-Zkv-Leader")
		}
		if kv.Epoch == 0 {
			kv.Epoch, _ = strconv.ParseInt(resp.Header.Get("X-Zkv-Epoch"), 10, 64)
		}
		return kv, nil
	}, nil
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

// TestClusterAddAndRead: writes through every server (followers forward to the leader, whose
// address and epoch the answer names) are acknowledged once every replica has them (-ack all),
// so every server reads them at once; deletes likewise; the assignment's /read and /update
// shapes work; all three hold the same content.
func TestClusterAddAndRead(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	zc := startCluster(ctx, t)
	leader := zc.leader(ctx, 10*time.Second)
	st, err := leader.Client().Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	nodes := zc.c.Nodes()

	for i := range 30 {
		via := nodes[i%len(nodes)]
		key, value := fmt.Sprintf("k%02d", i), fmt.Sprintf("v%02d-via-%d", i, via.ID())
		kv := put(ctx, t, via, key, value)
		if kv.Leader != leader.Addr() || kv.Epoch != st.Epoch {
			t.Fatalf("put through %s answered leader %q epoch %d; want %s epoch %d", via.Addr(), kv.Leader, kv.Epoch, leader.Addr(), st.Epoch)
		}
		for _, n := range nodes {
			if got := get(ctx, t, n, key); !got.Found || got.Value != value || got.Version != kv.Version {
				t.Fatalf("get %s from %s: %+v, want %s version %d", key, n.Addr(), got, value, kv.Version)
			}
		}
	}

	// A key written twice: versions grow; a missing key reads found=false.
	k1 := put(ctx, t, nodes[1], "twice", "one")
	k2 := put(ctx, t, nodes[2], "twice", "two")
	if k2.Version != k1.Version+1 {
		t.Fatalf("versions %d then %d", k1.Version, k2.Version)
	}
	for _, n := range nodes {
		if got := get(ctx, t, n, "never-written"); got.Found || got.Value != "" {
			t.Fatalf("missing key on %s: %+v", n.Addr(), got)
		}
	}

	// Deletes, through a follower.
	follower := zc.others(leader)[0]
	found, err := follower.Client().Delete(ctx, "k00")
	if err != nil || !found {
		t.Fatalf("delete k00 through %s: %v, %v", follower.Addr(), found, err)
	}
	for _, n := range nodes {
		if got := get(ctx, t, n, "k00"); got.Found {
			t.Fatalf("deleted k00 still on %s: %+v", n.Addr(), got)
		}
	}

	// The assignment's shapes.
	if err := follower.Client().Update(ctx, "assignment", "shape"); err != nil {
		t.Fatalf("update: %v", err)
	}
	for _, n := range nodes {
		v, err := n.Client().Read(ctx, "assignment")
		if err != nil || v != "shape" {
			t.Fatalf("read from %s: %q, %v", n.Addr(), v, err)
		}
	}

	content := converged(ctx, t, nodes, 10*time.Second)
	if len(content) != 31 { // k01..k29, twice, assignment
		t.Fatalf("%d live keys, want 31: %s", len(content), describe(content))
	}
	for _, n := range nodes {
		if st, err := n.Client().Status(ctx); err != nil || st.Keys != len(content) {
			t.Fatalf("status of %s: keys %d, %v", n.Addr(), st.Keys, err)
		}
	}
}

// TestClusterLeaderCrash: kill -9 of the leader, three times: a survivor leads, writes through a
// survivor resume (time from the kill to the first write a new leader acknowledges, median
// logged); the restarted ex-leader starts empty (reads found=false for what it held), then reads
// what is written after it rejoined; the survivors hold the same content.
func TestClusterLeaderCrash(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	zc := startCluster(ctx, t)
	var took []time.Duration
	for round := range 3 {
		old := zc.members(ctx, 3, 30*time.Second)
		survivors := zc.others(old)
		key := fmt.Sprintf("crash-%d", round)
		put(ctx, t, survivors[0], key, "before")

		began := time.Now()
		if err := old.Kill(); err != nil {
			t.Fatalf("kill -9 %s: %v", old.Addr(), err)
		}
		kv, at := putUntilAcked(ctx, t, survivors[1], key, "after", old.Addr(), serverSession+20*time.Second)
		took = append(took, at.Sub(began))
		leader := zc.leader(ctx, 10*time.Second)
		if leader == old || kv.Leader != leader.Addr() {
			t.Fatalf("after the kill: leader %s, write acknowledged by %s", leader.Addr(), kv.Leader)
		}
		// Acknowledged with -ack all: every survivor has it. (Their whole content may differ: a
		// survivor restarted in an earlier round started empty.)
		for _, n := range survivors {
			if got := get(ctx, t, n, key); got.Value != "after" {
				t.Fatalf("%s reads %s=%+v after failover", n.Addr(), key, got)
			}
		}

		rctx, rcancel := context.WithTimeout(ctx, 30*time.Second)
		err := old.Restart(rctx)
		rcancel()
		if err != nil {
			t.Fatalf("restart %s: %v", old.Addr(), err)
		}
		// Empty: the key it held before the crash is not there (no -sync_on_join).
		if got := get(ctx, t, old, key); got.Found || got.Value != "" {
			t.Fatalf("restarted ex-leader %s reads %s=%+v, want found=false", old.Addr(), key, got)
		}
		// The leader learns of the new member on its own schedule; once it counts it as a
		// replica, a write acknowledged with -ack all is on it.
		leader = zc.members(ctx, 3, 30*time.Second)
		eventually(ctx, t, 20*time.Second, "the leader replicates to the restarted server", func(ctx context.Context) error {
			if err := isReplica(ctx, leader, old.Addr()); err != nil {
				return err
			}
			return old.Client().Ready(ctx) // the leader's stream reaches it: writes from now on are on it
		})
		put(ctx, t, survivors[0], key, "updated")
		if got := get(ctx, t, old, key); !got.Found || got.Value != "updated" {
			t.Fatalf("restarted ex-leader %s reads %s=%+v after the update", old.Addr(), key, got)
		}
		t.Logf("round %d: kill -9 of leader %s; a write acknowledged by %s %v later", round, old.Addr(), kv.Leader, took[round].Round(time.Millisecond))
	}
	t.Logf("kill -9 of the leader to the first write acknowledged by a new leader: median %v of %v (session timeout %v)",
		median(took).Round(time.Millisecond), took, serverSession)
}

// TestClusterLeaderTerm: SIGTERM of the leader, three times: it resigns first, so a survivor
// acknowledges writes quickly (median logged; bounded generously), and it exits 0.
func TestClusterLeaderTerm(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	zc := startCluster(ctx, t)
	var took []time.Duration
	for round := range 3 {
		old := zc.members(ctx, 3, 30*time.Second)
		survivors := zc.others(old)
		key := fmt.Sprintf("term-%d", round)
		put(ctx, t, survivors[0], key, "before")

		began := time.Now()
		if err := old.Signal(syscall.SIGTERM); err != nil {
			t.Fatalf("SIGTERM %s: %v", old.Addr(), err)
		}
		kv, at := putUntilAcked(ctx, t, survivors[1], key, "after", old.Addr(), serverSession+20*time.Second)
		took = append(took, at.Sub(began))
		wctx, wcancel := context.WithTimeout(ctx, 15*time.Second)
		err := old.Wait(wctx)
		wcancel()
		if err != nil {
			t.Fatalf("%s after SIGTERM: %v (want exit 0)", old.Addr(), err)
		}
		if leader := zc.leader(ctx, 10*time.Second); leader == old || kv.Leader != leader.Addr() {
			t.Fatalf("after SIGTERM: leader %s, write acknowledged by %s", leader.Addr(), kv.Leader)
		}
		for _, n := range survivors {
			if got := get(ctx, t, n, key); got.Value != "after" {
				t.Fatalf("%s reads %s=%+v after the handover", n.Addr(), key, got)
			}
		}
		t.Logf("round %d: SIGTERM to leader %s; a write acknowledged by %s %v later", round, old.Addr(), kv.Leader, took[round].Round(time.Millisecond))
		if took[round] > serverSession+5*time.Second {
			t.Errorf("handover after SIGTERM took %v: longer than a crash's session expiry", took[round])
		}

		rctx, rcancel := context.WithTimeout(ctx, 30*time.Second)
		err = old.Restart(rctx)
		rcancel()
		if err != nil {
			t.Fatalf("restart %s: %v", old.Addr(), err)
		}
	}
	t.Logf("SIGTERM of the leader to the first write acknowledged by a new leader: median %v of %v",
		median(took).Round(time.Millisecond), took)
}

// TestClusterPausedLeaderFenced: a SIGSTOPped leader loses its session and a survivor leads.
// Writes to the old leader sent while it is stopped and right after SIGCONT must not be
// acknowledged in its old epoch: each gets an error, or a 200 naming the new leader and its
// epoch. A value it could not get acknowledged appears nowhere; once it has rejoined, every
// server holds the same content.
func TestClusterPausedLeaderFenced(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	zc := startCluster(ctx, t)
	old := zc.members(ctx, 3, 30*time.Second)
	oldStatus, err := old.Client().Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	survivors := zc.others(old)
	for i := range 5 {
		put(ctx, t, survivors[i%2], fmt.Sprintf("p%d", i), "before")
	}

	if err := old.Pause(); err != nil {
		t.Fatalf("SIGSTOP %s: %v", old.Addr(), err)
	}
	paused := time.Now()
	kv, at := putUntilAcked(ctx, t, survivors[0], "p0", "after", old.Addr(), serverSession+20*time.Second)
	leader := zc.leader(ctx, 10*time.Second)
	newStatus, err := leader.Client().Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if leader == old || kv.Leader != leader.Addr() || newStatus.Epoch <= oldStatus.Epoch {
		t.Fatalf("after SIGSTOP: leader %s epoch %d (was %s epoch %d), write acknowledged by %s",
			leader.Addr(), newStatus.Epoch, old.Addr(), oldStatus.Epoch, kv.Leader)
	}
	t.Logf("leader %s stopped; %s leads (epoch %d > %d), first write acknowledged %v later",
		old.Addr(), leader.Addr(), newStatus.Epoch, oldStatus.Epoch, at.Sub(paused).Round(time.Millisecond))

	// A replication request in the old epoch, as the deposed leader would send it, is fenced by
	// every survivor.
	for _, n := range survivors {
		code, body := staleAppend(ctx, t, n, oldStatus.Epoch, old.Addr())
		if code != http.StatusPreconditionFailed || !strings.Contains(body, "stale_epoch") {
			t.Errorf("append in the old epoch %d to %s: %d %s, want 412 stale_epoch", oldStatus.Epoch, n.Addr(), code, body)
		}
	}

	// Writes aimed at the deposed leader: one queued while it is stopped (the kernel accepts the
	// connection), one sent right after SIGCONT.
	type answer struct {
		what string
		kv   client.KV
		err  error
	}
	answers := make(chan answer, 2)
	send := func(what, key string) {
		pctx, pcancel := context.WithTimeout(ctx, 15*time.Second)
		defer pcancel()
		kv, err := old.Client().Put(pctx, key, "stale-"+what)
		answers <- answer{what, kv, err}
	}
	// The queued request is written on a raw connection: once Write returns, the request sits in
	// the stopped process's socket buffer and is the first thing it reads when it runs again.
	queued, err := rawPut(ctx, old.Addr(), "fence-queued", "stale-queued")
	if err != nil {
		t.Fatalf("queue a write on the stopped leader: %v", err)
	}
	go func() {
		kv, err := queued()
		answers <- answer{"queued", kv, err}
	}()
	if err := old.Resume(); err != nil {
		t.Fatalf("SIGCONT %s: %v", old.Addr(), err)
	}
	go send("after-resume", "fence-resumed")
	acked := map[string]bool{}
	for range 2 {
		a := <-answers
		switch {
		case a.err != nil:
			t.Logf("%s write to the deposed leader: %v", a.what, a.err)
		case a.kv.Leader == old.Addr() || a.kv.Epoch <= oldStatus.Epoch:
			t.Errorf("%s write to the deposed leader acknowledged in its old role: %+v (old epoch %d, new %d)",
				a.what, a.kv, oldStatus.Epoch, newStatus.Epoch)
		default:
			t.Logf("%s write to the deposed leader forwarded to %s (epoch %d)", a.what, a.kv.Leader, a.kv.Epoch)
			acked[a.kv.Key] = true
		}
	}

	// The ex-leader rejoins as a follower; a write after that brings it in line.
	eventually(ctx, t, serverSession+20*time.Second, "the ex-leader follows the new leader", func(ctx context.Context) error {
		st, err := old.Client().Status(ctx)
		if err != nil {
			return err
		}
		if st.Role != client.RoleFollower || st.Leader.Address != leader.Addr() {
			return fmt.Errorf("%s: role %s, leader %q", old.Addr(), st.Role, st.Leader.Address)
		}
		return nil
	})
	zc.members(ctx, 3, 30*time.Second)
	put(ctx, t, survivors[1], "barrier", "after-rejoin")
	content := converged(ctx, t, zc.c.Nodes(), 20*time.Second)
	if e, ok := content["fenced"]; ok {
		t.Errorf("the fenced append's entry is on every server: %+v", e)
	}
	for _, key := range []string{"fence-queued", "fence-resumed"} {
		if e, ok := content[key]; ok && !acked[key] {
			t.Errorf("%s=%s is on every server, but no write of it was acknowledged", key, e.Value)
		}
	}
	if content["p0"].Value != "after" || content["barrier"].Value != "after-rejoin" {
		t.Errorf("content after rejoining: %s", describe(content))
	}
	for _, n := range zc.c.Nodes() {
		if got := get(ctx, t, n, "p0"); got.Value != "after" {
			t.Errorf("%s reads p0=%+v", n.Addr(), got)
		}
	}
}
