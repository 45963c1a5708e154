package scenarios

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/zkv-dev/zkv/driver/client"
	"github.com/zkv-dev/zkv/driver/cluster"
)

// Defaults of Config.
const (
	DefaultElectionTimeout = 60 * time.Second
	DefaultConvergeTimeout = 10 * time.Second
	DefaultPollInterval    = 20 * time.Millisecond
)

// ErrInvalidConfig wraps what is wrong with a Config.
var ErrInvalidConfig = errors.New("scenarios: invalid config")

// Config configures Run. Exactly one of Cluster and Addrs is set.
type Config struct {
	Cluster  *cluster.Cluster // servers the scenarios may kill and restart
	Addrs    []string         // servers started elsewhere ("host:port"): kill and restart checks are skipped
	Graceful bool             // stop the leader with SIGTERM instead of SIGKILL (kill -9)
	Out      io.Writer        // the transcript; discarded when nil
	Color    bool             // ANSI colour in the transcript and summary
	Logger   *slog.Logger     // discard when nil

	KeyPrefix       string        // prefix of every key written; default "scenarios/<time>/"
	ElectionTimeout time.Duration // bound of each wait for an agreed leader; default 60s
	ConvergeTimeout time.Duration // bound of each wait for reads to show a write; default 10s
	PollInterval    time.Duration // of those waits; default 20ms
}

func (c Config) withDefaults() (Config, error) {
	switch {
	case c.Cluster == nil && len(c.Addrs) == 0:
		return c, fmt.Errorf("%w: neither Cluster nor Addrs", ErrInvalidConfig)
	case c.Cluster != nil && len(c.Addrs) > 0:
		return c, fmt.Errorf("%w: both Cluster and Addrs", ErrInvalidConfig)
	}
	for _, a := range c.Addrs {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return c, fmt.Errorf("%w: address %q: %v", ErrInvalidConfig, a, err)
		}
	}
	if c.Out == nil {
		c.Out = io.Discard
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.KeyPrefix == "" {
		c.KeyPrefix = "scenarios/" + time.Now().Format("150405.000") + "/"
	}
	if c.ElectionTimeout <= 0 {
		c.ElectionTimeout = DefaultElectionTimeout
	}
	if c.ConvergeTimeout <= 0 {
		c.ConvergeTimeout = DefaultConvergeTimeout
	}
	if c.PollInterval <= 0 {
		c.PollInterval = DefaultPollInterval
	}
	return c, nil
}

// member is one server as the scenarios see it.
type member struct {
	addr string // what the driver dials
	self string // the address the server reports (status.address); addr until known
	c    *client.Client
	node *cluster.Node // nil in Addrs mode
}

func (m *member) running() bool { return m.node == nil || m.node.Running() }

// run is the state of one Run.
type run struct {
	cfg     Config
	p       *printer
	rep     Report
	members []*member
	keys    []string          // written keys, in order
	want    map[string]string // their last written values
	leader  *member           // scenario 1's leader
	killed  *member           // the ex-leader stopped in scenario 2
	next    *member           // scenario 2's leader
}

// Run runs the three scenarios. The error is for a Config it cannot use or a cancelled ctx;
// failed expectations are in the Report (see Report.OK), which is returned in every case.
func Run(ctx context.Context, cfg Config) (Report, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return Report{}, err
	}
	r := &run{cfg: cfg, p: &printer{w: cfg.Out, color: cfg.Color}, want: map[string]string{}}
	r.rep.Started = time.Now()
	if cfg.Cluster != nil {
		for _, n := range cfg.Cluster.Nodes() {
			r.members = append(r.members, &member{addr: n.Addr(), self: n.Addr(), c: n.Client(), node: n})
		}
	} else {
		for _, a := range cfg.Addrs {
			c := client.New(a, client.WithTimeout(5*time.Second))
			defer func() { _ = c.Close() }()
			r.members = append(r.members, &member{addr: a, self: a, c: c})
		}
	}
	r.intro()
	r.scenario1(ctx)
	r.scenario2(ctx)
	r.scenario3(ctx)
	r.rep.Elapsed = time.Since(r.rep.Started)
	fmt.Fprintln(cfg.Out)
	r.rep.WriteSummary(cfg.Out, cfg.Color)
	return r.rep, ctx.Err()
}

func (r *run) intro() {
	addrs := make([]string, len(r.members))
	for i, m := range r.members {
		addrs[i] = m.addr
	}
	how := "SIGKILL (kill -9)"
	if r.cfg.Graceful {
		how = "SIGTERM (graceful)"
	}
	if r.cfg.Cluster != nil {
		r.p.banner(fmt.Sprintf("zkv scenarios: %d servers %s, ZooKeeper %s; the leader will be stopped with %s",
			len(addrs), strings.Join(addrs, " "), strings.Join(r.cfg.Cluster.ZooKeeper(), ","), how))
		r.p.note("server logs: %s", r.cfg.Cluster.LogDir())
	} else {
		r.p.banner(fmt.Sprintf("zkv scenarios: %d servers started elsewhere: %s", len(addrs), strings.Join(addrs, " ")))
		r.p.note("-addrs mode: the driver cannot kill or restart these servers; those checks are skipped")
	}
	r.p.note("keys under %q", r.cfg.KeyPrefix)
}

// record prints and keeps a check.
func (r *run) record(id, name string, res Result, took time.Duration, format string, a ...any) {
	c := Check{ID: id, Name: name, Result: res, Detail: fmt.Sprintf(format, a...), Took: took}
	fmt.Sscanf(id, "%d.", &c.Scenario)
	r.rep.Checks = append(r.rep.Checks, c)
	r.p.result(c)
	r.cfg.Logger.Info("check", "id", id, "name", name, "result", string(res), "detail", c.Detail, "took", took)
}

func (r *run) timing(name string, d time.Duration) {
	r.rep.Timings = append(r.rep.Timings, Timing{Name: name, D: d})
}

// steps runs a scenario's steps in order; a step returns false when the later ones cannot run,
// which are then recorded as failed with the reason.
type step struct {
	id, name string
	run      func() (ok bool, why string)
}

func (r *run) steps(steps []step) {
	for i, s := range steps {
		r.p.step(s.id, s.name)
		if ok, why := s.run(); !ok {
			for _, later := range steps[i+1:] {
				r.p.step(later.id, later.name)
				r.record(later.id, later.name, Fail, 0, "not run: %s", why)
			}
			return
		}
	}
}

func (r *run) skipAll(steps []step, why string) {
	for _, s := range steps {
		r.p.step(s.id, s.name)
		r.record(s.id, s.name, Skip, 0, "%s", why)
	}
}

func (r *run) running() []*member {
	var out []*member
	for _, m := range r.members {
		if m.running() {
			out = append(out, m)
		}
	}
	return out
}

// agreement polls /v1/status of ms until exactly one says it leads and all name it. It returns
// the leader and every member's last status; on timeout, the error says what they answered.
func (r *run) agreement(ctx context.Context, ms []*member) (*member, map[*member]client.Status, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.ElectionTimeout)
	defer cancel()
	t := time.NewTicker(r.cfg.PollInterval)
	defer t.Stop()
	for {
		leader, sts, why := r.agreeOnce(ctx, ms)
		if leader != nil {
			return leader, sts, nil
		}
		select {
		case <-ctx.Done():
			return nil, sts, fmt.Errorf("no agreed leader within %v: %s", r.cfg.ElectionTimeout, why)
		case <-t.C:
		}
	}
}

func (r *run) agreeOnce(ctx context.Context, ms []*member) (*member, map[*member]client.Status, string) {
	sts := make([]client.Status, len(ms))
	errs := make([]error, len(ms))
	var wg sync.WaitGroup
	for i, m := range ms {
		wg.Go(func() {
			sctx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			sts[i], errs[i] = m.c.Status(sctx)
		})
	}
	wg.Wait()
	out := map[*member]client.Status{}
	var leader *member
	var views []string
	for i, m := range ms {
		if errs[i] != nil {
			views = append(views, fmt.Sprintf("%s: %v", m.addr, errs[i]))
			continue
		}
		out[m] = sts[i]
		if sts[i].Address != "" {
			m.self = sts[i].Address
		}
		views = append(views, fmt.Sprintf("%s is %s (leader %q)", m.addr, sts[i].Role, sts[i].Leader.Address))
		if sts[i].Role == client.RoleLeader {
			if leader != nil {
				return nil, out, "two leaders: " + strings.Join(views, "; ")
			}
			leader = m
		}
	}
	why := strings.Join(views, "; ")
	if len(out) < len(ms) || leader == nil {
		return nil, out, why
	}
	for _, st := range out {
		if st.Leader.Address != leader.self {
			return nil, out, why
		}
	}
	return leader, out, ""
}

// isLeader reports whether an answer's leader names m.
func isLeader(m *member, addr string) bool { return addr != "" && (addr == m.self || addr == m.addr) }

// retry calls f until it succeeds, fails for good, or timeout passes; it returns the attempts.
func (r *run) retry(ctx context.Context, timeout time.Duration, f func(context.Context) error) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for n := 1; ; n++ {
		err := f(ctx)
		if err == nil || !retryable(err) {
			return n, err
		}
		wait := r.cfg.PollInterval * 2
		var ae *client.APIError
		if errors.As(err, &ae) && ae.RetryAfter > 0 && ae.RetryAfter < wait {
			wait = ae.RetryAfter
		}
		select {
		case <-ctx.Done():
			return n, fmt.Errorf("gave up after %d attempts in %v: %w", n, timeout, err)
		case <-time.After(wait):
		}
	}
}

// retryable: a temporary answer (no leader for now) or a transport error, not bad input.
func retryable(err error) bool {
	var ae *client.APIError
	if errors.As(err, &ae) {
		return ae.Temporary()
	}
	return !errors.Is(err, client.ErrInvalidKey)
}

// converge polls until every member in ms reads every key in keys with its wanted value.
func (r *run) converge(ctx context.Context, ms []*member, keys []string) (time.Duration, []string) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, r.cfg.ConvergeTimeout)
	defer cancel()
	t := time.NewTicker(r.cfg.PollInterval)
	defer t.Stop()
	var last []string // the last round that completed before the deadline
	for {
		var bad []string
		for _, m := range ms {
			for _, k := range keys {
				kv, err := m.c.Get(ctx, k)
				if ctx.Err() != nil && last != nil {
					return time.Since(start), last
				}
				switch {
				case err != nil:
					bad = append(bad, fmt.Sprintf("%s reads %s: %v", m.addr, k, err))
				case !kv.Found || kv.Value != r.want[k]:
					bad = append(bad, fmt.Sprintf("%s reads %s = %q (found=%v), want %q", m.addr, k, kv.Value, kv.Found, r.want[k]))
				}
			}
		}
		if len(bad) == 0 {
			return time.Since(start), nil
		}
		last = bad
		select {
		case <-ctx.Done():
			return time.Since(start), bad
		case <-t.C:
		}
	}
}

func (r *run) wrote(key, value string) {
	if _, ok := r.want[key]; !ok {
		r.keys = append(r.keys, key)
	}
	r.want[key] = value
}

func (r *run) describe(m *member) string {
	if m.node != nil {
		return fmt.Sprintf("%s (node %d)", m.addr, m.node.ID())
	}
	return m.addr
}

// showStatuses prints each member's view, in member order.
func (r *run) showStatuses(ms []*member, sts map[*member]client.Status) {
	for _, m := range ms {
		st, ok := sts[m]
		if !ok {
			r.p.info("%-22s  no answer", m.addr)
			continue
		}
		r.p.info("%-22s  %-9s  leader %-21s  epoch %d  keys %d", m.addr, st.Role, st.Leader.Address, st.Epoch, st.Keys)
	}
}
