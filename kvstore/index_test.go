package kvstore

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// model is the brute-force reference for listings: every key's entry, tombstones included.
type model map[string]Entry

func (m model) list(opts ListOptions) Page {
	var keys []string
	for k, e := range m {
		if strings.HasPrefix(k, opts.Prefix) && k > opts.After && !e.Deleted {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var p Page
	bytes := 0
	for i, k := range keys {
		if opts.Limit > 0 && len(p.Entries) >= opts.Limit || opts.MaxBytes > 0 && bytes >= opts.MaxBytes {
			p.More = i < len(keys)
			break
		}
		e := m[k]
		if opts.KeysOnly {
			e.Value = ""
		}
		bytes += len(e.Key) + len(e.Value)
		p.Entries = append(p.Entries, e)
	}
	for k, e := range m {
		if strings.HasPrefix(k, opts.Prefix) {
			p.Index = max(p.Index, e.Index)
		}
	}
	return p
}

func randomKey(rng *rand.Rand) string {
	// A small alphabet and short keys, so that prefixes share keys and pages cross them.
	const alphabet = "ab/é"
	n := 1 + rng.IntN(4)
	var b strings.Builder
	for range n {
		r := []rune(alphabet)
		b.WriteRune(r[rng.IntN(len(r))])
	}
	return b.String()
}

func randomPrefix(rng *rand.Rand) string {
	if rng.IntN(5) == 0 {
		return ""
	}
	k := randomKey(rng)
	return k[:rng.IntN(len(k))+1] // may cut a multi-byte rune: byte prefixes must work too
}

func checkPage(t *testing.T, what string, got, want Page) {
	t.Helper()
	if got.More != want.More || !slices.Equal(got.Entries, want.Entries) {
		t.Fatalf("%s:\n got %+v more=%v\nwant %+v more=%v", what, got.Entries, got.More, want.Entries, want.More)
	}
	if want.Index != 0 || got.Index != 0 {
		if got.Index != want.Index {
			t.Fatalf("%s: index %d, want %d", what, got.Index, want.Index)
		}
	}
}

// TestListAgainstModel drives a store and a brute-force model with the same random puts,
// deletes, applies and restores, and compares every kind of listing.
func TestListAgainstModel(t *testing.T) {
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 7))
		s := newStore(t, 4)
		m := model{}
		for op := range 400 {
			k := randomKey(rng)
			switch r := rng.IntN(20); {
			case r < 12:
				e := s.Put(k, fmt.Sprint(op), 1)
				m[k] = e
			case r < 17:
				if e, ok := s.Delete(k, 1); ok {
					m[k] = e
				}
			case r < 19:
				last, _ := s.Last()
				old := m[k]
				e := Entry{Key: k, Value: "applied", Version: old.Version + 1, Index: last + 1 + uint64(rng.IntN(3)), Epoch: 2,
					Deleted: rng.IntN(3) == 0}
				if err := s.Apply(e, Entry{Index: e.Index + 1, Epoch: 2, Noop: true}); err != nil {
					t.Fatal(err)
				}
				if e.Deleted {
					e.Value = ""
				}
				m[k] = e
			default:
				c := newStore(t, 2)
				c.Restore(s.Snapshot())
				s = c
			}
			opts := ListOptions{Prefix: randomPrefix(rng), Limit: rng.IntN(6), KeysOnly: rng.IntN(3) == 0}
			if rng.IntN(4) == 0 {
				opts.MaxBytes = 1 + rng.IntN(12)
			}
			want := m.list(opts)
			if opts.Prefix == "" {
				want.Index = s.keyIndex // the empty prefix reports the key index
			}
			checkRecords(t, s)
			checkPage(t, fmt.Sprintf("seed %d op %d %+v", seed, op, opts), s.List(opts), want)
			if got := s.PrefixIndex(opts.Prefix); got != want.Index {
				t.Fatalf("PrefixIndex(%q) = %d, want %d", opts.Prefix, got, want.Index)
			}
			// Walking the pages with the cursor gives the whole listing once, in order.
			all := m.list(ListOptions{Prefix: opts.Prefix})
			var walked []Entry
			for pages := 0; ; pages++ {
				p := s.List(opts)
				walked = append(walked, p.Entries...)
				if !p.More {
					break
				}
				if len(p.Entries) == 0 || pages > 1000 {
					t.Fatalf("page with More but no progress: %+v", p)
				}
				opts.After = p.Entries[len(p.Entries)-1].Key
			}
			if opts.KeysOnly {
				for i := range all.Entries {
					all.Entries[i].Value = ""
				}
			}
			if !slices.Equal(walked, all.Entries) {
				t.Fatalf("seed %d op %d: pages walked %v, want %v", seed, op, walked, all.Entries)
			}
		}
	}
}

func TestListPagination(t *testing.T) {
	s := newStore(t, 4)
	for _, k := range []string{"b/2", "a", "b/1", "b/10", "b", "c", "b/3"} {
		s.Put(k, "v-"+k, 1)
	}
	s.Delete("b/10", 1)
	keys := func(p Page) []string {
		var out []string
		for _, e := range p.Entries {
			out = append(out, e.Key)
		}
		return out
	}
	p := s.List(ListOptions{Prefix: "b/", Limit: 2})
	if got := keys(p); !slices.Equal(got, []string{"b/1", "b/2"}) || !p.More || p.Entries[0].Value != "v-b/1" {
		t.Fatalf("first page %v more=%v", p.Entries, p.More)
	}
	p = s.List(ListOptions{Prefix: "b/", Limit: 2, After: "b/2"})
	if got := keys(p); !slices.Equal(got, []string{"b/3"}) || p.More {
		t.Fatalf("second page %v more=%v: the tombstone b/10 is skipped", got, p.More)
	}
	// The prefix index counts the delete of b/10 (index 8), the last write under b/.
	if p.Index != 8 || p.Applied != 8 {
		t.Fatalf("index %d applied %d, want 8 8", p.Index, p.Applied)
	}
	// An After before the prefix starts at the prefix; one past it gives nothing.
	if got := keys(s.List(ListOptions{Prefix: "b/", After: "a"})); !slices.Equal(got, []string{"b/1", "b/2", "b/3"}) {
		t.Fatalf("after a: %v", got)
	}
	if p := s.List(ListOptions{Prefix: "b/", After: "z"}); len(p.Entries) != 0 || p.More {
		t.Fatalf("after z: %+v", p)
	}
	if p := s.List(ListOptions{Prefix: "nothing"}); len(p.Entries) != 0 || p.More || p.Index != 0 {
		t.Fatalf("absent prefix: %+v", p)
	}
	if p := s.List(ListOptions{KeysOnly: true, Limit: 1}); keys(p)[0] != "a" || p.Entries[0].Value != "" {
		t.Fatalf("keys only: %+v", p)
	}
}

// TestPrefixIndexBound: a prefix with more entries than PrefixIndexScan reports the
// store's key index, an upper bound that still rises with every write under it.
func TestPrefixIndexBound(t *testing.T) {
	if testing.Short() {
		t.Skip("puts 65k keys")
	}
	s := newStore(t, 0)
	for i := range PrefixIndexScan + 1 {
		s.Put(fmt.Sprintf("big/%06d", i), "", 1)
	}
	e := s.Put("other", "", 1)
	if got := s.PrefixIndex("big/"); got != e.Index {
		t.Fatalf("PrefixIndex of a prefix past the scan = %d, want the key index %d", got, e.Index)
	}
	if got := s.PrefixIndex("big/00000"); got != 10 {
		t.Fatalf("PrefixIndex of a small prefix = %d, want 10", got)
	}
	e = s.Put("big/000001", "x", 1)
	if got := s.PrefixIndex("big/"); got != e.Index {
		t.Fatalf("PrefixIndex after a write under it = %d, want %d", got, e.Index)
	}
}

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func TestWatchWakes(t *testing.T) {
	s := newStore(t, 4)
	a, releaseA := s.WatchKey("a")
	a2, releaseA2 := s.WatchKey("a")
	b, releaseB := s.WatchKey("b")
	pa, releasePA := s.WatchPrefix("a")
	pc, releasePC := s.WatchPrefix("c/")
	defer func() {
		for _, f := range []func(){releaseA, releaseA2, releaseB, releasePA, releasePC} {
			f()
		}
		if n := s.watchers.waiting(); n != 0 {
			t.Errorf("%d watch sets left after release", n)
		}
	}()
	s.Put("a", "1", 1)
	if !closed(a) || !closed(a2) || !closed(pa) || closed(b) || closed(pc) {
		t.Fatal("a put to a woke the wrong watchers")
	}
	if _, ok := s.Delete("nope", 1); ok || closed(b) {
		t.Fatal("a delete of an absent key writes nothing and wakes no one")
	}
	if err := s.Apply(Entry{Index: 10, Epoch: 2, Noop: true}); err != nil || closed(b) || closed(pc) {
		t.Fatalf("a no-op woke a watcher (%v)", err)
	}
	s.Put("b", "1", 1)
	if !closed(b) || closed(pc) {
		t.Fatal("a put to b did not wake b, or woke c/")
	}
	b, releaseB2 := s.WatchKey("b")
	defer releaseB2()
	s.Delete("b", 1)
	if !closed(b) {
		t.Fatal("a delete did not wake its key's watcher")
	}
	if err := s.Apply(Entry{Key: "c/x", Value: "v", Version: 1, Index: 20, Epoch: 2}); err != nil || !closed(pc) {
		t.Fatalf("an applied entry under c/ did not wake its prefix watcher (%v)", err)
	}
	z, releaseZ := s.WatchKey("z")
	defer releaseZ()
	s.Restore(Snapshot{Index: 30, Epoch: 3})
	if !closed(z) {
		t.Fatal("a restore did not wake every watcher")
	}
	// A watcher that gives up leaves nothing behind.
	_, release := s.WatchPrefix("gone")
	release()
	release()
	// Every other set was closed by a write and forgotten then.
	if n := s.watchers.waiting(); n != 0 {
		t.Fatalf("%d watch sets left", n)
	}
}

// TestWatchNeverMisses has one writer and watchers that loop index to index on one key and
// one prefix, as a blocking query does: each takes the channel, reads, and waits only if
// nothing newer than what it saw is there. They must see the final write and never go back.
func TestWatchNeverMisses(t *testing.T) {
	s := newStore(t, 4)
	const writes = 3000
	var wg sync.WaitGroup
	deadline := time.After(20 * time.Second) // a bound on the test, never reached when it works
	stop := make(chan struct{})
	fail := make(chan string, 8)
	watch := func(name string, wait func() (<-chan struct{}, func()), read func() (uint64, string)) {
		defer wg.Done()
		var seen uint64
		for {
			ch, release := wait()
			idx, val := read()
			if idx < seen {
				fail <- fmt.Sprintf("%s: index went back from %d to %d", name, seen, idx)
				release()
				return
			}
			seen = idx
			if val == fmt.Sprint(writes-1) {
				release()
				return
			}
			select {
			case <-ch:
			case <-stop:
				release()
				fail <- fmt.Sprintf("%s: stopped at index %d value %q without the final write", name, seen, val)
				return
			}
			release()
		}
	}
	for i := range 3 {
		wg.Add(2)
		go watch(fmt.Sprint("key watcher ", i), func() (<-chan struct{}, func()) { return s.WatchKey("w/k") },
			func() (uint64, string) { e, _ := s.Lookup("w/k"); return e.Index, e.Value })
		go watch(fmt.Sprint("prefix watcher ", i), func() (<-chan struct{}, func()) { return s.WatchPrefix("w/") },
			func() (uint64, string) {
				p := s.List(ListOptions{Prefix: "w/k"})
				if len(p.Entries) == 0 {
					return p.Index, ""
				}
				return p.Index, p.Entries[0].Value
			})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for i := range writes {
		switch {
		case i%10 == 9:
			s.Delete("w/k", 1)
		case i%5 == 0:
			last, _ := s.Last()
			if err := s.Apply(Entry{Key: "w/k", Value: fmt.Sprint(i), Version: uint64(i), Index: last + 1, Epoch: 1}); err != nil {
				t.Fatal(err)
			}
		default:
			s.Put("w/k", fmt.Sprint(i), 1)
		}
		if i%100 == 0 {
			runtime.Gosched()
		}
	}
	s.Put("w/k", fmt.Sprint(writes-1), 1)
	select {
	case <-done:
	case <-deadline:
		close(stop)
		<-done
	}
	close(fail)
	for msg := range fail {
		t.Error(msg)
	}
	if n := s.watchers.waiting(); n != 0 {
		t.Errorf("%d watch sets left", n)
	}
}

// TestConcurrentListAndWrite is for the race detector: listings and prefix indexes while
// one writer puts, deletes, applies and restores.
func TestConcurrentListAndWrite(t *testing.T) {
	s := newStore(t, 8)
	var wg sync.WaitGroup
	done := make(chan struct{})
	for r := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(r), 9))
			for {
				select {
				case <-done:
					return
				default:
				}
				p := s.List(ListOptions{Prefix: fmt.Sprint(rng.IntN(10)), Limit: 20})
				for i, e := range p.Entries {
					if e.Index > p.Applied || e.Deleted || i > 0 && p.Entries[i-1].Key >= e.Key {
						t.Errorf("bad page at applied %d: %+v", p.Applied, p.Entries)
						return
					}
				}
				if p.Index > p.Applied {
					t.Errorf("prefix index %d past applied %d", p.Index, p.Applied)
				}
			}
		}()
	}
	for i := range 3000 {
		k := fmt.Sprint(i % 200)
		switch {
		case i%7 == 0:
			s.Delete(k, 1)
		case i%500 == 0:
			c := newStore(t, 2)
			c.Restore(s.Snapshot())
			s.Restore(c.Snapshot())
		default:
			s.Put(k, fmt.Sprint(i), 1)
		}
	}
	close(done)
	wg.Wait()
}
