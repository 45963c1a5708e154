package bench

import (
	"math"
	"slices"
	"strconv"
	"time"
)

// Summary describes a sample of durations.
type Summary struct {
	N    int
	Min  time.Duration
	P50  time.Duration
	P95  time.Duration
	P99  time.Duration
	Max  time.Duration
	Mean time.Duration
}

// Summarize returns the order statistics of d; d is not modified. The zero Summary for no data.
func Summarize(d []time.Duration) Summary {
	if len(d) == 0 {
		return Summary{}
	}
	s := slices.Clone(d)
	slices.Sort(s)
	var sum float64
	for _, v := range s {
		sum += float64(v)
	}
	return Summary{
		N:    len(s),
		Min:  s[0],
		P50:  Quantile(s, 0.50),
		P95:  Quantile(s, 0.95),
		P99:  Quantile(s, 0.99),
		Max:  s[len(s)-1],
		Mean: time.Duration(sum / float64(len(s))),
	}
}

// Quantile returns the q-quantile (0 <= q <= 1) of sorted by the nearest-rank method: the
// smallest value with at least q of the sample at or below it. 0 for an empty sample.
func Quantile(sorted []time.Duration, q float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	if q <= 0 {
		return sorted[0]
	}
	rank := int(math.Ceil(q * float64(n)))
	rank = min(max(rank, 1), n)
	return sorted[rank-1]
}

// Histogram records durations in logarithmic buckets (about 1% wide) so that a load run of
// millions of operations keeps constant memory. Not safe for concurrent use: one per worker,
// merged at the end.
type Histogram struct {
	counts []uint64
	n      uint64
	sum    float64
	min    time.Duration
	max    time.Duration
}

const (
	histBase     = 1.01                  // bucket growth
	histMin      = time.Microsecond      // everything below lands in bucket 0
	histMaxValue = 10 * 60 * time.Second // everything above lands in the last bucket
)

var histBuckets = int(math.Ceil(math.Log(float64(histMaxValue/histMin))/math.Log(histBase))) + 2

func bucketOf(d time.Duration) int {
	if d <= histMin {
		return 0
	}
	b := int(math.Log(float64(d)/float64(histMin))/math.Log(histBase)) + 1
	return min(b, histBuckets-1)
}

// bucketValue is the upper edge of bucket b, the value a quantile in b reports.
func bucketValue(b int) time.Duration {
	if b == 0 {
		return histMin
	}
	return time.Duration(float64(histMin) * math.Pow(histBase, float64(b)))
}

// Record adds one observation.
func (h *Histogram) Record(d time.Duration) {
	if h.counts == nil {
		h.counts = make([]uint64, histBuckets)
	}
	h.counts[bucketOf(d)]++
	if h.n == 0 || d < h.min {
		h.min = d
	}
	if d > h.max {
		h.max = d
	}
	h.n++
	h.sum += float64(d)
}

// Merge adds o's observations to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.n == 0 {
		return
	}
	if h.counts == nil {
		h.counts = make([]uint64, histBuckets)
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	h.max = max(h.max, o.max)
	h.n += o.n
	h.sum += o.sum
}

// Count is the number of observations.
func (h *Histogram) Count() uint64 { return h.n }

// Quantile returns the q-quantile within about 1%, clamped to the observed min and max.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = min(max(rank, 1), h.n)
	switch rank {
	case 1:
		return h.min
	case h.n:
		return h.max
	}
	var seen uint64
	for b, c := range h.counts {
		seen += c
		if seen >= rank {
			return min(max(bucketValue(b), h.min), h.max)
		}
	}
	return h.max
}

// Summary returns the histogram's summary.
func (h *Histogram) Summary() Summary {
	if h.n == 0 {
		return Summary{}
	}
	return Summary{
		N:    int(h.n),
		Min:  h.min,
		P50:  h.Quantile(0.50),
		P95:  h.Quantile(0.95),
		P99:  h.Quantile(0.99),
		Max:  h.max,
		Mean: time.Duration(h.sum / float64(h.n)),
	}
}

// fmtDur formats a duration for a report: milliseconds with a precision that suits its size.
func fmtDur(d time.Duration) string {
	ms := float64(d) / float64(time.Millisecond)
	switch {
	case d == 0:
		return "0"
	case ms < 1:
		return trimFloat(ms, 3)
	case ms < 100:
		return trimFloat(ms, 1)
	default:
		return trimFloat(ms, 0)
	}
}

func trimFloat(f float64, prec int) string { return strconv.FormatFloat(f, 'f', prec, 64) }
