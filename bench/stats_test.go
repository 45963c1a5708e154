package bench

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func ms(v ...float64) []time.Duration {
	out := make([]time.Duration, len(v))
	for i, x := range v {
		out[i] = time.Duration(x * float64(time.Millisecond))
	}
	return out
}

func TestSummarize(t *testing.T) {
	s := Summarize(ms(5, 1, 4, 2, 3, 10, 9, 8, 7, 6))
	want := Summary{N: 10, Min: 1 * time.Millisecond, P50: 5 * time.Millisecond, P95: 10 * time.Millisecond,
		P99: 10 * time.Millisecond, Max: 10 * time.Millisecond, Mean: 5500 * time.Microsecond}
	if s != want {
		t.Fatalf("Summarize = %+v, want %+v", s, want)
	}
	if got := Summarize(nil); got != (Summary{}) {
		t.Fatalf("Summarize(nil) = %+v", got)
	}
}

func TestQuantileNearestRank(t *testing.T) {
	sorted := ms(1, 2, 3, 4)
	for _, tc := range []struct {
		q    float64
		want float64
	}{{0, 1}, {0.25, 1}, {0.26, 2}, {0.5, 2}, {0.51, 3}, {0.95, 4}, {1, 4}} {
		if got := Quantile(sorted, tc.q); got != ms(tc.want)[0] {
			t.Errorf("Quantile(%v) = %v, want %vms", tc.q, got, tc.want)
		}
	}
	if Quantile(nil, 0.5) != 0 {
		t.Error("Quantile of nothing is not 0")
	}
}

func TestSummarizeDoesNotReorder(t *testing.T) {
	d := ms(3, 1, 2)
	Summarize(d)
	if !slices.Equal(d, ms(3, 1, 2)) {
		t.Fatalf("input reordered: %v", d)
	}
}

// The histogram's quantiles stay within its 1% bucket width of the exact ones.
func TestHistogramMatchesExact(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var parts [4]Histogram
	var all []time.Duration
	for i := range 20000 {
		d := time.Duration(r.ExpFloat64() * float64(2*time.Millisecond))
		all = append(all, d)
		parts[i%4].Record(d)
	}
	var h Histogram
	for i := range parts {
		h.Merge(&parts[i])
	}
	exact := Summarize(all)
	got := h.Summary()
	if got.N != exact.N || got.Min != exact.Min || got.Max != exact.Max {
		t.Fatalf("count/min/max: got %+v, exact %+v", got, exact)
	}
	for _, pair := range [][2]time.Duration{{got.P50, exact.P50}, {got.P95, exact.P95}, {got.P99, exact.P99}, {got.Mean, exact.Mean}} {
		if diff := float64(pair[0]-pair[1]) / float64(pair[1]); diff < -0.011 || diff > 0.011 {
			t.Errorf("histogram %v vs exact %v: off by %.2f%%", pair[0], pair[1], 100*diff)
		}
	}
}

func TestHistogramExtremes(t *testing.T) {
	var h Histogram
	if h.Quantile(0.5) != 0 || h.Summary() != (Summary{}) {
		t.Fatal("empty histogram not zero")
	}
	h.Record(0)
	h.Record(time.Hour)
	if h.Quantile(0) != 0 || h.Quantile(1) != time.Hour {
		t.Fatalf("extremes: %v %v", h.Quantile(0), h.Quantile(1))
	}
	var empty Histogram
	h.Merge(&empty)
	if h.Count() != 2 {
		t.Fatalf("count %d", h.Count())
	}
}

func TestFmtDur(t *testing.T) {
	for d, want := range map[time.Duration]string{0: "0", 250 * time.Microsecond: "0.250", 12345 * time.Microsecond: "12.3", 2345 * time.Millisecond: "2345"} {
		if got := fmtDur(d); got != want {
			t.Errorf("fmtDur(%v) = %q, want %q", d, got, want)
		}
	}
}
