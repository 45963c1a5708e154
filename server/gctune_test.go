package server

import (
	"context"
	"runtime"
	"runtime/debug"
	rtmetrics "runtime/metrics"
	"testing"
	"time"
)

// gogc reads the GC percent in force.
func gogc() int {
	s := []rtmetrics.Sample{{Name: "/gc/gogc:percent"}}
	rtmetrics.Read(s)
	return int(s[0].Value.Uint64())
}

func TestGCPercent(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		live, headroom uint64
		want           int
	}{
		{0, 64 * mib, 100},
		{10 * mib, 64 * mib, 100},
		{64 * mib, 64 * mib, 100},
		{128 * mib, 64 * mib, 50},
		{256 * mib, 64 * mib, 25},
		{1024 * mib, 64 * mib, 20}, // the floor
		{256 * mib, 0, 100},        // off
	} {
		if got := GCPercent(c.live, c.headroom); got != c.want {
			t.Errorf("GCPercent(%d MiB, %d MiB) = %d, want %d", c.live/mib, c.headroom/mib, got, c.want)
		}
	}
}

// TuneGC lowers the GC percent once the live heap is past the headroom, and puts the
// percent it found back when it stops.
func TestTuneGCFollowsTheLiveHeap(t *testing.T) {
	before := debug.SetGCPercent(100)
	defer debug.SetGCPercent(before)
	ballast := make([]byte, 48<<20) // live, past a headroom of 16 MiB
	for i := range ballast {
		ballast[i] = 1
	}
	runtime.GC()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { TuneGC(ctx, 16<<20, 10*time.Millisecond, nil); close(done) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		p := gogc()
		if p < 100 && p >= minGCPercent {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GC percent still %d with a live heap of 48 MiB and 16 MiB of headroom", p)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	if p := gogc(); p != 100 {
		t.Fatalf("GC percent %d after TuneGC stopped, want the 100 it found", p)
	}
	runtime.KeepAlive(ballast)
}
