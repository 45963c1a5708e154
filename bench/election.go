package bench

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"sync"
	"syscall"
	"time"
)

// placement is where ZooKeeper is, as the servers see it.
type placement struct {
	Name    string
	Latency time.Duration // one-way, added by toxiproxy in each direction; 0 for none
	Jitter  time.Duration
	Remote  bool // a real ensemble the user named
}

// failover is one run's measurements, each from the signal; zero when not seen in time.
// Told and Acting come from the X-Zkv-Leader/X-Zkv-Epoch headers, the view /v1/status shows.
type failover struct {
	Told   time.Duration // a survivor names a new leader
	Acting time.Duration // the successor names itself leader, with a newer epoch
	Write  time.Duration // first write acknowledged through a survivor by the new leader
}

// stableView is a cluster whose servers all agree on one leader.
type stableView struct {
	Leader zkvNode
	Addr   string
	Epoch  int64
}

// waitStable polls every running node until all name the same leader, that leader says
// role=leader, the others follower, and a write through a follower is acknowledged.
func waitStable(ctx context.Context, hc *http.Client, nodes []zkvNode, timeout time.Duration) (stableView, error) {
	var view stableView
	err := waitFor(ctx, timeout, "stable cluster", func(ctx context.Context) error {
		var leader string
		var epoch int64
		var lnode zkvNode
		var follower zkvNode
		for _, n := range nodes {
			if !n.Running() {
				continue
			}
			st, err := getStatus(ctx, hc, n.Addr())
			if err != nil {
				return err
			}
			if st.Leader.Address == "" {
				return fmt.Errorf("%s knows no leader", n.Addr())
			}
			if leader == "" {
				leader = st.Leader.Address
			} else if leader != st.Leader.Address {
				return fmt.Errorf("servers disagree on the leader: %s, %s", leader, st.Leader.Address)
			}
			switch {
			case st.Role == "leader" && n.Addr() == leader:
				lnode, epoch = n, st.Epoch
			case st.Role == "follower" && n.Addr() != leader:
				follower = n
			default:
				return fmt.Errorf("%s has role %s with leader %s", n.Addr(), st.Role, leader)
			}
		}
		if lnode == nil {
			return fmt.Errorf("leader %s is not one of ours", leader)
		}
		via := lnode
		if follower != nil {
			via = follower
		}
		if _, err := putOnce(ctx, hc, via.Addr(), "zkv-bench-stable", "1"); err != nil {
			return err
		}
		view = stableView{Leader: lnode, Addr: leader, Epoch: epoch}
		return nil
	})
	return view, err
}

// measureFailover stops the leader of view with sig and measures, polling every poll, until all
// three moments are seen or limit passes. Survivors are the running nodes other than the leader.
func measureFailover(ctx context.Context, nodes []zkvNode, view stableView, sig os.Signal, poll, limit time.Duration) (failover, error) {
	var survivors []zkvNode
	for _, n := range nodes {
		if n != view.Leader && n.Running() {
			survivors = append(survivors, n)
		}
	}
	if len(survivors) == 0 {
		return failover{}, fmt.Errorf("bench: no survivors")
	}
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	hc := newHTTPClient(8, time.Second)
	defer hc.CloseIdleConnections()

	var mu sync.Mutex
	var res failover
	done := make(chan struct{})
	var closeOnce sync.Once
	record := func(field *time.Duration, d time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		if *field == 0 || d < *field {
			*field = d
		}
		if res.Told > 0 && res.Acting > 0 && res.Write > 0 {
			closeOnce.Do(func() { close(done) })
		}
	}
	// Warm the pool so the first polls after the signal need no new connections.
	for _, s := range survivors {
		_, _, _ = leaderHeaders(ctx, hc, s.Addr())
	}

	t0 := time.Now()
	if err := view.Leader.Signal(sig); err != nil {
		return failover{}, err
	}
	var wg sync.WaitGroup
	for _, s := range survivors {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(poll)
			defer t.Stop()
			for {
				leader, epoch, err := leaderHeaders(ctx, hc, s.Addr())
				now := time.Since(t0)
				if err == nil && leader != "" && leader != view.Addr {
					record(&res.Told, now)
					if leader == s.Addr() && epoch > view.Epoch {
						record(&res.Acting, now)
					}
				}
				select {
				case <-ctx.Done():
					return
				case <-done:
					return
				case <-t.C:
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			s := survivors[i%len(survivors)]
			rctx, rcancel := context.WithTimeout(ctx, 2*time.Second)
			pr, err := putOnce(rctx, hc, s.Addr(), "zkv-bench-failover", fmt.Sprint(i))
			rcancel()
			if err == nil && (pr.Leader != view.Addr || pr.Epoch > view.Epoch) {
				record(&res.Write, time.Since(t0))
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(poll):
			}
		}
	}()
	select {
	case <-done:
	case <-ctx.Done():
	}
	cancel()
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if res.Told == 0 || res.Acting == 0 || res.Write == 0 {
		return res, fmt.Errorf("bench: failover not complete within %v (told %v, acting %v, write %v)", limit, res.Told, res.Acting, res.Write)
	}
	return res, nil
}

var stopSignals = map[string]os.Signal{"sigterm": syscall.SIGTERM, "sigkill": syscall.SIGKILL}
