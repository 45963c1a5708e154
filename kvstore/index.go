package kvstore

import (
	"strings"
	"sync"

	"github.com/google/btree"
)

// indexDegree is the B-tree's degree: nodes of 31 to 63 entries keep the tree shallow
// (four levels for a million keys) and its per-node overhead small against the 8-byte
// items (pointers to the records the shards hold).
const indexDegree = 32

// PrefixIndexScan bounds how many entries a prefix's modify index is computed from. A
// prefix holding more reports the store's key index instead (see [Store.PrefixIndex]), so
// that neither a listing nor a watch holds the index lock for a scan of millions of keys.
const PrefixIndexScan = 1 << 16

// ListOptions selects one page of [Store.List].
type ListOptions struct {
	// Prefix keeps the keys that start with it; empty: every key.
	Prefix string
	// After keeps the keys strictly greater than it: the last key of the previous page.
	After string
	// Limit caps the entries of the page; zero or less: no cap.
	Limit int
	// MaxBytes ends the page once its keys (and values, unless KeysOnly) add up to at
	// least this many bytes; the entry that reaches it is included, so a page is never
	// empty while keys remain. Zero or less: no cap.
	MaxBytes int
	// KeysOnly leaves Value empty in the page's entries.
	KeysOnly bool
}

// Page is one page of a listing, read in one consistent state of the store.
type Page struct {
	// Entries are the live keys (tombstones skipped) in lexical byte order.
	Entries []Entry
	// More is true when live keys under the prefix follow the last entry: ask again with
	// After set to its key.
	More bool
	// Index is the prefix's modify index (see [Store.PrefixIndex]), over the whole prefix,
	// not only this page.
	Index uint64
	// Applied is the store's last index (see [Store.Last]) in the state the page was read.
	Applied uint64
}

func recLess(a, b *rec) bool { return a.key() < b.key() }

func newIndex() *btree.BTreeG[*rec] { return btree.NewG(indexDegree, recLess) }

// pivots recycles the buffers of the records that start a walk of the index (a record
// holds its key's bytes, so a pivot is a copy of the key behind a header): a pivot of the
// walker's own would be an allocation per walk, and reads that allocate nothing today
// (PrefixIndex) would allocate one each.
var pivots = sync.Pool{New: func() any { return new([]uint64) }}

// maxPooledPivot bounds the pivot buffers kept for reuse, in words, so that one listing
// after a long key does not leave its buffer in the pool.
const maxPooledPivot = 512

// ascendFrom calls fn for the records from key on, in order, until fn returns false; the
// caller holds imu.
func (s *Store) ascendFrom(key string, fn func(*rec) bool) {
	if len(key) > maxKeyLen {
		// No key is longer, and from a prefix of key on comes at most what comes from key
		// on and the keys in between, which the callers skip.
		key = key[:maxKeyLen]
	}
	buf := pivots.Get().(*[]uint64)
	if n := recWords(len(key)); len(*buf) < n {
		*buf = make([]uint64, n)
	}
	p, data := asRec(*buf, len(key))
	copy(data, key)
	*p = rec{klen: uint32(len(key))}
	s.tree.AscendGreaterOrEqual(p, fn)
	if len(*buf) <= maxPooledPivot {
		pivots.Put(buf)
	}
}

// List returns one page of the live keys under opts.Prefix after opts.After, in order. It
// reads the ordered index, so its cost follows the size of the page (and of the prefix, for
// Index, up to PrefixIndexScan entries), not the size of the store.
func (s *Store) List(opts ListOptions) Page {
	s.imu.RLock()
	defer s.imu.RUnlock()
	p := Page{Index: s.prefixIndexLocked(opts.Prefix)}
	p.Applied, _ = s.Last()
	start := opts.Prefix
	if opts.After > start {
		start = opts.After
	}
	bytes := 0
	full := false
	s.ascendFrom(start, func(r *rec) bool {
		key := r.key()
		if !strings.HasPrefix(key, opts.Prefix) {
			return false
		}
		if key <= opts.After || r.deleted() { // <=: the walk may start before After (ascendFrom)
			return true
		}
		if full {
			p.More = true
			return false
		}
		e := r.entry()
		if opts.KeysOnly {
			e.Value = ""
		}
		p.Entries = append(p.Entries, e)
		bytes += len(e.Key) + len(e.Value)
		full = opts.Limit > 0 && len(p.Entries) >= opts.Limit || opts.MaxBytes > 0 && bytes >= opts.MaxBytes
		return true
	})
	return p
}

// PrefixIndex is the modify index of the keys under prefix: the largest Index of any entry
// whose key starts with it, tombstones included, so a delete raises it too; 0 when the store
// has never held such a key. It grows with every write under the prefix and only then,
// except that a prefix of more than PrefixIndexScan entries (and the empty prefix) reports
// the store's key index (the Index of its last write to any key) instead: an upper bound
// that a write elsewhere raises too. Either way a watcher that waits until it exceeds the
// index it was last given never misses a write under the prefix.
func (s *Store) PrefixIndex(prefix string) uint64 {
	s.imu.RLock()
	defer s.imu.RUnlock()
	return s.prefixIndexLocked(prefix)
}

func (s *Store) prefixIndexLocked(prefix string) uint64 {
	if prefix == "" {
		return s.keyIndex
	}
	var idx uint64
	n := 0
	bounded := true
	s.ascendFrom(prefix, func(r *rec) bool {
		if !strings.HasPrefix(r.key(), prefix) {
			return false
		}
		if n++; n > PrefixIndexScan {
			bounded = false
			return false
		}
		idx = max(idx, r.index)
		return true
	})
	if !bounded {
		return s.keyIndex
	}
	return idx
}

// indexLocked records r (a key's new state) in the ordered index in the place of the key's
// previous record; the caller holds imu.
func (s *Store) indexLocked(r *rec) {
	s.tree.ReplaceOrInsert(r)
	s.keyIndex = max(s.keyIndex, r.index)
}
