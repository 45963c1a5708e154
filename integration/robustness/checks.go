package robustness

import (
	"fmt"
	"math"
	"sort"
	"time"
)

// Violation is one broken invariant, with the operations that show it.
type Violation struct {
	Invariant string
	Detail    string
}

func (v Violation) String() string { return v.Invariant + ": " + v.Detail }

// Invariant names, as the report shows them.
const (
	InvLinearizable  = "linearizable leader path"
	InvLostWrite     = "acknowledged write lost"
	InvPhantom       = "final value never written"
	InvStaleRead     = "local read of a value never written"
	InvDoubleApply   = "write applied twice"
	InvVersionClash  = "two values at one version"
	InvRegression    = "version went backwards on a server"
	InvStaleEpoch    = "write acknowledged under an old epoch"
	InvDualLeader    = "two leaders acknowledging at once"
	InvDivergence    = "servers disagree after healing"
	InvHostileAnswer = "hostile request answered other than 4xx"
)

func opString(op Op) string {
	ret := fmt.Sprintf("%.3fs", op.Return.Seconds())
	if op.Kind == Put && op.Outcome == Unknown {
		ret = "?"
	}
	s := fmt.Sprintf("client %d %s(%s", op.Client, op.Kind, op.Key)
	if op.Kind == Put {
		s += ", " + op.Value
	}
	s += fmt.Sprintf(") on server %d gen %d [%.3fs, %s] %s", op.Server, op.Gen, op.Call.Seconds(), ret, op.Outcome)
	if op.Outcome == OK {
		switch {
		case op.Kind == Put:
			s += fmt.Sprintf(" v%d epoch %d", op.Version, op.Epoch)
		case op.Found:
			s += fmt.Sprintf(" -> %s v%d", op.Value, op.Version)
		default:
			s += " -> absent"
		}
	}
	return s
}

// returnOf is when an operation certainly had taken effect, if it did: never for an unknown
// write, which may take effect at any time after its call.
func returnOf(op Op) time.Duration {
	if op.Kind == Put && op.Outcome != OK {
		return math.MaxInt64
	}
	return op.Return
}

// writesByKey indexes the writes that may have taken effect (acknowledged or unknown) by key
// and by value (values are unique).
func writesByValue(ops []Op) map[string]map[string]Op {
	w := map[string]map[string]Op{}
	for _, op := range ops {
		if op.Kind != Put || op.Outcome == Failed {
			continue
		}
		if w[op.Key] == nil {
			w[op.Key] = map[string]Op{}
		}
		w[op.Key][op.Value] = op
	}
	return w
}

// LostWrites compares the final value of each key, read from the leader after quiescence, with
// the history. An acknowledged write w is lost when the final value is absent, or was written by
// a write x that had been acknowledged before w was even sent (so w must come after x). A
// final value no write wrote is a phantom. An acknowledged write is also lost, even if later
// writes overwrote the key, when a newer epoch acknowledged another value at its version: the
// newer leader never had it.
func LostWrites(ops []Op, final map[string]Op) (lost int, vs []Violation) {
	type kv struct {
		key     string
		version uint64
	}
	newest := map[kv]Op{} // per (key, version): the acknowledged write of the newest epoch
	for _, op := range ops {
		if op.Kind == Put && op.Outcome == OK {
			at := kv{op.Key, op.Version}
			if n, ok := newest[at]; !ok || op.Epoch > n.Epoch {
				newest[at] = op
			}
		}
	}
	for _, op := range ops {
		if n := newest[kv{op.Key, op.Version}]; op.Kind == Put && op.Outcome == OK && op.Epoch < n.Epoch && op.Value != n.Value {
			lost++
			vs = append(vs, Violation{InvLostWrite, fmt.Sprintf("%s, yet the newer leader gave its version to %s", opString(op), opString(n))})
		}
	}
	writes := writesByValue(ops)
	keys := make([]string, 0, len(writes))
	for k := range writes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		f, ok := final[k]
		if !ok {
			continue // no final read: nothing to compare
		}
		var acked []Op
		for _, w := range writes[k] {
			if w.Outcome == OK {
				acked = append(acked, w)
			}
		}
		sort.Slice(acked, func(i, j int) bool { return acked[i].Call < acked[j].Call })
		if !f.Found {
			for _, w := range acked {
				lost++
				vs = append(vs, Violation{InvLostWrite, fmt.Sprintf("key %s is absent at the end; %s", k, opString(w))})
			}
			continue
		}
		x, ok := writes[k][f.Value]
		if !ok {
			vs = append(vs, Violation{InvPhantom, fmt.Sprintf("key %s ends as %q v%d, which no write wrote", k, f.Value, f.Version)})
			continue
		}
		for _, w := range acked {
			if returnOf(x) < w.Call {
				lost++
				vs = append(vs, Violation{InvLostWrite, fmt.Sprintf("key %s ends as %s, written before %s", k, opString(x), opString(w))})
			}
		}
	}
	return lost, vs
}

// StaleReads checks that every successful local read returned absent or a value some write to
// that key sent before the read returned (acknowledged or not: a stale copy may hold a write
// whose acknowledgement was lost).
func StaleReads(ops []Op) []Violation {
	writes := writesByValue(ops)
	var vs []Violation
	for _, op := range ops {
		if op.Kind == Put || op.Outcome != OK || !op.Found {
			continue
		}
		w, ok := writes[op.Key][op.Value]
		if !ok || w.Call > op.Return {
			vs = append(vs, Violation{InvStaleRead, opString(op)})
		}
	}
	return vs
}

// DoubleApplies checks that each (unique) value was seen at one version only, and that no two
// acknowledged writes or leader reads saw different values at the same (key, version).
func DoubleApplies(ops []Op) []Violation {
	type kv struct {
		key     string
		version uint64
	}
	versions := map[string]map[uint64]Op{} // value -> version -> first op seeing it
	values := map[kv]Op{}
	var vs []Violation
	clash := map[kv]bool{}
	for _, op := range ops {
		if op.Outcome != OK || (op.Kind != Put && !op.Found) {
			continue
		}
		id := op.Key + "\x00" + op.Value
		if versions[id] == nil {
			versions[id] = map[uint64]Op{}
		}
		if _, seen := versions[id][op.Version]; !seen {
			versions[id][op.Version] = op
			if len(versions[id]) == 2 {
				var first Op
				for v, o := range versions[id] {
					if v != op.Version {
						first = o
					}
				}
				vs = append(vs, Violation{InvDoubleApply, fmt.Sprintf("%s, yet %s", opString(first), opString(op))})
			}
		}
		if op.Kind == LocalGet {
			continue // a stale copy may hold a write the leader later lost; that is not a clash
		}
		at := kv{op.Key, op.Version}
		if prev, ok := values[at]; ok && prev.Value != op.Value && !clash[at] {
			clash[at] = true
			vs = append(vs, Violation{InvVersionClash, fmt.Sprintf("%s, yet %s", opString(prev), opString(op))})
		} else if !ok {
			values[at] = op
		}
	}
	return vs
}

// Regressions checks that versions never go backwards on a server: per server and key, a local
// read must not answer a lower version than a local read of that server that returned before it
// was sent, nor absent after a found one from the same process. A restarted process (next Gen)
// may start empty but must not serve a version older than one served before.
func Regressions(ops []Op) []Violation {
	type sk struct {
		server int
		key    string
	}
	reads := map[sk][]Op{}
	for _, op := range ops {
		if op.Kind == LocalGet && op.Outcome == OK && op.Gen >= 0 {
			reads[sk{op.Server, op.Key}] = append(reads[sk{op.Server, op.Key}], op)
		}
	}
	var vs []Violation
	var groups []sk
	for g := range reads {
		groups = append(groups, g)
	}
	sort.Slice(groups, func(i, j int) bool {
		if groups[i].server != groups[j].server {
			return groups[i].server < groups[j].server
		}
		return groups[i].key < groups[j].key
	})
	for _, g := range groups {
		byCall := reads[g] // ops come sorted by call
		byReturn := append([]Op(nil), byCall...)
		sort.Slice(byReturn, func(i, j int) bool { return byReturn[i].Return < byReturn[j].Return })
		var maxAny Op          // highest found version returned so far, any process
		maxGen := map[int]Op{} // highest found version per process
		j := 0
		for _, r := range byCall {
			for ; j < len(byReturn) && byReturn[j].Return < r.Call; j++ {
				p := byReturn[j]
				if p.Found && (!maxAny.Found || p.Version > maxAny.Version) {
					maxAny = p
				}
				if m, ok := maxGen[p.Gen]; p.Found && (!ok || p.Version > m.Version) {
					maxGen[p.Gen] = p
				}
			}
			switch {
			case r.Found && maxAny.Found && r.Version < maxAny.Version:
				vs = append(vs, Violation{InvRegression, fmt.Sprintf("%s after %s", opString(r), opString(maxAny))})
			case !r.Found && maxGen[r.Gen].Found:
				vs = append(vs, Violation{InvRegression, fmt.Sprintf("%s after %s", opString(r), opString(maxGen[r.Gen]))})
			}
		}
	}
	return vs
}

// EpochReport is what Epochs finds.
type EpochReport struct {
	StaleAcks  int           // writes acknowledged under an epoch after a newer epoch had acknowledged one
	DualLeader time.Duration // total time during which an older and a newer epoch both acknowledged
	Epochs     int           // distinct epochs that acknowledged writes
}

// Epochs checks that once a write was acknowledged under epoch E2, no write sent later is
// acknowledged under an older epoch E1 < E2: that is a deposed leader acting. "Acting" is
// answering 200 to a write with one's own epoch; the dual-leader time is, per older epoch,
// how long its last acknowledged write was sent after a newer epoch's first acknowledgement.
func Epochs(ops []Op) (EpochReport, []Violation) {
	first := map[int64]time.Duration{} // epoch -> earliest return of an ack
	last := map[int64]time.Duration{}  // epoch -> latest call of an ack
	for _, op := range ops {
		if op.Kind != Put || op.Outcome != OK {
			continue
		}
		if f, ok := first[op.Epoch]; !ok || op.Return < f {
			first[op.Epoch] = op.Return
		}
		if l, ok := last[op.Epoch]; !ok || op.Call > l {
			last[op.Epoch] = op.Call
		}
	}
	epochs := make([]int64, 0, len(first))
	for e := range first {
		epochs = append(epochs, e)
	}
	sort.Slice(epochs, func(i, j int) bool { return epochs[i] < epochs[j] })
	// newerFirst[i]: earliest acknowledgement of any epoch newer than epochs[i].
	newerFirst := make([]time.Duration, len(epochs))
	min := time.Duration(math.MaxInt64)
	for i := len(epochs) - 1; i >= 0; i-- {
		newerFirst[i] = min
		if first[epochs[i]] < min {
			min = first[epochs[i]]
		}
	}
	rep := EpochReport{Epochs: len(epochs)}
	idx := map[int64]int{}
	for i, e := range epochs {
		idx[e] = i
		if d := last[e] - newerFirst[i]; newerFirst[i] != math.MaxInt64 && d > 0 {
			rep.DualLeader += d
		}
	}
	var vs []Violation
	for _, op := range ops {
		if op.Kind != Put || op.Outcome != OK {
			continue
		}
		if nf := newerFirst[idx[op.Epoch]]; op.Call > nf {
			rep.StaleAcks++
			vs = append(vs, Violation{InvStaleEpoch, fmt.Sprintf("%s, sent %.3fs after a newer epoch acknowledged", opString(op), (op.Call - nf).Seconds())})
		}
	}
	if rep.DualLeader > 0 {
		vs = append(vs, Violation{InvDualLeader, fmt.Sprintf("%v in total", rep.DualLeader)})
	}
	return rep, vs
}
