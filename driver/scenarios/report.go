package scenarios

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// Result is the outcome of one check.
type Result string

// The results.
const (
	Pass Result = "PASS"
	Fail Result = "FAIL"
	Skip Result = "SKIP"
)

// Check is one expectation of a scenario.
type Check struct {
	ID       string // "2.3": scenario and step
	Scenario int
	Name     string
	Result   Result
	Detail   string
	Took     time.Duration // how long the step took, where it was measured
}

// Timing is a duration measured during the run.
type Timing struct {
	Name string
	D    time.Duration
}

// Report is what Run found.
type Report struct {
	Checks    []Check
	Timings   []Timing
	Leader    string // the leader of scenario 1
	NewLeader string // the leader elected in scenario 2
	Started   time.Time
	Elapsed   time.Duration
}

// Counts returns how many checks passed, failed and were skipped.
func (r Report) Counts() (pass, fail, skip int) {
	for _, c := range r.Checks {
		switch c.Result {
		case Pass:
			pass++
		case Fail:
			fail++
		default:
			skip++
		}
	}
	return pass, fail, skip
}

// OK reports whether every check that ran held (and at least one ran).
func (r Report) OK() bool {
	pass, fail, _ := r.Counts()
	return fail == 0 && pass > 0
}

// Timing returns the timing called name.
func (r Report) Timing(name string) (time.Duration, bool) {
	for _, t := range r.Timings {
		if t.Name == name {
			return t.D, true
		}
	}
	return 0, false
}

// Names of Report.Timings.
const (
	TimingElection   = "new leader agreed (from the signal)"
	TimingFirstWrite = "first acknowledged write (from the signal)"
	TimingRejoin     = "restarted ex-leader rejoined (from the restart)"
	TimingReplica    = "leader replicates to it (from the restart)"
	TimingUpdate     = "update visible on the restarted server"
)

// ANSI styles, used only when colour is on.
const (
	ansiReset  = "\x1b[0m"
	ansiBold   = "\x1b[1m"
	ansiDim    = "\x1b[2m"
	ansiRed    = "\x1b[31m"
	ansiGreen  = "\x1b[32m"
	ansiYellow = "\x1b[33m"
	ansiCyan   = "\x1b[36m"
)

func paint(color bool, style, s string) string {
	if !color || s == "" {
		return s
	}
	return style + s + ansiReset
}

func resultStyle(r Result) string {
	switch r {
	case Pass:
		return ansiGreen + ansiBold
	case Fail:
		return ansiRed + ansiBold
	}
	return ansiYellow
}

// WriteSummary writes the summary table: one row per check, then the timings and the counts.
// Colour only styles the text; the columns line up either way.
func (r Report) WriteSummary(w io.Writer, color bool) {
	idW, nameW := len("check"), len("expectation")
	for _, c := range r.Checks {
		idW = max(idW, len(c.ID))
		nameW = max(nameW, len([]rune(c.Name)))
	}
	pad := func(s string, n int) string { return s + strings.Repeat(" ", max(0, n-len([]rune(s)))) }
	fmt.Fprintln(w, paint(color, ansiBold, "Summary"))
	fmt.Fprintf(w, "  %s  %s  %s  %s\n", pad("check", idW), pad("expectation", nameW), "result", "detail")
	for _, c := range r.Checks {
		detail := c.Detail
		if c.Took > 0 {
			detail = strings.TrimSpace(detail + " [" + round(c.Took).String() + "]")
		}
		fmt.Fprintf(w, "  %s  %s  %s  %s\n", pad(c.ID, idW), pad(c.Name, nameW),
			paint(color, resultStyle(c.Result), pad(string(c.Result), len("result"))), firstLine(detail))
	}
	if len(r.Timings) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, paint(color, ansiBold, "Timings"))
		tw := 0
		for _, t := range r.Timings {
			tw = max(tw, len(t.Name))
		}
		for _, t := range r.Timings {
			fmt.Fprintf(w, "  %s  %s\n", pad(t.Name, tw), round(t.D))
		}
	}
	pass, fail, skip := r.Counts()
	verdict := paint(color, ansiGreen+ansiBold, "every check held")
	if !r.OK() {
		verdict = paint(color, ansiRed+ansiBold, "SOME CHECKS FAILED")
	}
	fmt.Fprintf(w, "\n%d checks: %d passed, %d failed, %d skipped in %s: %s\n",
		len(r.Checks), pass, fail, skip, round(r.Elapsed), verdict)
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " ..."
	}
	return s
}

// round keeps durations readable: milliseconds below a minute, tenths of a ms below 10ms.
func round(d time.Duration) time.Duration {
	switch {
	case d < 10*time.Millisecond:
		return d.Round(100 * time.Microsecond)
	case d < time.Minute:
		return d.Round(time.Millisecond)
	}
	return d.Round(100 * time.Millisecond)
}

// printer writes the transcript.
type printer struct {
	w     io.Writer
	color bool
}

func (p *printer) banner(s string)  { fmt.Fprintln(p.w, paint(p.color, ansiBold, s)) }
func (p *printer) heading(s string) { fmt.Fprintf(p.w, "\n%s\n", paint(p.color, ansiBold+ansiCyan, s)) }
func (p *printer) step(id, name string) {
	fmt.Fprintf(p.w, "  %s %s\n", paint(p.color, ansiBold, id), name)
}
func (p *printer) info(format string, a ...any) {
	fmt.Fprintf(p.w, "      %s\n", fmt.Sprintf(format, a...))
}
func (p *printer) note(format string, a ...any) {
	fmt.Fprintf(p.w, "      %s\n", paint(p.color, ansiDim, fmt.Sprintf(format, a...)))
}
func (p *printer) result(c Check) {
	detail := c.Detail
	if c.Took > 0 {
		detail = strings.TrimSpace(detail + " [" + round(c.Took).String() + "]")
	}
	lines := strings.Split(detail, "\n")
	fmt.Fprintf(p.w, "  %s %s: %s\n", paint(p.color, resultStyle(c.Result), string(c.Result)), c.Name, lines[0])
	for _, l := range lines[1:] {
		fmt.Fprintf(p.w, "       %s\n", l)
	}
}
