package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
)

// envBenchBin names the bench binary when there is none next to the driver's.
const envBenchBin = "ZKV_BENCH_BIN"

// runBench runs the bench binary with args and returns its exit code. The benchmarks are a
// module of their own (bench, building bin/bench) so that the driver does not link etcd's and
// Redis's clients, the plotting and the latency proxy; `driver bench` stays as a way in.
func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	bin, err := benchBinary()
	if err != nil {
		fmt.Fprintln(stderr, "driver bench:", err)
		return 1
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, stdout, stderr
	// A terminal's ^C reaches both processes; a SIGTERM sent to the driver alone is passed on.
	// Either way the benchmark is left to stop the servers, ZooKeeper, etcd and Redis it started,
	// rather than killed.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	err = cmd.Run()
	if st := cmd.ProcessState; st != nil && st.ExitCode() >= 0 {
		return st.ExitCode()
	}
	fmt.Fprintln(stderr, "driver bench:", err) // it did not start, or a signal killed it
	return 1
}

// benchBinary finds bin/bench the way the scenarios find bin/server: next to the driver's own
// binary (make build puts both in bin/), else $ZKV_BENCH_BIN, else "bench" on PATH.
func benchBinary() (string, error) {
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), "bench")
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	if p := os.Getenv(envBenchBin); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("$%s: %w", envBenchBin, err)
		}
		return p, nil
	}
	if p, err := exec.LookPath("bench"); err == nil {
		return p, nil
	}
	return "", errors.New("the benchmarks are in bin/bench, which is not next to this binary, in $" + envBenchBin +
		" or on PATH; build it with `make build`, or `cd bench && go build -o ../bin/bench ./cmd/bench`")
}
