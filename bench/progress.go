package bench

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// progress is a one-line progress bar on a terminal (stderr), redrawn with \r.
type progress struct {
	mu    sync.Mutex
	w     io.Writer
	total int
	done  int
	start time.Time
	label string
}

func newProgress(w io.Writer, total int) *progress {
	return &progress{w: w, total: total, start: time.Now()}
}

// Step counts one unit done and redraws with label.
func (p *progress) Step(label string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done++
	p.label = label
	p.draw()
}

// Label redraws with a new label without counting.
func (p *progress) Label(label string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.label = label
	p.draw()
}

func (p *progress) draw() {
	const width = 30
	filled := 0
	if p.total > 0 {
		filled = min(width, width*p.done/p.total)
	}
	eta := ""
	if p.done > 0 && p.done < p.total {
		left := time.Duration(float64(time.Since(p.start)) / float64(p.done) * float64(p.total-p.done))
		eta = " eta " + left.Round(time.Second).String()
	}
	fmt.Fprintf(p.w, "\r[%s%s] %d/%d%s %-40.40s", strings.Repeat("#", filled), strings.Repeat(".", width-filled), p.done, p.total, eta, p.label)
}

// Done ends the line.
func (p *progress) Done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.draw()
	fmt.Fprintln(p.w)
}
