package server

import (
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// TestElectionMetrics drives the hooks Open gives the candidate and reads the server's
// /metrics output (the server's other tests run a fake elector, without hooks).
func TestElectionMetrics(t *testing.T) {
	m := newMetrics(func() float64 { return 0 }, func() float64 { return 0 }, func() []replicaStat { return nil })
	em := newElectionMetrics()
	if err := em.register(m.reg); err != nil {
		t.Fatal(err)
	}
	if err := em.register(m.reg); err == nil {
		t.Fatal("registered twice without an error")
	}
	h := em.hooks()
	h.Error("register", errors.New("zk: connection closed"))
	h.Elected(1500 * time.Millisecond)
	h.Leadership(true, 7)
	h.Leadership(false, 7)
	h.Leadership(true, 9)

	srv := httptest.NewServer(promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`zkv_election_transitions_total{to="leader"} 2`,
		`zkv_election_transitions_total{to="follower"} 1`,
		`zkv_election_time_to_elect_seconds_count 1`,
		`zkv_election_time_to_elect_seconds_sum 1.5`,
		`zkv_election_time_to_elect_seconds_bucket{le="2.5"} 1`,
		`zkv_election_errors_total{step="register"} 1`,
	} {
		if !strings.Contains(string(body), want+"\n") {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}
