package kvstore

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/maphash"
	"sort"
	"sync"

	"github.com/google/btree"
)

// DefaultShards is the number of shards when Config.Shards is zero.
const DefaultShards = 64

// MaxShards bounds Config.Shards.
const MaxShards = 1 << 16

var (
	// ErrInvalidConfig reports a Config that New refuses.
	ErrInvalidConfig = errors.New("kvstore: invalid config")
	// ErrOutOfOrder reports entries given to Apply whose indexes are not strictly
	// increasing above the store's last index. Nothing is applied.
	ErrOutOfOrder = errors.New("kvstore: entry out of order")
	// ErrInvalidEntry reports an entry Apply cannot hold (an empty key, a key of 2 GiB or
	// more, a value of 4 GiB or more).
	ErrInvalidEntry = errors.New("kvstore: invalid entry")
)

// Entry is one key's state, and also the unit of replication: the leader ships the entries
// its writes produce and replicas Apply them.
type Entry struct {
	Key     string `json:"key"`
	Value   string `json:"value"`
	Version uint64 `json:"version"`           // per key: 1 on first write, +1 each write (deletes too)
	Index   uint64 `json:"index"`             // global write index, assigned by the leader
	Epoch   int64  `json:"epoch"`             // epoch of the leader that assigned Index
	Deleted bool   `json:"deleted,omitempty"` // tombstone
	// Noop marks an entry that holds no key: a new leader's first entry of its epoch, which
	// commits what it took over from its predecessors. Its Key is empty; applying it only
	// moves the store's position.
	Noop bool `json:"noop,omitempty"`
}

// Snapshot is a consistent copy of a store: every entry, tombstones included, sorted by key,
// and the position (Index, Epoch) of the last write it reflects.
type Snapshot struct {
	Index   uint64  `json:"index"`
	Epoch   int64   `json:"epoch"`
	Entries []Entry `json:"entries"`
}

// Stats counts what a store holds.
type Stats struct {
	Keys       int    `json:"keys"`       // live keys
	Tombstones int    `json:"tombstones"` // deleted keys still remembered
	Index      uint64 `json:"index"`      // last write index
	Epoch      int64  `json:"epoch"`      // epoch of the last write
	Shards     int    `json:"shards"`
	// Bytes is the size of the live entries, as Size counts it: what a quota bounds.
	Bytes int64 `json:"bytes"`
}

// Size is what an entry counts towards a store's Bytes: its key and value lengths, 0 for
// a tombstone or a no-op. Tombstones are not counted, so that deleting a key gives its
// bytes back; they keep the key and a record each (see the package documentation).
func Size(e Entry) int64 {
	if e.Deleted || e.Noop {
		return 0
	}
	return int64(len(e.Key) + len(e.Value))
}

// Config configures a Store.
type Config struct {
	// Shards is the number of lock shards, a power of two up to MaxShards.
	// Zero means DefaultShards.
	Shards int
}

func (c Config) withDefaults() Config {
	if c.Shards == 0 {
		c.Shards = DefaultShards
	}
	return c
}

// Validate reports whether the config (after defaults) is usable.
func (c Config) Validate() error {
	c = c.withDefaults()
	if c.Shards < 0 || c.Shards > MaxShards || c.Shards&(c.Shards-1) != 0 {
		return fmt.Errorf("%w: Shards %d is not a power of two in [1, %d]", ErrInvalidConfig, c.Shards, MaxShards)
	}
	return nil
}

// Store is a concurrent in-memory key-value map; see the package documentation for the
// single-writer rule. The zero value is not usable: call New.
type Store struct {
	shards []shard
	mask   uint64
	seed   maphash.Seed
	// hashMask is all ones; tests narrow it to make keys collide (see Store.hash).
	hashMask uint64

	// wmu serialises writers (Put, Delete, Apply, Restore) and makes Snapshot and Hash
	// consistent: holding it, no shard changes.
	wmu sync.Mutex
	// pmu guards the last position, so Last never waits behind a long Snapshot.
	pmu   sync.RWMutex
	index uint64
	epoch int64

	// imu guards the ordered index (index.go): every key's record, tombstones included, by
	// key, the same pointers as the shards hold. Writers update it, and the position, under
	// imu after the shards, so a listing sees the index and Last of one state.
	imu      sync.RWMutex
	tree     *btree.BTreeG[*rec]
	keyIndex uint64 // the largest Index of an entry holding a key (no-ops excluded)

	watchers notifier
}

// New returns an empty store.
func New(cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	s := &Store{
		shards:   make([]shard, cfg.Shards),
		mask:     uint64(cfg.Shards - 1),
		seed:     maphash.MakeSeed(),
		hashMask: ^uint64(0),
		tree:     newIndex(),
	}
	for i := range s.shards {
		s.shards[i].init()
	}
	return s, nil
}

// hash is the key's 64-bit hash, seeded per store so that no one can choose keys that
// crowd one shard: its low bits pick the key's shard, and all of them are the key's place
// in the shard's map.
func (s *Store) hash(key string) uint64 { return maphash.String(s.seed, key) & s.hashMask }

// locate returns the key's hash and shard.
func (s *Store) locate(key string) (uint64, *shard) {
	h := s.hash(key)
	return h, &s.shards[h&s.mask]
}

// Get returns the key's entry; false for an absent or deleted key.
func (s *Store) Get(key string) (Entry, bool) {
	h, sh := s.locate(key)
	sh.mu.RLock()
	r := sh.get(h, key)
	sh.mu.RUnlock()
	if !r.live() {
		return Entry{}, false
	}
	return r.entry(), true
}

// Lookup returns the key's entry, a tombstone included (Deleted set); false only for a key
// the store has never held.
func (s *Store) Lookup(key string) (Entry, bool) {
	h, sh := s.locate(key)
	sh.mu.RLock()
	r := sh.get(h, key)
	sh.mu.RUnlock()
	if r == nil {
		return Entry{}, false
	}
	return r.entry(), true
}

// Put writes key=value as the leader: the entry gets the next global index, the given
// epoch, and the key's previous version (tombstones included) plus one.
func (s *Store) Put(key, value string, epoch int64) Entry {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	h, sh := s.locate(key)
	sh.mu.Lock()
	old := sh.get(h, key)
	var version uint64
	if old != nil {
		version = old.version
	}
	r := newRec(Entry{Key: key, Value: value, Version: version + 1, Index: s.lastIndex() + 1, Epoch: epoch})
	sh.setLocked(h, r)
	sh.mu.Unlock()
	s.imu.Lock()
	s.indexLocked(r)
	s.setLast(r.index, epoch)
	s.imu.Unlock()
	s.watchers.fire(key)
	return r.entry()
}

// Delete deletes key as the leader, leaving a tombstone with the next global index.
// It reports false, and writes nothing (no index is used), when the key is absent or
// already deleted.
func (s *Store) Delete(key string, epoch int64) (Entry, bool) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	h, sh := s.locate(key)
	sh.mu.Lock()
	old := sh.get(h, key)
	if !old.live() {
		sh.mu.Unlock()
		return Entry{}, false
	}
	r := newRec(Entry{Key: key, Version: old.version + 1, Index: s.lastIndex() + 1, Epoch: epoch, Deleted: true})
	sh.setLocked(h, r)
	sh.mu.Unlock()
	s.imu.Lock()
	s.indexLocked(r)
	s.setLast(r.index, epoch)
	s.imu.Unlock()
	s.watchers.fire(key)
	return r.entry(), true
}

// Apply replays committed entries, as they are (value, version, index, epoch, tombstone);
// a no-op entry only moves the position. The leader applies its own writes this way too,
// once they commit. Their indexes must be strictly increasing and above Last; otherwise
// Apply returns an error wrapping ErrOutOfOrder (or ErrInvalidEntry) and applies nothing.
// Indexes may skip: a replica that started empty takes whatever it is sent first as its base.
func (s *Store) Apply(entries ...Entry) error {
	if len(entries) == 0 {
		return nil
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	prev := s.lastIndex()
	for i := range entries {
		e := &entries[i]
		if (e.Key == "") != e.Noop {
			return fmt.Errorf("%w: entry at index %d: a key is required unless it is a no-op, and a no-op has none", ErrInvalidEntry, e.Index)
		}
		if !fits(*e) {
			return fmt.Errorf("%w: entry at index %d: a key of %d bytes or a value of %d is too long for a record", ErrInvalidEntry, e.Index, len(e.Key), len(e.Value))
		}
		if e.Index <= prev {
			return fmt.Errorf("%w: index %d does not exceed %d", ErrOutOfOrder, e.Index, prev)
		}
		prev = e.Index
	}
	recs := make([]*rec, 0, len(entries))
	keys := make([]string, 0, len(entries))
	for _, e := range entries {
		if e.Noop {
			continue
		}
		r := newRec(e)
		h, sh := s.locate(e.Key)
		sh.mu.Lock()
		sh.setLocked(h, r)
		sh.mu.Unlock()
		recs = append(recs, r)
		keys = append(keys, r.key())
	}
	last := entries[len(entries)-1]
	s.imu.Lock()
	for _, r := range recs {
		s.indexLocked(r)
	}
	s.setLast(last.Index, last.Epoch)
	s.imu.Unlock()
	s.watchers.fire(keys...)
	return nil
}

func liveDelta(wasLive, isLive bool) int {
	switch {
	case wasLive && !isLive:
		return -1
	case !wasLive && isLive:
		return 1
	}
	return 0
}

// Last returns the index and epoch of the last write (Put, Delete, Apply or Restore).
func (s *Store) Last() (index uint64, epoch int64) {
	s.pmu.RLock()
	defer s.pmu.RUnlock()
	return s.index, s.epoch
}

func (s *Store) lastIndex() uint64 {
	i, _ := s.Last()
	return i
}

func (s *Store) setLast(index uint64, epoch int64) {
	s.pmu.Lock()
	s.index, s.epoch = index, epoch
	s.pmu.Unlock()
}

// Len returns the number of live (not deleted) keys.
func (s *Store) Len() int {
	n := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.RLock()
		n += sh.live
		sh.mu.RUnlock()
	}
	return n
}

// Bytes returns the size of the live entries (Size each): keys and values.
func (s *Store) Bytes() int64 {
	var n int64
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.RLock()
		n += sh.bytes
		sh.mu.RUnlock()
	}
	return n
}

// Stats returns counts of live keys and tombstones and the last position.
func (s *Store) Stats() Stats {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	st := Stats{Shards: len(s.shards)}
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.RLock()
		st.Keys += sh.live
		st.Tombstones += sh.len() - sh.live
		st.Bytes += sh.bytes
		sh.mu.RUnlock()
	}
	st.Index, st.Epoch = s.Last()
	return st
}

// Range calls fn for every entry, tombstones included, in no particular order, until fn
// returns false. It holds the writer lock, so it sees one consistent state and fn must
// not write to the store.
func (s *Store) Range(fn func(Entry) bool) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.RLock()
		for r := range sh.records {
			if !fn(r.entry()) {
				sh.mu.RUnlock()
				return
			}
		}
		sh.mu.RUnlock()
	}
}

// Snapshot returns a consistent copy of the store, tombstones included, sorted by key.
func (s *Store) Snapshot() Snapshot {
	s.wmu.Lock()
	var snap Snapshot
	snap.Index, snap.Epoch = s.Last()
	n := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.RLock()
		n += sh.len()
		sh.mu.RUnlock()
	}
	snap.Entries = make([]Entry, 0, n)
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.RLock()
		for r := range sh.records {
			snap.Entries = append(snap.Entries, r.entry())
		}
		sh.mu.RUnlock()
	}
	s.wmu.Unlock()
	sort.Slice(snap.Entries, func(i, j int) bool { return snap.Entries[i].Key < snap.Entries[j].Key })
	return snap
}

// Restore replaces the whole content and the last position with the snapshot's. Entries
// with an empty key are dropped; of duplicate keys the last one wins. Readers see either
// the old content or the new one, never a mix.
func (s *Store) Restore(snap Snapshot) {
	// fresh is built unshared, so its shards need no locks until they replace the store's.
	fresh := make([]shard, len(s.shards))
	tree := newIndex()
	var keyIndex uint64
	for i := range fresh {
		fresh[i].init()
	}
	for _, e := range snap.Entries {
		if e.Key == "" {
			continue
		}
		r := newRec(e)
		h := s.hash(e.Key)
		fresh[h&s.mask].setLocked(h, r)
		tree.ReplaceOrInsert(r)
		keyIndex = max(keyIndex, r.index)
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	for i := range s.shards {
		s.shards[i].mu.Lock()
	}
	for i := range s.shards {
		s.shards[i].replaceLocked(&fresh[i])
	}
	s.imu.Lock()
	s.tree, s.keyIndex = tree, keyIndex
	s.setLast(snap.Index, snap.Epoch)
	s.imu.Unlock()
	for i := range s.shards {
		s.shards[i].mu.Unlock()
	}
	s.watchers.fireAll()
}

// Hash returns the hex SHA-256 of the live entries sorted by key, each as its key, value and
// version. Stores with equal live contents have equal hashes, whatever their shard counts,
// tombstones or indexes.
func (s *Store) Hash() string {
	type kv struct {
		key, value string
		version    uint64
	}
	s.wmu.Lock()
	var live []kv
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.RLock()
		for r := range sh.records {
			if r.live() {
				live = append(live, kv{r.key(), r.value(), r.version})
			}
		}
		sh.mu.RUnlock()
	}
	s.wmu.Unlock()
	sort.Slice(live, func(i, j int) bool { return live[i].key < live[j].key })
	h := sha256.New()
	var buf [8]byte
	writeString := func(v string) {
		binary.BigEndian.PutUint64(buf[:], uint64(len(v)))
		_, _ = h.Write(buf[:])
		_, _ = h.Write([]byte(v))
	}
	for _, e := range live {
		writeString(e.key)
		writeString(e.value)
		binary.BigEndian.PutUint64(buf[:], e.version)
		_, _ = h.Write(buf[:])
	}
	return hex.EncodeToString(h.Sum(nil))
}
