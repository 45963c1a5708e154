package integration

// contract_test.go holds the public contract, docs/api.md, against real bin/server and
// bin/driver processes on a real ZooKeeper. Each subtest is named for the API.md statement it
// checks; a failure that says "API.md:" is a mismatch between the contract and the servers.
//
//   - TestContractServerFlags: bin/server's flag table, -h and flag/env parsing (no ZooKeeper).
//   - TestContractPlainServers: servers started with the four assignment flags only, the
//     ensemble syntax, -id and the ZKV_<FLAG> fallbacks, re-registration after a lost session,
//     and 503 + Retry-After (readyz 503, role candidate) once ZooKeeper is gone.
//   - TestContractCluster: a three-server cluster with -cluster_token: every route, JSON field
//     and header, the error rules, the ZooKeeper layout and ACLs, ?consistency=leader on a stale
//     follower, -sync_on_join, bin/driver's client commands, and SIGTERM on the leader.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/zkv-dev/zkv/zk"

	"github.com/zkv-dev/zkv/driver/cluster"
	"github.com/zkv-dev/zkv/election"
)

const (
	// ctToken is the cluster token of TestContractCluster.
	ctToken = "contract-token"
	// ctMaxKey and ctMaxValue are TestContractCluster's -max_key_bytes and -max_value_bytes,
	// small so that oversized input is cheap to send.
	ctMaxKey   = 16
	ctMaxValue = 32
	// ctSession is the table's default -session_timeout, which TestContractCluster keeps, so
	// "a successor takes over at once" is measured against it.
	ctSession = 4 * time.Second
)

var (
	ctZnodeName = regexp.MustCompile(`^server\d{10}$`)
	ctZnodePath = regexp.MustCompile(`^/election/server\d{10}$`)
)

// ctMismatch fails t with a message marked as a contract mismatch.
func ctMismatch(t testing.TB, format string, args ...any) {
	t.Helper()
	t.Errorf("API.md: "+format, args...)
}

// ---------------------------------------------------------------- processes

// ctEnv is the environment of the processes these tests start: the test's own, without any
// ZKV_ variable (a server reads ZKV_<FLAG>, the driver ZKV_ADDR and ZKV_CLUSTER_TOKEN), plus
// extra.
func ctEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ZKV_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// ctServer is one bin/server process started by these tests directly (not through
// driver/cluster), so that its exact command line and environment are the test's.
type ctServer struct {
	t    *testing.T
	name string
	bin  string
	log  string
	port int
	addr string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// ctFreePort returns a loopback port that was free a moment ago.
func ctFreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startCtServer starts bin/server with args(port) and env on a free port and waits for /healthz.
// It retries on another port when the process exits at once (the port may have been taken).
func startCtServer(ctx context.Context, t *testing.T, name string, args func(port int) []string, env []string) *ctServer {
	t.Helper()
	s := &ctServer{t: t, name: name, bin: serverBinary(t), log: filepath.Join(logDir(t, "servers"), name+".log")}
	t.Cleanup(s.kill)
	var err error
	for range 3 {
		s.port = ctFreePort(t)
		s.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
		if err = s.start(ctx, args(s.port), env); err == nil {
			return s
		}
	}
	tailLogs(t, filepath.Dir(s.log), 30)
	t.Fatalf("start %s: %v", name, err)
	return nil
}

// start runs one process on s.port and waits for /healthz.
func (s *ctServer) start(ctx context.Context, args, env []string) error {
	f, err := os.OpenFile(s.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(f, "=== %s: %s %s\n", time.Now().Format(time.RFC3339Nano), s.bin, strings.Join(args, " "))
	cmd := exec.Command(s.bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		return err
	}
	done := make(chan struct{})
	s.mu.Lock()
	s.cmd, s.done, s.err = cmd, done, nil
	s.mu.Unlock()
	go func() {
		err := cmd.Wait()
		f.Close()
		s.mu.Lock()
		s.err = err
		s.mu.Unlock()
		close(done)
	}()
	hc := &http.Client{Timeout: time.Second}
	defer hc.CloseIdleConnections()
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		req, _ := http.NewRequestWithContext(wctx, http.MethodGet, "http://"+s.addr+"/healthz", nil)
		resp, err := hc.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("/healthz: %s", resp.Status)
		}
		last = err
		select {
		case <-done:
			return fmt.Errorf("exited while starting: %v", s.exitErr())
		case <-wctx.Done():
			s.kill()
			return fmt.Errorf("no /healthz within 20s: %v", last)
		case <-tick.C:
		}
	}
}

func (s *ctServer) exitErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// signal sends sig to the running process.
func (s *ctServer) signal(sig syscall.Signal) {
	s.t.Helper()
	s.mu.Lock()
	cmd := s.cmd
	s.mu.Unlock()
	if err := cmd.Process.Signal(sig); err != nil {
		s.t.Fatalf("%s: signal %v: %v", s.name, sig, err)
	}
}

// wait returns the exit error of the current process, or fails t after limit.
func (s *ctServer) wait(limit time.Duration) error {
	s.t.Helper()
	s.mu.Lock()
	done := s.done
	s.mu.Unlock()
	select {
	case <-done:
		return s.exitErr()
	case <-time.After(limit):
		s.t.Fatalf("%s did not exit within %v", s.name, limit)
		return nil
	}
}

// term sends SIGTERM and returns the exit error (nil for exit 0).
func (s *ctServer) term() error {
	s.t.Helper()
	s.signal(syscall.SIGTERM)
	return s.wait(15 * time.Second)
}

// kill ends the process group with SIGKILL if it still runs (cleanup).
func (s *ctServer) kill() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-done:
		return
	default:
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGCONT)
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	<-done
}

// logText returns what the process wrote so far.
func (s *ctServer) logText() string {
	b, _ := os.ReadFile(s.log)
	return string(b)
}

// ---------------------------------------------------------------- HTTP

// ctAnswer is one HTTP answer, read whole.
type ctAnswer struct {
	Status int
	Header http.Header
	Body   []byte
}

func (a ctAnswer) String() string {
	return fmt.Sprintf("%d %s", a.Status, bytes.TrimSpace(a.Body))
}

// ctHTTP is a client that does not follow redirects, so a redirect would be seen.
type ctHTTP struct{ c *http.Client }

func newCtHTTP(t testing.TB) *ctHTTP {
	tr := &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 8}
	t.Cleanup(tr.CloseIdleConnections)
	return &ctHTTP{c: &http.Client{
		Transport:     tr,
		Timeout:       15 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// do sends one request; ctype is the Content-Type ("" for none); hdr are extra headers.
func (h *ctHTTP) do(ctx context.Context, method, addr, path, ctype string, body []byte, hdr ...string) (ctAnswer, error) {
	var rd io.Reader = http.NoBody
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+addr+path, rd)
	if err != nil {
		return ctAnswer{}, err
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := h.c.Do(req)
	if err != nil {
		return ctAnswer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return ctAnswer{}, err
	}
	return ctAnswer{Status: resp.StatusCode, Header: resp.Header, Body: b}, nil
}

// must is do that fails t on a transport error.
func (h *ctHTTP) must(ctx context.Context, t testing.TB, method, addr, path, ctype string, body []byte, hdr ...string) ctAnswer {
	t.Helper()
	a, err := h.do(ctx, method, addr, path, ctype, body, hdr...)
	if err != nil {
		t.Fatalf("%s http://%s%s: %v", method, addr, path, err)
	}
	return a
}

func (h *ctHTTP) get(ctx context.Context, t testing.TB, addr, path string) ctAnswer {
	t.Helper()
	return h.must(ctx, t, http.MethodGet, addr, path, "", nil)
}

func (h *ctHTTP) putJSON(ctx context.Context, t testing.TB, addr, key string, v any) ctAnswer {
	t.Helper()
	b, _ := json.Marshal(v)
	return h.must(ctx, t, http.MethodPut, addr, "/v1/kv/"+key, "application/json", b)
}

// putValue writes key=value through addr and fails t unless it answers 200.
func (h *ctHTTP) putValue(ctx context.Context, t testing.TB, addr, key, value string) map[string]any {
	t.Helper()
	a := h.putJSON(ctx, t, addr, key, map[string]string{"value": value})
	if a.Status != http.StatusOK {
		t.Fatalf("PUT %s=%s through %s: %v", key, value, addr, a)
	}
	return ctObject(t, a.Body)
}

// ---------------------------------------------------------------- JSON shapes

// ctObject decodes a JSON object, failing t otherwise.
func ctObject(t testing.TB, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("not a JSON object: %v: %q", err, b)
	}
	return m
}

// ctKind names the JSON type of v as encoding/json decodes it into any.
func ctKind(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		return "string"
	case bool:
		return "bool"
	case float64:
		if x == float64(int64(x)) {
			return "integer"
		}
		return "number"
	case map[string]any:
		return "object"
	case []any:
		return "array"
	}
	return fmt.Sprintf("%T", v)
}

// ctShape checks that the object m has exactly the fields of want, each of the JSON kind named.
func ctShape(t testing.TB, what string, m map[string]any, want map[string]string) {
	t.Helper()
	for k, kind := range want {
		v, ok := m[k]
		switch {
		case !ok:
			ctMismatch(t, "%s: field %q missing in %v", what, k, m)
		case ctKind(v) != kind:
			ctMismatch(t, "%s: field %q is %s (%v), want %s", what, k, ctKind(v), v, kind)
		}
	}
	for k := range m {
		if _, ok := want[k]; !ok {
			ctMismatch(t, "%s: unexpected field %q (%v) in %v", what, k, m[k], m)
		}
	}
}

// ctHeaders checks X-Zkv-Leader (equal to leader unless leader is "-") and X-Zkv-Epoch (an
// integer, equal to epoch unless epoch is -1) on a.
func ctHeaders(t testing.TB, what string, a ctAnswer, leader string, epoch int64) {
	t.Helper()
	ls, ok := a.Header[http.CanonicalHeaderKey("X-Zkv-Leader")]
	switch {
	case !ok:
		ctMismatch(t, "%s (%d): no X-Zkv-Leader header", what, a.Status)
	case leader != "-" && (len(ls) != 1 || ls[0] != leader):
		ctMismatch(t, "%s (%d): X-Zkv-Leader %q, want %q", what, a.Status, ls, leader)
	}
	es, ok := a.Header[http.CanonicalHeaderKey("X-Zkv-Epoch")]
	if !ok || len(es) != 1 {
		ctMismatch(t, "%s (%d): X-Zkv-Epoch header %q", what, a.Status, es)
		return
	}
	e, err := strconv.ParseInt(es[0], 10, 64)
	switch {
	case err != nil:
		ctMismatch(t, "%s (%d): X-Zkv-Epoch %q is not an integer", what, a.Status, es[0])
	case epoch != -1 && e != epoch:
		ctMismatch(t, "%s (%d): X-Zkv-Epoch %d, want %d", what, a.Status, e, epoch)
	}
}

// ctError checks the error rules on a: status want (any 4xx when 0), never 500, a JSON body
// {"error":{"code","message"}} with non-empty strings, and the leader headers. It returns the code.
func ctError(t testing.TB, what string, a ctAnswer, want int) string {
	t.Helper()
	switch {
	case a.Status >= 500 && want < 500:
		ctMismatch(t, "%s: %v, want a 4xx for bad input (never a 5xx)", what, a)
	case want == 0 && (a.Status < 400 || a.Status > 499):
		ctMismatch(t, "%s: %v, want a 4xx", what, a)
	case want != 0 && a.Status != want:
		ctMismatch(t, "%s: %v, want %d", what, a, want)
	}
	if ct := a.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		ctMismatch(t, "%s: error Content-Type %q, want application/json", what, ct)
	}
	var m map[string]any
	if err := json.Unmarshal(a.Body, &m); err != nil {
		ctMismatch(t, "%s: error body is not a JSON object: %q", what, a.Body)
		return ""
	}
	ctShape(t, what+": error body", m, map[string]string{"error": "object"})
	inner, _ := m["error"].(map[string]any)
	ctShape(t, what+": error member", inner, map[string]string{"code": "string", "message": "string"})
	code, _ := inner["code"].(string)
	if msg, _ := inner["message"].(string); code == "" || msg == "" {
		ctMismatch(t, "%s: empty error code or message: %s", what, a.Body)
	}
	ctHeaders(t, what, a, "-", -1)
	return code
}

// ---------------------------------------------------------------- ZooKeeper

// ctZnode is one child of /election and its data.
type ctZnode struct {
	Name    string
	Seq     int64
	ID      string
	Address string
	Data    string
}

// ctDial opens a ZooKeeper session on servers, authenticated with the servers' digest identity
// when token is set, closed when t ends.
func ctDial(ctx context.Context, t testing.TB, servers []string, token string) *zk.Conn {
	t.Helper()
	var opts []election.DialOption
	if token != "" {
		// The servers' digest user is "zkv" (server/open.go); API.md names only the ACL scheme.
		opts = append(opts, election.WithDigestAuth("zkv", token))
	}
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	s, err := election.DialContext(dctx, servers, 10*time.Second, opts...)
	if err != nil {
		t.Fatalf("dial zookeeper: %v", err)
	}
	t.Cleanup(s.Close)
	return s.Conn
}

// ctElection lists /election with each child's data, in sequence order.
func ctElection(conn *zk.Conn) ([]ctZnode, error) {
	kids, _, err := conn.Children("/election")
	if err != nil {
		return nil, fmt.Errorf("children of /election: %w", err)
	}
	var out []ctZnode
	for _, k := range kids {
		data, _, err := conn.Get("/election/" + k)
		if errors.Is(err, zk.ErrNoNode) {
			continue // gone between the two calls
		}
		if err != nil {
			return nil, fmt.Errorf("get /election/%s: %w", k, err)
		}
		n := ctZnode{Name: k, Data: string(data), Seq: -1}
		if ctZnodeName.MatchString(k) {
			n.Seq, _ = strconv.ParseInt(strings.TrimPrefix(k, "server"), 10, 64)
		}
		var d struct {
			ID      string `json:"id"`
			Address string `json:"address"`
		}
		if err := json.Unmarshal(data, &d); err == nil {
			n.ID, n.Address = d.ID, d.Address
		}
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// ---------------------------------------------------------------- status

// ctStatus is /v1/status decoded.
type ctStatus struct {
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
		Znode   string `json:"znode"`
	} `json:"members"`
}

func (h *ctHTTP) status(ctx context.Context, addr string) (ctStatus, error) {
	a, err := h.do(ctx, http.MethodGet, addr, "/v1/status", "", nil)
	if err != nil {
		return ctStatus{}, err
	}
	if a.Status != http.StatusOK {
		return ctStatus{}, fmt.Errorf("%s /v1/status: %v", addr, a)
	}
	var st ctStatus
	if err := json.Unmarshal(a.Body, &st); err != nil {
		return ctStatus{}, fmt.Errorf("%s /v1/status: %w", addr, err)
	}
	return st, nil
}

// settled waits until every address in addrs is ready, names the same leader (one of addrs,
// which says it leads) and lists want members; it returns the leader's address and status.
func (h *ctHTTP) settled(ctx context.Context, t testing.TB, addrs []string, want int, limit time.Duration) (string, ctStatus) {
	t.Helper()
	var leader string
	var lst ctStatus
	eventually(ctx, t, limit, fmt.Sprintf("%v agree on a leader with %d members", addrs, want), func(ctx context.Context) error {
		leader = ""
		for _, a := range addrs {
			st, err := h.status(ctx, a)
			if err != nil {
				return err
			}
			if len(st.Members) != want {
				return fmt.Errorf("%s lists %d members", a, len(st.Members))
			}
			if leader == "" {
				leader = st.Leader.Address
			}
			if st.Leader.Address != leader || leader == "" {
				return fmt.Errorf("%s names leader %q, another %q", a, st.Leader.Address, leader)
			}
			if st.Role == "leader" {
				if a != leader {
					return fmt.Errorf("%s says it leads, but names %s", a, leader)
				}
				lst = st
			}
			if r, err := h.do(ctx, http.MethodGet, a, "/readyz", "", nil); err != nil || r.Status != http.StatusOK {
				return fmt.Errorf("%s not ready: %v %v", a, r, err)
			}
		}
		if lst.Role != "leader" || lst.Address != leader {
			return fmt.Errorf("the leader %s does not say it leads", leader)
		}
		return nil
	})
	return leader, lst
}

// ---------------------------------------------------------------- TestContractServerFlags

// TestContractServerFlags: API.md's flag table against bin/server -h and the flag parser.
func TestContractServerFlags(t *testing.T) {
	bin := serverBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	run := func(env []string, args ...string) (string, int) {
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("run %s %v: %v", bin, args, err)
		}
		return string(out), code
	}

	t.Run("server -h lists every flag of the table with its default", func(t *testing.T) {
		out, code := run(ctEnv(), "-h")
		if code != 0 {
			t.Errorf("server -h exits %d", code)
		}
		// flag -> the default API.md gives ("" when none is printed: empty string, false).
		table := map[string]string{
			"host": "", "port": "", "zookeeper": "", "zookeeper_port": "",
			"id": "host:port", "session_timeout": "4s", "cluster_token": "", "ack": "all",
			"max_key_bytes": "1024", "max_value_bytes": "1048576", "sync_on_join": "",
			"log_format": "text",
		}
		listed := map[string]string{} // flag -> its help text
		var cur string
		for _, line := range strings.Split(out, "\n") {
			if f, ok := strings.CutPrefix(line, "  -"); ok {
				cur = strings.Fields(f)[0]
				listed[cur] = ""
				continue
			}
			if cur != "" {
				listed[cur] += line
			}
		}
		for f, def := range table {
			help, ok := listed[f]
			if !ok {
				ctMismatch(t, "server -h does not list -%s", f)
				continue
			}
			if def != "" && !strings.Contains(help, "default "+def) && !strings.Contains(help, `default "`+def+`"`) {
				ctMismatch(t, "-%s: help %q does not give the default %s", f, strings.TrimSpace(help), def)
			}
		}
		for f := range listed {
			if _, ok := table[f]; !ok {
				t.Logf("server -h lists -%s, which API.md does not (additions are allowed)", f)
			}
		}
	})

	t.Run("each further flag has the ZKV_<FLAG> environment fallback", func(t *testing.T) {
		// A bad value in the environment is refused (exit 2) naming the variable: the
		// variable is read. The ZooKeeper address is unreachable; parsing fails first.
		for _, c := range []struct{ env, value string }{
			{"ZKV_ACK", "bogus"},
			{"ZKV_SESSION_TIMEOUT", "bogus"},
			{"ZKV_MAX_KEY_BYTES", "bogus"},
			{"ZKV_MAX_VALUE_BYTES", "bogus"},
			{"ZKV_SYNC_ON_JOIN", "bogus"},
			{"ZKV_LOG_FORMAT", "bogus"},
			{"ZKV_PORT", "bogus"},
			{"ZKV_ZOOKEEPER_PORT", "bogus"},
		} {
			out, code := run(ctEnv(c.env+"="+c.value), "-zookeeper", "127.0.0.1:1")
			if code == 0 || !strings.Contains(out, c.env) && !strings.Contains(out, c.value) {
				ctMismatch(t, "%s=%s: exit %d, output %q; want a refusal naming it", c.env, c.value, code, strings.TrimSpace(out))
			}
		}
	})

	t.Run("-ack takes all, majority, leader only", func(t *testing.T) {
		out, code := run(ctEnv(), "-ack", "some", "-zookeeper", "127.0.0.1:1")
		if code == 0 {
			ctMismatch(t, "-ack some accepted: %q", out)
		}
	})

	t.Run("-log_format takes text or json only", func(t *testing.T) {
		out, code := run(ctEnv(), "-log_format", "yaml", "-zookeeper", "127.0.0.1:1")
		if code == 0 {
			ctMismatch(t, "-log_format yaml accepted: %q", out)
		}
	})
}

// ---------------------------------------------------------------- TestContractPlainServers

// TestContractPlainServers: three servers on a ZooKeeper of their own, without a cluster token:
// a started with the four assignment flags only; b through an ensemble list and the ZKV_
// environment; c with flags that override the environment. Then the election layout without
// ACLs, re-registration after a lost session, and no ZooKeeper at all: 503 + Retry-After.
func TestContractPlainServers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	serverBinary(t)
	z := startZooKeeper(ctx, t, 1)
	zkHost, zkPort, err := net.SplitHostPort(z.Servers()[0])
	if err != nil {
		t.Fatal(err)
	}
	closed := ctFreePort(t) // nothing listens there: an ensemble entry that never answers
	h := newCtHTTP(t)
	t.Cleanup(func() {
		if t.Failed() {
			tailLogs(t, logDir(t, "servers"), 40)
		}
	})

	a := startCtServer(ctx, t, "a", func(port int) []string {
		return []string{"-host", "127.0.0.1", "-port", strconv.Itoa(port), "-zookeeper", zkHost, "-zookeeper_port", zkPort}
	}, ctEnv())
	b := startCtServer(ctx, t, "b", func(port int) []string {
		return []string{"-host", "127.0.0.1", "-port", strconv.Itoa(port),
			"-zookeeper", fmt.Sprintf("127.0.0.1:%d,%s", closed, zkHost), "-zookeeper_port", zkPort}
	}, ctEnv("ZKV_ID=b-from-env", "ZKV_MAX_KEY_BYTES=8", "ZKV_ACK=majority", "ZKV_LOG_FORMAT=json"))
	c := startCtServer(ctx, t, "c", func(port int) []string {
		return []string{"-host", "127.0.0.1", "-port", strconv.Itoa(port), "-zookeeper", zkHost, "-zookeeper_port", zkPort,
			"-id", "c-from-flag", "-max_key_bytes", "12", "-ack", "leader", "-log_format", "text", "-session_timeout", "1s"}
	}, ctEnv("ZKV_ID=c-from-env", "ZKV_MAX_KEY_BYTES=4", "ZKV_ACK=bogus", "ZKV_LOG_FORMAT=json"))
	addrs := []string{a.addr, b.addr, c.addr}
	leader, lst := h.settled(ctx, t, addrs, 3, 30*time.Second)

	t.Run("the four flags -host -port -zookeeper -zookeeper_port start a server and join the cluster", func(t *testing.T) {
		st, err := h.status(ctx, a.addr)
		if err != nil {
			t.Fatal(err)
		}
		if st.Leader.Address != leader || len(st.Members) != 3 {
			ctMismatch(t, "a (four flags) sees leader %q and %d members", st.Leader.Address, len(st.Members))
		}
		h.putValue(ctx, t, a.addr, "plain/a", "from-a")
		for _, addr := range addrs {
			if got := ctObject(t, h.get(ctx, t, addr, "/v1/kv/plain/a").Body); got["value"] != "from-a" {
				ctMismatch(t, "write through a (four flags) reads %v on %s", got, addr)
			}
		}
	})

	t.Run("-id defaults to host:port", func(t *testing.T) {
		st, err := h.status(ctx, a.addr)
		if err != nil {
			t.Fatal(err)
		}
		if st.ID != a.addr || st.Address != a.addr {
			ctMismatch(t, "a without -id: status id %q address %q, want %q", st.ID, st.Address, a.addr)
		}
	})

	t.Run("-zookeeper takes a comma-separated ensemble; an entry without a port uses -zookeeper_port", func(t *testing.T) {
		// b was given 127.0.0.1:<closed>,<host> and -zookeeper_port <the real port>: it can
		// only have joined through the entry without a port.
		st, err := h.status(ctx, b.addr)
		if err != nil {
			t.Fatal(err)
		}
		if st.Leader.Address != leader || len(st.Members) != 3 {
			ctMismatch(t, "b (ensemble list) sees leader %q and %d members", st.Leader.Address, len(st.Members))
		}
		want := fmt.Sprintf("127.0.0.1:%d,%s:%s", closed, zkHost, zkPort)
		if !strings.Contains(b.logText(), want) {
			t.Logf("b's start line does not show the ensemble %s", want)
		}
	})

	t.Run("ZKV_<FLAG> is the fallback of each flag", func(t *testing.T) {
		st, err := h.status(ctx, b.addr)
		if err != nil {
			t.Fatal(err)
		}
		if st.ID != "b-from-env" {
			ctMismatch(t, "ZKV_ID=b-from-env: status id %q", st.ID)
		}
		// ZKV_MAX_KEY_BYTES=8: a 9-byte key is refused by b itself, an 8-byte one is not.
		if r := h.get(ctx, t, b.addr, "/v1/kv/"+strings.Repeat("k", 9)); r.Status < 400 || r.Status > 499 {
			ctMismatch(t, "ZKV_MAX_KEY_BYTES=8: a 9-byte key on b: %v", r)
		}
		if r := h.get(ctx, t, b.addr, "/v1/kv/"+strings.Repeat("k", 8)); r.Status != http.StatusOK {
			ctMismatch(t, "ZKV_MAX_KEY_BYTES=8: an 8-byte key on b: %v", r)
		}
		// ZKV_LOG_FORMAT=json: b logs JSON lines.
		var sawJSON bool
		for _, line := range strings.Split(b.logText(), "\n") {
			if strings.HasPrefix(line, "{") {
				sawJSON = json.Valid([]byte(line))
				break
			}
		}
		if !sawJSON {
			ctMismatch(t, "ZKV_LOG_FORMAT=json: b's log has no JSON line")
		}
		// ZKV_ACK=majority: the start line says so.
		if !strings.Contains(b.logText(), `"ack":"majority"`) {
			t.Logf("ZKV_ACK=majority: b's start line does not show it")
		}
	})

	t.Run("a flag on the command line wins over its ZKV_ variable", func(t *testing.T) {
		st, err := h.status(ctx, c.addr)
		if err != nil {
			t.Fatal(err)
		}
		if st.ID != "c-from-flag" {
			ctMismatch(t, "-id c-from-flag with ZKV_ID=c-from-env: status id %q", st.ID)
		}
		// -max_key_bytes 12 beats ZKV_MAX_KEY_BYTES=4.
		if r := h.get(ctx, t, c.addr, "/v1/kv/"+strings.Repeat("k", 12)); r.Status != http.StatusOK {
			ctMismatch(t, "-max_key_bytes 12 with ZKV_MAX_KEY_BYTES=4: a 12-byte key on c: %v", r)
		}
		// -ack leader beats ZKV_ACK=bogus (c started at all), -log_format text beats json.
		for _, line := range strings.Split(c.logText(), "\n") {
			if strings.HasPrefix(line, "{") {
				ctMismatch(t, "-log_format text with ZKV_LOG_FORMAT=json: c logs %s", line)
				break
			}
		}
	})

	t.Run("-ack all, majority and leader are accepted", func(t *testing.T) {
		// a: all (default), b: majority (ZKV_ACK), c: leader (-ack): all three run; writes
		// through each are acknowledged whichever leads.
		for i, addr := range addrs {
			key := fmt.Sprintf("p/ack%d", i)
			h.putValue(ctx, t, addr, key, "v")
		}
		if lst.Address != leader {
			t.Fatalf("leader status %+v", lst)
		}
	})

	conn := ctDial(ctx, t, z.Servers(), "")
	t.Run("ZooKeeper: one /election/server<10 digits> per server, data JSON with id and address", func(t *testing.T) {
		nodes, err := ctElection(conn)
		if err != nil {
			t.Fatal(err)
		}
		ctCheckLayout(ctx, t, h, nodes, addrs, leader)
		// The launcher's own listing agrees.
		kids, err := z.Children(ctx, "/election")
		if err != nil || len(kids) != len(nodes) {
			t.Errorf("launcher children of /election: %v, %v", kids, err)
		}
	})

	t.Run("a server that loses its session re-registers with a new node", func(t *testing.T) {
		before, err := ctElection(conn)
		if err != nil {
			t.Fatal(err)
		}
		old := ""
		for _, n := range before {
			if n.ID == "c-from-flag" {
				old = n.Name
			}
		}
		if old == "" {
			t.Fatalf("c has no znode: %+v", before)
		}
		// c asked for a 1s session: stopped for longer, ZooKeeper expires it.
		c.signal(syscall.SIGSTOP)
		resumed := false
		defer func() {
			if !resumed {
				c.signal(syscall.SIGCONT)
			}
		}()
		eventually(ctx, t, 15*time.Second, "c's znode expires while c is stopped", func(context.Context) error {
			nodes, err := ctElection(conn)
			if err != nil {
				return err
			}
			for _, n := range nodes {
				if n.Name == old {
					return fmt.Errorf("%s still there", old)
				}
			}
			return nil
		})
		c.signal(syscall.SIGCONT)
		resumed = true
		eventually(ctx, t, 15*time.Second, "c registers again under a new node", func(context.Context) error {
			nodes, err := ctElection(conn)
			if err != nil {
				return err
			}
			for _, n := range nodes {
				if n.ID == "c-from-flag" {
					if n.Name == old {
						return fmt.Errorf("c is back under its old node %s", old)
					}
					return nil
				}
			}
			return fmt.Errorf("no node of c among %+v", nodes)
		})
		h.settled(ctx, t, addrs, 3, 20*time.Second)
	})

	t.Run("SIGINT on the leader: it resigns first (znode deleted at once) and exits 0", func(t *testing.T) {
		leader, _ := h.settled(ctx, t, addrs, 3, 20*time.Second)
		var ls *ctServer
		for _, s := range []*ctServer{a, b, c} {
			if s.addr == leader {
				ls = s
			}
		}
		nodes, err := ctElection(conn)
		if err != nil {
			t.Fatal(err)
		}
		var znode string
		for _, n := range nodes {
			if n.Address == leader {
				znode = n.Name
			}
		}
		began := time.Now()
		ls.signal(syscall.SIGINT)
		var rest []string
		for _, x := range addrs {
			if x != leader {
				rest = append(rest, x)
			}
		}
		eventually(ctx, t, 2*ctSession, "the old leader's znode is deleted", func(context.Context) error {
			nodes, err := ctElection(conn)
			if err != nil {
				return err
			}
			for _, n := range nodes {
				if n.Name == znode {
					return fmt.Errorf("%s still there", znode)
				}
			}
			return nil
		})
		gone := time.Since(began)
		if err := ls.wait(15 * time.Second); err != nil {
			ctMismatch(t, "the leader after SIGINT: %v, want exit 0", err)
		}
		newLeader, _ := h.settled(ctx, t, rest, 2, 2*ctSession)
		t.Logf("SIGINT on %s: znode %s gone after %v, %s leads after %v", leader, znode, gone.Round(time.Millisecond), newLeader, time.Since(began).Round(time.Millisecond))
		if gone > ctSession/2 {
			ctMismatch(t, "the znode of a leader stopped with SIGINT went after %v, not at once", gone)
		}
		addrs = rest
	})

	t.Run("503 with Retry-After when no leader can take a write; readyz 503; role candidate", func(t *testing.T) {
		needsNodeControl(t, z)
		for _, addr := range addrs {
			h.putValue(ctx, t, addr, "p/nozk", "before")
		}
		if err := z.Stop(ctx, 0); err != nil {
			t.Fatalf("stop zookeeper: %v", err)
		}
		for _, addr := range addrs {
			var last ctAnswer
			var accepted []string
			err := waitFor(ctx, 3*ctSession, func(ctx context.Context) error {
				r, err := h.do(ctx, http.MethodPut, addr, "/v1/kv/p/nozk", "application/json", []byte(`{"value":"during"}`))
				if err != nil {
					return err
				}
				last = r
				if r.Status == http.StatusOK {
					accepted = append(accepted, r.String())
				}
				if r.Status != http.StatusServiceUnavailable {
					return fmt.Errorf("PUT: %v", r)
				}
				return nil
			})
			if len(accepted) > 0 {
				t.Logf("%s acknowledged %d writes after ZooKeeper stopped (first %s)", addr, len(accepted), accepted[0])
			}
			if err != nil {
				ctMismatch(t, "PUT through %s with ZooKeeper stopped: %v", addr, err)
				continue
			}
			ctError(t, "PUT with no leader through "+addr, last, http.StatusServiceUnavailable)
			if ra := last.Header.Get("Retry-After"); ra == "" {
				ctMismatch(t, "503 through %s has no Retry-After: %v", addr, last)
			} else if n, err := strconv.Atoi(ra); err != nil || n < 0 {
				ctMismatch(t, "Retry-After %q is not delay-seconds", ra)
			}
		}
		for _, addr := range addrs {
			eventually(ctx, t, 3*ctSession, addr+" /readyz 503 and role candidate without ZooKeeper", func(ctx context.Context) error {
				r, err := h.do(ctx, http.MethodGet, addr, "/readyz", "", nil)
				if err != nil {
					return err
				}
				if r.Status != http.StatusServiceUnavailable {
					return fmt.Errorf("/readyz %v", r)
				}
				st, err := h.status(ctx, addr)
				if err != nil {
					return err
				}
				if st.Role != "candidate" {
					return fmt.Errorf("role %q", st.Role)
				}
				return nil
			})
			r := h.get(ctx, t, addr, "/v1/status")
			var st ctStatus
			_ = json.Unmarshal(r.Body, &st)
			if got := r.Header.Get("X-Zkv-Leader"); got != st.Leader.Address {
				ctMismatch(t, "%s without ZooKeeper: X-Zkv-Leader %q, its status names leader %q", addr, got, st.Leader.Address)
			} else {
				t.Logf("%s without ZooKeeper: X-Zkv-Leader %q (leader known: %v)", addr, got, got != "")
			}
			ctHeaders(t, "status without ZooKeeper on "+addr, r, "-", -1)
			if r := h.get(ctx, t, addr, "/healthz"); r.Status != http.StatusOK {
				ctMismatch(t, "/healthz on %s without ZooKeeper: %v (200 while the process serves)", addr, r)
			}
		}
	})
}

// ctCheckLayout checks the /election children against API.md and the servers' status.
func ctCheckLayout(ctx context.Context, t *testing.T, h *ctHTTP, nodes []ctZnode, addrs []string, leader string) {
	t.Helper()
	if len(nodes) != len(addrs) {
		ctMismatch(t, "/election has %d children for %d servers: %+v", len(nodes), len(addrs), nodes)
	}
	byAddr := map[string]ctZnode{}
	for _, n := range nodes {
		if !ctZnodeName.MatchString(n.Name) {
			ctMismatch(t, "/election/%s is not named server<10 digits>", n.Name)
		}
		if n.ID == "" || n.Address == "" {
			ctMismatch(t, "/election/%s data %q does not name id and address", n.Name, n.Data)
		}
		if _, dup := byAddr[n.Address]; dup {
			ctMismatch(t, "two znodes for %s", n.Address)
		}
		byAddr[n.Address] = n
	}
	for _, addr := range addrs {
		st, err := h.status(ctx, addr)
		if err != nil {
			t.Fatal(err)
		}
		n, ok := byAddr[addr]
		if !ok {
			ctMismatch(t, "no znode names %s", addr)
			continue
		}
		if n.ID != st.ID {
			ctMismatch(t, "znode %s names id %q, the server says %q", n.Name, n.ID, st.ID)
		}
	}
	smallest := slices.MinFunc(nodes, func(x, y ctZnode) int { return int(x.Seq - y.Seq) })
	if smallest.Address != leader {
		ctMismatch(t, "the smallest sequence %s is %s, the leader is %s", smallest.Name, smallest.Address, leader)
	}
}

// ---------------------------------------------------------------- TestContractCluster

// TestContractCluster: three servers via driver/cluster with -cluster_token and small key and
// value limits, on a ZooKeeper of their own.
func TestContractCluster(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	bin := serverBinary(t)
	z := startZooKeeper(ctx, t, 1)
	dir := logDir(t, "servers")
	cctx, ccancel := context.WithTimeout(ctx, time.Minute)
	c, err := cluster.Start(cctx, cluster.Options{
		Binary:    bin,
		Servers:   3,
		ZooKeeper: z.Servers(),
		LogDir:    dir,
		Args: []string{"-cluster_token", ctToken,
			"-max_key_bytes", strconv.Itoa(ctMaxKey), "-max_value_bytes", strconv.Itoa(ctMaxValue)},
		Env:    []string{"ZKV_LOG_LEVEL=info"},
		Logger: testLogger(t),
	})
	ccancel()
	if err != nil {
		tailLogs(t, dir, 40)
		t.Fatalf("start cluster: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Logf("close cluster: %v", err)
		}
		if t.Failed() {
			tailLogs(t, dir, 40)
		}
	})
	h := newCtHTTP(t)
	addrs := c.Addrs()
	leader, lst := h.settled(ctx, t, addrs, 3, 30*time.Second)
	epoch := lst.Epoch
	var followers []string
	for _, a := range addrs {
		if a != leader {
			followers = append(followers, a)
		}
	}
	f1, f2 := followers[0], followers[1]
	zkAuth := ctDial(ctx, t, z.Servers(), ctToken)

	t.Run("GET /v1/status: id,address,role,leader{id,address},epoch,keys,members[{id,address,znode}]", func(t *testing.T) {
		for _, addr := range addrs {
			r := h.get(ctx, t, addr, "/v1/status")
			if r.Status != http.StatusOK {
				ctMismatch(t, "/v1/status on %s: %v", addr, r)
				continue
			}
			m := ctObject(t, r.Body)
			ctShape(t, "status of "+addr, m, map[string]string{
				"id": "string", "address": "string", "role": "string", "leader": "object",
				"epoch": "integer", "keys": "integer", "members": "array",
				"applied": "integer", "in_sync": "array", "incarnation": "string", "alarms": "array"})
			ld, _ := m["leader"].(map[string]any)
			ctShape(t, "status.leader of "+addr, ld, map[string]string{"id": "string", "address": "string"})
			ms, _ := m["members"].([]any)
			if len(ms) != 3 {
				ctMismatch(t, "status of %s lists %d members", addr, len(ms))
			}
			for _, x := range ms {
				mm, _ := x.(map[string]any)
				ctShape(t, "status.members[] of "+addr, mm, map[string]string{"id": "string", "address": "string", "znode": "string"})
				if zn, _ := mm["znode"].(string); !ctZnodePath.MatchString(zn) {
					ctMismatch(t, "member znode %q is not /election/server<10 digits>", zn)
				}
			}
			var st ctStatus
			_ = json.Unmarshal(r.Body, &st)
			want := "follower"
			if addr == leader {
				want = "leader"
			}
			if st.Role != want || st.Leader.Address != leader || st.Epoch != epoch || st.Address != addr || st.ID != addr {
				ctMismatch(t, "status of %s: %s", addr, r.Body)
			}
			ctHeaders(t, "status of "+addr, r, leader, epoch)
		}
	})

	t.Run("ZooKeeper: one EPHEMERAL_SEQUENTIAL /election/server<10 digits> per server; smallest leads", func(t *testing.T) {
		nodes, err := ctElection(zkAuth)
		if err != nil {
			t.Fatal(err)
		}
		ctCheckLayout(ctx, t, h, nodes, addrs, leader)
		for _, n := range nodes {
			_, stat, err := zkAuth.Get("/election/" + n.Name)
			if err != nil {
				t.Fatal(err)
			}
			if stat.EphemeralOwner == 0 {
				ctMismatch(t, "/election/%s is not ephemeral", n.Name)
			}
		}
		st, _ := h.status(ctx, leader)
		for _, m := range st.Members {
			found := false
			for _, n := range nodes {
				found = found || "/election/"+n.Name == m.Znode && n.Address == m.Address
			}
			if !found {
				ctMismatch(t, "status member %+v matches no znode", m)
			}
		}
	})

	t.Run("-cluster_token: znodes get digest ACLs (no auth: NoAuth)", func(t *testing.T) {
		nodes, err := ctElection(zkAuth)
		if err != nil || len(nodes) == 0 {
			t.Fatalf("election: %v %v", nodes, err)
		}
		acl, _, err := zkAuth.GetACL("/election/" + nodes[0].Name)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range acl {
			if a.Scheme != "digest" {
				ctMismatch(t, "/election/%s ACL %+v is not digest", nodes[0].Name, acl)
			}
		}
		anon := ctDial(ctx, t, z.Servers(), "")
		if _, _, err := anon.Get("/election/" + nodes[0].Name); !errors.Is(err, zk.ErrNoAuth) {
			ctMismatch(t, "reading /election/%s without auth: %v, want NoAuth", nodes[0].Name, err)
		}
		if _, _, err := anon.Children("/election"); err != nil {
			t.Logf("listing /election without auth: %v", err)
		}
	})

	t.Run("-cluster_token: internal routes refuse requests without Authorization: Bearer <token> (401)", func(t *testing.T) {
		append1 := []byte(`{"epoch":1,"leader":"x","prev_index":0,"prev_epoch":0,"entries":[]}`)
		cases := []struct {
			method, path string
			body         []byte
		}{
			{http.MethodPost, "/internal/v1/append", append1},
			{http.MethodPost, "/internal/v1/snapshot", []byte(`{"epoch":1,"leader":"x","snapshot":{"index":0,"epoch":0,"entries":[]}}`)},
			{http.MethodGet, "/internal/v1/snapshot", nil},
		}
		for _, addr := range []string{leader, f1} {
			for _, cs := range cases {
				for _, auth := range []string{"", "Bearer wrong", ctToken, "Basic " + ctToken} {
					var hdr []string
					if auth != "" {
						hdr = []string{"Authorization", auth}
					}
					ctype := ""
					if cs.body != nil {
						ctype = "application/json"
					}
					r := h.must(ctx, t, cs.method, addr, cs.path, ctype, cs.body, hdr...)
					what := fmt.Sprintf("%s %s on %s with Authorization %q", cs.method, cs.path, addr, auth)
					ctError(t, what, r, http.StatusUnauthorized)
				}
			}
			// With the token the snapshot route answers.
			r := h.must(ctx, t, http.MethodGet, addr, "/internal/v1/snapshot", "", nil, "Authorization", "Bearer "+ctToken)
			if r.Status != http.StatusOK {
				t.Errorf("GET /internal/v1/snapshot with the token on %s: %v", addr, r)
			}
		}
	})

	var putVersion float64
	t.Run("PUT /v1/kv/{key} answers 200 key,value,version,epoch,leader", func(t *testing.T) {
		r := h.putJSON(ctx, t, leader, "c/put", map[string]string{"value": "v1"})
		if r.Status != http.StatusOK {
			t.Fatalf("PUT through the leader: %v", r)
		}
		m := ctObject(t, r.Body)
		ctShape(t, "PUT answer", m, map[string]string{"key": "string", "value": "string", "version": "integer", "epoch": "integer", "leader": "string"})
		if m["key"] != "c/put" || m["value"] != "v1" || m["leader"] != leader || m["epoch"] != float64(epoch) {
			ctMismatch(t, "PUT answer %s; want key c/put value v1 leader %s epoch %d", r.Body, leader, epoch)
		}
		ctHeaders(t, "PUT through the leader", r, leader, epoch)
		if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			ctMismatch(t, "PUT answer Content-Type %q", ct)
		}
		putVersion, _ = m["version"].(float64)
		m2 := h.putValue(ctx, t, leader, "c/put", "v2")
		if v, _ := m2["version"].(float64); v != putVersion+1 {
			t.Errorf("second PUT version %v after %v", m2["version"], putVersion)
		}
	})

	t.Run("PUT through a follower: forwarded to the leader, one answer, not a redirect", func(t *testing.T) {
		for i, f := range followers {
			key := fmt.Sprintf("c/fwd%d", i)
			r := h.putJSON(ctx, t, f, key, map[string]string{"value": "via-follower"})
			if r.Status != http.StatusOK || r.Header.Get("Location") != "" {
				ctMismatch(t, "PUT through follower %s: %v (Location %q)", f, r, r.Header.Get("Location"))
				continue
			}
			m := ctObject(t, r.Body)
			ctShape(t, "PUT answer through a follower", m, map[string]string{"key": "string", "value": "string", "version": "integer", "epoch": "integer", "leader": "string"})
			if m["leader"] != leader || m["key"] != key || m["value"] != "via-follower" {
				ctMismatch(t, "PUT through follower %s answered %s, want the leader %s", f, r.Body, leader)
			}
			ctHeaders(t, "PUT through follower "+f, r, leader, epoch)
			for _, a := range addrs { // -ack all: every replica has it once acknowledged
				if got := ctObject(t, h.get(ctx, t, a, "/v1/kv/"+key).Body); got["value"] != "via-follower" {
					t.Errorf("%s after an acknowledged write (-ack all) on %s: %v", key, a, got)
				}
			}
		}
	})

	t.Run("GET /v1/kv/{key} found: 200 key,value,found true,version", func(t *testing.T) {
		for _, a := range addrs {
			r := h.get(ctx, t, a, "/v1/kv/c/put")
			if r.Status != http.StatusOK {
				ctMismatch(t, "GET found on %s: %v", a, r)
				continue
			}
			m := ctObject(t, r.Body)
			ctShape(t, "GET found on "+a, m, map[string]string{"key": "string", "value": "string", "found": "bool", "version": "integer"})
			if m["key"] != "c/put" || m["value"] != "v2" || m["found"] != true || m["version"] != putVersion+1 {
				ctMismatch(t, "GET found on %s: %s", a, r.Body)
			}
			ctHeaders(t, "GET found on "+a, r, leader, epoch)
		}
	})

	t.Run("GET /v1/kv/{key} a key this server lacks: 200 key,value empty,found false", func(t *testing.T) {
		for _, a := range addrs {
			r := h.get(ctx, t, a, "/v1/kv/c/never")
			if r.Status != http.StatusOK {
				ctMismatch(t, "GET not-found on %s: %v", a, r)
				continue
			}
			m := ctObject(t, r.Body)
			ctShape(t, "GET not-found on "+a, m, map[string]string{"key": "string", "value": "string", "found": "bool"})
			if m["key"] != "c/never" || m["value"] != "" || m["found"] != false {
				ctMismatch(t, "GET not-found on %s: %s", a, r.Body)
			}
			ctHeaders(t, "GET not-found on "+a, r, leader, epoch)
		}
	})

	t.Run("keys are non-empty UTF-8 and may contain /", func(t *testing.T) {
		for _, key := range []string{"d/e/f", "/lead", "trail/", "d//e", "é/ü", "a%2Fb"} {
			path := "/v1/kv/" + key
			want := key
			if key == "a%2Fb" {
				want = "a/b" // an escaped '/' is a '/' too
			}
			r := h.putJSON(ctx, t, f1, strings.TrimPrefix(path, "/v1/kv/"), map[string]string{"value": "slash"})
			if r.Status != http.StatusOK {
				ctMismatch(t, "PUT key %q: %v", key, r)
				continue
			}
			if m := ctObject(t, r.Body); m["key"] != want {
				ctMismatch(t, "PUT key %q answered key %v", key, m["key"])
			}
			for _, a := range addrs {
				m := ctObject(t, h.get(ctx, t, a, path).Body)
				if m["key"] != want || m["value"] != "slash" || m["found"] != true {
					ctMismatch(t, "GET key %q on %s: %v", key, a, m)
				}
			}
			r = h.get(ctx, t, f2, "/read?key="+strings.ReplaceAll(want, "/", "%2F"))
			if m := ctObject(t, r.Body); r.Status != http.StatusOK || m["value"] != "slash" {
				ctMismatch(t, "/read?key=%s: %v", want, r)
			}
		}
	})

	t.Run("DELETE /v1/kv/{key}: 200 key,found; routed to the leader like a write", func(t *testing.T) {
		h.putValue(ctx, t, leader, "c/del", "x")
		for i, via := range []string{f1, f2} {
			r := h.must(ctx, t, http.MethodDelete, via, "/v1/kv/c/del", "", nil)
			if r.Status != http.StatusOK {
				ctMismatch(t, "DELETE through follower %s: %v", via, r)
				continue
			}
			m := ctObject(t, r.Body)
			ctShape(t, "DELETE answer", m, map[string]string{"key": "string", "found": "bool"})
			if m["key"] != "c/del" || m["found"] != (i == 0) {
				ctMismatch(t, "DELETE #%d through %s: %s, want found %v", i+1, via, r.Body, i == 0)
			}
			ctHeaders(t, "DELETE through "+via, r, leader, epoch)
		}
		for _, a := range addrs {
			if m := ctObject(t, h.get(ctx, t, a, "/v1/kv/c/del").Body); m["found"] != false {
				t.Errorf("deleted key on %s: %v", a, m)
			}
		}
	})

	t.Run("-max_key_bytes and -max_value_bytes are the longest key and value accepted, in bytes", func(t *testing.T) {
		key := strings.Repeat("k", ctMaxKey)
		value := strings.Repeat("v", ctMaxValue)
		for _, a := range []string{leader, f1} {
			if r := h.putJSON(ctx, t, a, key, map[string]string{"value": value}); r.Status != http.StatusOK {
				ctMismatch(t, "a %d-byte key and a %d-byte value through %s: %v", ctMaxKey, ctMaxValue, a, r)
			}
			r := h.must(ctx, t, http.MethodPost, a, "/update", "application/json", []byte(`{"key":"`+key+`","value":"`+value+`"}`))
			if r.Status != http.StatusOK {
				ctMismatch(t, "/update with a %d-byte key and a %d-byte value through %s: %v", ctMaxKey, ctMaxValue, a, r)
			}
		}
		// Bytes, not characters: 8 x "é" is 16 bytes, 9 x "é" is 18.
		if r := h.putJSON(ctx, t, leader, strings.Repeat("é", ctMaxKey/2), map[string]string{"value": strings.Repeat("é", ctMaxValue/2)}); r.Status != http.StatusOK {
			ctMismatch(t, "a 16-byte two-byte-rune key and 32-byte value: %v", r)
		}
		if r := h.putJSON(ctx, t, leader, strings.Repeat("é", ctMaxKey/2+1), map[string]string{"value": "x"}); r.Status < 400 || r.Status > 499 {
			ctMismatch(t, "an 18-byte key (9 runes) with -max_key_bytes 16: %v", r)
		}
		if r := h.putJSON(ctx, t, leader, "c/runes", map[string]string{"value": strings.Repeat("é", ctMaxValue/2+1)}); r.Status < 400 || r.Status > 499 {
			ctMismatch(t, "a 34-byte value (17 runes) with -max_value_bytes 32: %v", r)
		}
	})

	t.Run("all bodies are JSON (Content-Type: application/json)", func(t *testing.T) {
		for _, a := range []string{leader, f1} {
			for _, rq := range []struct {
				method, path string
				body         []byte
			}{
				{http.MethodGet, "/v1/kv/c/put", nil},
				{http.MethodGet, "/v1/kv/c/never", nil},
				{http.MethodPut, "/v1/kv/c/ct", []byte(`{"value":"x"}`)},
				{http.MethodDelete, "/v1/kv/c/ct", nil},
				{http.MethodGet, "/v1/status", nil},
				{http.MethodGet, "/healthz", nil},
				{http.MethodGet, "/readyz", nil},
				{http.MethodGet, "/read?key=c/put", nil},
				{http.MethodPost, "/update", []byte(`{"key":"c/ct","value":"y"}`)},
			} {
				ctype := ""
				if rq.body != nil {
					ctype = "application/json"
				}
				r := h.must(ctx, t, rq.method, a, rq.path, ctype, rq.body)
				if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") || !json.Valid(r.Body) {
					ctMismatch(t, "%s %s on %s: Content-Type %q, body %q", rq.method, rq.path, a, ct, r.Body)
				}
			}
		}
	})

	t.Run("GET /healthz: 200 while the process serves", func(t *testing.T) {
		for _, a := range addrs {
			r := h.get(ctx, t, a, "/healthz")
			if r.Status != http.StatusOK {
				ctMismatch(t, "/healthz on %s: %v", a, r)
			}
			ctHeaders(t, "/healthz on "+a, r, leader, epoch)
		}
	})

	t.Run("GET /readyz: 200 with a session and a known leader", func(t *testing.T) {
		for _, a := range addrs {
			r := h.get(ctx, t, a, "/readyz")
			if r.Status != http.StatusOK {
				ctMismatch(t, "/readyz on %s: %v", a, r)
			}
			ctHeaders(t, "/readyz on "+a, r, leader, epoch)
		}
	})

	t.Run("GET /metrics: Prometheus text format", func(t *testing.T) {
		for _, a := range addrs {
			r := h.get(ctx, t, a, "/metrics")
			ct := r.Header.Get("Content-Type")
			if r.Status != http.StatusOK || !strings.HasPrefix(ct, "text/plain") || !strings.Contains(ct, "version=0.0.4") {
				ctMismatch(t, "/metrics on %s: %d, Content-Type %q", a, r.Status, ct)
			}
			ctHeaders(t, "/metrics on "+a, r, leader, epoch)
			sample := regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*(\{.*\})? [-+0-9.eE]+|NaN|[+-]Inf$`)
			var samples int
			for _, line := range strings.Split(strings.TrimSpace(string(r.Body)), "\n") {
				switch {
				case strings.HasPrefix(line, "# HELP "), strings.HasPrefix(line, "# TYPE "):
				case sample.MatchString(line):
					samples++
				default:
					ctMismatch(t, "/metrics on %s: line %q is not Prometheus text", a, line)
				}
			}
			if samples == 0 {
				ctMismatch(t, "/metrics on %s has no samples", a)
			}
		}
	})

	t.Run("GET /read?key=k: 200 key,value (empty value when absent)", func(t *testing.T) {
		for _, a := range addrs {
			r := h.get(ctx, t, a, "/read?key=c/put")
			m := ctObject(t, r.Body)
			ctShape(t, "/read on "+a, m, map[string]string{"key": "string", "value": "string"})
			if r.Status != http.StatusOK || m["key"] != "c/put" || m["value"] != "v2" {
				ctMismatch(t, "/read?key=c/put on %s: %v", a, r)
			}
			r = h.get(ctx, t, a, "/read?key=c/absent")
			m = ctObject(t, r.Body)
			ctShape(t, "/read absent on "+a, m, map[string]string{"key": "string", "value": "string"})
			if r.Status != http.StatusOK || m["key"] != "c/absent" || m["value"] != "" {
				ctMismatch(t, "/read?key=c/absent on %s: %v", a, r)
			}
			ctHeaders(t, "/read on "+a, r, leader, epoch)
		}
	})

	t.Run("POST /update key,value: 200 status updated, routed like PUT", func(t *testing.T) {
		for i, a := range addrs {
			val := fmt.Sprintf("u%d", i)
			r := h.must(ctx, t, http.MethodPost, a, "/update", "application/json", []byte(`{"key":"c/upd","value":"`+val+`"}`))
			if r.Status != http.StatusOK || r.Header.Get("Location") != "" {
				ctMismatch(t, "POST /update through %s: %v", a, r)
				continue
			}
			m := ctObject(t, r.Body)
			ctShape(t, "/update answer", m, map[string]string{"status": "string"})
			if m["status"] != "updated" {
				ctMismatch(t, "POST /update through %s: %s", a, r.Body)
			}
			ctHeaders(t, "/update through "+a, r, leader, epoch)
			for _, b := range addrs {
				if got := ctObject(t, h.get(ctx, t, b, "/read?key=c/upd").Body); got["value"] != val {
					t.Errorf("after /update through %s, %s reads %v", a, b, got)
				}
			}
		}
	})

	t.Run("every response carries X-Zkv-Leader and X-Zkv-Epoch (404, 405, errors too)", func(t *testing.T) {
		for _, a := range addrs {
			for _, rq := range []struct{ method, path string }{
				{http.MethodGet, "/no/such/route"},
				{http.MethodGet, "/v1/kv/c/never"},
				{http.MethodPost, "/v1/status"},
				{http.MethodGet, "/internal/v1/snapshot"},
				{http.MethodPut, "/v1/kv/c/x"},
			} {
				r := h.must(ctx, t, rq.method, a, rq.path, "", nil)
				ctHeaders(t, rq.method+" "+rq.path+" on "+a, r, leader, epoch)
				if r.Status == http.StatusNotFound {
					ctError(t, "404 on "+a, r, http.StatusNotFound)
				}
			}
		}
	})

	t.Run("bad input: 4xx {error:{code,message}}, never 500, nothing changed", func(t *testing.T) {
		h.putValue(ctx, t, leader, "c/orig", "orig")
		before := map[string]string{}
		for _, a := range addrs {
			before[a] = string(h.get(ctx, t, a, "/v1/kv/c/orig").Body)
		}
		keysBefore, _ := h.status(ctx, leader)
		long := strings.Repeat("k", ctMaxKey+1)
		big := strings.Repeat("v", ctMaxValue+1)
		js := "application/json"
		cases := []struct {
			name, method, path, ctype string
			body                      []byte
			want                      int
		}{
			{"malformed JSON", http.MethodPut, "/v1/kv/c/orig", js, []byte(`{"value":`), 0},
			{"JSON not an object", http.MethodPut, "/v1/kv/c/orig", js, []byte(`["x"]`), 0},
			{"value not a string", http.MethodPut, "/v1/kv/c/orig", js, []byte(`{"value":1}`), 0},
			{"missing value", http.MethodPut, "/v1/kv/c/orig", js, []byte(`{}`), 0},
			{"empty body", http.MethodPut, "/v1/kv/c/orig", js, nil, 0},
			{"oversized value", http.MethodPut, "/v1/kv/c/orig", js, []byte(`{"value":"` + big + `"}`), 0},
			{"missing key", http.MethodPut, "/v1/kv/", js, []byte(`{"value":"x"}`), 0},
			{"oversized key", http.MethodPut, "/v1/kv/" + long, js, []byte(`{"value":"x"}`), 0},
			{"invalid UTF-8 key", http.MethodPut, "/v1/kv/c%FF", js, []byte(`{"value":"x"}`), 0},
			{"invalid UTF-8 value", http.MethodPut, "/v1/kv/c/orig", js, []byte("{\"value\":\"\xff\"}"), 0},
			{"wrong content type", http.MethodPut, "/v1/kv/c/orig", "text/plain", []byte(`{"value":"x"}`), 0},
			{"no content type", http.MethodPut, "/v1/kv/c/orig", "", []byte(`{"value":"x"}`), 0},
			{"wrong method POST /v1/kv", http.MethodPost, "/v1/kv/c/orig", js, []byte(`{"value":"x"}`), http.StatusMethodNotAllowed},
			{"wrong method PATCH /v1/kv", http.MethodPatch, "/v1/kv/c/orig", js, []byte(`{"value":"x"}`), http.StatusMethodNotAllowed},
			{"wrong method GET /update", http.MethodGet, "/update", "", nil, http.StatusMethodNotAllowed},
			{"wrong method PUT /update", http.MethodPut, "/update", js, []byte(`{"key":"c/orig","value":"x"}`), http.StatusMethodNotAllowed},
			{"wrong method POST /read", http.MethodPost, "/read?key=c/orig", js, []byte(`{}`), http.StatusMethodNotAllowed},
			{"wrong method DELETE /v1/status", http.MethodDelete, "/v1/status", "", nil, http.StatusMethodNotAllowed},
			{"wrong method POST /healthz", http.MethodPost, "/healthz", "", nil, http.StatusMethodNotAllowed},
			{"update malformed JSON", http.MethodPost, "/update", js, []byte(`{"key":"c/orig",`), 0},
			{"update missing key", http.MethodPost, "/update", js, []byte(`{"value":"x"}`), 0},
			{"update empty key", http.MethodPost, "/update", js, []byte(`{"key":"","value":"x"}`), 0},
			{"update missing value", http.MethodPost, "/update", js, []byte(`{"key":"c/orig"}`), 0},
			{"update oversized key", http.MethodPost, "/update", js, []byte(`{"key":"` + long + `","value":"x"}`), 0},
			{"update oversized value", http.MethodPost, "/update", js, []byte(`{"key":"c/orig","value":"` + big + `"}`), 0},
			{"update invalid UTF-8", http.MethodPost, "/update", js, []byte("{\"key\":\"c/orig\",\"value\":\"\xfe\"}"), 0},
			{"update wrong content type", http.MethodPost, "/update", "text/plain", []byte(`{"key":"c/orig","value":"x"}`), 0},
			{"read missing key", http.MethodGet, "/read", "", nil, 0},
			{"read oversized key", http.MethodGet, "/read?key=" + long, "", nil, 0},
			{"read invalid UTF-8 key", http.MethodGet, "/read?key=%FF", "", nil, 0},
			{"get oversized key", http.MethodGet, "/v1/kv/" + long, "", nil, 0},
			{"get invalid UTF-8 key", http.MethodGet, "/v1/kv/%FF", "", nil, 0},
			{"get missing key", http.MethodGet, "/v1/kv/", "", nil, 0},
			{"delete oversized key", http.MethodDelete, "/v1/kv/" + long, "", nil, 0},
			{"delete missing key", http.MethodDelete, "/v1/kv/", "", nil, 0},
		}
		codes := map[string]string{}
		for _, a := range []string{leader, f1} {
			for _, cs := range cases {
				r := h.must(ctx, t, cs.method, a, cs.path, cs.ctype, cs.body)
				code := ctError(t, cs.name+" on "+a, r, cs.want)
				codes[cs.name] = fmt.Sprintf("%d %s", r.Status, code)
			}
		}
		names := make([]string, 0, len(codes))
		for n := range codes {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			t.Logf("%-28s -> %s", n, codes[n])
		}
		for _, a := range addrs {
			if got := string(h.get(ctx, t, a, "/v1/kv/c/orig").Body); got != before[a] {
				ctMismatch(t, "bad input changed c/orig on %s: %s, was %s", a, got, before[a])
			}
		}
		if after, _ := h.status(ctx, leader); after.Keys != keysBefore.Keys {
			ctMismatch(t, "bad input changed the key count: %d, was %d", after.Keys, keysBefore.Keys)
		}
	})

	t.Run("driver get/put/delete/status -addr h:p", func(t *testing.T) {
		drv := ctDriverBinary(t)
		run := func(args ...string) (string, int) {
			cmd := exec.CommandContext(ctx, drv, args...)
			cmd.Env = ctEnv()
			var out, errb bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &errb
			err := cmd.Run()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatalf("driver %v: %v", args, err)
			}
			return out.String() + errb.String(), code
		}
		if out, code := run("put", "-addr", f1, "cli/k", "cli-v"); code != 0 || !strings.Contains(out, "cli-v") {
			ctMismatch(t, "driver put -addr %s: exit %d: %s", f1, code, out)
		}
		if out, code := run("get", "-addr", f2, "cli/k"); code != 0 || !strings.Contains(out, "cli-v") {
			ctMismatch(t, "driver get -addr %s: exit %d: %s", f2, code, out)
		}
		if out, code := run("get", "-addr", f2, "-leader", "cli/k"); code != 0 || !strings.Contains(out, "cli-v") {
			ctMismatch(t, "driver get -leader -addr %s: exit %d: %s", f2, code, out)
		}
		if out, code := run("status", "-addr", leader); code != 0 || !strings.Contains(out, `"leader"`) || !strings.Contains(out, leader) {
			ctMismatch(t, "driver status -addr %s: exit %d: %s", leader, code, out)
		}
		if out, code := run("delete", "-addr", f2, "cli/k"); code != 0 || !strings.Contains(out, "true") {
			ctMismatch(t, "driver delete -addr %s: exit %d: %s", f2, code, out)
		}
		// A missing key: the answer is printed, and the exit status is 3 (docs/api.md).
		if out, code := run("get", "-addr", leader, "cli/k"); code != 3 || !strings.Contains(out, "false") {
			ctMismatch(t, "driver get after delete: exit %d, want 3: %s", code, out)
		}
	})

	t.Run("a restarted server starts empty; ?consistency=leader forwards the read to the leader", func(t *testing.T) {
		h.putValue(ctx, t, leader, "c/stale", "old")
		fn := c.NodeByAddr(f1)
		if err := fn.Term(); err != nil {
			ctMismatch(t, "SIGTERM on follower %s: %v, want exit 0", f1, err)
		}
		rctx, rcancel := context.WithTimeout(ctx, 30*time.Second)
		err := fn.Restart(rctx)
		rcancel()
		if err != nil {
			t.Fatalf("restart %s: %v", f1, err)
		}
		h.settled(ctx, t, addrs, 3, 20*time.Second)
		local := h.get(ctx, t, f1, "/v1/kv/c/stale")
		if m := ctObject(t, local.Body); m["found"] != false {
			ctMismatch(t, "restarted %s without -sync_on_join reads c/stale %s, want found false", f1, local.Body)
		}
		r := h.get(ctx, t, f1, "/v1/kv/c/stale?consistency=leader")
		m := ctObject(t, r.Body)
		if r.Status != http.StatusOK || m["found"] != true || m["value"] != "old" {
			ctMismatch(t, "GET ?consistency=leader on the stale %s: %v, want the leader's old", f1, r)
		}
		ctShape(t, "GET ?consistency=leader", m, map[string]string{"key": "string", "value": "string", "found": "bool", "version": "integer"})
		ctHeaders(t, "GET ?consistency=leader", r, leader, epoch)
		// Later writes reach it.
		h.putValue(ctx, t, f2, "c/later", "new")
		if m := ctObject(t, h.get(ctx, t, f1, "/v1/kv/c/later").Body); m["value"] != "new" {
			t.Errorf("restarted %s misses a later write: %v", f1, m)
		}
	})

	t.Run("-sync_on_join: a (re)started server copies the leader's store before serving", func(t *testing.T) {
		h.putValue(ctx, t, leader, "c/synced", "copy-me")
		p := startCtServer(ctx, t, "sync", func(port int) []string {
			return []string{"-host", "127.0.0.1", "-port", strconv.Itoa(port),
				"-zookeeper", strings.Join(z.Servers(), ","), "-zookeeper_port", "2181",
				"-cluster_token", ctToken, "-max_key_bytes", strconv.Itoa(ctMaxKey), "-sync_on_join"}
		}, ctEnv())
		eventually(ctx, t, 20*time.Second, "the -sync_on_join server is ready", func(ctx context.Context) error {
			r, err := h.do(ctx, http.MethodGet, p.addr, "/readyz", "", nil)
			if err != nil {
				return err
			}
			if r.Status != http.StatusOK {
				return fmt.Errorf("%v", r)
			}
			return nil
		})
		for _, key := range []string{"c/synced", "c/stale", "c/put"} {
			want := ctObject(t, h.get(ctx, t, leader, "/v1/kv/"+key).Body)
			got := ctObject(t, h.get(ctx, t, p.addr, "/v1/kv/"+key).Body)
			if got["found"] != true || got["value"] != want["value"] {
				ctMismatch(t, "-sync_on_join server reads %s: %v, the leader %v", key, got, want)
			}
		}
		if err := p.term(); err != nil {
			ctMismatch(t, "SIGTERM on the -sync_on_join server: %v, want exit 0", err)
		}
		h.settled(ctx, t, addrs, 3, 20*time.Second)
	})

	t.Run("SIGTERM on the leader: znode deleted at once, successor before the session timeout, in-flight finish, exit 0", func(t *testing.T) {
		leader, _ := h.settled(ctx, t, addrs, 3, 20*time.Second)
		nodes, err := ctElection(zkAuth)
		if err != nil {
			t.Fatal(err)
		}
		var znode string
		for _, n := range nodes {
			if n.Address == leader {
				znode = n.Name
			}
		}
		// An in-flight request: the headers and half the body reach the leader before SIGTERM.
		body := []byte(`{"value":"in-flight"}`)
		conn, err := net.DialTimeout("tcp", leader, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
		fmt.Fprintf(conn, "PUT /v1/kv/c/inflight HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
			leader, len(body), body[:len(body)/2])
		// The server reads the request head before it can see the signal's effect; make sure
		// it has: a second request on another connection is answered after the first was read.
		if r := h.get(ctx, t, leader, "/healthz"); r.Status != http.StatusOK {
			t.Fatalf("/healthz: %v", r)
		}

		ln := c.NodeByAddr(leader)
		began := time.Now()
		if err := ln.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		var rest []string
		for _, a := range addrs {
			if a != leader {
				rest = append(rest, a)
			}
		}
		var znodeGone, successor time.Duration
		eventually(ctx, t, 2*ctSession, "the old leader's znode is deleted", func(context.Context) error {
			nodes, err := ctElection(zkAuth)
			if err != nil {
				return err
			}
			for _, n := range nodes {
				if n.Name == znode {
					return fmt.Errorf("%s still there", znode)
				}
			}
			znodeGone = time.Since(began)
			return nil
		})
		eventually(ctx, t, 2*ctSession, "a successor leads", func(ctx context.Context) error {
			for _, a := range rest {
				st, err := h.status(ctx, a)
				if err != nil {
					return err
				}
				if st.Leader.Address == "" || st.Leader.Address == leader {
					return fmt.Errorf("%s names leader %q", a, st.Leader.Address)
				}
			}
			successor = time.Since(began)
			return nil
		})
		t.Logf("SIGTERM on the leader %s: znode %s gone after %v, successor after %v (session timeout %v)",
			leader, znode, znodeGone.Round(time.Millisecond), successor.Round(time.Millisecond), ctSession)
		if znodeGone > ctSession/2 {
			ctMismatch(t, "the resigning leader's znode was deleted after %v, not at once", znodeGone)
		}
		if successor > ctSession/2 {
			ctMismatch(t, "the successor led after %v, not well before the %v session timeout", successor, ctSession)
		}

		// The in-flight request finishes with a whole answer.
		if _, err := conn.Write(body[len(body)/2:]); err != nil {
			ctMismatch(t, "in-flight request: the rest of the body could not be sent: %v", err)
		} else {
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				ctMismatch(t, "in-flight request got no answer: %v", err)
			} else {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				t.Logf("in-flight PUT across SIGTERM answered %s %s", resp.Status, bytes.TrimSpace(b))
				switch {
				case resp.StatusCode == http.StatusOK:
				case resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") != "":
				default:
					ctMismatch(t, "in-flight request across SIGTERM: %s %s", resp.Status, b)
				}
			}
		}
		wctx, wcancel := context.WithTimeout(ctx, 15*time.Second)
		err = ln.Wait(wctx)
		wcancel()
		if err != nil {
			ctMismatch(t, "the leader after SIGTERM: %v, want exit 0", err)
		}
		newLeader, _ := h.settled(ctx, t, rest, 2, 20*time.Second)
		h.putValue(ctx, t, rest[0], "c/after-term", "ok")
		if newLeader == leader {
			t.Errorf("leader unchanged")
		}
	})
}

// TestContractDriverScenarios: bin/driver scenarios on an existing ZooKeeper (-zookeeper and
// -zookeeper_port) spawns the servers, runs the three scenarios, writes logs under -logs DIR and
// exits 0.
func TestContractDriverScenarios(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	drv := ctDriverBinary(t)
	bin := serverBinary(t)
	z := startZooKeeper(ctx, t, 1)
	host, port, err := net.SplitHostPort(z.Servers()[0])
	if err != nil {
		t.Fatal(err)
	}
	logs := logDir(t, "scenarios")
	t.Run("driver scenarios: three scenarios, each step printed, logs under -logs, exit 0", func(t *testing.T) {
		cmd := exec.CommandContext(ctx, drv, "scenarios", "-zookeeper", host, "-zookeeper_port", port,
			"-server_bin", bin, "-logs", logs, "-session_timeout", "1s", "-no_color", "-timeout", "90s")
		cmd.Env = ctEnv()
		out, err := cmd.CombinedOutput()
		if err != nil {
			ctMismatch(t, "driver scenarios: %v\n%s", err, out)
		}
		text := string(out)
		for _, want := range []string{"1.1", "2.1", "3.1"} {
			if !strings.Contains(text, want) {
				ctMismatch(t, "driver scenarios printed no step %s:\n%s", want, text)
			}
		}
		var files []string
		_ = filepath.WalkDir(logs, func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				files = append(files, p)
			}
			return nil
		})
		if len(files) == 0 {
			ctMismatch(t, "driver scenarios -logs %s wrote no file", logs)
		}
		if t.Failed() {
			return
		}
		t.Logf("driver scenarios: exit 0, %d log files", len(files))
	})
}

// ctDriverBinary returns $ZKV_DRIVER_BIN, else ../bin/driver, skipping t without either.
func ctDriverBinary(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("ZKV_DRIVER_BIN")
	if bin == "" {
		bin, _ = filepath.Abs("../bin/driver")
	}
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("driver binary %s missing (run `make build`): %v", bin, err)
	}
	return bin
}
