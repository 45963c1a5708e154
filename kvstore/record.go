package kvstore

import (
	"fmt"
	"math"
	"unsafe"
)

const (
	// maxKeyLen and maxValueLen bound what a record can hold: its key's length in 31 bits
	// (the 32nd marks a tombstone), its value's in 32.
	maxKeyLen   = math.MaxInt32
	maxValueLen = math.MaxUint32

	tombstone = 1 << 31 // in rec.klen

	// recHeader is the size of a rec, which its key's bytes follow.
	recHeader = int(unsafe.Sizeof(rec{}))
)

// rec is one key's state as the store holds it, and the head of one allocation that holds
// the key's bytes and then the value's right after it (a tombstone: the key's alone):
//
//	version | index | epoch | klen | vlen | key | value
//
// Its shard's map and the ordered index hold the same pointer, so a key costs this one
// allocation, 32 bytes more than its key and value. The bytes beside the header make that
// possible: with strings of its own a record would be 48 bytes plus a second allocation,
// and reading a key (every map hit, every comparison in the tree) would follow one more
// pointer to memory that is not in the cache.
//
// The allocation is a []uint64, so the header's fields are aligned, and rec has no pointer
// fields, so the garbage collector does not scan it; what keeps it alive is a *rec, or a
// string made by key or value, which points inside it.
//
// A record is never modified once published: a write puts a new one in its place, so a
// reader may use the record it found after dropping the lock it found it under, and the
// strings of the entries it hands out stay intact.
type rec struct {
	version uint64
	index   uint64
	epoch   int64
	klen    uint32 // the key's length, | tombstone
	vlen    uint32
}

// newRec copies e's key and value (none for a tombstone) into a new record. A key longer
// than maxKeyLen or a value longer than maxValueLen panics: Apply rejects one before it
// writes anything, and Put and Restore have no error to return (a server bounds both far
// below).
func newRec(e Entry) *rec {
	if e.Deleted {
		e.Value = ""
	}
	if !fits(e) {
		panic(fmt.Sprintf("kvstore: a key of %d bytes or a value of %d is too long for a record", len(e.Key), len(e.Value)))
	}
	n := len(e.Key) + len(e.Value)
	r, data := asRec(make([]uint64, recWords(n)), n)
	copy(data, e.Key)
	copy(data[len(e.Key):], e.Value)
	*r = rec{version: e.Version, index: e.Index, epoch: e.Epoch, klen: uint32(len(e.Key)), vlen: uint32(len(e.Value))}
	if e.Deleted {
		r.klen |= tombstone
	}
	return r
}

// recWords is the number of words a record of n bytes after its header takes.
func recWords(n int) int { return (recHeader + n + 7) / 8 }

// asRec lays a record over words, of at least recWords(n): the header, then the n bytes it
// returns as data.
func asRec(words []uint64, n int) (r *rec, data []byte) {
	p := unsafe.Pointer(unsafe.SliceData(words))
	// Sliced, not pointed at: with n zero, a pointer to the bytes after the header could
	// point past the allocation; a slice of no capacity keeps its base pointer.
	return (*rec)(p), unsafe.Slice((*byte)(p), recHeader+n)[recHeader:]
}

// fits reports whether a record can hold e: a key of at most maxKeyLen bytes and a value
// (none for a tombstone) of at most maxValueLen.
func fits(e Entry) bool {
	return len(e.Key) <= maxKeyLen && (e.Deleted || uint64(len(e.Value)) <= maxValueLen)
}

// keyLen is the length of r's key.
func (r *rec) keyLen() int { return int(r.klen &^ tombstone) }

// key returns r's key, sharing r's bytes.
func (r *rec) key() string { return r.bytes(recHeader, r.keyLen()) }

// value returns r's value, sharing r's bytes.
func (r *rec) value() string { return r.bytes(recHeader+r.keyLen(), int(r.vlen)) }

// bytes returns the n bytes of r's allocation from offset off as a string.
func (r *rec) bytes(off, n int) string {
	if n == 0 {
		// Not a string that points at off: it may be the allocation's end, and so the
		// start of another object, or of none.
		return ""
	}
	return unsafe.String((*byte)(unsafe.Add(unsafe.Pointer(r), off)), n)
}

func (r *rec) deleted() bool { return r.klen&tombstone != 0 }

// entry returns the record as an Entry whose strings share the record's bytes.
func (r *rec) entry() Entry {
	return Entry{Key: r.key(), Value: r.value(), Version: r.version, Index: r.index, Epoch: r.epoch, Deleted: r.deleted()}
}

// live reports whether r holds a live key: false for nil (no record) and for a tombstone.
func (r *rec) live() bool { return r != nil && !r.deleted() }

// size is Size of r's entry; 0 for nil.
func (r *rec) size() int64 {
	if !r.live() {
		return 0
	}
	return int64(r.keyLen()) + int64(r.vlen)
}
