package server

import (
	"context"
	"log/slog"
	"runtime/debug"
	rtmetrics "runtime/metrics"
	"time"
)

// DefaultGCHeadroom is the default of -gc_headroom.
const DefaultGCHeadroom = 64 << 20

// Bounds of the GC percent TuneGC sets.
const (
	minGCPercent = 20
	maxGCPercent = 100 // Go's default
)

// GCPercent is the GOGC that lets a heap whose live part is live grow by headroom bytes
// before the next collection: 100 (Go's default, the heap doubles) while live is at most
// headroom, less as live grows past it, never below 20. A server's heap is mostly its store,
// long-lived: at the default a store of 250 MB would have its process grow to 500 MB
// between collections; with 64 MiB of headroom it stays near 320 MB, for a collection
// every 64 MiB allocated (each one marks the store's pointers, about 30 bytes a key).
func GCPercent(live, headroom uint64) int {
	if live == 0 || headroom == 0 || live <= headroom {
		return maxGCPercent
	}
	p := int(headroom * 100 / live)
	return min(max(p, minGCPercent), maxGCPercent)
}

// TuneGC sets the process's GC percent from its live heap every interval, to
// GCPercent(live, headroom), until ctx ends; then it restores the percent found at the start.
// The server command runs it unless $GOGC is set or -gc_headroom is 0.
func TuneGC(ctx context.Context, headroom uint64, interval time.Duration, logger *slog.Logger) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	sample := []rtmetrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/gc/gogc:percent"}}
	rtmetrics.Read(sample)
	current := int(sample[1].Value.Uint64())
	initial := current
	defer debug.SetGCPercent(initial)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		rtmetrics.Read(sample)
		if sample[0].Value.Kind() == rtmetrics.KindUint64 {
			live := sample[0].Value.Uint64()
			if p := GCPercent(live, headroom); p != current && (p-current >= 5 || current-p >= 5 || p == maxGCPercent) {
				debug.SetGCPercent(p)
				logger.Debug("gc percent set", "gc_percent", p, "live_heap_bytes", live, "headroom_bytes", headroom)
				current = p
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
