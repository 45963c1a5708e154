package election

import (
	"cmp"
	"encoding/json"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
)

// nodePrefix is the name every candidate znode starts with; ZooKeeper appends
// the sequence number.
const nodePrefix = "server"

// nodeData is the JSON stored in a candidate's znode.
type nodeData struct {
	ID      string            `json:"id"`
	Address string            `json:"address"`
	GUID    string            `json:"guid"`
	Meta    map[string]string `json:"meta,omitempty"`
}

// parseSeq extracts the sequence number from a child name such as
// "server0000000007". ZooKeeper formats its signed 32-bit counter with %010d,
// so after 2147483647 it wraps to "-2147483648"; such names parse as negative.
func parseSeq(name string) (int64, bool) {
	suffix, ok := strings.CutPrefix(name, nodePrefix)
	if !ok || suffix == "" {
		return 0, false
	}
	seq, err := strconv.ParseInt(suffix, 10, 32)
	if err != nil {
		return 0, false
	}
	return seq, true
}

// child is one parsed candidate znode name.
type child struct {
	name string
	seq  int64
}

// sortChildren parses names, drops those that are not candidate nodes and
// returns the rest in election order.
//
// ZooKeeper's sequence is a signed 32-bit counter that wraps: 2147483647 is
// followed by -2147483648, and -1 by 0. So sequences compare as serial
// numbers (RFC 1982) on the 2^32 circle, never as strings ("-" sorts before
// digits) nor as signed integers (after the second wrap 0 would come before
// -1). The candidates registered at any one time span far less than half the
// circle, so the order starts just after the widest gap between them: a total
// order that is serial-number order whenever that comparison is defined.
func sortChildren(names []string) []child {
	out := make([]child, 0, len(names))
	for _, n := range names {
		if seq, ok := parseSeq(n); ok {
			out = append(out, child{name: n, seq: seq})
		}
	}
	slices.SortFunc(out, func(a, b child) int {
		if c := cmp.Compare(uint32(a.seq), uint32(b.seq)); c != 0 {
			return c
		}
		return strings.Compare(a.name, b.name)
	})
	if len(out) < 2 {
		return out
	}
	start, widest := 0, uint32(0)
	for i := range out {
		prev := out[(i+len(out)-1)%len(out)]
		if gap := uint32(out[i].seq) - uint32(prev.seq); gap > widest {
			start, widest = i, gap
		}
	}
	return append(out[start:], out[:start]...)
}

// electionDir returns the znode under which candidates register.
func electionDir(root string) string {
	return path.Join("/", root, "election")
}

// memberFrom decodes a znode's data into a Member.
func memberFrom(dir string, c child, data []byte) (Member, nodeData, error) {
	var d nodeData
	if err := json.Unmarshal(data, &d); err != nil {
		return Member{Node: dir + "/" + c.name, Seq: c.seq}, d, fmt.Errorf("election: decode %s/%s: %w", dir, c.name, err)
	}
	return Member{ID: d.ID, Address: d.Address, Node: dir + "/" + c.name, Seq: c.seq, Meta: d.Meta}, d, nil
}
