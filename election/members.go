package election

import (
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

// seqLess orders sequence numbers as ZooKeeper issued them: values that
// wrapped past the signed 32-bit maximum (negative) come after every
// non-negative one. Comparing names as strings would be wrong for exactly
// those wrapped values ("-" sorts before digits).
func seqLess(a, b int64) bool {
	if (a < 0) != (b < 0) {
		return a >= 0
	}
	return a < b
}

// child is one parsed candidate znode name.
type child struct {
	name string
	seq  int64
}

// sortChildren parses names, drops those that are not candidate nodes and
// returns the rest in election order.
func sortChildren(names []string) []child {
	out := make([]child, 0, len(names))
	for _, n := range names {
		if seq, ok := parseSeq(n); ok {
			out = append(out, child{name: n, seq: seq})
		}
	}
	slices.SortFunc(out, func(a, b child) int {
		switch {
		case seqLess(a.seq, b.seq):
			return -1
		case seqLess(b.seq, a.seq):
			return 1
		default:
			return strings.Compare(a.name, b.name)
		}
	})
	return out
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
