package robustness

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"
)

// InvWatchMissed: after healing and convergence, a watcher on a server still holds an older
// state of the traffic's keys than that server's own copy: a change every replica applied did
// not wake it.
const InvWatchMissed = "watch missed a change"

// watchWait is each blocking read's wait: long enough that a missed wake-up is not rescued
// by the wait ending before the final check.
const watchWait = 20 * time.Second

// watchState is what one watch answer said of the traffic's keys.
type watchState struct {
	index  uint64
	values map[string]string // key -> value@version
}

func (s watchState) String() string { return fmt.Sprintf("index %d, %d keys", s.index, len(s.values)) }

// watcher follows the traffic's keys on one server with a Consul-style blocking prefix read
// (GET /v1/kv/?prefix=key-&index=N&wait=20s), each answer's index the next request's N; on
// any error (the server killed, restarted, paused past the client's timeout) it starts again
// from index 0.
type watcher struct {
	srv  *Server
	hc   *http.Client
	mu   sync.Mutex
	last watchState
	seen bool
	woke int // answers received
}

// startWatchers starts a watcher per server until ctx ends, if the servers have listings
// (a binary of an earlier round answers 400: then none, and the check is skipped).
func startWatchers(ctx context.Context, c *Cluster) []*watcher {
	hc := &http.Client{Timeout: watchWait + 5*time.Second}
	probe, err := listing(ctx, &http.Client{Timeout: 2 * time.Second}, c.Servers[0].Addr, 0, 0)
	if err != nil || probe.values == nil {
		return nil
	}
	var ws []*watcher
	for _, s := range c.Servers {
		w := &watcher{srv: s, hc: hc}
		ws = append(ws, w)
		go w.run(ctx)
	}
	return ws
}

func (w *watcher) run(ctx context.Context) {
	var index uint64
	for ctx.Err() == nil {
		st, err := listing(ctx, w.hc, w.srv.Addr, index, watchWait)
		if err != nil {
			index = 0
			Sleep(ctx, 100*time.Millisecond)
			continue
		}
		w.mu.Lock()
		w.last, w.seen = st, true
		w.woke++
		w.mu.Unlock()
		index = st.index
	}
}

func (w *watcher) state() (watchState, bool, int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.last, w.seen, w.woke
}

// listing reads the traffic's keys from addr's own copy; with wait > 0 it is a watch past index.
func listing(ctx context.Context, hc *http.Client, addr string, index uint64, wait time.Duration) (watchState, error) {
	q := url.Values{"prefix": {"key-"}, "limit": {"10000"}}
	if wait > 0 {
		q.Set("index", strconv.FormatUint(index, 10))
		q.Set("wait", wait.String())
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/v1/kv/?"+q.Encode(), nil)
	if err != nil {
		return watchState{}, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return watchState{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return watchState{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return watchState{}, fmt.Errorf("listing on %s: %d %.200s", addr, resp.StatusCode, body)
	}
	var l struct {
		Entries []struct {
			Key     string `json:"key"`
			Value   string `json:"value"`
			Version uint64 `json:"version"`
		} `json:"entries"`
	}
	if err := json.Unmarshal(body, &l); err != nil {
		return watchState{}, fmt.Errorf("listing on %s: %w", addr, err)
	}
	st := watchState{values: map[string]string{}}
	st.index, _ = strconv.ParseUint(resp.Header.Get("X-Zkv-Index"), 10, 64)
	for _, e := range l.Entries {
		st.values[e.Key] = fmt.Sprintf("%s@%d", e.Value, e.Version)
	}
	return st, nil
}

// checkWatchers runs once every running server holds the final content: each watcher must have
// been woken up to its server's own state (given 3s for the last answer to arrive); one still
// holding an older state missed a change.
func checkWatchers(ctx context.Context, ws []*watcher, res *Result) {
	hc := &http.Client{Timeout: 2 * time.Second}
	for _, w := range ws {
		if !w.srv.Running() {
			continue
		}
		deadline := time.Now().Add(3 * time.Second)
		for {
			own, err := listing(ctx, hc, w.srv.Addr, 0, 0)
			got, seen, woke := w.state()
			if err == nil && seen && got.index == own.index && equalValues(got.values, own.values) {
				break
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				res.Violations = append(res.Violations, Violation{InvWatchMissed, fmt.Sprintf(
					"server %d: its watcher holds %v after %d answers, its own copy %v (%v)", w.srv.Index, got, woke, own, err)})
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	n := 0
	for _, w := range ws {
		_, _, woke := w.state()
		n += woke
	}
	if len(ws) > 0 {
		res.Note("watchers: %d blocking prefix reads answered on %d servers; each ended holding its server's final state", n, len(ws))
	}
}

func equalValues(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
