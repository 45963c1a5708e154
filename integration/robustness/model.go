package robustness

import (
	"fmt"
	"hash/fnv"
	"math"
	"time"

	"github.com/anishathalye/porcupine"
)

// register is the state of one key: the sequential specification the leader path must meet.
// Versions are part of it: each write gets a version above the key's last one. Version is
// exact when Exact, else a lower bound (after a write whose acknowledgement was lost).
type register struct {
	Found   bool
	Value   string
	Version uint64
	Exact   bool
}

type regInput struct {
	Kind  Kind
	Key   string
	Value string
}

type regOutput struct {
	Unknown bool // the write's acknowledgement was lost, but its value was observed: it took effect
	Found   bool
	Value   string
	Version uint64
}

// registerModel is a per-key register. Versions of acknowledged writes must grow (a write
// whose outcome was unknown and never observed is dropped from the history, as etcd's
// robustness tests do, so a gap is allowed); reads must return exactly the current value.
var registerModel = porcupine.Model{
	Partition: partitionByKey,
	Init:      func() interface{} { return register{Exact: true} },
	Step: func(state, input, output interface{}) (bool, interface{}) {
		s, in, out := state.(register), input.(regInput), output.(regOutput)
		switch in.Kind {
		case Put:
			if out.Unknown {
				return true, register{Found: true, Value: in.Value, Version: s.Version + 1}
			}
			return out.Version > s.Version, register{Found: true, Value: in.Value, Version: out.Version, Exact: true}
		case LeaderGet:
			if out.Found != s.Found || (s.Found && out.Value != s.Value) {
				return false, s
			}
			if s.Exact && out.Version != s.Version || !s.Exact && out.Version < s.Version {
				return false, s
			}
			return true, register{Found: s.Found, Value: s.Value, Version: out.Version, Exact: true}
		}
		return false, s
	},
	DescribeOperation: func(input, output interface{}) string {
		in, out := input.(regInput), output.(regOutput)
		if in.Kind == Put {
			if out.Unknown {
				return fmt.Sprintf("put(%s, %s) -> ?", in.Key, in.Value)
			}
			return fmt.Sprintf("put(%s, %s) -> v%d", in.Key, in.Value, out.Version)
		}
		if !out.Found {
			return fmt.Sprintf("get(%s) -> absent", in.Key)
		}
		return fmt.Sprintf("get(%s) -> %s v%d", in.Key, out.Value, out.Version)
	},
	DescribeState: func(state interface{}) string {
		s := state.(register)
		if !s.Found {
			return "absent"
		}
		return fmt.Sprintf("%s v%d", s.Value, s.Version)
	},
}

func hashRegister(state interface{}) uint64 {
	h := fnv.New64a()
	s := state.(register)
	fmt.Fprintf(h, "%t/%s/%d/%t", s.Found, s.Value, s.Version, s.Exact)
	return h.Sum64()
}

func partitionByKey(history []porcupine.Operation) [][]porcupine.Operation {
	byKey := map[string][]porcupine.Operation{}
	var keys []string
	for _, op := range history {
		k := op.Input.(regInput).Key
		if _, ok := byKey[k]; !ok {
			keys = append(keys, k)
		}
		byKey[k] = append(byKey[k], op)
	}
	out := make([][]porcupine.Operation, 0, len(keys))
	for _, k := range keys {
		out = append(out, byKey[k])
	}
	return out
}

// leaderPath turns the leader-path operations of ops into porcupine operations: acknowledged
// writes, successful leader reads, and writes whose outcome is unknown but whose value some read
// observed (so they took effect, at an unknown time: they return at infinity). An unknown write
// nobody observed, a failed write and a failed read change nothing that can be seen: left out.
func leaderPath(ops []Op) []porcupine.Operation {
	observed := map[string]bool{}
	for _, op := range ops {
		if op.Kind != Put && op.Outcome == OK && op.Found {
			observed[op.Key+"\x00"+op.Value] = true
		}
	}
	var out []porcupine.Operation
	for _, op := range ops {
		in := regInput{Kind: op.Kind, Key: op.Key, Value: op.Value}
		switch {
		case op.Kind == Put && op.Outcome == OK:
			out = append(out, porcupine.Operation{ClientId: op.Client, Input: in, Call: int64(op.Call), Return: int64(op.Return),
				Output: regOutput{Found: true, Value: op.Value, Version: op.Version}})
		case op.Kind == Put && op.Outcome == Unknown && observed[op.Key+"\x00"+op.Value]:
			out = append(out, porcupine.Operation{ClientId: op.Client, Input: in, Call: int64(op.Call), Return: math.MaxInt64,
				Output: regOutput{Unknown: true}})
		case op.Kind == LeaderGet && op.Outcome == OK:
			out = append(out, porcupine.Operation{ClientId: op.Client, Input: in, Call: int64(op.Call), Return: int64(op.Return),
				Output: regOutput{Found: op.Found, Value: op.Value, Version: op.Version}})
		}
	}
	return out
}

// Linearizable checks the leader path of ops with porcupine within timeout. The answer is
// porcupine.Ok, porcupine.Illegal, or porcupine.Unknown when the search ran out of time.
func Linearizable(ops []Op, timeout time.Duration) (porcupine.CheckResult, porcupine.LinearizationInfo) {
	m := registerModel
	m.Hash = hashRegister
	return porcupine.CheckOperationsVerbose(m, leaderPath(ops), timeout)
}
