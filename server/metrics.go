package server

import (
	"fmt"
	"strconv"
	"time"

	"github.com/zkv-dev/zkv/election"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics lives in a private registry, so several servers in one process (tests) do not
// collide. It is also the Fanout's Observer.
type metrics struct {
	reg           *prometheus.Registry
	requests      *prometheus.CounterVec
	latency       *prometheus.HistogramVec
	role          *prometheus.GaugeVec
	epoch         prometheus.Gauge
	writes        *prometheus.CounterVec
	forwarded     *prometheus.CounterVec
	retries       *prometheus.CounterVec
	snapshots     *prometheus.CounterVec
	stepDowns     prometheus.Counter
	unclean       prometheus.Counter
	inSyncChanges *prometheus.CounterVec
	replicaLag    *prometheus.Desc
	replicaUp     *prometheus.Desc
	matchIndex    *prometheus.Desc
	stats         func() []replicaStat
}

type replicaStat struct {
	addr       string
	lag, match uint64
	up         bool
}

func newMetrics(keys, lastIndex func() float64, stats func() []replicaStat) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "zkv_http_requests_total", Help: "HTTP requests served, by route, method and status code.",
		}, []string{"route", "method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "zkv_http_request_duration_seconds", Help: "HTTP request latency, by route, method and status code.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route", "method", "code"}),
		role: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "zkv_role", Help: "1 for this server's current role (leader, follower, candidate), 0 for the others.",
		}, []string{"role"}),
		epoch: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "zkv_epoch", Help: "The election epoch this server knows (the leader znode's czxid plus the epoch base kept in ZooKeeper).",
		}),
		writes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "zkv_writes_total", Help: "Writes this server handled as leader, by operation and outcome.",
		}, []string{"op", "outcome"}),
		forwarded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "zkv_writes_forwarded_total", Help: "Requests this follower forwarded to the leader, by outcome (status code or error).",
		}, []string{"outcome"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "zkv_replication_retries_total", Help: "Retried replication requests, by replica.",
		}, []string{"replica"}),
		snapshots: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "zkv_replication_snapshots_total", Help: "Snapshots installed on replicas, by replica.",
		}, []string{"replica"}),
		stepDowns: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "zkv_step_downs_total", Help: "Times this server stopped leading.",
		}),
		unclean: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "zkv_unclean_leaderships_total", Help: "Times this server led without hearing from enough in-sync members (writes only they held are lost).",
		}),
		inSyncChanges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "zkv_insync_changes_total", Help: "Changes this leader made to the in-sync set, by kind (added, removed).",
		}, []string{"change"}),
		replicaLag: prometheus.NewDesc("zkv_replication_lag_entries",
			"Entries the leader holds that the replica has not acknowledged.", []string{"replica"}, nil),
		replicaUp: prometheus.NewDesc("zkv_replication_replica_up",
			"1 if the replica answered the leader's last request.", []string{"replica"}, nil),
		matchIndex: prometheus.NewDesc("zkv_replication_match_index",
			"The highest index the replica acknowledged.", []string{"replica"}, nil),
		stats: stats,
	}
	m.reg.MustRegister(m.requests, m.latency, m.role, m.epoch, m.writes, m.forwarded, m.retries,
		m.snapshots, m.stepDowns, m.unclean, m.inSyncChanges, m,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "zkv_keys", Help: "Live keys in this server's store."}, keys),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "zkv_last_index", Help: "Index of the last write in this server's store."}, lastIndex),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	m.setRole("candidate")
	return m
}

func (m *metrics) setRole(role string) {
	for _, r := range []string{"leader", "follower", "candidate"} {
		v := 0.0
		if r == role {
			v = 1
		}
		m.role.WithLabelValues(r).Set(v)
	}
}

func (m *metrics) observeRequest(route, method string, code int, d time.Duration) {
	c := strconv.Itoa(code)
	m.requests.WithLabelValues(route, method, c).Inc()
	m.latency.WithLabelValues(route, method, c).Observe(d.Seconds())
}

// Describe and Collect export the current Fanout's per-replica state at scrape time.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.replicaLag
	ch <- m.replicaUp
	ch <- m.matchIndex
}

func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	for _, s := range m.stats() {
		up := 0.0
		if s.up {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(m.replicaLag, prometheus.GaugeValue, float64(s.lag), s.addr)
		ch <- prometheus.MustNewConstMetric(m.replicaUp, prometheus.GaugeValue, up, s.addr)
		ch <- prometheus.MustNewConstMetric(m.matchIndex, prometheus.GaugeValue, float64(s.match), s.addr)
	}
}

// OnRetry, OnAck and OnSnapshot make metrics a replication.Observer.
func (m *metrics) OnRetry(replica string)    { m.retries.WithLabelValues(replica).Inc() }
func (m *metrics) OnAck(string, uint64)      {}
func (m *metrics) OnSnapshot(replica string) { m.snapshots.WithLabelValues(replica).Inc() }

// electionMetrics count the candidate's transitions through election.Hooks. Open makes them
// before the candidate (the hooks go into its Config) and registers them with the server's
// registry once the server exists. The hooks run on the candidate's goroutine: they only
// touch Prometheus' atomic counters, never block.
type electionMetrics struct {
	transitions *prometheus.CounterVec
	timeToElect prometheus.Histogram
	errors      *prometheus.CounterVec
}

func newElectionMetrics() *electionMetrics {
	em := &electionMetrics{
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "zkv_election_transitions_total", Help: "Times this server started leading (to=leader) and stopped (to=follower).",
		}, []string{"to"}),
		timeToElect: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "zkv_election_time_to_elect_seconds", Help: "How long this server waited to lead: since it joined, or since its previous leadership ended.",
			Buckets: []float64{.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300},
		}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "zkv_election_errors_total", Help: "Failed election steps the candidate retries, by step.",
		}, []string{"step"}),
	}
	em.transitions.WithLabelValues("leader")
	em.transitions.WithLabelValues("follower")
	return em
}

func (em *electionMetrics) hooks() election.Hooks {
	return election.Hooks{
		Leadership: func(leading bool, _ int64) {
			to := "follower"
			if leading {
				to = "leader"
			}
			em.transitions.WithLabelValues(to).Inc()
		},
		Elected: func(wait time.Duration) { em.timeToElect.Observe(wait.Seconds()) },
		// The steps are a few fixed names, so the label stays bounded.
		Error: func(step string, _ error) { em.errors.WithLabelValues(step).Inc() },
	}
}

func (em *electionMetrics) register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{em.transitions, em.timeToElect, em.errors} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("server: election metrics: %w", err)
		}
	}
	return nil
}
