package kvstore

import (
	"fmt"
	"math"
	"strings"
)

// maxKeyLen bounds a key's length, so that rec can hold it in 32 bits.
const maxKeyLen = math.MaxUint32

// rec is one key's state as the store holds it: its shard's map and the ordered index share
// the pointer, so each key costs one record (48 bytes) and one allocation for its bytes.
// A record is never modified once published: a write puts a new one in its place, so a
// reader may use the record it found after dropping the lock it found it under, and the
// strings of the entries it hands out stay intact.
type rec struct {
	// kv is the key followed by the value, in one allocation of the store's own: the map's
	// key is kv[:klen], so the key costs no allocation of its own, and the store keeps no
	// caller's buffer alive. A tombstone holds only its key.
	kv      string
	klen    uint32
	deleted bool
	version uint64
	index   uint64
	epoch   int64
}

// newRec copies e's key and value (none for a tombstone) into a new record. A key longer
// than maxKeyLen panics: Apply rejects one before it writes anything, and Put and Restore
// have no error to return (a server bounds keys far below).
func newRec(e Entry) *rec {
	if uint64(len(e.Key)) > maxKeyLen {
		panic(fmt.Sprintf("kvstore: a key of %d bytes exceeds %d", len(e.Key), uint64(maxKeyLen)))
	}
	if e.Deleted {
		e.Value = ""
	}
	// A Builder, not key+value: concatenation returns the key itself when the value is
	// empty, and the record would keep the caller's bytes.
	var b strings.Builder
	b.Grow(len(e.Key) + len(e.Value))
	b.WriteString(e.Key)
	b.WriteString(e.Value)
	return &rec{kv: b.String(), klen: uint32(len(e.Key)), deleted: e.Deleted, version: e.Version, index: e.Index, epoch: e.Epoch}
}

func (r *rec) key() string { return r.kv[:r.klen] }

// entry returns the record as an Entry whose strings share the record's bytes.
func (r *rec) entry() Entry {
	return Entry{Key: r.kv[:r.klen], Value: r.kv[r.klen:], Version: r.version, Index: r.index, Epoch: r.epoch, Deleted: r.deleted}
}

// live reports whether r holds a live key: false for nil (no record) and for a tombstone.
func (r *rec) live() bool { return r != nil && !r.deleted }

// size is Size of r's entry; 0 for nil.
func (r *rec) size() int64 {
	if !r.live() {
		return 0
	}
	return int64(len(r.kv))
}
