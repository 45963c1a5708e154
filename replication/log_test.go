package replication

import (
	"errors"
	"strings"
	"testing"

	"github.com/zkv-dev/zkv/kvstore"
)

func entries(from, to uint64, epoch int64) []kvstore.Entry {
	var out []kvstore.Entry
	for i := from; i <= to; i++ {
		out = append(out, kvstore.Entry{Key: "k", Value: "v", Version: i, Index: i, Epoch: epoch})
	}
	return out
}

func newLog(t testing.TB, cfg LogConfig) *Log {
	t.Helper()
	l, err := NewLog(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestLogRing(t *testing.T) {
	if _, err := NewLog(LogConfig{Capacity: -1}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("negative capacity: %v", err)
	}
	l := newLog(t, LogConfig{Capacity: 40})
	l.SetApplied(1000) // every entry of this test is applied: the bounds apply
	if ep, ok := l.EpochAt(0); !ok || ep != 0 {
		t.Fatal("empty log must know its base (0, 0)")
	}
	if es, ok := l.EntriesFrom(1, 0); !ok || len(es) != 0 {
		t.Fatal("empty log: EntriesFrom(1) should be ok and empty")
	}
	if err := l.Append(entries(2, 3, 1)...); !errors.Is(err, ErrLogGap) {
		t.Fatalf("gap: %v", err)
	}
	if err := l.Append(entries(1, 30, 1)...); err != nil {
		t.Fatal(err)
	}
	if err := l.Append(entries(31, 100, 2)...); err != nil {
		t.Fatal(err)
	}
	if l.Len() != 40 {
		t.Fatalf("Len = %d", l.Len())
	}
	if b, ep := l.Base(); b != 60 || ep != 2 {
		t.Fatalf("Base = %d %d, want 60 2", b, ep)
	}
	if i, ep := l.Last(); i != 100 || ep != 2 {
		t.Fatalf("Last = %d %d", i, ep)
	}
	if _, ok := l.EpochAt(59); ok {
		t.Fatal("EpochAt below base")
	}
	if _, ok := l.EpochAt(101); ok {
		t.Fatal("EpochAt above last")
	}
	if ep, ok := l.EpochAt(60); !ok || ep != 2 {
		t.Fatal("EpochAt(base)")
	}
	if _, ok := l.EntriesFrom(60, 0); ok {
		t.Fatal("EntriesFrom(base) must fail: the entry at base is gone")
	}
	es, ok := l.EntriesFrom(61, 5)
	if !ok || len(es) != 5 || es[0].Index != 61 || es[4].Index != 65 {
		t.Fatalf("EntriesFrom(61, 5) = %v %v", es, ok)
	}
	es[0].Key = "mutated"
	if again, _ := l.EntriesFrom(61, 1); again[0].Key != "k" {
		t.Fatal("EntriesFrom returned aliases")
	}
	if es, ok := l.EntriesFrom(95, 0); !ok || len(es) != 6 || es[5].Index != 100 {
		t.Fatalf("EntriesFrom(95) = %d entries", len(es))
	}
	if es, ok := l.EntriesFrom(101, 0); !ok || len(es) != 0 {
		t.Fatal("EntriesFrom(last+1) should be empty and ok")
	}
	l.Reset(500, 7)
	if l.Len() != 0 {
		t.Fatal("Reset kept entries")
	}
	if i, ep := l.Last(); i != 500 || ep != 7 {
		t.Fatalf("Last after Reset = %d %d", i, ep)
	}
	if err := l.Append(entries(501, 501, 7)...); err != nil {
		t.Fatal(err)
	}
	if ep, ok := l.EpochAt(500); !ok || ep != 7 {
		t.Fatal("EpochAt(base) after Reset")
	}
}

func TestLogMaxBytes(t *testing.T) {
	l := newLog(t, LogConfig{Capacity: 1000, MaxBytes: 1000})
	l.SetApplied(1000)
	big := strings.Repeat("x", 300)
	for i := uint64(1); i <= 10; i++ {
		if err := l.Append(kvstore.Entry{Key: "k", Value: big, Index: i, Epoch: 1}); err != nil {
			t.Fatal(err)
		}
	}
	if l.Len() != 2 {
		t.Fatalf("Len = %d, want 2 (350 bytes each under a 1000-byte bound)", l.Len())
	}
	huge := strings.Repeat("y", 5000)
	if err := l.Append(kvstore.Entry{Key: "k", Value: huge, Index: 11, Epoch: 1}); err != nil {
		t.Fatal(err)
	}
	if l.Len() != 1 {
		t.Fatalf("the newest entry must stay: Len = %d", l.Len())
	}
}

func TestLogKeepsUnappliedEntries(t *testing.T) {
	l := newLog(t, LogConfig{Capacity: 16})
	if err := l.Append(entries(1, 40, 1)...); err != nil {
		t.Fatal(err)
	}
	if l.Len() != 40 {
		t.Fatalf("Len = %d: entries not applied yet must stay past the capacity", l.Len())
	}
	l.SetApplied(30)
	if b, _ := l.Base(); b != 24 || l.Len() != 16 {
		t.Fatalf("after SetApplied(30): base %d, len %d; want 24, 16", b, l.Len())
	}
	if !l.TruncateAfter(35) {
		t.Fatal("TruncateAfter(35) refused")
	}
	if i, _ := l.Last(); i != 35 {
		t.Fatalf("Last after truncate = %d", i)
	}
	if l.TruncateAfter(10) || l.TruncateAfter(36) {
		t.Fatal("TruncateAfter outside [base, last] must refuse")
	}
	if err := l.Append(entries(36, 36, 2)...); err != nil {
		t.Fatal(err)
	}
	if ep, _ := l.EpochAt(36); ep != 2 {
		t.Fatal("append after truncate")
	}
}
