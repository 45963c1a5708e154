package robustness

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// Traffic is the workload: Clients clients, each sending one operation at a time to a random
// running server, over Keys keys, with unique values, until the context ends or MaxOps
// operations were sent.
type Traffic struct {
	Clients int           // default 8
	Keys    int           // default 10
	MaxOps  int           // default 6000
	Pause   time.Duration // between one client's operations; default 25ms (bounds the load on 2 cores)
	Timeout time.Duration // per request; default 2s
	// Mix, in percent: writes, local reads; the rest are leader reads. Default 50, 30.
	WritePct, LocalPct int
}

func (tr Traffic) withDefaults() Traffic {
	if tr.Clients == 0 {
		tr.Clients = 8
	}
	if tr.Keys == 0 {
		tr.Keys = 10
	}
	if tr.MaxOps == 0 {
		tr.MaxOps = 6000
	}
	if tr.Pause == 0 {
		tr.Pause = 25 * time.Millisecond
	}
	if tr.Timeout == 0 {
		tr.Timeout = 2 * time.Second
	}
	if tr.WritePct == 0 && tr.LocalPct == 0 {
		tr.WritePct, tr.LocalPct = 50, 30
	}
	return tr
}

// KeyName is the i-th key.
func KeyName(i int) string { return fmt.Sprintf("key-%d", i) }

// Run sends traffic to c until ctx ends; it records into h and returns when every client stopped.
func (tr Traffic) Run(ctx context.Context, c *Cluster, h *History) {
	tr = tr.withDefaults()
	var sent atomic.Int64
	var wg sync.WaitGroup
	for id := 0; id < tr.Clients; id++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := NewClient(id, h, tr.Timeout)
			defer cl.Close()
			rnd := rand.New(rand.NewPCG(uint64(id), uint64(time.Now().UnixNano())))
			for seq := 0; ctx.Err() == nil && sent.Add(1) <= int64(tr.MaxOps); seq++ {
				var live []*Server
				for _, s := range c.Servers {
					if s.Running() {
						live = append(live, s)
					}
				}
				if len(live) == 0 {
					time.Sleep(tr.Pause)
					continue
				}
				srv := live[rnd.IntN(len(live))]
				key := KeyName(rnd.IntN(tr.Keys))
				switch p := rnd.IntN(100); {
				case p < tr.WritePct:
					cl.Put(ctx, srv, key, fmt.Sprintf("c%d-%d", id, seq))
				case p < tr.WritePct+tr.LocalPct:
					cl.Get(ctx, srv, key, false)
				default:
					cl.Get(ctx, srv, key, true)
				}
				select {
				case <-ctx.Done():
				case <-time.After(tr.Pause):
				}
			}
		}()
	}
	wg.Wait()
}
