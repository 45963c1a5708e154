package kvstore

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newStore(t testing.TB, shards int) *Store {
	t.Helper()
	s, err := New(Config{Shards: shards})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

func TestConfigValidate(t *testing.T) {
	for _, n := range []int{0, 1, 2, 64, MaxShards} {
		if err := (Config{Shards: n}).Validate(); err != nil {
			t.Errorf("Shards %d: unexpected error %v", n, err)
		}
	}
	for _, n := range []int{-1, 3, 100, MaxShards * 2} {
		_, err := New(Config{Shards: n})
		if !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("Shards %d: got %v, want ErrInvalidConfig", n, err)
		}
	}
	s := newStore(t, 0)
	if got := s.Stats().Shards; got != DefaultShards {
		t.Errorf("default shards = %d, want %d", got, DefaultShards)
	}
}

func TestPutGetDeleteVersions(t *testing.T) {
	s := newStore(t, 4)
	if _, ok := s.Get("a"); ok {
		t.Fatal("empty store found a")
	}
	e1 := s.Put("a", "1", 7)
	want := Entry{Key: "a", Value: "1", Version: 1, Index: 1, Epoch: 7}
	if e1 != want {
		t.Fatalf("Put = %+v, want %+v", e1, want)
	}
	e2 := s.Put("a", "2", 7)
	if e2.Version != 2 || e2.Index != 2 {
		t.Fatalf("second Put = %+v", e2)
	}
	s.Put("b", "x", 8)
	if got, ok := s.Get("a"); !ok || got != e2 {
		t.Fatalf("Get a = %+v %v", got, ok)
	}
	if i, ep := s.Last(); i != 3 || ep != 8 {
		t.Fatalf("Last = %d %d", i, ep)
	}
	d, ok := s.Delete("a", 9)
	if !ok || !d.Deleted || d.Version != 3 || d.Index != 4 || d.Epoch != 9 || d.Value != "" {
		t.Fatalf("Delete = %+v %v", d, ok)
	}
	if _, ok := s.Get("a"); ok {
		t.Fatal("deleted key found")
	}
	if _, ok := s.Delete("a", 9); ok {
		t.Fatal("second delete reported found")
	}
	if _, ok := s.Delete("nope", 9); ok {
		t.Fatal("delete of absent key reported found")
	}
	if i, _ := s.Last(); i != 4 {
		t.Fatalf("no-op deletes moved the index to %d", i)
	}
	e := s.Put("a", "again", 9)
	if e.Version != 4 || e.Index != 5 {
		t.Fatalf("Put after delete = %+v, want version 4 index 5", e)
	}
	st := s.Stats()
	if st.Keys != 2 || st.Tombstones != 0 || s.Len() != 2 {
		t.Fatalf("Stats = %+v, Len = %d", st, s.Len())
	}
	s.Delete("b", 9)
	if st := s.Stats(); st.Keys != 1 || st.Tombstones != 1 || st.Index != 6 {
		t.Fatalf("Stats after delete = %+v", st)
	}
}

func TestApplyOrder(t *testing.T) {
	s := newStore(t, 8)
	if err := s.Apply(); err != nil {
		t.Fatalf("empty Apply: %v", err)
	}
	// A fresh replica may start at any index.
	if err := s.Apply(Entry{Key: "a", Value: "1", Version: 5, Index: 100, Epoch: 2}); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	cases := [][]Entry{
		{{Key: "b", Index: 100, Epoch: 2}},                               // not above Last
		{{Key: "b", Index: 99, Epoch: 2}},                                // below
		{{Key: "b", Index: 101, Epoch: 2}, {Key: "c", Index: 101}},       // not strictly increasing
		{{Key: "b", Index: 102, Epoch: 2}, {Key: "c", Index: 101}},       // decreasing
		{{Key: "b", Index: 101, Epoch: 2}, {Key: "c", Index: 50}},        // valid prefix, bad tail
		{{Key: "b", Index: 101, Epoch: 2}, {Key: "", Index: 102}},        // empty key
		{{Key: "b", Index: 101, Epoch: 2}, {Key: "b", Index: 101 - 100}}, // bad tail
	}
	for i, c := range cases {
		err := s.Apply(c...)
		if !errors.Is(err, ErrOutOfOrder) && !errors.Is(err, ErrInvalidEntry) {
			t.Errorf("case %d: err = %v, want ErrOutOfOrder or ErrInvalidEntry", i, err)
		}
		if _, ok := s.Get("b"); ok {
			t.Fatalf("case %d: a failed Apply applied b", i)
		}
		if idx, _ := s.Last(); idx != 100 {
			t.Fatalf("case %d: Last moved to %d", i, idx)
		}
	}
	err := s.Apply(
		Entry{Key: "b", Value: "B", Version: 1, Index: 101, Epoch: 3},
		Entry{Key: "a", Version: 6, Index: 103, Epoch: 3, Deleted: true, Value: "ignored"},
	)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if _, ok := s.Get("a"); ok {
		t.Fatal("a is tombstoned")
	}
	if i, ep := s.Last(); i != 103 || ep != 3 {
		t.Fatalf("Last = %d %d", i, ep)
	}
	// The leader-side Put continues the tombstone's version.
	if e := s.Put("a", "z", 3); e.Version != 7 || e.Index != 104 {
		t.Fatalf("Put after applied tombstone = %+v", e)
	}
}

func TestSnapshotRestore(t *testing.T) {
	src := newStore(t, 16)
	for i := range 100 {
		src.Put(fmt.Sprintf("k%03d", i), fmt.Sprint(i), 1)
	}
	for i := 0; i < 100; i += 3 {
		src.Delete(fmt.Sprintf("k%03d", i), 2)
	}
	snap := src.Snapshot()
	if snap.Index != 134 || snap.Epoch != 2 || len(snap.Entries) != 100 {
		t.Fatalf("snapshot index %d epoch %d entries %d", snap.Index, snap.Epoch, len(snap.Entries))
	}
	for i := 1; i < len(snap.Entries); i++ {
		if snap.Entries[i-1].Key >= snap.Entries[i].Key {
			t.Fatal("snapshot not sorted by key")
		}
	}
	dst := newStore(t, 2)
	dst.Put("stale", "gone", 1)
	dst.Restore(snap)
	if _, ok := dst.Get("stale"); ok {
		t.Fatal("Restore kept old content")
	}
	if dst.Hash() != src.Hash() || dst.Len() != src.Len() || dst.Stats().Tombstones != 34 {
		t.Fatalf("restored store differs: len %d vs %d, stats %+v", dst.Len(), src.Len(), dst.Stats())
	}
	if i, ep := dst.Last(); i != 134 || ep != 2 {
		t.Fatalf("restored Last = %d %d", i, ep)
	}
	// Writes continue from the snapshot's position and the tombstone's version.
	if e := dst.Put("k000", "new", 3); e.Index != 135 || e.Version != 3 {
		t.Fatalf("Put after Restore = %+v", e)
	}
	// The snapshot is a copy.
	snap.Entries[1].Value = "mutated"
	if e, _ := src.Get(snap.Entries[1].Key); e.Value == "mutated" {
		t.Fatal("snapshot aliases the store")
	}
}

func TestHashIgnoresShardsAndTombstones(t *testing.T) {
	a, b := newStore(t, 1), newStore(t, 128)
	if a.Hash() != b.Hash() {
		t.Fatal("empty hashes differ")
	}
	a.Put("x", "1", 1)
	a.Put("y", "2", 1)
	a.Put("gone", "3", 1)
	a.Delete("gone", 1)
	// b reaches the same live content through other indexes and epochs.
	if err := b.Apply(
		Entry{Key: "y", Value: "2", Version: 1, Index: 10, Epoch: 5},
		Entry{Key: "x", Value: "1", Version: 1, Index: 11, Epoch: 5},
	); err != nil {
		t.Fatal(err)
	}
	if a.Hash() != b.Hash() {
		t.Fatal("equal live contents hash differently")
	}
	b.Put("x", "1", 5) // same value, new version
	if a.Hash() == b.Hash() {
		t.Fatal("version change not reflected in hash")
	}
	// Length prefixes keep ("ab","c") and ("a","bc") apart.
	c, d := newStore(t, 4), newStore(t, 4)
	c.Put("ab", "c", 1)
	d.Put("a", "bc", 1)
	if c.Hash() == d.Hash() {
		t.Fatal("hash is ambiguous")
	}
}

func TestRange(t *testing.T) {
	s := newStore(t, 4)
	for i := range 10 {
		s.Put(fmt.Sprint(i), "v", 1)
	}
	n := 0
	s.Range(func(Entry) bool { n++; return n < 3 })
	if n != 3 {
		t.Fatalf("Range visited %d after stop, want 3", n)
	}
}

// TestConcurrentReadersOneWriter is mostly for the race detector: readers, snapshots and
// hashes run while one writer puts and deletes.
func TestConcurrentReadersOneWriter(t *testing.T) {
	s := newStore(t, 8)
	const writes = 2000
	var wg sync.WaitGroup
	done := make(chan struct{})
	for r := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(r), 1))
			for {
				select {
				case <-done:
					return
				default:
				}
				if e, ok := s.Get(fmt.Sprint(rng.IntN(100))); ok && e.Version == 0 {
					t.Error("live entry with version 0")
				}
				_ = s.Len()
				if rng.IntN(50) == 0 {
					snap := s.Snapshot()
					for _, e := range snap.Entries {
						if e.Index > snap.Index {
							t.Errorf("snapshot at %d holds entry at %d", snap.Index, e.Index)
						}
					}
					_ = s.Hash()
				}
			}
		}()
	}
	for i := range writes {
		k := fmt.Sprint(i % 100)
		if i%7 == 0 {
			s.Delete(k, 1)
		} else {
			s.Put(k, fmt.Sprint(i), 1)
		}
	}
	close(done)
	wg.Wait()
	st := s.Stats()
	if st.Keys+st.Tombstones != 100 {
		t.Fatalf("stats %+v", st)
	}
}

func TestApplyNoop(t *testing.T) {
	s, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(Entry{Key: "a", Value: "1", Version: 1, Index: 1, Epoch: 3}, Entry{Index: 2, Epoch: 5, Noop: true}); err != nil {
		t.Fatal(err)
	}
	if i, ep := s.Last(); i != 2 || ep != 5 {
		t.Fatalf("Last = %d/%d, want 2/5", i, ep)
	}
	if s.Len() != 1 {
		t.Fatalf("Len = %d, want 1: a no-op holds no key", s.Len())
	}
	if _, ok := s.Get(""); ok {
		t.Fatal("a no-op must not store an empty key")
	}
	for _, bad := range []Entry{{Index: 3, Epoch: 5}, {Key: "k", Index: 3, Epoch: 5, Noop: true}} {
		if err := s.Apply(bad); !errors.Is(err, ErrInvalidEntry) {
			t.Fatalf("Apply(%+v) = %v, want ErrInvalidEntry", bad, err)
		}
	}
}

// TestBytes checks the live size through every writer: Put, Delete, Apply, Restore.
func TestBytes(t *testing.T) {
	s := newStore(t, 4)
	check := func(what string, want int64) {
		t.Helper()
		if got := s.Bytes(); got != want {
			t.Fatalf("%s: Bytes = %d, want %d", what, got, want)
		}
		if got := s.Stats().Bytes; got != want {
			t.Fatalf("%s: Stats().Bytes = %d, want %d", what, got, want)
		}
	}
	check("empty", 0)
	s.Put("ab", "xyz", 1)
	check("put", 5)
	s.Put("ab", "x", 1)
	check("overwrite shorter", 3)
	s.Put("c", "", 1)
	check("empty value", 4)
	s.Delete("ab", 1)
	check("delete", 1)
	s.Delete("ab", 1)
	check("delete again", 1)
	if err := s.Apply(Entry{Key: "ab", Value: "1234", Version: 3, Index: 10, Epoch: 2},
		Entry{Index: 11, Epoch: 2, Noop: true},
		Entry{Key: "c", Version: 2, Index: 12, Epoch: 2, Deleted: true}); err != nil {
		t.Fatal(err)
	}
	check("apply", 6)
	s.Restore(Snapshot{Index: 20, Epoch: 3, Entries: []Entry{
		{Key: "k1", Value: "v1", Version: 1, Index: 5},
		{Key: "k2", Version: 2, Index: 6, Deleted: true},
		{Key: "k1", Value: "longer", Version: 2, Index: 7}, // the last of duplicates wins
	}})
	check("restore", 8)
	checkRecords(t, s)
}
