package electiontest

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/zkv-dev/zkv/election"
)

// Viewer is what a Checker needs of a candidate; *election.Candidate has it.
type Viewer interface {
	View() election.View
}

// Leadership is one leadership a Checker saw: a candidate leading in an
// epoch, from the first sample that showed it to the last.
type Leadership struct {
	Name        string
	Epoch       int64
	First, Last time.Time
}

// ErrViolation is wrapped by every error a Checker reports.
var ErrViolation = errors.New("electiontest: election guarantee violated")

// Checker samples candidates' views and records a violation when two of them
// lead in the same sample, or when a new leadership's epoch is not above the
// epoch of every earlier leadership. (A candidate seen leading again in the
// same epoch, after a reconnect on the same session, continues its
// leadership.) Its methods are
// safe for concurrent use; Add every candidate before Start.
type Checker struct {
	mu          sync.Mutex
	names       []string
	viewers     []Viewer
	leaderships []Leadership
	violations  []error

	stop chan struct{}
	done chan struct{}
}

// NewChecker returns a Checker with no candidates.
func NewChecker() *Checker { return &Checker{} }

// Add has the Checker watch v under name.
func (k *Checker) Add(name string, v Viewer) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.names = append(k.names, name)
	k.viewers = append(k.viewers, v)
}

// Check takes one sample now and returns the first violation seen so far.
func (k *Checker) Check() error {
	k.sample()
	return k.Err()
}

// Err returns the first violation seen so far, or nil; later ones are
// joined to it.
func (k *Checker) Err() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	return errors.Join(k.violations...)
}

// Leaderships returns the leaderships seen so far, in the order they began.
func (k *Checker) Leaderships() []Leadership {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]Leadership(nil), k.leaderships...)
}

// Start samples every interval in the background until Stop. Start once.
func (k *Checker) Start(interval time.Duration) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.stop != nil {
		panic("electiontest: Checker started twice")
	}
	k.stop, k.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(k.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			k.sample()
			select {
			case <-t.C:
			case <-k.stop:
				return
			}
		}
	}()
}

// Stop ends the sampling Start began, waits for it, takes a last sample and
// returns Err.
func (k *Checker) Stop() error {
	k.mu.Lock()
	stop, done := k.stop, k.done
	k.mu.Unlock()
	if stop != nil {
		select {
		case <-stop:
		default:
			close(stop)
		}
		<-done
	}
	return k.Check()
}

type sampled struct {
	name  string
	epoch int64
}

func (k *Checker) sample() {
	k.mu.Lock()
	names, viewers := k.names, k.viewers
	k.mu.Unlock()
	// Views are read outside the lock, one after the other, as fast as can be.
	var leaders []sampled
	for i, v := range viewers {
		if view := v.View(); view.IsLeader {
			leaders = append(leaders, sampled{names[i], view.Epoch})
		}
	}
	now := time.Now()
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(leaders) > 1 {
		k.violations = append(k.violations, fmt.Errorf("%w: %d leaders at once: %v", ErrViolation, len(leaders), leaders))
	}
	for _, l := range leaders {
		k.record(l, now)
	}
}

// record notes that l leads now. Call with mu.
func (k *Checker) record(l sampled, now time.Time) {
	for i := len(k.leaderships) - 1; i >= 0; i-- {
		if ls := &k.leaderships[i]; ls.Name == l.name && ls.Epoch == l.epoch {
			ls.Last = now // the same leadership, seen again (or again after a reconnect)
			return
		}
	}
	for _, ls := range k.leaderships {
		if ls.Epoch >= l.epoch {
			k.violations = append(k.violations, fmt.Errorf("%w: %s leads in epoch %d, after %s led in epoch %d",
				ErrViolation, l.name, l.epoch, ls.Name, ls.Epoch))
			break
		}
	}
	k.leaderships = append(k.leaderships, Leadership{Name: l.name, Epoch: l.epoch, First: now, Last: now})
}
