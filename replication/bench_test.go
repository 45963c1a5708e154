package replication

import (
	"context"
	"strconv"
	"testing"
	"time"
)

// BenchmarkFanout measures writes replicated to two httptest replicas: one Wait(all) per
// write in "sync", a Wait(all) per 64 writes in "pipelined" (where group commit shows).
func BenchmarkFanout(b *testing.B) {
	for _, mode := range []struct {
		name  string
		every int
	}{{"sync", 1}, {"pipelined", 64}} {
		b.Run(mode.name, func(b *testing.B) {
			r1, r2 := newTestReplica(b), newTestReplica(b)
			l := newTestLeader(b, Config{Logger: discardLogger(), RetryWaitMin: time.Millisecond, RetryWaitMax: 10 * time.Millisecond}, LogConfig{})
			r1.f.logger, r2.f.logger = discardLogger(), discardLogger()
			l.fan.SetReplicas(urls(r1, r2))
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			value := string(make([]byte, 100))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				e := l.put(b, "key-"+strconv.Itoa(i%10000), value)
				if (i+1)%mode.every == 0 || i == b.N-1 {
					if _, err := l.fan.Wait(ctx, e.Index, AckAll); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/float64(r1.posts.Load()), "entries/post")
		})
	}
}
