package robustness

import (
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// ms builds offsets on the history clock.
func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

func put(client int, key, value string, call, ret int, version uint64, epoch int64) Op {
	return Op{Client: client, Kind: Put, Key: key, Value: value, Call: ms(call), Return: ms(ret), Outcome: OK, Status: 200,
		Version: version, Epoch: epoch, Found: true}
}

func unknownPut(client int, key, value string, call, ret int) Op {
	return Op{Client: client, Kind: Put, Key: key, Value: value, Call: ms(call), Return: ms(ret), Outcome: Unknown}
}

func get(kind Kind, client, server, gen int, key, value string, call, ret int, version uint64) Op {
	return Op{Client: client, Kind: kind, Key: key, Value: value, Server: server, Gen: gen, Call: ms(call), Return: ms(ret),
		Outcome: OK, Status: 200, Found: value != "", Version: version}
}

// clean is a history that breaks nothing: two writers, an unknown write that took effect, a
// stale local read, leader reads.
func clean() []Op {
	return []Op{
		put(0, "k", "a", 0, 10, 1, 7),
		get(LocalGet, 2, 1, 0, "k", "", 1, 2, 0),
		unknownPut(1, "k", "b", 12, 20),
		get(LeaderGet, 2, 0, 0, "k", "b", 30, 35, 2),
		get(LocalGet, 3, 2, 0, "k", "a", 31, 33, 1), // stale but real
		put(0, "k", "c", 40, 50, 3, 9),
		get(LocalGet, 3, 2, 0, "k", "c", 60, 61, 3),
		put(1, "j", "d", 40, 45, 1, 9),
		unknownPut(1, "j", "never-seen", 50, 60), // dropped: nobody observed it
		put(1, "j", "e", 70, 75, 3, 9),           // v3: the unseen write may have taken v2
	}
}

func TestCheckersPassCleanHistory(t *testing.T) {
	ops := clean()
	if res, _ := Linearizable(ops, 10*time.Second); res != porcupine.Ok {
		t.Errorf("Linearizable = %v, want Ok", res)
	}
	final := map[string]Op{"k": get(LeaderGet, 0, 0, 0, "k", "c", 100, 101, 3), "j": get(LeaderGet, 0, 0, 0, "j", "e", 100, 101, 3)}
	if lost, vs := LostWrites(ops, final); lost != 0 || len(vs) != 0 {
		t.Errorf("LostWrites = %d %v", lost, vs)
	}
	for name, vs := range map[string][]Violation{"StaleReads": StaleReads(ops), "DoubleApplies": DoubleApplies(ops), "Regressions": Regressions(ops)} {
		if len(vs) != 0 {
			t.Errorf("%s = %v", name, vs)
		}
	}
	if rep, vs := Epochs(ops); len(vs) != 0 || rep.Epochs != 2 {
		t.Errorf("Epochs = %+v %v", rep, vs)
	}
}

// Each case is a history with one bug; the checker named must flag it.
func TestCheckersFlagBugs(t *testing.T) {
	tests := []struct {
		name  string
		ops   []Op
		final map[string]Op
		check func([]Op, map[string]Op) []Violation
		want  string
	}{
		{
			name: "non-linearizable leader read (old value after a newer write was acknowledged)",
			ops: []Op{
				put(0, "k", "a", 0, 10, 1, 7),
				put(0, "k", "b", 20, 30, 2, 7),
				get(LeaderGet, 1, 0, 0, "k", "a", 40, 45, 1),
			},
			check: func(ops []Op, _ map[string]Op) []Violation {
				if res, _ := Linearizable(ops, 10*time.Second); res != porcupine.Ok {
					return []Violation{{InvLinearizable, string(res)}}
				}
				return nil
			},
			want: InvLinearizable,
		},
		{
			name: "version reset on the leader path (a leader that restarted empty)",
			ops: []Op{
				put(0, "k", "a", 0, 10, 1, 7),
				put(0, "k", "b", 20, 30, 2, 7),
				put(0, "k", "c", 40, 50, 1, 9),
			},
			check: func(ops []Op, _ map[string]Op) []Violation {
				if res, _ := Linearizable(ops, 10*time.Second); res != porcupine.Ok {
					return []Violation{{InvLinearizable, string(res)}}
				}
				return nil
			},
			want: InvLinearizable,
		},
		{
			name: "acknowledged write lost: the key ends at an older value",
			ops: []Op{
				put(0, "k", "a", 0, 10, 1, 7),
				put(0, "k", "b", 20, 30, 2, 7),
			},
			final: map[string]Op{"k": get(LeaderGet, 0, 0, 0, "k", "a", 100, 101, 1)},
			check: func(ops []Op, final map[string]Op) []Violation { _, vs := LostWrites(ops, final); return vs },
			want:  InvLostWrite,
		},
		{
			name:  "acknowledged write lost: the key is gone (a leader restarted empty)",
			ops:   []Op{put(0, "k", "a", 0, 10, 1, 7)},
			final: map[string]Op{"k": get(LeaderGet, 0, 0, 0, "k", "", 100, 101, 0)},
			check: func(ops []Op, final map[string]Op) []Violation { _, vs := LostWrites(ops, final); return vs },
			want:  InvLostWrite,
		},
		{
			name: "acknowledged write lost then overwritten: a newer leader reused its version",
			ops: []Op{
				put(0, "k", "a", 0, 10, 1, 7),
				put(1, "k", "b", 20, 30, 1, 9),
			},
			final: map[string]Op{"k": get(LeaderGet, 0, 0, 0, "k", "b", 100, 101, 1)},
			check: func(ops []Op, final map[string]Op) []Violation { _, vs := LostWrites(ops, final); return vs },
			want:  InvLostWrite,
		},
		{
			name:  "final value nobody wrote",
			ops:   []Op{put(0, "k", "a", 0, 10, 1, 7)},
			final: map[string]Op{"k": get(LeaderGet, 0, 0, 0, "k", "zzz", 100, 101, 2)},
			check: func(ops []Op, final map[string]Op) []Violation { _, vs := LostWrites(ops, final); return vs },
			want:  InvPhantom,
		},
		{
			name: "local read of a value never written at that key",
			ops: []Op{
				put(0, "k", "a", 0, 10, 1, 7),
				get(LocalGet, 1, 1, 0, "j", "a", 20, 21, 1),
			},
			check: func(ops []Op, _ map[string]Op) []Violation { return StaleReads(ops) },
			want:  InvStaleRead,
		},
		{
			name: "local read of a value before it was written",
			ops: []Op{
				get(LocalGet, 1, 1, 0, "k", "a", 0, 1, 1),
				put(0, "k", "a", 5, 10, 1, 7),
			},
			check: func(ops []Op, _ map[string]Op) []Violation { return StaleReads(ops) },
			want:  InvStaleRead,
		},
		{
			name: "write applied twice (a retried append applied again)",
			ops: []Op{
				put(0, "k", "a", 0, 10, 1, 7),
				get(LocalGet, 1, 1, 0, "k", "a", 20, 21, 1),
				get(LocalGet, 1, 2, 0, "k", "a", 22, 23, 2),
			},
			check: func(ops []Op, _ map[string]Op) []Violation { return DoubleApplies(ops) },
			want:  InvDoubleApply,
		},
		{
			name: "two acknowledged writes at one version",
			ops: []Op{
				put(0, "k", "a", 0, 10, 1, 7),
				put(1, "k", "b", 20, 30, 1, 9),
			},
			check: func(ops []Op, _ map[string]Op) []Violation { return DoubleApplies(ops) },
			want:  InvVersionClash,
		},
		{
			name: "version regression on one server process",
			ops: []Op{
				get(LocalGet, 1, 1, 0, "k", "b", 20, 21, 2),
				get(LocalGet, 2, 1, 0, "k", "a", 30, 31, 1),
			},
			check: func(ops []Op, _ map[string]Op) []Violation { return Regressions(ops) },
			want:  InvRegression,
		},
		{
			name: "key vanished on a live server process",
			ops: []Op{
				get(LocalGet, 1, 1, 0, "k", "b", 20, 21, 2),
				get(LocalGet, 2, 1, 0, "k", "", 30, 31, 0),
			},
			check: func(ops []Op, _ map[string]Op) []Violation { return Regressions(ops) },
			want:  InvRegression,
		},
		{
			name: "restarted server serves a version older than before its crash",
			ops: []Op{
				get(LocalGet, 1, 1, 0, "k", "c", 20, 21, 3),
				get(LocalGet, 2, 1, 1, "k", "", 30, 31, 0), // empty after restart: allowed
				get(LocalGet, 2, 1, 1, "k", "a", 40, 41, 1),
			},
			check: func(ops []Op, _ map[string]Op) []Violation { return Regressions(ops) },
			want:  InvRegression,
		},
		{
			name: "write acknowledged under an old epoch after a newer leader acknowledged",
			ops: []Op{
				put(0, "k", "a", 0, 10, 1, 7),
				put(1, "k", "b", 20, 30, 2, 9),
				put(2, "j", "c", 40, 50, 1, 7),
			},
			check: func(ops []Op, _ map[string]Op) []Violation { _, vs := Epochs(ops); return vs },
			want:  InvStaleEpoch,
		},
		{
			name: "two leaders acknowledging at once",
			ops: []Op{
				put(1, "k", "b", 20, 30, 2, 9),
				put(2, "j", "c", 40, 50, 1, 7),
			},
			check: func(ops []Op, _ map[string]Op) []Violation { _, vs := Epochs(ops); return vs },
			want:  InvDualLeader,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vs := tt.check(tt.ops, tt.final)
			for _, v := range vs {
				if v.Invariant == tt.want {
					t.Logf("flagged: %v", v)
					return
				}
			}
			t.Fatalf("checker missed %q; got %v", tt.want, vs)
		})
	}
}

func TestEpochsDualLeaderTime(t *testing.T) {
	ops := []Op{
		put(0, "k", "a", 0, 10, 1, 7),
		put(1, "k", "b", 20, 30, 2, 9), // newer epoch first acknowledged at 30ms
		put(2, "j", "c", 25, 80, 1, 7), // old epoch still acknowledging a write sent at 25ms: fine
		put(2, "j", "d", 70, 90, 2, 7), // ... and one sent at 70ms: 40ms of two leaders
	}
	rep, vs := Epochs(ops)
	if rep.StaleAcks != 1 || rep.DualLeader != 40*time.Millisecond {
		t.Fatalf("Epochs = %+v %v", rep, vs)
	}
}
