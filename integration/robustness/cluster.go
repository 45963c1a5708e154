package robustness

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/zkv-dev/zkv/driver/launcher"
)

// Config shapes one test's cluster.
type Config struct {
	Servers        int           // default 3
	Ack            string        // -ack; default all
	SessionTimeout time.Duration // -session_timeout; default 1500ms
	Token          string        // -cluster_token
	Env            []string      // extra environment for every server
	// ReplicaLagMax is every server's -replica_lag_max, when the binary has the flag; zero:
	// the server's default (1s).
	ReplicaLagMax time.Duration
}

// Cluster is the servers of one test, on the shared ZooKeeper, every link through Links:
// client -> server ("client-<i>"), server -> ZooKeeper node ("zk-<i>-<node>") and, when the
// binary has -advertise, server -> server ("peer-<i>", towards server i).
type Cluster struct {
	ZK       *launcher.ZooKeeper
	Links    *Links
	Servers  []*Server
	Features Features
	cfg      Config
	status   *http.Client
}

// StartCluster starts cfg.Servers servers and waits until they agree on a leader.
func StartCluster(ctx context.Context, zk *launcher.ZooKeeper, binary, logDir string, cfg Config) (*Cluster, error) {
	if cfg.Servers == 0 {
		cfg.Servers = 3
	}
	if cfg.Ack == "" {
		cfg.Ack = "all"
	}
	if cfg.SessionTimeout == 0 {
		cfg.SessionTimeout = 1500 * time.Millisecond
	}
	// A new cluster on the shared ensemble: the in-sync record of the previous test's cluster
	// names processes that are gone, which its first leader would wait for as for lost data;
	// the epoch base of a cluster with a token is readable with that token only.
	for _, p := range []string{"/zkv/insync", "/zkv/epoch_base"} {
		if err := zk.Delete(ctx, p); err != nil {
			return nil, err
		}
	}
	c := &Cluster{ZK: zk, Links: newLinks(), Features: ProbeFeatures(binary), cfg: cfg, status: &http.Client{Timeout: 300 * time.Millisecond}}
	for i := 0; i < cfg.Servers; i++ {
		var zks []string
		for n, up := range zk.Servers() {
			a, err := c.Links.Add(fmt.Sprintf("zk-%d-%d", i, n), up)
			if err != nil {
				c.Close()
				return nil, err
			}
			zks = append(zks, a)
		}
		args := []string{"-zookeeper", strings.Join(zks, ","), "-session_timeout", cfg.SessionTimeout.String(), "-ack", cfg.Ack}
		if cfg.Token != "" {
			args = append(args, "-cluster_token", cfg.Token)
		}
		if cfg.ReplicaLagMax > 0 && c.Features.ReplicaLagMax {
			args = append(args, "-replica_lag_max", cfg.ReplicaLagMax.String())
		}
		s, err := newServer(i, binary, logDir, args, cfg.Env)
		if err != nil {
			c.Close()
			return nil, err
		}
		if s.ClientAddr, err = c.Links.Add(fmt.Sprintf("client-%d", i), s.Addr); err != nil {
			c.Close()
			return nil, err
		}
		if c.Features.Advertise {
			if s.PeerAddr, err = c.Links.Add(fmt.Sprintf("peer-%d", i), s.Addr); err != nil {
				c.Close()
				return nil, err
			}
			s.args = append(s.args, c.Features.AdvertiseFlag, s.PeerAddr)
		}
		c.Servers = append(c.Servers, s)
	}
	for _, s := range c.Servers {
		if err := s.Start(ctx); err != nil {
			c.Close()
			return nil, err
		}
	}
	if _, err := c.Leader(ctx); err != nil {
		c.Close()
		return nil, err
	}
	// A follower's /readyz is 503 until the leader's stream reaches it: traffic starts only once
	// every server is ready, so no test measures a cluster that is still forming.
	if err := c.Ready(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Ready polls /readyz on every running server (directly, not through its client proxy) until
// each answers 200, for at most 20s.
func (c *Cluster) Ready(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	for {
		var notReady []string
		for _, s := range c.Servers {
			if !s.Running() {
				continue
			}
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.Addr+"/readyz", nil)
			resp, err := c.status.Do(req)
			if err != nil {
				notReady = append(notReady, fmt.Sprintf("server %d: %v", s.Index, err))
				continue
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				notReady = append(notReady, fmt.Sprintf("server %d: %d", s.Index, resp.StatusCode))
			}
		}
		if len(notReady) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("robustness: not ready: %s", strings.Join(notReady, "; "))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Status is the part of GET /v1/status the tests read.
type Status struct {
	ID      string `json:"id"`
	Address string `json:"address"`
	Role    string `json:"role"`
	Leader  struct {
		ID      string `json:"id"`
		Address string `json:"address"`
	} `json:"leader"`
	Epoch   int64 `json:"epoch"`
	Keys    int   `json:"keys"`
	Members []struct {
		Address string `json:"address"`
		Znode   string `json:"znode"`
	} `json:"members"`
	InSync []string `json:"in_sync"`
}

// ElectionOrder returns the running servers in the election's order (the leader first),
// as the leader's status lists the members.
func (c *Cluster) ElectionOrder(ctx context.Context) ([]*Server, error) {
	l, err := c.Leader(ctx)
	if err != nil {
		return nil, err
	}
	st, err := c.Status(ctx, l)
	if err != nil {
		return nil, err
	}
	ms := st.Members
	sort.Slice(ms, func(i, j int) bool { return ms[i].Znode < ms[j].Znode })
	var out []*Server
	for _, m := range ms {
		if s := c.byAddress(m.Address); s != nil && s.Running() {
			out = append(out, s)
		}
	}
	if len(out) == 0 || out[0] != l {
		return nil, fmt.Errorf("robustness: the election order %v does not start with the leader", ms)
	}
	return out, nil
}

// Status asks server s directly (not through its client proxy). A timeout is tried again
// twice: /v1/status reads the members from ZooKeeper, which on a loaded machine can take
// longer than the short timeout that keeps a paused server from stalling the polls.
func (c *Cluster) Status(ctx context.Context, s *Server) (Status, error) {
	for attempt := 0; ; attempt++ {
		st, err := c.status1(ctx, s)
		var ne interface{ Timeout() bool }
		if err == nil || attempt == 2 || ctx.Err() != nil || !errors.As(err, &ne) || !ne.Timeout() {
			return st, err
		}
	}
}

func (c *Cluster) status1(ctx context.Context, s *Server) (Status, error) {
	var st Status
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.Addr+"/v1/status", nil)
	resp, err := c.status.Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("status %d", resp.StatusCode)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// byAddress finds the server registered under addr.
func (c *Cluster) byAddress(addr string) *Server {
	for _, s := range c.Servers {
		if s.Addr == addr || s.PeerAddr == addr {
			return s
		}
	}
	return nil
}

// Leader polls every running server until one says it leads and every other running one names it.
func (c *Cluster) Leader(ctx context.Context) (*Server, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		var leader *Server
		agree := true
		for _, s := range c.Servers {
			if !s.Running() {
				continue
			}
			st, err := c.Status(ctx, s)
			if err != nil {
				agree = false
				break
			}
			if st.Role == "leader" {
				if leader != nil && leader != s {
					agree = false
				}
				leader = s
			}
			if st.Leader.Address == "" || c.byAddress(st.Leader.Address) == nil {
				agree = false
			} else if leader != nil && c.byAddress(st.Leader.Address) != leader {
				agree = false
			}
		}
		if agree && leader != nil {
			return leader, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("robustness: no agreed leader: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Followers are the running servers other than leader.
func (c *Cluster) Followers(leader *Server) []*Server {
	var out []*Server
	for _, s := range c.Servers {
		if s != leader && s.Running() {
			out = append(out, s)
		}
	}
	return out
}

// Close stops the servers with SIGTERM (leaders resign, so the next test's servers find no
// stale znode) and the proxies.
func (c *Cluster) Close() {
	var wg sync.WaitGroup
	for _, s := range c.Servers {
		if s.Running() {
			wg.Add(1)
			go func() { defer wg.Done(); _ = s.Term() }()
		}
	}
	wg.Wait()
	c.Links.Close()
	if c.ZK != nil {
		// the next test must not find our ephemeral nodes; a killed process's node lasts a session
		ctx, cancel := context.WithTimeout(context.Background(), 3*c.cfg.SessionTimeout+2*time.Second)
		defer cancel()
		for ctx.Err() == nil {
			kids, err := c.ZK.Children(ctx, "/election")
			if err == nil && len(kids) == 0 {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}
