package bench

import (
	"strings"
	"testing"
)

const sampleCumTop = `Duration: 5.10s, Total samples = 7.50s (147.06%)
Showing nodes accounting for 3.10s, 41.33% of 7.50s total
Dropped 612 nodes (cum <= 0.04s)
      flat  flat%   sum%        cum   cum%
     0.01s  0.13%  0.13%      4.20s 56.00%  net/http.(*conn).serve
     2.10s 28.00% 28.13%      2.30s 30.67%  internal/runtime/syscall.Syscall6
         0     0% 28.13%      2.25s 30.00%  syscall.Syscall
     0.02s  0.27% 28.40%      0.90s 12.00%  runtime.gcBgMarkWorker
     0.05s  0.67% 29.07%      0.40s  5.33%  encoding/json.Marshal
     0.01s  0.13% 29.20%      0.30s  4.00%  log/slog.(*Logger).log
`

func TestGroupProfile(t *testing.T) {
	got := map[string]float64{}
	for _, g := range groupProfile(sampleCumTop) {
		got[strings.Join(strings.Fields(g.Name)[:2], " ")] = g.Cum
	}
	want := map[string]float64{"system calls": 30.67, "HTTP server": 56, "HTTP client": 0, "garbage collector": 12, "JSON (encoding/json)": 5.33, "logging (log/slog)": 4, "memory allocation": 0}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: got %v, want %v", k, got[k], v)
		}
	}
}

func TestProfileMarkdown(t *testing.T) {
	p := &profileResult{Seconds: 5, Leader: "127.0.0.1:1", File: "/tmp/x.pprof", Flat: "flat", Cum: sampleCumTop,
		Cell: loadCell{System: "zkv", Op: "PUT ack all", ValueSize: 100, Clients: 64, Servers: 3}}
	p.Groups = groupProfile(sampleCumTop)
	md := profileMarkdown(loadOptions{}, &loadRun{}, p)
	for _, s := range []string{"## What limits zkv", "| system calls", "net/http.(*conn).serve", "seconds=5"} {
		if !strings.Contains(md, s) {
			t.Errorf("markdown lacks %q:\n%s", s, md)
		}
	}
}
