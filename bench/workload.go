package bench

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// keyBytes is the length of every key the load benchmark uses.
const keyBytes = 16

// makeKeys returns n distinct keys of exactly keyBytes bytes.
func makeKeys(n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("k%0*d", keyBytes-1, i)
	}
	return keys
}

// makeValue returns a value of n printable bytes (JSON needs no escaping for it).
func makeValue(n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	var b strings.Builder
	b.Grow(n)
	for i := range n {
		b.WriteByte(alphabet[i%len(alphabet)])
	}
	return b.String()
}

// pickKey returns a pseudo-random key for request seq of worker w: a hash of the two, so the
// choice is uniform, reproducible and needs no shared state between workers.
func pickKey(keys []string, w int, seq uint64) string {
	x := uint64(w)<<40 ^ seq ^ 0x9e3779b97f4a7c15
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return keys[x%uint64(len(keys))]
}

// mixOp answers reads with read and every tenth request of a worker with write: a 90/10
// read/write mix that is the same for every system.
func mixOp(read, write Op) Op {
	return func(ctx context.Context, w int, seq uint64) error {
		if seq%10 == 9 {
			return write(ctx, w, seq)
		}
		return read(ctx, w, seq)
	}
}

// preload writes every key once with put through workers concurrent clients, so reads find
// their keys. It gives up at timeout.
func preload(ctx context.Context, keys []string, workers int, timeout time.Duration, put func(ctx context.Context, w int, key string) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var next atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(len(keys)) || ctx.Err() != nil {
					return
				}
				var err error
				for attempt := 0; attempt < 5; attempt++ {
					if err = put(ctx, w, keys[i]); err == nil || ctx.Err() != nil {
						break
					}
					time.Sleep(50 * time.Millisecond)
				}
				if err != nil {
					once.Do(func() { firstErr = fmt.Errorf("bench: preload %s: %w", keys[i], err) })
					cancel()
					return
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err()
}
