package kvstore

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
)

const benchKeys = 100_000

func benchStore(b *testing.B) (*Store, []string) {
	b.Helper()
	s := newStore(b, 0)
	keys := make([]string, benchKeys)
	for i := range keys {
		keys[i] = fmt.Sprintf("key-%011d", i) // 16 bytes
		s.Put(keys[i], "value", 1)
	}
	return s, keys
}

func BenchmarkGetParallel(b *testing.B) {
	s, keys := benchStore(b)
	var seed atomic.Uint64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		rng := rand.New(rand.NewPCG(seed.Add(1), 2))
		for pb.Next() {
			if _, ok := s.Get(keys[rng.IntN(len(keys))]); !ok {
				b.Error("missing key")
				return
			}
		}
	})
}

func BenchmarkPut(b *testing.B) {
	s, keys := benchStore(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s.Put(keys[i%len(keys)], "value", 1)
	}
}

// BenchmarkPutRandom overwrites keys in random order: BenchmarkPut's keys come in order,
// which keeps the ordered index's path in the cache.
func BenchmarkPutRandom(b *testing.B) {
	s, keys := benchStore(b)
	rng := rand.New(rand.NewPCG(1, 4))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s.Put(keys[rng.IntN(len(keys))], "value", 1)
	}
}

// BenchmarkMixedParallel runs 90% Gets and 10% Puts from every goroutine; the Puts
// serialise on the writer lock as the single-writer rule wants.
func BenchmarkMixedParallel(b *testing.B) {
	s, keys := benchStore(b)
	var seed atomic.Uint64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		rng := rand.New(rand.NewPCG(seed.Add(1), 3))
		for pb.Next() {
			k := keys[rng.IntN(len(keys))]
			if rng.IntN(10) == 0 {
				s.Put(k, "value", 1)
			} else {
				s.Get(k)
			}
		}
	})
}

// BenchmarkMemoryPerKey reports the heap a store of 1e6 keys of 16 bytes with 100-byte
// values takes, per key. It is slow, so it runs only under -bench.
func BenchmarkMemoryPerKey(b *testing.B) {
	const n = 1_000_000
	buf := make([]byte, 100)
	for i := 0; i < b.N; i++ {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		s := newStore(b, 0)
		for k := range n {
			key := "k" + strconv.FormatInt(int64(1e14+k), 10) // 16 bytes
			s.Put(key, string(buf), 1)                        // a value of its own per key, as requests bring them
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		if s.Len() != n {
			b.Fatalf("Len = %d", s.Len())
		}
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "bytes/key")
		runtime.KeepAlive(s)
	}
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// BenchmarkIndexMemory reports what the ordered index costs per key: the heap the store
// of a million keys takes (bytes/key-store, with the records, which hold the store's own
// copy of each key and value), and how much of it the B-tree holds (bytes/key-index,
// measured by dropping the tree: the records stay, the shards hold them too, so what goes
// is the tree's nodes alone). Keys come in random order, as writes do. Run it once:
// go test -run NONE -bench IndexMemory -benchtime 1x.
func BenchmarkIndexMemory(b *testing.B) {
	const n = 1_000_000
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("key-%011d", rand.Uint64N(1e11))
	}
	for range b.N {
		base := heapInUse()
		s := newStore(b, 0)
		for _, k := range keys {
			s.Put(k, "value", 1)
		}
		withTree := heapInUse()
		s.tree = newIndex()
		withoutTree := heapInUse()
		b.ReportMetric(float64(withTree-base)/float64(s.Len()), "bytes/key-store")
		b.ReportMetric(float64(withTree-withoutTree)/float64(s.Len()), "bytes/key-index")
		runtime.KeepAlive(s)
	}
}
