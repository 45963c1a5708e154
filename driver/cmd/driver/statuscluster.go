package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"

	"github.com/zkv-dev/zkv/driver/client"
)

// memberRow is one line of `status -cluster`: a member's own line (/v1/cluster?self=true),
// or why it did not answer.
type memberRow struct {
	Endpoint string `json:"endpoint"`
	ID       string `json:"id"`
	Role     string `json:"role"`
	Epoch    int64  `json:"epoch"`
	Applied  uint64 `json:"applied"`
	// Lag is how many writes the member's store is behind the leader's; null when no
	// member answered as leader.
	Lag           *int64 `json:"lag"`
	Keys          int    `json:"keys"`
	LastContactMS int64  `json:"last_contact_ms"`
	Leader        string `json:"leader"`
	Error         string `json:"error,omitempty"`
}

// clusterStatus prints every member of the cluster -addr belongs to, as -addr's status
// lists them (plus -addr itself), each from its own /v1/cluster?self=true.
func clusterStatus(ctx context.Context, f clientFlags, stdout, stderr io.Writer) int {
	seed, err := f.client().Status(ctx)
	if err != nil {
		return f.answer(stdout, stderr, nil, err)
	}
	ids := map[string]string{*f.addr: seed.ID}
	if seed.Address != "" {
		delete(ids, *f.addr)
		ids[seed.Address] = seed.ID
	}
	for _, m := range seed.Members {
		if m.Address != "" {
			ids[m.Address] = m.ID
		}
	}
	rows := make([]memberRow, 0, len(ids))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for addr, id := range ids {
		wg.Go(func() {
			row := memberRow{Endpoint: addr, ID: id, LastContactMS: -1}
			c := f.clientOf(addr)
			defer func() { _ = c.Close() }()
			st, err := c.Member(ctx)
			if err != nil {
				row.Role, row.Error = "unreachable", err.Error()
			} else {
				row = memberRow{Endpoint: addr, ID: st.ID, Role: st.Role, Epoch: st.Epoch, Applied: st.Applied,
					Keys: st.Keys, LastContactMS: st.LastContactMS, Leader: st.Leader}
			}
			mu.Lock()
			rows = append(rows, row)
			mu.Unlock()
		})
	}
	wg.Wait()
	slices.SortFunc(rows, func(a, b memberRow) int { return cmp.Compare(a.Endpoint, b.Endpoint) })
	setRowLag(rows)
	if *f.json {
		fmt.Fprintln(stdout, string(marshal(rows, true)))
	} else {
		writeTable(stdout, rows)
	}
	for _, r := range rows {
		if r.Error != "" {
			return exitFailed
		}
	}
	return exitOK
}

// setRowLag sets each answering member's lag behind the member that says it leads.
func setRowLag(rows []memberRow) {
	at := slices.IndexFunc(rows, func(r memberRow) bool { return r.Role == client.RoleLeader })
	if at < 0 {
		return
	}
	for i := range rows {
		if rows[i].Error == "" {
			lag := max(0, int64(rows[at].Applied)-int64(rows[i].Applied))
			rows[i].Lag = &lag
		}
	}
}

// writeTable prints rows the way `etcdctl endpoint status --cluster -w table` does.
func writeTable(w io.Writer, rows []memberRow) {
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', tabwriter.Debug)
	headers := []string{"ENDPOINT", "ID", "ROLE", "EPOCH", "APPLIED INDEX", "LAG", "KEYS", "LAST CONTACT"}
	line := func(cells []string) { fmt.Fprintln(tw, " "+strings.Join(cells, "\t ")+"\t") }
	line(headers)
	for _, r := range rows {
		if r.Error != "" {
			line([]string{r.Endpoint, r.ID, r.Role, "-", "-", "-", "-", "-"})
			continue
		}
		lag := "?"
		if r.Lag != nil {
			lag = strconv.FormatInt(*r.Lag, 10)
		}
		line([]string{r.Endpoint, r.ID, r.Role, strconv.FormatInt(r.Epoch, 10), strconv.FormatUint(r.Applied, 10),
			lag, strconv.Itoa(r.Keys), lastContact(r)})
	}
	_ = tw.Flush()
	for _, r := range rows {
		if r.Error != "" {
			fmt.Fprintf(w, "%s: %s\n", r.Endpoint, r.Error)
		}
	}
}

func lastContact(r memberRow) string {
	switch {
	case r.Role == client.RoleLeader:
		return "- (leads)"
	case r.LastContactMS < 0:
		return "never"
	}
	return strconv.FormatInt(r.LastContactMS, 10) + "ms ago"
}
