package kvstore

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"strings"
	"testing"
	"unsafe"
)

// checkRecords checks what the store's counts and listings rest on: every record is in
// the shard its key hashes to, under its hash, or under its own key (bytes and all) in
// spill when another key holds the hash; it is in the ordered index too (the same pointer,
// in key order, nothing else there); a record's bytes are its key and its value (none for a
// tombstone); the live and byte counts and the key index match the records.
func checkRecords(t *testing.T, s *Store) {
	t.Helper()
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.imu.RLock()
	defer s.imu.RUnlock()
	var all []*rec
	var keyIndex uint64
	for i := range s.shards {
		sh := &s.shards[i]
		for h, r := range sh.m {
			if s.hash(r.key()) != h || h&s.mask != uint64(i) || r.key() == "" {
				t.Fatalf("shard %d holds %q under hash %#x", i, r.key(), h)
			}
		}
		for k, r := range sh.spill {
			h := s.hash(k)
			if r.key() != k || h&s.mask != uint64(i) || sh.m[h] == nil || sh.m[h].key() == k {
				t.Fatalf("shard %d spills %q under %q, though its hash %#x is free or its own", i, r.key(), k, h)
			}
			if unsafe.StringData(k) != unsafe.StringData(r.key()) {
				t.Fatalf("spill's key %q is not the record's own bytes: it keeps another allocation alive", k)
			}
		}
		live, bytes := 0, int64(0)
		for r := range sh.records {
			if r.deleted() && r.vlen != 0 {
				t.Fatalf("tombstone %q keeps a value of %d bytes", r.key(), r.vlen)
			}
			if r.live() {
				live++
			}
			bytes += Size(r.entry())
			keyIndex = max(keyIndex, r.index)
			all = append(all, r)
		}
		if live != sh.live || bytes != sh.bytes {
			t.Fatalf("shard %d counts %d live and %d bytes, its records %d and %d", i, sh.live, sh.bytes, live, bytes)
		}
	}
	if keyIndex != s.keyIndex {
		t.Fatalf("key index %d, the records' largest index %d", s.keyIndex, keyIndex)
	}
	slices.SortFunc(all, func(a, b *rec) int {
		if a.key() < b.key() {
			return -1
		}
		return 1
	})
	var tree []*rec
	s.tree.Ascend(func(r *rec) bool { tree = append(tree, r); return true })
	if !slices.Equal(all, tree) {
		t.Fatalf("the ordered index holds %d records, the shards %d, or not the same ones", len(tree), len(all))
	}
}

// TestEntriesOutliveWrites: what a reader was handed stays as it was after the key is
// overwritten, deleted or restored away, whichever way it read it.
func TestEntriesOutliveWrites(t *testing.T) {
	s := newStore(t, 4)
	s.Put("k", "first", 1)
	got, _ := s.Get("k")
	looked, _ := s.Lookup("k")
	listed := s.List(ListOptions{}).Entries[0]
	snap := s.Snapshot()
	var ranged Entry
	s.Range(func(e Entry) bool { ranged = e; return false })
	s.Put("k", "second, longer", 1)
	s.Delete("k", 1)
	if err := s.Apply(Entry{Key: "k", Value: "third", Version: 4, Index: 10, Epoch: 2}); err != nil {
		t.Fatal(err)
	}
	s.Restore(Snapshot{Index: 20})
	for _, e := range []Entry{got, looked, listed, snap.Entries[0], ranged} {
		if e.Key != "k" || e.Value != "first" || e.Version != 1 || e.Index != 1 {
			t.Fatalf("an entry read before the writes changed to %+v", e)
		}
	}
	checkRecords(t, s)
}

// TestStoreCopiesBytes: the store keeps bytes of its own, so a caller that reuses its
// buffer (a string made with unsafe.String over it) does not change what the store holds.
func TestStoreCopiesBytes(t *testing.T) {
	s := newStore(t, 4)
	buf := []byte("key1value1")
	str := func(from, to int) string { return unsafe.String(&buf[from], to-from) }
	s.Put(str(0, 4), str(4, 10), 1)
	if err := s.Apply(Entry{Key: str(0, 3) + "2", Value: str(4, 10), Version: 1, Index: 5, Epoch: 1}); err != nil {
		t.Fatal(err)
	}
	s.Delete(str(0, 4), 1)
	s.Put("key3", "", 1)
	copy(buf, "XXXXXXXXXX")
	for _, k := range []string{"key1", "key2", "key3"} {
		e, ok := s.Lookup(k)
		want := map[string]string{"key1": "", "key2": "value1", "key3": ""}[k]
		if !ok || e.Key != k || e.Value != want {
			t.Fatalf("Lookup(%s) = %+v %v after the caller's buffer changed", k, e, ok)
		}
	}
	checkRecords(t, s)
}

// TestApplyTombstoneThenPut: a tombstone for a key the store never held, then a put of it,
// in one Apply and across two.
func TestApplyTombstoneThenPut(t *testing.T) {
	for _, together := range []bool{true, false} {
		s := newStore(t, 2)
		tomb := Entry{Key: "a", Value: "dropped", Version: 3, Index: 7, Epoch: 1, Deleted: true}
		put := Entry{Key: "a", Value: "back", Version: 4, Index: 8, Epoch: 1}
		if together {
			if err := s.Apply(tomb, put); err != nil {
				t.Fatal(err)
			}
		} else {
			if err := s.Apply(tomb); err != nil {
				t.Fatal(err)
			}
			if e, ok := s.Lookup("a"); !ok || !e.Deleted || e.Value != "" || e.Version != 3 {
				t.Fatalf("Lookup of the tombstone = %+v %v", e, ok)
			}
			if st := s.Stats(); st.Keys != 0 || st.Tombstones != 1 || st.Bytes != 0 {
				t.Fatalf("Stats with the tombstone = %+v", st)
			}
			checkRecords(t, s)
			if err := s.Apply(put); err != nil {
				t.Fatal(err)
			}
		}
		if e, ok := s.Get("a"); !ok || e != put {
			t.Fatalf("together=%v: Get = %+v %v, want %+v", together, e, ok, put)
		}
		if st := s.Stats(); st.Keys != 1 || st.Tombstones != 0 || st.Bytes != 5 {
			t.Fatalf("together=%v: Stats = %+v", together, st)
		}
		if p := s.List(ListOptions{}); len(p.Entries) != 1 || p.Entries[0] != put || p.Index != 8 {
			t.Fatalf("together=%v: List = %+v", together, p)
		}
		checkRecords(t, s)
	}
}

// TestRestoreThenList: a restored store lists, looks up and counts what the snapshot held,
// the last of duplicate keys winning, tombstones without their values.
func TestRestoreThenList(t *testing.T) {
	s := newStore(t, 4)
	s.Put("old", "gone after the restore", 1)
	s.Restore(Snapshot{Index: 50, Epoch: 4, Entries: []Entry{
		{Key: "b", Value: "2", Version: 1, Index: 3, Epoch: 4},
		{Key: "a", Value: "1", Version: 2, Index: 9, Epoch: 4},
		{Key: "c", Value: "ghost", Version: 5, Index: 11, Epoch: 4, Deleted: true},
		{Key: "", Value: "dropped", Index: 12},
		{Key: "b", Value: "22", Version: 2, Index: 13, Epoch: 4},
	}})
	want := []Entry{
		{Key: "a", Value: "1", Version: 2, Index: 9, Epoch: 4},
		{Key: "b", Value: "22", Version: 2, Index: 13, Epoch: 4},
	}
	if p := s.List(ListOptions{}); !slices.Equal(p.Entries, want) || p.Applied != 50 || p.More {
		t.Fatalf("List after Restore = %+v", p)
	}
	if e, ok := s.Lookup("c"); !ok || !e.Deleted || e.Value != "" || e.Version != 5 {
		t.Fatalf("Lookup of the restored tombstone = %+v %v", e, ok)
	}
	if st := s.Stats(); st.Keys != 2 || st.Tombstones != 1 || st.Bytes != 5 || s.Len() != 2 || s.Bytes() != 5 {
		t.Fatalf("Stats after Restore = %+v", st)
	}
	if got := s.PrefixIndex("c"); got != 11 {
		t.Fatalf("PrefixIndex(c) = %d, want 11: the tombstone's", got)
	}
	checkRecords(t, s)
	// The next write replaces a restored record in both the shard and the index.
	s.Put("a", "3", 5)
	if p := s.List(ListOptions{Prefix: "a"}); len(p.Entries) != 1 || p.Entries[0].Value != "3" {
		t.Fatalf("List after a Put over a restored key = %+v", p)
	}
	checkRecords(t, s)
}

// TestRecordsThroughWrites keeps checkRecords over a random mix of every writer, and runs
// the same writes on a twin whose keys share a handful of hashes, so that most of its
// records spill: both must read, list, count and hash alike.
func TestRecordsThroughWrites(t *testing.T) {
	narrow := func(shards int) *Store {
		s := newStore(t, shards)
		s.hashMask = 0x7 // eight hashes for every key there is
		return s
	}
	s, twin := newStore(t, 4), narrow(4)
	for i := range 3000 {
		k := fmt.Sprintf("k%d", i%37)
		switch i % 11 {
		case 3, 7:
			_, ok := s.Delete(k, 1)
			if _, twinOK := twin.Delete(k, 1); ok != twinOK {
				t.Fatalf("op %d: Delete(%s) = %v, the twin's %v", i, k, ok, twinOK)
			}
		case 5:
			last, _ := s.Last()
			e, _ := s.Lookup(k)
			es := []Entry{
				{Key: k, Value: fmt.Sprint(i), Version: e.Version + 1, Index: last + 1, Epoch: 2, Deleted: i%3 == 0},
				{Index: last + 2, Epoch: 2, Noop: true},
			}
			if err := s.Apply(es...); err != nil {
				t.Fatal(err)
			}
			if err := twin.Apply(es...); err != nil {
				t.Fatal(err)
			}
		case 9:
			if i%5 == 0 {
				c := newStore(t, 8)
				c.Restore(s.Snapshot())
				s = c
				c = narrow(2)
				c.Restore(twin.Snapshot())
				twin = c
			}
		default:
			if e, te := s.Put(k, fmt.Sprint(i), 1), twin.Put(k, fmt.Sprint(i), 1); e != te {
				t.Fatalf("op %d: Put = %+v, the twin's %+v", i, e, te)
			}
		}
		if i%50 == 0 {
			checkRecords(t, s)
			checkRecords(t, twin)
		}
		e, ok := s.Lookup(k)
		if te, tok := twin.Lookup(k); e != te || ok != tok {
			t.Fatalf("op %d: Lookup(%s) = %+v %v, the twin's %+v %v", i, k, e, ok, te, tok)
		}
	}
	checkRecords(t, s)
	checkRecords(t, twin)
	spilled := 0
	for i := range twin.shards {
		spilled += len(twin.shards[i].spill)
	}
	if spilled < 20 {
		t.Fatalf("only %d of the twin's records spilled: the test does not test the spill", spilled)
	}
	snap, twinSnap := s.Snapshot(), twin.Snapshot()
	if !slices.Equal(snap.Entries, twinSnap.Entries) || s.Hash() != twin.Hash() {
		t.Fatal("the twin holds other entries")
	}
	if st, tst := s.Stats(), twin.Stats(); st.Keys != tst.Keys || st.Tombstones != tst.Tombstones || st.Bytes != tst.Bytes {
		t.Fatalf("Stats %+v, the twin's %+v", st, tst)
	}
	if p, tp := s.List(ListOptions{Prefix: "k1"}), twin.List(ListOptions{Prefix: "k1"}); !slices.Equal(p.Entries, tp.Entries) || p.Index != tp.Index {
		t.Fatalf("List %+v, the twin's %+v", p, tp)
	}
	n := 0
	twin.Range(func(Entry) bool { n++; return true })
	if n != len(twinSnap.Entries) {
		t.Fatalf("Range visits %d of the twin's %d entries", n, len(twinSnap.Entries))
	}
	for _, k := range []string{"absent", "k", "k99"} {
		if _, ok := twin.Lookup(k); ok {
			t.Fatalf("the twin finds %s, which it never held", k)
		}
	}
}

// TestReadsDoNotAllocate: the read paths that allocated nothing before records were
// shared still allocate nothing.
func TestReadsDoNotAllocate(t *testing.T) {
	s := newStore(t, 4)
	for i := range 100 {
		s.Put(fmt.Sprintf("p/%02d", i), "v", 1)
	}
	s.Delete("p/07", 1)
	for name, read := range map[string]func(){
		"Get":         func() { s.Get("p/42") },
		"Get absent":  func() { s.Get("nope") },
		"Lookup":      func() { s.Lookup("p/07") },
		"PrefixIndex": func() { s.PrefixIndex("p/4") },
		"Len":         func() { s.Len() },
		"Bytes":       func() { s.Bytes() },
		"Last":        func() { s.Last() },
	} {
		if n := testing.AllocsPerRun(100, read); n != 0 {
			t.Errorf("%s allocates %v times", name, n)
		}
	}
}

// TestRecordLayout: a record gives back the key and value it was made from, whatever
// their lengths (empty ones, ones that end an allocation, one past 32 KiB that is an
// allocation of its own), tombstones without a value.
func TestRecordLayout(t *testing.T) {
	for _, klen := range []int{0, 1, 7, 8, 31, 32, 33, 100} {
		for _, vlen := range []int{0, 1, 15, 16, 17, 100, 1000, 40000} {
			for _, deleted := range []bool{false, true} {
				e := Entry{Key: strings.Repeat("k", klen), Value: strings.Repeat("v", vlen), Version: 3, Index: 9, Epoch: -2, Deleted: deleted}
				r := newRec(e)
				if deleted {
					e.Value = ""
				}
				if got := r.entry(); got != e {
					t.Fatalf("key %d value %d deleted %v: record gives %d, %d bytes, %+v", klen, vlen, deleted, len(got.Key), len(got.Value), got)
				}
				if r.live() == deleted || r.size() != Size(e) {
					t.Fatalf("key %d value %d deleted %v: live %v size %d", klen, vlen, deleted, r.live(), r.size())
				}
			}
		}
	}
}

// TestEntriesOutliveCollection: the entries readers hold keep their records' bytes alive
// (their strings point inside the records) after the store has replaced every record and
// the collector has run, with new records of the same sizes free to reuse the memory.
func TestEntriesOutliveCollection(t *testing.T) {
	s := newStore(t, 4)
	const n = 2000
	held := make([]Entry, 0, n)
	for i := range n {
		s.Put(fmt.Sprintf("key-%04d", i), fmt.Sprintf("value-%04d-%s", i, strings.Repeat("x", i%97)), 1)
	}
	for i := range n {
		e, _ := s.Get(fmt.Sprintf("key-%04d", i))
		held = append(held, e)
	}
	for round := range 3 {
		for i := range n {
			k := fmt.Sprintf("key-%04d", i)
			if i%2 == 0 {
				s.Delete(k, 1)
			} else {
				s.Put(k, fmt.Sprintf("other-%04d-%d-%s", i, round, strings.Repeat("y", i%97)), 1)
			}
		}
		s.Restore(s.Snapshot())
		runtime.GC()
	}
	for i, e := range held {
		if want := fmt.Sprintf("value-%04d-%s", i, strings.Repeat("x", i%97)); e.Key != fmt.Sprintf("key-%04d", i) || e.Value != want {
			t.Fatalf("held entry %d changed to %q=%q", i, e.Key, e.Value)
		}
	}
	checkRecords(t, s)
}

// TestApplyRejectsWhatNoRecordHolds: a key a record cannot hold fails Apply as a whole.
func TestApplyRejectsWhatNoRecordHolds(t *testing.T) {
	if math.MaxInt == math.MaxInt32 {
		t.Skip("a string can be no longer than a record's key on 32 bits")
	}
	n := maxKeyLen
	n++
	// A string of that length that is never read: only its length is checked.
	long := unsafe.String(unsafe.StringData("x"), n)
	s := newStore(t, 2)
	err := s.Apply(Entry{Key: "a", Value: "1", Version: 1, Index: 1}, Entry{Key: long, Version: 1, Index: 2})
	if !errors.Is(err, ErrInvalidEntry) {
		t.Fatalf("Apply of a key of %d bytes = %v, want ErrInvalidEntry", n, err)
	}
	if _, ok := s.Get("a"); ok || s.Len() != 0 {
		t.Fatal("a failed Apply applied an entry")
	}
}
