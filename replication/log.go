package replication

import (
	"fmt"
	"sync"

	"github.com/zkv-dev/zkv/kvstore"
)

// Defaults of LogConfig.
const (
	DefaultLogCapacity = 100_000
	DefaultLogMaxBytes = 64 << 20
)

// LogConfig bounds a Log.
type LogConfig struct {
	// Capacity is the most entries kept; 0 means DefaultLogCapacity.
	Capacity int
	// MaxBytes bounds the keys and values kept (approximately); 0 means DefaultLogMaxBytes.
	// The newest entry is always kept, whatever its size.
	MaxBytes int64
}

func (c LogConfig) withDefaults() LogConfig {
	if c.Capacity == 0 {
		c.Capacity = DefaultLogCapacity
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = DefaultLogMaxBytes
	}
	return c
}

// Validate reports whether the config (after defaults) is usable.
func (c LogConfig) Validate() error {
	c = c.withDefaults()
	if c.Capacity < 1 || c.MaxBytes < 1 {
		return fmt.Errorf("%w: log Capacity %d and MaxBytes %d must be positive", ErrInvalidConfig, c.Capacity, c.MaxBytes)
	}
	return nil
}

// Log is a bounded in-memory ring of the most recent entries, with consecutive indexes
// Base()+1 .. Last(). Every server appends what it applies, as leader or as replica, so
// that as leader it can resend what a replica missed; older entries fall off the front and
// a replica that needs them gets a snapshot instead. Safe for concurrent use.
type Log struct {
	cfg LogConfig

	mu        sync.RWMutex
	ring      []kvstore.Entry // len == cfg.Capacity once grown; grows on demand
	head      int             // ring position of the entry at base+1
	n         int             // entries held
	bytes     int64
	base      uint64 // index just before the first entry held
	baseEpoch int64  // epoch of the entry at base
	// keepAfter: entries above it are not committed and applied yet and are never dropped
	// to honour Capacity or MaxBytes (the ring grows past them instead).
	keepAfter uint64
}

// NewLog returns an empty log whose base is (0, 0).
func NewLog(cfg LogConfig) (*Log, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Log{cfg: cfg.withDefaults()}, nil
}

func entrySize(e *kvstore.Entry) int64 { return int64(len(e.Key)+len(e.Value)) + 48 }

// Append adds entries at the end. Each entry's index must be the log's last index plus
// one; otherwise Append returns an error wrapping ErrLogGap and adds nothing.
func (l *Log) Append(entries ...kvstore.Entry) error {
	if len(entries) == 0 {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	want := l.base + uint64(l.n)
	for _, e := range entries {
		want++
		if e.Index != want {
			return fmt.Errorf("%w: entry index %d, want %d", ErrLogGap, e.Index, want)
		}
	}
	for _, e := range entries {
		l.push(e)
	}
	return nil
}

func (l *Log) push(e kvstore.Entry) {
	if l.n >= l.cfg.Capacity && l.droppable() {
		l.dropFront()
	}
	if l.n == len(l.ring) {
		l.grow()
	}
	l.ring[(l.head+l.n)%len(l.ring)] = e
	l.n++
	l.bytes += entrySize(&e)
	for l.bytes > l.cfg.MaxBytes && l.n > 1 && l.droppable() {
		l.dropFront()
	}
}

// droppable reports whether the first entry held may go: it is applied already.
func (l *Log) droppable() bool { return l.n > 0 && l.base+1 <= l.keepAfter }

// grow doubles the ring up to the capacity, so a large capacity costs memory only when
// used; past it only while entries that are not applied yet fill it.
func (l *Log) grow() {
	size := max(16, 2*len(l.ring))
	if size > l.cfg.Capacity && l.n < l.cfg.Capacity {
		size = l.cfg.Capacity
	}
	ring := make([]kvstore.Entry, size)
	for i := range l.n {
		ring[i] = l.ring[(l.head+i)%len(l.ring)]
	}
	l.ring, l.head = ring, 0
}

func (l *Log) dropFront() {
	e := &l.ring[l.head]
	l.base, l.baseEpoch = e.Index, e.Epoch
	l.bytes -= entrySize(e)
	*e = kvstore.Entry{} // let the value be collected
	l.head = (l.head + 1) % len(l.ring)
	l.n--
}

// Reset empties the log and sets its base position, as after a snapshot restore or when a
// fresh replica takes its first append as base.
func (l *Log) Reset(index uint64, epoch int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	clear(l.ring)
	l.head, l.n, l.bytes = 0, 0, 0
	l.base, l.baseEpoch = index, epoch
	l.keepAfter = index
}

// SetApplied tells the log that entries up to index are applied to the store: only those
// may be dropped to honour the bounds. Until it is called, every entry is kept.
func (l *Log) SetApplied(index uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.keepAfter = max(l.keepAfter, index)
	for (l.n > l.cfg.Capacity || l.bytes > l.cfg.MaxBytes) && l.n > 1 && l.droppable() {
		l.dropFront()
	}
}

// TruncateAfter drops the entries after index, which the log must hold (Base() <= index <=
// Last()): a replica discards the tail a deposed leader left it that the new leader's log
// does not continue. It reports false, changing nothing, when index is out of range.
func (l *Log) TruncateAfter(index uint64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if index < l.base || index > l.base+uint64(l.n) {
		return false
	}
	keep := int(index - l.base)
	for i := keep; i < l.n; i++ {
		e := &l.ring[(l.head+i)%len(l.ring)]
		l.bytes -= entrySize(e)
		*e = kvstore.Entry{}
	}
	l.n = keep
	l.keepAfter = min(l.keepAfter, index)
	return true
}

// Base returns the position just before the first entry held; EpochAt knows it.
func (l *Log) Base() (index uint64, epoch int64) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.base, l.baseEpoch
}

// Last returns the position of the newest entry, or the base when empty.
func (l *Log) Last() (index uint64, epoch int64) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.n == 0 {
		return l.base, l.baseEpoch
	}
	e := &l.ring[(l.head+l.n-1)%len(l.ring)]
	return e.Index, e.Epoch
}

// Len returns the number of entries held.
func (l *Log) Len() int {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.n
}

// EpochAt returns the epoch of the entry at index; ok is false unless Base() <= index <= Last().
func (l *Log) EpochAt(index uint64) (epoch int64, ok bool) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if index == l.base {
		return l.baseEpoch, true
	}
	if index < l.base || index > l.base+uint64(l.n) {
		return 0, false
	}
	return l.ring[(l.head+int(index-l.base-1))%len(l.ring)].Epoch, true
}

// After returns the entries that follow (index, epoch), at most max (max <= 0: all), and
// whether more follow. ok is false when the log does not hold index with that epoch (it
// was truncated, or the histories differ there): the caller needs a snapshot.
func (l *Log) After(index uint64, epoch int64, max int) (entries []kvstore.Entry, more, ok bool) {
	if at, held := l.EpochAt(index); !held || at != epoch {
		return nil, false, false
	}
	limit := 0 // all
	if max > 0 {
		limit = max + 1 // one more tells whether more follow
	}
	entries, ok = l.EntriesFrom(index+1, limit)
	if !ok {
		return nil, false, false
	}
	if max > 0 && len(entries) > max {
		return entries[:max], true, true
	}
	return entries, false, true
}

// EntriesFrom returns copies of up to max entries starting at index (max <= 0: all).
// ok is false when the log no longer holds index (index <= Base()); an index beyond
// Last() gives no entries and ok true: nothing to send yet.
func (l *Log) EntriesFrom(index uint64, max int) (entries []kvstore.Entry, ok bool) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if index <= l.base {
		return nil, false
	}
	last := l.base + uint64(l.n)
	if index > last {
		return nil, true
	}
	count := int(last - index + 1)
	if max > 0 && count > max {
		count = max
	}
	entries = make([]kvstore.Entry, count)
	start := l.head + int(index-l.base-1)
	for i := range entries {
		entries[i] = l.ring[(start+i)%len(l.ring)]
	}
	return entries, true
}
