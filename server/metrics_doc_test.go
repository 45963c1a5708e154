package server

import (
	"bufio"
	"fmt"
	"github.com/zkv-dev/zkv/kvstore"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// docMetric is one row of docs/metrics.md's table.
type docMetric struct{ name, typ, unit string }

// parseMetricsDoc reads the rows "| `name` | type | unit | labels | meaning |".
func parseMetricsDoc(doc string) map[string]docMetric {
	out := map[string]docMetric{}
	sc := bufio.NewScanner(strings.NewReader(doc))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		cells := strings.Split(line, "|")
		if len(cells) < 6 {
			continue
		}
		name := strings.Trim(strings.TrimSpace(cells[1]), "`")
		out[name] = docMetric{name: name, typ: strings.TrimSpace(cells[2]), unit: strings.TrimSpace(cells[3])}
	}
	return out
}

// exported is a metric as the registry has it: its name and type.
type exported struct{ name, typ string }

// checkMetricsDoc compares the documented metrics with the exported ones; go_* and process_*
// (client_golang's own collectors) count as one row each.
func checkMetricsDoc(doc map[string]docMetric, got []exported) []error {
	var errs []error
	seen := map[string]bool{}
	for _, m := range got {
		name := m.name
		for _, p := range []string{"go_", "process_"} {
			if strings.HasPrefix(name, p) {
				name = p + "*"
			}
		}
		seen[name] = true
		d, ok := doc[name]
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("%s (%s) is exported but not in docs/metrics.md", m.name, m.typ))
		case strings.HasSuffix(name, "*"):
		case d.typ != m.typ:
			errs = append(errs, fmt.Errorf("%s is a %s, docs/metrics.md says %s", m.name, m.typ, d.typ))
		case d.unit == "":
			errs = append(errs, fmt.Errorf("%s: no unit in docs/metrics.md", m.name))
		}
		for _, suffix := range []string{"seconds", "bytes", "entries"} {
			if strings.HasSuffix(m.name, "_"+suffix) && ok && name == m.name && d.unit != suffix {
				errs = append(errs, fmt.Errorf("%s: unit %q in docs/metrics.md, its name says %s", m.name, d.unit, suffix))
			}
		}
		if m.typ == "counter" && !strings.HasSuffix(m.name, "_total") {
			errs = append(errs, fmt.Errorf("counter %s does not end in _total", m.name))
		}
	}
	for name := range doc {
		if !seen[name] {
			errs = append(errs, fmt.Errorf("docs/metrics.md lists %s, which is not exported", name))
		}
	}
	slices.SortFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
	return errs
}

var descName = regexp.MustCompile(`fqName: "([^"]+)"`)

// registryMetrics returns every metric a server's registry exports, with its type: each
// vector gets a label value first, so that Gather lists it.
func registryMetrics(t *testing.T) []exported {
	t.Helper()
	m := newMetrics(func() float64 { return 1 }, func() float64 { return 2 },
		func() []replicaStat { return []replicaStat{{addr: "r:1", lag: 1, match: 2, up: true}} })
	em := newElectionMetrics()
	if err := em.register(m.reg); err != nil {
		t.Fatal(err)
	}
	// The metrics a Server registers itself (the quota's) on the same registry.
	st, err := kvstore.New(kvstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	(&Server{metrics: m, store: st}).registerQuotaMetrics()
	m.observeRequest("/v1/status", "GET", 200, 0)
	m.writes.WithLabelValues("put", "ok").Inc()
	m.forwarded.WithLabelValues("200").Inc()
	m.OnRetry("r:1")
	m.OnSnapshot("r:1")
	m.inSyncChanges.WithLabelValues("added").Inc()
	em.errors.WithLabelValues("create").Inc()
	em.timeToElect.Observe(1)

	fams, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []exported
	gathered := map[string]bool{}
	for _, f := range fams {
		gathered[f.GetName()] = true
		out = append(out, exported{f.GetName(), strings.ToLower(dto.MetricType_name[int32(f.GetType())])})
	}
	// Every described metric must have been gathered, or this test would miss a vector
	// nobody labelled above.
	descs := make(chan *prometheus.Desc, 1024)
	go func() { m.reg.Describe(descs); close(descs) }()
	for d := range descs {
		if n := descName.FindStringSubmatch(d.String()); n != nil && !gathered[n[1]] {
			t.Errorf("%s is registered but was not gathered: give it a label value in registryMetrics", n[1])
		}
	}
	return out
}

func TestMetricsDocMatchesRegistry(t *testing.T) {
	b, err := os.ReadFile("../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := parseMetricsDoc(string(b))
	if len(doc) < 10 {
		t.Fatalf("docs/metrics.md: only %d rows parsed", len(doc))
	}
	for _, err := range checkMetricsDoc(doc, registryMetrics(t)) {
		t.Error(err)
	}
}

// TestMetricsDocCheckFails: the check catches an undocumented metric, a documented one that
// does not exist, a wrong type, and a unit its name contradicts.
func TestMetricsDocCheckFails(t *testing.T) {
	doc := parseMetricsDoc("| `a_total` | counter | events | | x |\n| `gone` | gauge | keys | | x |\n" +
		"| `b_seconds` | gauge | ms | | x |\n| `c` | gauge | keys | | x |\n")
	got := []exported{{"a_total", "counter"}, {"b_seconds", "gauge"}, {"c", "counter"}, {"new", "gauge"}}
	var msgs []string
	for _, e := range checkMetricsDoc(doc, got) {
		msgs = append(msgs, e.Error())
	}
	all := strings.Join(msgs, "\n")
	for _, want := range []string{"new (gauge) is exported but not in", "lists gone, which is not exported",
		"c is a counter, docs/metrics.md says gauge", `b_seconds: unit "ms"`, "counter c does not end in _total"} {
		if !strings.Contains(all, want) {
			t.Errorf("no error %q in:\n%s", want, all)
		}
	}
}
