package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestComposeDeployment brings up docker/compose.yaml (a 3-node ZooKeeper ensemble and 3 zkv
// servers, all on the host network) under a unique project name and free loopback ports, then runs
// the assignment's three scenarios against the containers: add and read on every server; kill the
// leader's container and see a new leader take writes; start it again and see it serve the stale
// (empty) view while following the new leader; last, stop the leader gracefully. When bin/driver
// is there and its `scenarios` command takes -addrs, its checks run against the same deployment
// first (in -addrs mode it cannot stop servers, so it skips its own kill and restart checks:
// this test does those with docker-compose).
//
// Skipped unless docker, docker-compose (or `docker compose`) and the ZooKeeper image ($ZK_IMAGE,
// default zkv/zookeeper:3.8, built by scripts/prepare.sh) are available. The server image is built
// here by docker/server/build.sh from the current sources, unless $ZKV_IMAGE names one to use as is.
func TestComposeDeployment(t *testing.T) {
	if testing.Short() {
		t.Skip("compose deployment: skipped with -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), composeBudget(t))
	defer cancel()

	d := newComposeDeployment(ctx, t)
	d.up(ctx, t)
	d.waitReady(ctx, t, d.services(), 2*time.Minute)

	if bin, ok := driverWithAddrs(ctx, t); ok {
		// The driver writes at once; let the leader count every server as a replica first.
		d.waitReplicating(ctx, t, d.agreedLeader(ctx, t, d.services()), d.services())
		t.Run("driver", func(t *testing.T) { d.runDriver(ctx, t, bin) })
		// Whatever the driver did, the scenarios below start from three serving servers.
		d.compose(ctx, t, "start", "server1", "server2", "server3")
		d.waitReady(ctx, t, d.services(), 2*time.Minute)
	}
	t.Run("scenarios", func(t *testing.T) { d.scenarios(ctx, t) })
}

// composeBudget bounds the whole test: five minutes, less when go test's -timeout is nearer.
func composeBudget(t *testing.T) time.Duration {
	budget := 5 * time.Minute
	if dl, ok := t.Deadline(); ok {
		// Leave time for the cleanup (docker-compose down) to run before go test gives up.
		if left := time.Until(dl) - 90*time.Second; left < budget {
			budget = left
		}
	}
	if budget < time.Minute {
		t.Skipf("compose deployment: %v left before the test deadline, too little", budget)
	}
	return budget
}

// composeDeployment is one `docker-compose -p project` run of docker/compose.yaml.
type composeDeployment struct {
	command []string // "docker-compose" or "docker compose"
	file    string
	project string
	env     []string
	servers map[string]string // service name -> "127.0.0.1:port"
	http    *http.Client
}

func newComposeDeployment(ctx context.Context, t *testing.T) *composeDeployment {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(root, "docker", "compose.yaml")
	if _, err := os.Stat(file); err != nil {
		t.Fatalf("compose file: %v", err)
	}
	if _, err := exec.LookPath("docker"); err != nil {
		t.Skip("compose deployment: docker is not installed")
	}
	if out, err := run(ctx, nil, "docker", "info", "--format", "{{.ServerVersion}}"); err != nil {
		t.Skipf("compose deployment: the docker engine does not answer (scripts/prepare.sh starts one): %v: %s", err, out)
	}
	command := composeCommand(ctx)
	if command == nil {
		t.Skip("compose deployment: neither docker-compose nor `docker compose` is available")
	}
	zkImage := envOr("ZK_IMAGE", "zkv/zookeeper:3.8")
	if !imageExists(ctx, zkImage) {
		t.Skipf("compose deployment: image %s is missing; build it with scripts/prepare.sh (no registry is used)", zkImage)
	}
	serverImage := os.Getenv("ZKV_IMAGE")
	if serverImage == "" {
		serverImage = "zkv/server:dev"
		buildServerImage(ctx, t, root, serverImage)
	} else if !imageExists(ctx, serverImage) {
		t.Skipf("compose deployment: ZKV_IMAGE=%s is not present locally", serverImage)
	}

	ports := freeLoopbackPorts(t, 12)
	d := &composeDeployment{
		command: command,
		file:    file,
		project: fmt.Sprintf("zkvit%d%06x", os.Getpid(), time.Now().UnixNano()&0xffffff),
		servers: map[string]string{},
		http:    &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{}},
	}
	vars := map[string]string{
		"ZK_IMAGE":  zkImage,
		"ZKV_IMAGE": serverImage,
		// Short ticks and sessions keep failover quick; ZooKeeper allows 2..20 ticks.
		"ZOO_TICK_TIME":       "500",
		"ZKV_SESSION_TIMEOUT": "3s",
		"ZKV_ACK":             "all",
		"ZKV_SYNC_ON_JOIN":    "false",
		"ZKV_LOG_FORMAT":      "text",
		"ZKV_CLUSTER_TOKEN":   "compose-test-token",
	}
	for i := range 3 {
		n := i + 1
		vars[fmt.Sprintf("ZOO%d_CLIENT_PORT", n)] = strconv.Itoa(ports[3*i])
		vars[fmt.Sprintf("ZOO%d_QUORUM_PORT", n)] = strconv.Itoa(ports[3*i+1])
		vars[fmt.Sprintf("ZOO%d_ELECTION_PORT", n)] = strconv.Itoa(ports[3*i+2])
		vars[fmt.Sprintf("SERVER%d_PORT", n)] = strconv.Itoa(ports[9+i])
		d.servers[fmt.Sprintf("server%d", n)] = net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[9+i]))
	}
	// The compose file's own variables win over whatever the caller's environment holds.
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); vars[k] == "" {
			d.env = append(d.env, kv)
		}
	}
	for k, v := range vars {
		d.env = append(d.env, k+"="+v)
	}
	t.Logf("compose project %s: servers %v", d.project, d.servers)

	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if t.Failed() {
			// The servers' logs tell the story; ZooKeeper's tails only show whether it served.
			for _, l := range []struct{ tail, services []string }{
				{[]string{"--tail", "200"}, d.services()},
				{[]string{"--tail", "15"}, []string{"zoo1", "zoo2", "zoo3"}},
			} {
				args := append(append([]string{"logs", "--no-color"}, l.tail...), l.services...)
				out, _ := d.run(ctx, args...)
				t.Logf("docker-compose %s:\n%s", strings.Join(args, " "), out)
			}
		}
		if out, err := d.run(ctx, "down", "-v", "--remove-orphans", "--timeout", "10"); err != nil {
			t.Errorf("docker-compose down: %v\n%s", err, out)
		}
		d.http.CloseIdleConnections()
	})
	return d
}

// composeCommand returns Debian's docker-compose 1.x when installed, else the docker CLI plugin.
func composeCommand(ctx context.Context) []string {
	if _, err := exec.LookPath("docker-compose"); err == nil {
		return []string{"docker-compose"}
	}
	if _, err := run(ctx, nil, "docker", "compose", "version"); err == nil {
		return []string{"docker", "compose"}
	}
	return nil
}

func imageExists(ctx context.Context, image string) bool {
	_, err := run(ctx, nil, "docker", "image", "inspect", "--format", "{{.Id}}", image)
	return err == nil
}

// buildServerImage builds image from the current sources, so the test never runs a stale one.
func buildServerImage(ctx context.Context, t *testing.T, root, image string) {
	t.Helper()
	if main, _ := filepath.Glob(filepath.Join(root, "server", "cmd", "server", "*.go")); len(main) == 0 {
		t.Skip("compose deployment: server/cmd/server has no sources yet, so no server image to build")
	}
	start := time.Now()
	env := append(os.Environ(), "ZKV_IMAGE="+image)
	out, err := run(ctx, env, filepath.Join(root, "docker", "server", "build.sh"))
	if err != nil {
		t.Fatalf("docker/server/build.sh: %v\n%s", err, out)
	}
	t.Logf("built %s in %v", image, time.Since(start).Round(time.Millisecond))
}

// freeLoopbackPorts holds every listener until all n ports are known, so they differ.
func freeLoopbackPorts(t *testing.T, n int) []int {
	t.Helper()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("pick a free port: %v", err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// run runs a command and returns its combined output; env nil keeps this process's.
func run(ctx context.Context, env []string, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	cmd.WaitDelay = 5 * time.Second
	return cmd.CombinedOutput()
}

func (d *composeDeployment) run(ctx context.Context, args ...string) ([]byte, error) {
	full := append([]string{}, d.command[1:]...)
	full = append(full, "-f", d.file, "-p", d.project)
	full = append(full, args...)
	return run(ctx, d.env, d.command[0], full...)
}

// compose runs a docker-compose subcommand and fails the test when it fails.
func (d *composeDeployment) compose(ctx context.Context, t *testing.T, args ...string) {
	t.Helper()
	start := time.Now()
	out, err := d.run(ctx, args...)
	if err != nil {
		t.Fatalf("docker-compose %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	t.Logf("docker-compose %s (%v)", strings.Join(args, " "), time.Since(start).Round(time.Millisecond))
}

func (d *composeDeployment) up(ctx context.Context, t *testing.T) {
	t.Helper()
	d.compose(ctx, t, "up", "-d")
}

// services returns the server services in name order.
func (d *composeDeployment) services() []string {
	names := make([]string, 0, len(d.servers))
	for name := range d.servers {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

func (d *composeDeployment) addrs() []string {
	var out []string
	for _, name := range d.services() {
		out = append(out, d.servers[name])
	}
	return out
}

// serviceOf maps a server address ("127.0.0.1:port") back to its compose service.
func (d *composeDeployment) serviceOf(addr string) (string, bool) {
	for name, a := range d.servers {
		if a == addr {
			return name, true
		}
	}
	return "", false
}

// waitReady polls GET /readyz on each service until all answer 200, within limit.
func (d *composeDeployment) waitReady(ctx context.Context, t *testing.T, services []string, limit time.Duration) {
	t.Helper()
	start := time.Now()
	err := poll(ctx, limit, func(ctx context.Context) error {
		for _, s := range services {
			code, _, err := d.do(ctx, http.MethodGet, d.servers[s], "/readyz", nil)
			if err != nil {
				return fmt.Errorf("%s: %w", s, err)
			}
			if code != http.StatusOK {
				return fmt.Errorf("%s: /readyz answered %d", s, code)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("servers %v not ready: %v", services, err)
	}
	t.Logf("servers %v ready after %v", services, time.Since(start).Round(time.Millisecond))
}

// driverWithAddrs returns bin/driver ($ZKV_DRIVER_BIN, set by the Makefile) when it is built and
// its scenarios command can run against servers someone else started.
func driverWithAddrs(ctx context.Context, t *testing.T) (string, bool) {
	bin := os.Getenv("ZKV_DRIVER_BIN")
	if bin == "" {
		bin, _ = filepath.Abs(filepath.Join("..", "bin", "driver"))
	}
	if _, err := os.Stat(bin); err != nil {
		t.Logf("no driver binary at %s (make build): only this test's own scenarios run", bin)
		return "", false
	}
	// -h exits non-zero with the flag package; only the text matters.
	out, _ := run(ctx, nil, bin, "scenarios", "-h")
	if !bytes.Contains(out, []byte("-addrs")) {
		t.Logf("%s scenarios has no -addrs flag: only this test's own scenarios run", bin)
		return "", false
	}
	return bin, true
}

// runDriver runs `bin/driver scenarios -addrs ...` against the deployment; exit 0 is a pass.
func (d *composeDeployment) runDriver(ctx context.Context, t *testing.T, bin string) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	logs := t.TempDir()
	args := []string{"scenarios", "-addrs", strings.Join(d.addrs(), ","), "-logs", logs}
	out, err := run(ctx, append(os.Environ(), "ZKV_CLUSTER_TOKEN=compose-test-token"), bin, args...)
	t.Logf("%s %s:\n%s", bin, strings.Join(args, " "), out)
	if err != nil {
		t.Fatalf("driver scenarios: %v", err)
	}
}

// scenarios are the assignment's three, with docker-compose stop/start as the failure injector.
func (d *composeDeployment) scenarios(ctx context.Context, t *testing.T) {
	suffix := strconv.FormatInt(time.Now().UnixNano(), 36)
	before, after, rejoined := "before-"+suffix, "after-"+suffix, "rejoined-"+suffix

	// Scenario 1: a write through a follower is readable on every server.
	leader := d.agreedLeader(ctx, t, d.services())
	leaderService, ok := d.serviceOf(leader)
	if !ok {
		t.Fatalf("leader %q is none of the servers %v", leader, d.servers)
	}
	t.Logf("scenario 1: leader %s (%s)", leader, leaderService)
	d.waitReplicating(ctx, t, leader, d.services())
	follower := d.servers[d.others(leaderService)[0]]
	d.put(ctx, t, follower, before, "v1")
	for _, s := range d.services() {
		d.waitValue(ctx, t, d.servers[s], before, "v1")
	}

	// Scenario 2: crash the leader (SIGKILL, so no resignation: its ZooKeeper session has to
	// expire); the other two agree on a new leader that takes writes. docker kill is a manual
	// stop, so the restart policy leaves the container down.
	killed := time.Now()
	d.compose(ctx, t, "kill", "-s", "SIGKILL", leaderService)
	rest := d.others(leaderService)
	newLeader := d.agreedLeader(ctx, t, rest)
	if newLeader == leader {
		t.Fatalf("scenario 2: the killed server %s is still the leader", leader)
	}
	t.Logf("scenario 2: new leader %s, %v after the kill", newLeader, time.Since(killed).Round(time.Millisecond))
	d.put(ctx, t, d.servers[rest[0]], after, "v2")
	for _, s := range rest {
		d.waitValue(ctx, t, d.servers[s], after, "v2")
		d.waitValue(ctx, t, d.servers[s], before, "v1")
	}

	// Scenario 3: start the ex-leader again. It rejoins as a follower of the new leader, starts
	// empty (-sync_on_join=false) so its own copy lacks the earlier keys, and gets later writes.
	d.compose(ctx, t, "start", leaderService)
	d.waitReady(ctx, t, []string{leaderService}, time.Minute)
	if got := d.agreedLeader(ctx, t, d.services()); got != newLeader {
		t.Fatalf("scenario 3: leader changed from %s to %s when the ex-leader came back", newLeader, got)
	}
	ex := d.servers[leaderService]
	st := d.status(ctx, t, ex)
	if st.Role != "follower" {
		t.Fatalf("scenario 3: the restarted ex-leader's role is %q, want follower", st.Role)
	}
	for _, key := range []string{before, after} {
		if kv := d.get(ctx, t, ex, key); kv.Found {
			t.Fatalf("scenario 3: the restarted ex-leader already has %q=%q; it should start empty", key, kv.Value)
		}
	}
	t.Logf("scenario 3: the restarted ex-leader serves the stale view (%s and %s absent)", before, after)
	d.waitReplicating(ctx, t, newLeader, d.services())
	d.put(ctx, t, ex, rejoined, "v3")
	for _, s := range d.services() {
		d.waitValue(ctx, t, d.servers[s], rejoined, "v3")
	}

	// Last, a graceful handover: docker stop sends SIGTERM, the leader resigns (deletes its
	// znode) and a successor leads well before any session could expire.
	stopped := time.Now()
	newService, _ := d.serviceOf(newLeader)
	d.compose(ctx, t, "stop", "--timeout", "10", newService)
	if got := d.agreedLeader(ctx, t, d.others(newService)); got == newLeader {
		t.Fatalf("graceful stop: the stopped server %s is still the leader", newLeader)
	}
	t.Logf("graceful stop of %s: a new leader %v after the stop began", newService, time.Since(stopped).Round(time.Millisecond))
}

// others returns the server services other than service, in name order.
func (d *composeDeployment) others(service string) []string {
	return slices.DeleteFunc(d.services(), func(s string) bool { return s == service })
}

type composeStatus struct {
	ID      string `json:"id"`
	Address string `json:"address"`
	Role    string `json:"role"`
	Leader  struct {
		ID      string `json:"id"`
		Address string `json:"address"`
	} `json:"leader"`
	Epoch   int64 `json:"epoch"`
	Keys    int   `json:"keys"`
	Members []struct {
		ID      string `json:"id"`
		Address string `json:"address"`
	} `json:"members"`
}

type composeKV struct {
	Key     string `json:"key"`
	Value   string `json:"value"`
	Found   bool   `json:"found"`
	Version uint64 `json:"version"`
}

// agreedLeader polls /v1/status on services until exactly one says leader and all name it.
func (d *composeDeployment) agreedLeader(ctx context.Context, t *testing.T, services []string) string {
	t.Helper()
	var leader string
	err := poll(ctx, time.Minute, func(ctx context.Context) error {
		leader = ""
		var leaders []string
		for _, s := range services {
			st, err := d.statusOnce(ctx, d.servers[s])
			if err != nil {
				return fmt.Errorf("%s: %w", s, err)
			}
			if st.Leader.Address == "" {
				return fmt.Errorf("%s knows no leader (role %s)", s, st.Role)
			}
			if leader == "" {
				leader = st.Leader.Address
			} else if st.Leader.Address != leader {
				return fmt.Errorf("disagreement: %s names %s, another names %s", s, st.Leader.Address, leader)
			}
			if st.Role == "leader" {
				leaders = append(leaders, d.servers[s])
			}
		}
		if len(leaders) != 1 || leaders[0] != leader {
			return fmt.Errorf("servers claiming leadership %v, named leader %s", leaders, leader)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("no agreed leader among %v: %v", services, err)
	}
	return leader
}

// waitReplicating waits until the leader replicates to every one of services. A server that has
// just registered is a member at once, but the leader adds it to its replica set only at its next
// member refresh, and a fresh replica takes the first write it gets as its base: a write in that
// window never reaches it. So: write probe keys through the leader until one shows on every server.
func (d *composeDeployment) waitReplicating(ctx context.Context, t *testing.T, leader string, services []string) {
	t.Helper()
	start := time.Now()
	probes := 0
	err := poll(ctx, time.Minute, func(ctx context.Context) error {
		st, err := d.statusOnce(ctx, leader)
		if err != nil {
			return err
		}
		if len(st.Members) != len(services) {
			return fmt.Errorf("leader %s lists %d members, want %d", leader, len(st.Members), len(services))
		}
		probes++
		key := fmt.Sprintf("probe-%d-%d", time.Now().UnixNano(), probes)
		body, _ := json.Marshal(map[string]string{"value": "p"})
		code, resp, err := d.do(ctx, http.MethodPut, leader, "/v1/kv/"+key, body)
		if err != nil {
			return err
		}
		if code != http.StatusOK {
			return fmt.Errorf("PUT %s: %d %s", key, code, resp)
		}
		// ack=all: once the leader answers, every replica it counts has applied the write.
		return poll(ctx, 2*time.Second, func(ctx context.Context) error {
			for _, s := range services {
				kv, err := d.getOnce(ctx, d.servers[s], key)
				if err != nil {
					return err
				}
				if !kv.Found {
					return fmt.Errorf("probe %s not on %s yet", key, s)
				}
			}
			return nil
		})
	})
	if err != nil {
		t.Fatalf("leader %s does not replicate to all of %v: %v", leader, services, err)
	}
	t.Logf("leader %s replicates to %v after %v (%d probe writes)", leader, services, time.Since(start).Round(time.Millisecond), probes)
}

func (d *composeDeployment) status(ctx context.Context, t *testing.T, addr string) composeStatus {
	t.Helper()
	st, err := d.statusOnce(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func (d *composeDeployment) statusOnce(ctx context.Context, addr string) (composeStatus, error) {
	var st composeStatus
	code, body, err := d.do(ctx, http.MethodGet, addr, "/v1/status", nil)
	if err != nil {
		return st, err
	}
	if code != http.StatusOK {
		return st, fmt.Errorf("GET %s/v1/status: %d %s", addr, code, body)
	}
	if err := json.Unmarshal(body, &st); err != nil {
		return st, fmt.Errorf("GET %s/v1/status: %w: %s", addr, err, body)
	}
	return st, nil
}

// put writes key through addr, retrying the 503s of a leader change within a deadline.
func (d *composeDeployment) put(ctx context.Context, t *testing.T, addr, key, value string) {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"value": value})
	err := poll(ctx, 30*time.Second, func(ctx context.Context) error {
		code, resp, err := d.do(ctx, http.MethodPut, addr, "/v1/kv/"+url.PathEscape(key), body)
		if err != nil {
			return err
		}
		if code == http.StatusServiceUnavailable {
			return fmt.Errorf("PUT %s: 503 %s", key, resp)
		}
		if code != http.StatusOK {
			return permanent{fmt.Errorf("PUT %s via %s: %d %s", key, addr, code, resp)}
		}
		var kv composeKV
		if err := json.Unmarshal(resp, &kv); err != nil || kv.Value != value {
			return permanent{fmt.Errorf("PUT %s via %s: answer %s (%v)", key, addr, resp, err)}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func (d *composeDeployment) get(ctx context.Context, t *testing.T, addr, key string) composeKV {
	t.Helper()
	kv, err := d.getOnce(ctx, addr, key)
	if err != nil {
		t.Fatal(err)
	}
	return kv
}

func (d *composeDeployment) getOnce(ctx context.Context, addr, key string) (composeKV, error) {
	var kv composeKV
	code, body, err := d.do(ctx, http.MethodGet, addr, "/v1/kv/"+url.PathEscape(key), nil)
	if err != nil {
		return kv, err
	}
	if code != http.StatusOK {
		return kv, fmt.Errorf("GET %s on %s: %d %s", key, addr, code, body)
	}
	if err := json.Unmarshal(body, &kv); err != nil {
		return kv, fmt.Errorf("GET %s on %s: %w: %s", key, addr, err, body)
	}
	return kv, nil
}

// waitValue polls addr's own copy of key until it holds value within a deadline: a follower
// applies a write shortly after the leader acknowledges it when acks are not "all".
func (d *composeDeployment) waitValue(ctx context.Context, t *testing.T, addr, key, value string) {
	t.Helper()
	err := poll(ctx, 15*time.Second, func(ctx context.Context) error {
		kv, err := d.getOnce(ctx, addr, key)
		if err != nil {
			return err
		}
		if !kv.Found || kv.Value != value {
			return fmt.Errorf("GET %s on %s: found=%v value=%q, want %q", key, addr, kv.Found, kv.Value, value)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func (d *composeDeployment) do(ctx context.Context, method, addr, path string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://"+addr+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := d.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, b, err
}

// permanent marks an error poll must not retry.
type permanent struct{ error }

func (p permanent) Unwrap() error { return p.error }

// poll calls f until it returns nil, a permanent error, or limit (or ctx) runs out; the error
// then is f's last one.
func poll(ctx context.Context, limit time.Duration, f func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	wait := 50 * time.Millisecond
	for {
		err := f(ctx)
		if err == nil {
			return nil
		}
		if p := (permanent{}); errors.As(err, &p) {
			return p.error
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("gave up after %v: %w", limit, err)
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Second)
	}
}
