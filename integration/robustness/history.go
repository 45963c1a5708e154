package robustness

import (
	"sort"
	"sync"
	"time"
)

// Kind is what an operation did.
type Kind int

// The operations the traffic sends.
const (
	Put       Kind = iota // PUT /v1/kv/{key}, to any server (a follower forwards it)
	LocalGet              // GET /v1/kv/{key}: that server's own copy, possibly stale
	LeaderGet             // GET /v1/kv/{key}?consistency=leader
)

func (k Kind) String() string {
	switch k {
	case Put:
		return "put"
	case LocalGet:
		return "get"
	case LeaderGet:
		return "leader-get"
	}
	return "?"
}

// Outcome says what the client learnt.
type Outcome int

// Outcomes. A failed write certainly did not take effect (the server refused it before doing
// anything: connection refused, 4xx); an unknown one may have (timeout, reset, 5xx, 503 after
// the leader applied it but missed its acks).
const (
	OK Outcome = iota
	Failed
	Unknown
)

func (o Outcome) String() string {
	switch o {
	case OK:
		return "ok"
	case Failed:
		return "failed"
	case Unknown:
		return "unknown"
	}
	return "?"
}

// Op is one recorded operation. Call and Return are offsets from the start of the history;
// Return is meaningless for an Unknown write, which may take effect at any time after Call.
type Op struct {
	Client  int
	Kind    Kind
	Key     string
	Value   string // written (Put) or read (gets, when Found)
	Server  int    // index of the server the request went to
	Gen     int    // that server's process generation (bumped by every restart)
	Call    time.Duration
	Return  time.Duration
	Outcome Outcome
	Status  int    // HTTP status, 0 without an answer
	Err     string // transport error or error code
	Found   bool
	Version uint64
	Epoch   int64  // epoch of the leader that acknowledged a Put
	Leader  string // leader that acknowledged a Put
}

// History is a concurrency-safe, append-only record of operations.
type History struct {
	mu    sync.Mutex
	start time.Time
	ops   []Op
}

// NewHistory starts a history whose clock starts now.
func NewHistory() *History { return &History{start: time.Now()} }

// Now is the history's clock.
func (h *History) Now() time.Duration { return time.Since(h.start) }

// At turns a wall-clock instant into the history's clock.
func (h *History) At(t time.Time) time.Duration { return t.Sub(h.start) }

// Add records op.
func (h *History) Add(op Op) {
	h.mu.Lock()
	h.ops = append(h.ops, op)
	h.mu.Unlock()
}

// Ops returns a copy of the operations sorted by call time.
func (h *History) Ops() []Op {
	h.mu.Lock()
	ops := append([]Op(nil), h.ops...)
	h.mu.Unlock()
	sort.SliceStable(ops, func(i, j int) bool { return ops[i].Call < ops[j].Call })
	return ops
}

// Counts sums up a history for the report.
type Counts struct {
	Ops, Writes, Acked, Unknown, Failed int
	Reads, ReadsOK                      int
}

// Count tallies ops.
func Count(ops []Op) Counts {
	var c Counts
	for _, op := range ops {
		c.Ops++
		if op.Kind == Put {
			c.Writes++
			switch op.Outcome {
			case OK:
				c.Acked++
			case Unknown:
				c.Unknown++
			case Failed:
				c.Failed++
			}
			continue
		}
		c.Reads++
		if op.Outcome == OK {
			c.ReadsOK++
		}
	}
	return c
}
