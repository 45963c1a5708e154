package bench

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Op is one request of a closed-loop client: worker is the client's index, seq counts that
// client's requests from 0. It returns when the system answered.
type Op func(ctx context.Context, worker int, seq uint64) error

// LoopResult is what one closed-loop cell measured.
type LoopResult struct {
	Clients  int
	Elapsed  time.Duration
	Ops      uint64 // successful operations
	Errors   uint64
	FirstErr error
	Latency  Summary // of the successful operations

	// Ended counts the successful operations that ended inside the measured window, those begun
	// in the warm-up included: the window's rate of completions, which is what a counter read
	// over the same window (CPU time) divides by. Ops leaves out the operations in flight as
	// the window opens, up to one per client.
	Ended uint64
}

// Throughput is successful operations per second.
func (r LoopResult) Throughput() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Ops) / r.Elapsed.Seconds()
}

// RunClosedLoop runs clients workers, each issuing op back to back, for d (after a warm-up of
// warmup whose operations are not counted), and returns the merged result. Every worker stops
// at the deadline or when ctx ends; an operation in flight then is not counted.
func RunClosedLoop(ctx context.Context, clients int, warmup, d time.Duration, op Op) LoopResult {
	return runClosedLoop(ctx, clients, warmup, d, op, nil)
}

// windowMeter reads counters of its own at the edges of a cell's measured window.
type windowMeter interface {
	begin() // when the warm-up ends
	end()   // at the deadline, or when ctx ends first; not called when begin was not
}

// runClosedLoop is RunClosedLoop calling m (when not nil) from a goroutine of its own as the
// measured window opens and closes; both calls have returned when it returns.
func runClosedLoop(ctx context.Context, clients int, warmup, d time.Duration, op Op, m windowMeter) LoopResult {
	if clients < 1 {
		clients = 1
	}
	start := time.Now()
	measureFrom := start.Add(warmup)
	deadline := measureFrom.Add(d)
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()

	var wg sync.WaitGroup
	if m != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTimer(time.Until(measureFrom))
			defer t.Stop()
			select {
			case <-t.C:
			case <-ctx.Done():
				return
			}
			m.begin()
			<-ctx.Done() // the deadline, or the caller's
			m.end()
		}()
	}

	type partial struct {
		hist     Histogram
		ended    uint64
		errs     uint64
		firstErr error
	}
	parts := make([]partial, clients)
	for w := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := &parts[w]
			for seq := uint64(0); ; seq++ {
				t0 := time.Now()
				if !t0.Before(deadline) || ctx.Err() != nil {
					return
				}
				err := op(ctx, w, seq)
				t1 := time.Now()
				if t1.After(deadline) || ctx.Err() != nil {
					return // cut off by the end of the cell
				}
				if err == nil && !t1.Before(measureFrom) {
					p.ended++
				}
				if t0.Before(measureFrom) {
					continue
				}
				if err != nil {
					p.errs++
					if p.firstErr == nil {
						p.firstErr = err
					}
					if errors.Is(err, context.Canceled) {
						return
					}
					continue
				}
				p.hist.Record(t1.Sub(t0))
			}
		}()
	}
	wg.Wait()
	end := time.Now()
	if end.After(deadline) {
		end = deadline
	}
	var all Histogram
	res := LoopResult{Clients: clients, Elapsed: end.Sub(measureFrom)}
	for i := range parts {
		all.Merge(&parts[i].hist)
		res.Ended += parts[i].ended
		res.Errors += parts[i].errs
		if res.FirstErr == nil {
			res.FirstErr = parts[i].firstErr
		}
	}
	res.Ops = all.Count()
	res.Latency = all.Summary()
	if res.Elapsed < 0 {
		res.Elapsed = 0
	}
	return res
}
