package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeBench writes an executable standing in for bin/bench into dir: it echoes its arguments
// and exits with 3, so the test sees both pass through.
func fakeBench(t *testing.T, dir, name string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\necho \"bench args: $*\"\necho to-stderr >&2\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestBenchRunsTheBenchBinary(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	t.Setenv(envBenchBin, fakeBench(t, t.TempDir(), "zkv-bench"))
	var out, errOut bytes.Buffer
	code := Main(context.Background(), []string{"bench", "election", "-runs", "1"}, &out, &errOut)
	if code != 3 || out.String() != "bench args: election -runs 1\n" || errOut.String() != "to-stderr\n" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out.String(), errOut.String())
	}

	t.Setenv(envBenchBin, "")
	t.Setenv("PATH", filepath.Dir(fakeBench(t, t.TempDir(), "bench")))
	out.Reset()
	if code := Main(context.Background(), []string{"bench", "-h"}, &out, &errOut); code != 3 || out.String() != "bench args: -h\n" {
		t.Fatalf("from PATH: exit %d, stdout %q", code, out.String())
	}
}

func TestBenchWithoutTheBenchBinary(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	t.Setenv(envBenchBin, "")
	var out, errOut bytes.Buffer
	if code := Main(context.Background(), []string{"bench", "load"}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "make build") {
		t.Fatalf("exit %d, stderr %q", code, errOut.String())
	}
	errOut.Reset()
	t.Setenv(envBenchBin, filepath.Join(t.TempDir(), "missing"))
	if code := Main(context.Background(), []string{"bench", "load"}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "$"+envBenchBin) {
		t.Fatalf("exit %d, stderr %q", code, errOut.String())
	}
}
