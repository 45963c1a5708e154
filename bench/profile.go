package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// profileResult is a CPU profile of the zkv leader taken during one extra write cell, run after
// the measured ones so that the profiler's own cost stays out of the reported figures.
type profileResult struct {
	Cell    loadCell
	Seconds int
	Leader  string
	File    string // the raw profile, under -logs
	// Followers are the followers' raw profiles of the same window, under -logs (read them
	// with go tool pprof; the report renders the leader's only).
	Followers []string
	Flat      string // go tool pprof -top, sorted by flat time
	Cum       string // go tool pprof -top -cum
	Groups    []profileGroup
	Err       string
}

// profileGroup is the cumulative share of the profile spent under the functions matching Match.
type profileGroup struct {
	Name  string
	Match func(fn string) bool
	Cum   float64 // percent of all samples, the largest cum% of a matching function
}

// leaderOf asks each node whom it names leader.
func leaderOf(ctx context.Context, nodes []zkvNode) (string, error) {
	hc := newHTTPClient(2, 2*time.Second)
	defer hc.CloseIdleConnections()
	for _, n := range nodes {
		if l, _, err := leaderHeaders(ctx, hc, n.Addr()); err == nil && l != "" {
			return l, nil
		}
	}
	return "", fmt.Errorf("bench: no server names a leader")
}

// profileCell runs op with clients workers while it takes a CPU profile of seconds from the
// leader's /debug/pprof/profile (the servers run with -pprof), then renders it with go tool pprof.
func (o loadOptions) profileCell(ctx context.Context, cl zkvCluster, cell loadCell, op Op, bar *progress) *profileResult {
	p := &profileResult{Seconds: int(o.Profile / time.Second), Cell: cell}
	label := fmt.Sprintf("zkv %s %dB c=%d, leader CPU profile %ds", cell.Op, cell.ValueSize, cell.Clients, p.Seconds)
	bar.Label(label)
	defer bar.Step(label)
	leader, err := leaderOf(ctx, cl.Nodes())
	if err != nil {
		p.Err = err.Error()
		return p
	}
	p.Leader = leader
	if err := os.MkdirAll(o.Logs, 0o755); err != nil {
		p.Err = err.Error()
		return p
	}
	p.File = filepath.Join(o.Logs, "zkv-leader-cpu.pprof")
	// The loop runs warm-up, then the profile, with half a second to spare on each side.
	measured := o.Profile + time.Second
	done := make(chan LoopResult, 1)
	go func() { done <- RunClosedLoop(ctx, cell.Clients, o.Warmup, measured, op) }()
	select {
	case <-time.After(o.Warmup + 500*time.Millisecond):
	case <-ctx.Done():
	}
	var wg sync.WaitGroup
	nodes := cl.Nodes()
	got := make([]string, len(nodes)) // a follower's file, once fetched
	for i, n := range nodes {
		if n.Addr() == leader {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			file := filepath.Join(o.Logs, fmt.Sprintf("zkv-follower-%d-cpu.pprof", i+1))
			if fetchProfile(ctx, n.Addr(), p.Seconds, file) == nil {
				got[i] = file
			}
		}()
	}
	perr := fetchProfile(ctx, leader, p.Seconds, p.File)
	wg.Wait()
	for _, f := range got {
		if f != "" {
			p.Followers = append(p.Followers, f)
		}
	}
	p.Cell.Result = <-done
	if perr != nil {
		p.Err = perr.Error()
		return p
	}
	p.Flat, err = pprofTop(ctx, p.File, false, 20)
	if err != nil {
		p.Err = err.Error()
		return p
	}
	p.Cum, err = pprofTop(ctx, p.File, true, 30)
	if err != nil {
		p.Err = err.Error()
		return p
	}
	all, err := pprofTop(ctx, p.File, true, 100000)
	if err == nil {
		p.Groups = groupProfile(all)
	}
	return p
}

// benchToken is the cluster token of the profiled cluster: /debug/pprof/ is behind it.
const benchToken = "zkv-bench-profile"

func fetchProfile(ctx context.Context, addr string, seconds int, file string) error {
	hc := &http.Client{Timeout: time.Duration(seconds)*time.Second + 15*time.Second}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, seconds), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+benchToken)
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
		return fmt.Errorf("bench: leader profile: %d %s (does the server take -pprof?)", resp.StatusCode, strings.TrimSpace(string(b)))
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// pprofTop runs go tool pprof -top on file and returns its output from the "Showing" line on.
func pprofTop(ctx context.Context, file string, cum bool, nodes int) (string, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("bench: go tool pprof needs the go command: %w", err)
	}
	args := []string{"tool", "pprof", "-top", fmt.Sprintf("-nodecount=%d", nodes)}
	if cum {
		args = append(args, "-cum")
	}
	out, err := exec.CommandContext(ctx, goBin, append(args, file)...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("bench: go tool pprof: %v: %s", err, shorten(string(out), 200))
	}
	s := string(out)
	if i := strings.Index(s, "Duration:"); i >= 0 {
		s = s[i:]
	}
	return strings.TrimRight(s, "\n"), nil
}

// profileGroups are the parts of a write's path the report sums up.
func profileGroups() []profileGroup {
	has := func(subs ...string) func(string) bool {
		return func(fn string) bool {
			for _, s := range subs {
				if strings.Contains(fn, s) {
					return true
				}
			}
			return false
		}
	}
	return []profileGroup{
		{Name: "system calls (socket reads and writes, futex)", Match: has("syscall.Syscall", "syscall.RawSyscall", "internal/runtime/syscall.Syscall6")},
		{Name: "scheduler (runtime.schedule, findRunnable, netpoll)", Match: has("runtime.schedule", "runtime.findRunnable", "runtime.mcall")},
		{Name: "garbage collector (gcBgMarkWorker)", Match: has("runtime.gcBgMarkWorker")},
		{Name: "HTTP server (net/http.(*conn).serve)", Match: has("net/http.(*conn).serve")},
		{Name: "HTTP client to followers (net/http.(*persistConn))", Match: has("net/http.(*persistConn).readLoop", "net/http.(*persistConn).writeLoop", "net/http.(*Transport).roundTrip")},
		{Name: "replication stream, serving side (forwarded writes, appends)", Match: has("replication.(*StreamServer).Serve")},
		{Name: "replication stream, calling side (appends to the followers)", Match: has("replication.(*StreamTransport).Append", "replication.(*streamConn).readLoop")},
		{Name: "fan-out workers (replication.(*Fanout).run, commitLoop)", Match: has("replication.(*Fanout).run", "replication.(*Fanout).commitLoop")},
		{Name: "JSON (encoding/json)", Match: has("encoding/json.")},
		{Name: "logging (log/slog)", Match: has("log/slog.")},
		{Name: "memory allocation (runtime.mallocgc)", Match: has("runtime.mallocgc")},
	}
}

// groupProfile reads -top -cum output and fills each group's share: the largest cum% among its
// functions (cumulative figures overlap, so they are not summed).
func groupProfile(top string) []profileGroup {
	groups := profileGroups()
	sc := bufio.NewScanner(strings.NewReader(top))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 6 || !strings.HasSuffix(f[4], "%") {
			continue
		}
		cum, err := strconv.ParseFloat(strings.TrimSuffix(f[4], "%"), 64)
		if err != nil {
			continue
		}
		fn := strings.Join(f[5:], " ")
		for i := range groups {
			if groups[i].Match(fn) && cum > groups[i].Cum {
				groups[i].Cum = cum
			}
		}
	}
	return groups
}

// profileMarkdown is the report's "What limits zkv" section: the profiled cell, the shares of
// the main parts of the write path, and pprof's own top lists.
func profileMarkdown(o loadOptions, run *loadRun, p *profileResult) string {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	c := p.Cell
	w("## What limits zkv\n\n")
	w("A CPU profile of the leader (`-pprof` on the servers, `GET /debug/pprof/profile?seconds=%d` on the leader %s) taken during an extra cell run after the measured ones: %s, %d clients, %d-byte values, %s ops/s with the profiler on",
		p.Seconds, p.Leader, c.Op, c.Clients, c.ValueSize, fmtOps(c.Result.Throughput()))
	if m, ok := run.find("zkv", c.Op, c.ValueSize, c.Clients, 3); ok {
		w(" (%s ops/s in the measured cell)", fmtOps(m.Result.Throughput()))
	}
	w(". The raw profile is `%s`; rendered with `go tool pprof -top [-cum] %s`.", p.File, filepath.Base(p.File))
	if len(p.Followers) > 0 {
		w(" The followers' profiles of the same window: `%s`.", strings.Join(p.Followers, "`, `"))
	}
	w("\n\n")
	if p.Err != "" {
		w("The profile failed: %s\n\n", p.Err)
		return b.String()
	}
	if len(p.Groups) > 0 {
		w("Share of the leader's CPU samples under each part (cumulative, so the parts overlap: the HTTP server includes the JSON and logging it calls):\n\n")
		w("| part | cum %% of samples |\n|---|---:|\n")
		for _, g := range p.Groups {
			w("| %s | %.1f |\n", g.Name, g.Cum)
		}
		w("\n")
	}
	w("Top 20 by own (flat) time:\n\n```\n%s\n```\n\n", p.Flat)
	w("Top 30 by cumulative time:\n\n```\n%s\n```\n\n", p.Cum)
	return b.String()
}
