package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
)

// fakeServer is a zkv server's public REST surface over a map, enough for the driver's
// operator commands: /v1/status, /v1/snapshot, GET and PUT /v1/kv/.
type fakeServer struct {
	srv     *httptest.Server
	addr    string
	role    string
	leader  *string // the leader's address, shared by a fake cluster
	members *[]string
	applied uint64

	mu   sync.Mutex
	kv   map[string]string
	puts int
}

func newFakeServer(t *testing.T, role string, leader *string, members *[]string) *fakeServer {
	f := &fakeServer{role: role, leader: leader, members: members, kv: map[string]string{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	f.addr = strings.TrimPrefix(f.srv.URL, "http://")
	return f
}

func (f *fakeServer) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.URL.Path == "/v1/cluster" && r.URL.Query().Get("self") == "true":
		contact := 120
		if f.role == "leader" {
			contact = 0
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"id": "id-" + f.addr, "address": f.addr, "role": f.role,
			"leader": *f.leader, "epoch": 7, "keys": len(f.kv), "applied": f.applied, "last_contact_ms": contact})
	case r.URL.Path == "/v1/status":
		var ms []map[string]string
		for i, a := range *f.members {
			ms = append(ms, map[string]string{"id": fmt.Sprint("s", i), "address": a})
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"id": "id-" + f.addr, "address": f.addr, "role": f.role,
			"leader": map[string]string{"address": *f.leader}, "epoch": 7, "keys": len(f.kv), "members": ms,
			"applied": f.applied})
	case r.URL.Path == "/v1/snapshot":
		w.Header().Set("Content-Type", "application/x-ndjson")
		keys := make([]string, 0, len(f.kv))
		for k := range f.kv {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		enc := json.NewEncoder(w)
		_ = enc.Encode(map[string]any{"format": "zkv-snapshot/1", "index": f.applied, "epoch": 7, "keys": len(keys), "server": f.addr})
		for _, k := range keys {
			_ = enc.Encode(map[string]any{"key": k, "value": f.kv[k], "version": 1})
		}
	case strings.HasPrefix(r.URL.Path, "/v1/kv/"):
		key := strings.TrimPrefix(r.URL.Path, "/v1/kv/")
		if r.Method == http.MethodPut {
			var body struct{ Value string }
			b, _ := io.ReadAll(r.Body)
			_ = json.Unmarshal(b, &body)
			f.kv[key] = body.Value
			f.puts++
			f.applied++
			_ = json.NewEncoder(w).Encode(map[string]any{"key": key, "value": body.Value, "version": 1})
			return
		}
		v, ok := f.kv[key]
		_ = json.NewEncoder(w).Encode(map[string]any{"key": key, "value": v, "found": ok})
	default:
		http.NotFound(w, r)
	}
}

func run(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = Main(context.Background(), args, &out, &errOut)
	return out.String(), errOut.String(), code
}

func TestGetMissingKeyExitCode(t *testing.T) {
	var leader string
	members := []string{}
	f := newFakeServer(t, "leader", &leader, &members)
	f.kv["here"] = "v"
	if out, _, code := run(t, "get", "-addr", f.addr, "here"); code != 0 || !strings.Contains(out, `"value": "v"`) {
		t.Fatalf("get of a present key: exit %d: %s", code, out)
	}
	out, _, code := run(t, "get", "-addr", f.addr, "-json", "absent")
	if code != exitNotFound {
		t.Fatalf("get of a missing key: exit %d, want %d", code, exitNotFound)
	}
	var kv map[string]any
	if err := json.Unmarshal([]byte(out), &kv); err != nil || kv["found"] != false || strings.Count(out, "\n") != 1 {
		t.Fatalf("get -json printed %q (%v), want one line of JSON with found false", out, err)
	}
	if _, errOut, code := run(t, "get", "-addr", "127.0.0.1:1", "-json", "k"); code != exitFailed || !strings.HasPrefix(errOut, `{"error":`) {
		t.Fatalf("get from nowhere: exit %d, stderr %q", code, errOut)
	}
}

func TestStatusCluster(t *testing.T) {
	var leader string
	var members []string
	l := newFakeServer(t, "leader", &leader, &members)
	fo := newFakeServer(t, "follower", &leader, &members)
	leader, l.applied, fo.applied = l.addr, 10, 7
	members = []string{l.addr, fo.addr}

	out, errOut, code := run(t, "status", "-addr", fo.addr, "-cluster")
	if code != 0 {
		t.Fatalf("status -cluster: exit %d: %s %s", code, out, errOut)
	}
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) != 3 || !strings.Contains(lines[0], "ENDPOINT") || !strings.Contains(lines[0], "APPLIED INDEX") ||
		!strings.Contains(lines[0], "LAST CONTACT") {
		t.Fatalf("table:\n%s", out)
	}
	for _, l := range lines[1:] {
		switch {
		case strings.Contains(l, leader):
			if !strings.Contains(l, "leader") || !strings.Contains(l, " 10 ") || !strings.Contains(l, "(leads)") {
				t.Errorf("leader row %q", l)
			}
		case strings.Contains(l, fo.addr):
			if !strings.Contains(l, "follower") || !strings.Contains(l, " 3 ") || !strings.Contains(l, "120ms ago") {
				t.Errorf("follower row %q (want lag 3)", l)
			}
		default:
			t.Errorf("row %q", l)
		}
	}

	// A member that does not answer: listed as unreachable, exit 1; -json is one array.
	members = append(members, "127.0.0.1:1")
	out, _, code = run(t, "status", "-addr", l.addr, "-cluster", "-json")
	var rows []memberRow
	if err := json.Unmarshal([]byte(out), &rows); err != nil || code != exitFailed || len(rows) != 3 {
		t.Fatalf("status -cluster -json: exit %d, %v: %s", code, err, out)
	}
	for _, r := range rows {
		switch r.Endpoint {
		case "127.0.0.1:1":
			if r.Role != "unreachable" || r.Error == "" || r.Lag != nil {
				t.Errorf("dead member %+v", r)
			}
		case fo.addr:
			if r.Lag == nil || *r.Lag != 3 || r.Applied != 7 || r.LastContactMS != 120 {
				t.Errorf("follower %+v", r)
			}
		}
	}
}

func TestSnapshotSaveRestore(t *testing.T) {
	var leader string
	var members []string
	src := newFakeServer(t, "leader", &leader, &members)
	leader, members = src.addr, []string{src.addr}
	want := map[string]string{"a": "1", "b/c": "line\nbreak", "d": "", "é": `"quoted"`}
	for k, v := range want {
		src.kv[k] = v
	}
	src.applied = 42
	file := filepath.Join(t.TempDir(), "backup.zkv")
	out, errOut, code := run(t, "snapshot", "save", "-addr", src.addr, "-json", file)
	if code != 0 {
		t.Fatalf("save: exit %d: %s", code, errOut)
	}
	var sum map[string]any
	if err := json.Unmarshal([]byte(out), &sum); err != nil || sum["keys"] != 4.0 || sum["index"] != 42.0 {
		t.Fatalf("save -json: %q (%v)", out, err)
	}

	// A fresh cluster: the restore writes every key through its leader.
	var leader2 string
	var members2 []string
	dst := newFakeServer(t, "leader", &leader2, &members2)
	fol := newFakeServer(t, "follower", &leader2, &members2)
	leader2, members2 = dst.addr, []string{dst.addr, fol.addr}
	out, errOut, code = run(t, "snapshot", "restore", "-addr", fol.addr, "-concurrency", "3", file)
	if code != 0 || !strings.Contains(out, "restored 4 keys") {
		t.Fatalf("restore: exit %d: %s %s", code, out, errOut)
	}
	if fol.puts != 0 || len(dst.kv) != len(want) {
		t.Fatalf("writes: %d through the follower, leader holds %v", fol.puts, dst.kv)
	}
	for k, v := range want {
		if dst.kv[k] != v {
			t.Errorf("restored %q = %q, want %q", k, dst.kv[k], v)
		}
	}

	// Malformed files are refused before any write, with the line at fault.
	good, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(good), "\n")
	bad := map[string]string{
		"truncated":      strings.Join(lines[:len(lines)-2], ""),
		"not JSON":       lines[0] + "{nope\n" + strings.Join(lines[2:], ""),
		"no header":      strings.Join(lines[1:], ""),
		"out of order":   lines[0] + lines[2] + lines[1] + strings.Join(lines[3:], ""),
		"unknown field":  lines[0] + `{"key":"a","value":"1","version":1,"extra":true}` + "\n" + strings.Join(lines[2:], ""),
		"empty":          "",
		"too many lines": string(good) + `{"key":"zz","value":"1","version":1}` + "\n",
	}
	dst.puts = 0
	for name, content := range bad {
		p := filepath.Join(t.TempDir(), "bad.zkv")
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		_, errOut, code := run(t, "snapshot", "restore", "-addr", dst.addr, p)
		if code != exitFailed || !strings.Contains(errOut, "malformed snapshot") || !strings.Contains(errOut, "nothing written") {
			t.Errorf("%s: exit %d: %s", name, code, errOut)
		}
	}
	if dst.puts != 0 {
		t.Fatalf("malformed files caused %d writes", dst.puts)
	}
	if _, _, code := run(t, "snapshot", "restore", "-addr", dst.addr, filepath.Join(t.TempDir(), "missing")); code != exitFailed {
		t.Fatalf("missing file: exit %d", code)
	}
	if _, _, code := run(t, "snapshot", "frobnicate"); code != exitUsage {
		t.Fatalf("unknown snapshot subcommand: exit %d", code)
	}
}

func TestScenariosJSON(t *testing.T) {
	logs := t.TempDir()
	out, errOut, code := run(t, "scenarios", "-json", "-addrs", "127.0.0.1:1", "-logs", logs, "-no_color", "-election_timeout", "300ms")
	if code != 1 {
		t.Fatalf("exit %d", code)
	}
	var rep struct {
		OK     bool `json:"ok"`
		Failed int  `json:"failed"`
		Checks []struct {
			ID     string `json:"id"`
			Result string `json:"result"`
			Detail string `json:"detail"`
		} `json:"checks"`
		Extra map[string]any `json:"extra"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("stdout is not one JSON document: %v\n%s", err, out)
	}
	if rep.OK || rep.Failed == 0 || len(rep.Checks) == 0 || rep.Checks[0].Result != "FAIL" || rep.Extra["logs"] == nil {
		t.Fatalf("report %+v", rep)
	}
	if !strings.Contains(errOut, "logs: "+logs) {
		t.Fatalf("the transcript belongs on stderr with -json: %q", errOut)
	}
}
