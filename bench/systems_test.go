package bench

import (
	"context"
	"io"
	"testing"
)

// A small run of the comparison systems that are installed (etcd-server, redis-server), the
// ceiling in-process; skipped when none is there or with -short.
func TestLoadSmallRunComparisons(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd and redis")
	}
	o, err := parseLoad([]string{"-clients", "2", "-values", "10", "-keys", "20", "-duration", "200ms", "-warmup", "0s",
		"-systems", "ceiling,redis,etcd", "-logs", t.TempDir(), "-etcd_data", t.TempDir()}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	o.self = "" // the test binary cannot be the ceiling's process
	run, err := runLoad(context.Background(), o, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range run.Skipped {
		t.Log("skipped:", s)
	}
	if len(run.Cells) == 0 {
		t.Fatal("no cells")
	}
	for _, c := range run.Cells {
		t.Logf("%s %s: %.0f ops/s p50 %v", c.System, c.Op, c.Result.Throughput(), c.Result.Latency.P50)
		if c.CPU != nil {
			t.Logf("  CPU µs/op: server %.0f, client %.0f", c.perOp(c.CPU.Server), c.perOp(c.CPU.Client))
		}
		if c.Result.Ops == 0 || c.Result.Errors != 0 {
			t.Errorf("%s %s: %+v", c.System, c.Op, c.Result)
		}
		// Every cell reads its processes' CPU time; the ceiling's is this process's.
		if c.CPU == nil || c.CPUErr != "" || c.CPU.InProcess != (c.System == "ceiling") || c.CPU.Window <= 0 {
			t.Errorf("%s %s: CPU %+v %q", c.System, c.Op, c.CPU, c.CPUErr)
		}
	}
}
