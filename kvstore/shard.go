package kvstore

import "sync"

// shard holds the records of the keys whose hash (Store.hash) picks it, under its own lock.
//
// The records are kept by hash rather than by key: a map slot is then 16 bytes, not 24
// (the key's string header), which takes a third off the maps: 18 bytes per key at a
// million keys (BenchmarkMemoryPerKey). Two keys of one store share a 64-bit hash with a
// chance of about 2^-64 per pair, but a store must stay right then too: the first key to
// take a hash keeps its slot in m, and a later key with the same hash goes to spill, by
// key. As no key ever leaves a shard (a delete leaves a tombstone, Restore replaces whole
// shards), a key whose hash has no slot in m is in neither map.
type shard struct {
	mu    sync.RWMutex
	m     map[uint64]*rec
	spill map[string]*rec // under each record's own key bytes; nil until a collision
	live  int             // records that are not tombstones
	bytes int64           // Size of the records
}

func (sh *shard) init() { sh.m = make(map[uint64]*rec) }

// get returns the record of key, whose hash is h; nil if the shard has none. The caller
// holds the shard's lock.
func (sh *shard) get(h uint64, key string) *rec {
	r := sh.m[h]
	if r == nil || r.key() == key {
		return r
	}
	return sh.spill[key]
}

// setLocked puts r in the place of its key's record, if any, and keeps the counts; h is
// the key's hash. The caller holds the shard's lock.
func (sh *shard) setLocked(h uint64, r *rec) {
	key := r.key()
	var old *rec
	if first := sh.m[h]; first == nil || first.key() == key {
		old = first
		sh.m[h] = r
	} else {
		old = sh.spill[key]
		if sh.spill == nil {
			sh.spill = make(map[string]*rec)
		}
		// Go's map stores the key again on each overwrite, so the replaced record's
		// bytes are not kept alive by its key.
		sh.spill[key] = r
	}
	sh.live += liveDelta(old.live(), r.live())
	sh.bytes += r.size() - old.size()
}

// replaceLocked gives sh the content of fresh, a shard no one else holds; the caller holds
// sh's lock.
func (sh *shard) replaceLocked(fresh *shard) {
	sh.m, sh.spill, sh.live, sh.bytes = fresh.m, fresh.spill, fresh.live, fresh.bytes
}

// len is the number of records, tombstones included; the caller holds the shard's lock.
func (sh *shard) len() int { return len(sh.m) + len(sh.spill) }

// records yields every record of the shard, in no particular order; the caller holds the
// shard's lock.
func (sh *shard) records(yield func(*rec) bool) {
	for _, r := range sh.m {
		if !yield(r) {
			return
		}
	}
	for _, r := range sh.spill {
		if !yield(r) {
			return
		}
	}
}
