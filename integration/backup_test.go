package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// runDriver runs bin/driver with args (the test's own environment, less ZKV_ settings)
// and returns its stdout, stderr and exit status.
func runDriver(ctx context.Context, t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, ctDriverBinary(t), args...)
	cmd.Env = ctEnv()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return out.String(), errb.String(), ee.ExitCode()
	case err != nil:
		t.Fatalf("driver %v: %v", args, err)
	}
	return out.String(), errb.String(), 0
}

// TestBackupSurvivesFullRestart is how a user survives restarting every server (the data
// lives in memory only): keys written, `driver snapshot save` from the leader, every server
// restarted (all data gone), `driver snapshot restore` through a follower, and every
// server serves the keys again. `driver status -cluster -json` shows the cluster on the way.
func TestBackupSurvivesFullRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	ctDriverBinary(t)
	zc := startCluster(ctx, t)
	leader := zc.members(ctx, 3, 30*time.Second)
	want := map[string]string{}
	for i := range 300 {
		k := fmt.Sprintf("backup/%03d", i)
		want[k] = strings.Repeat(fmt.Sprint(i%10), i%50) + "\n\"é"
	}
	want["plain"] = ""
	for k, v := range want {
		put(ctx, t, leader, k, v)
	}

	out, errOut, code := runDriver(ctx, t, "status", "-cluster", "-json", "-addr", zc.others(leader)[0].Addr())
	var rows []struct {
		Endpoint string `json:"endpoint"`
		Role     string `json:"role"`
		Keys     int    `json:"keys"`
		Lag      *int64 `json:"lag"`
	}
	if err := json.Unmarshal([]byte(out), &rows); err != nil || code != 0 || len(rows) != 3 {
		t.Fatalf("status -cluster -json: exit %d, %v: %s %s", code, err, out, errOut)
	}
	leaders := 0
	for _, r := range rows {
		if r.Role == "leader" {
			leaders++
			if r.Endpoint != leader.Addr() || r.Keys != len(want) {
				t.Errorf("leader row %+v", r)
			}
		}
		if r.Lag == nil {
			t.Errorf("row without lag %+v", r)
		}
	}
	if leaders != 1 {
		t.Fatalf("%d leaders in %s", leaders, out)
	}

	file := filepath.Join(t.TempDir(), "backup.zkv")
	out, errOut, code = runDriver(ctx, t, "snapshot", "save", "-json", "-addr", zc.others(leader)[0].Addr(), file)
	var saved struct {
		From string `json:"from"`
		Keys int    `json:"keys"`
	}
	if err := json.Unmarshal([]byte(out), &saved); err != nil || code != 0 || saved.Keys != len(want) || saved.From != leader.Addr() {
		t.Fatalf("snapshot save: exit %d, %v: %s %s", code, err, out, errOut)
	}

	// Every server down at once, then up again: their stores are empty.
	for _, n := range zc.c.Nodes() {
		if err := n.Term(); err != nil {
			t.Logf("stop %s: %v", n.Addr(), err)
		}
	}
	for _, n := range zc.c.Nodes() {
		rctx, rcancel := context.WithTimeout(ctx, 30*time.Second)
		err := n.Restart(rctx)
		rcancel()
		if err != nil {
			t.Fatalf("restart %s: %v", n.Addr(), err)
		}
	}
	leader = zc.members(ctx, 3, 30*time.Second)
	for _, n := range zc.c.Nodes() {
		if kv := get(ctx, t, n, "backup/001"); kv.Found {
			t.Fatalf("%s still holds backup/001 after its restart", n.Addr())
		}
		eventually(ctx, t, 30*time.Second, n.Addr()+" ready", func(ctx context.Context) error { return n.Client().Ready(ctx) })
	}

	via := zc.others(leader)[0]
	out, errOut, code = runDriver(ctx, t, "snapshot", "restore", "-addr", via.Addr(), file)
	if code != 0 || !strings.Contains(out, fmt.Sprintf("restored %d keys", len(want))) {
		t.Fatalf("snapshot restore: exit %d: %s %s", code, out, errOut)
	}
	for _, n := range zc.c.Nodes() {
		for k, v := range want {
			if kv := get(ctx, t, n, k); !kv.Found || kv.Value != v {
				t.Fatalf("%s after the restore: %s = %+v, want %q", n.Addr(), k, kv, v)
			}
		}
	}
	// A malformed file is refused and changes nothing.
	bad := filepath.Join(t.TempDir(), "bad.zkv")
	if err := writeFile(bad, `{"format":"zkv-snapshot/1","index":1,"epoch":1,"keys":2}`+"\n"+`{"key":"x","value":"1","version":1}`+"\n"); err != nil {
		t.Fatal(err)
	}
	if _, errOut, code := runDriver(ctx, t, "snapshot", "restore", "-addr", via.Addr(), bad); code != 1 || !strings.Contains(errOut, "truncated") {
		t.Fatalf("restore of a truncated file: exit %d: %s", code, errOut)
	}
	if kv := get(ctx, t, leader, "x"); kv.Found {
		t.Fatalf("a refused restore wrote x")
	}
}

func writeFile(path, content string) error { return os.WriteFile(path, []byte(content), 0o644) }
