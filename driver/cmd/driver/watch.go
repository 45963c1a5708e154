package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"

	"github.com/zkv-dev/zkv/driver/client"
)

// parseMixed parses flags placed before or after the positional arguments
// ("list PREFIX -limit 5" as well as "list -limit 5 PREFIX").
func parseMixed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func runList(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f := newClientFlags("list", "-addr h:p PREFIX [-limit N] [-after K] [-keys] [-all]", stderr)
	limit := f.fs.Int("limit", 0, "at most N keys per page (the server's default 1000 when 0, at most 10000)")
	after := f.fs.String("after", "", "start after this key (the \"next\" of the previous page)")
	keys := f.fs.Bool("keys", false, "keys only, no values")
	all := f.fs.Bool("all", false, "follow the pages to the end and print them as one")
	pos, err := parseMixed(f.fs, args)
	if err != nil {
		return usageCode(err)
	}
	if len(pos) > 1 {
		fmt.Fprintf(stderr, "want one PREFIX (\"\" for every key), got %q\n", pos)
		return 2
	}
	prefix := ""
	if len(pos) == 1 {
		prefix = pos[0]
	}
	c := f.client()
	defer c.Close()
	opts := client.ListOptions{Prefix: prefix, After: *after, Limit: *limit, KeysOnly: *keys}
	page, err := c.List(ctx, opts)
	for *all && err == nil && page.More {
		opts.After = page.Next
		var next client.Page
		if next, err = c.List(ctx, opts); err == nil {
			page.Entries = append(page.Entries, next.Entries...)
			page.More, page.Next, page.Index, page.Applied = next.More, next.Next, next.Index, next.Applied
		}
	}
	return f.answer(stdout, stderr, page, err)
}

// watchLine is one line "driver watch" prints: a key's new state.
type watchLine struct {
	Key     string `json:"key"`
	Value   string `json:"value"`
	Deleted bool   `json:"deleted,omitempty"`
	Version uint64 `json:"version,omitempty"`
	Index   uint64 `json:"index"`
}

func runWatch(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f := newClientFlags("watch", "-addr h:p KEY | -prefix P [-count N] [-index N] [-wait D]", stderr)
	prefix := f.fs.String("prefix", "", "watch every key under this prefix instead of one key")
	count := f.fs.Int("count", 0, "exit after N changes (the initial state is not one); 0: until interrupted")
	index := f.fs.Uint64("index", 0, "print the changes past this index only (default: the current state first)")
	wait := f.fs.Duration("wait", 0, "each blocking request's wait (the server's default 5m when 0)")
	pos, err := parseMixed(f.fs, args)
	if err != nil {
		return usageCode(err)
	}
	isPrefix := false
	f.fs.Visit(func(fl *flag.Flag) { isPrefix = isPrefix || fl.Name == "prefix" })
	target := *prefix
	switch {
	case isPrefix && len(pos) == 0:
	case !isPrefix && len(pos) == 1:
		target = pos[0]
	default:
		fmt.Fprintln(stderr, "want one KEY, or -prefix P")
		f.fs.Usage()
		return 2
	}
	c := f.client()
	defer c.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	enc := json.NewEncoder(stdout)
	changes := c.Watch(ctx, target, client.WatchOptions{Prefix: isPrefix, Index: *index, Wait: *wait,
		List: client.ListOptions{Limit: 10000}})
	seen := map[string]uint64{} // a prefix's keys as last listed, and their indexes
	initial := *index == 0
	n := 0
	for ch := range changes {
		if ch.Err != nil {
			fmt.Fprintf(stderr, "watch: %v (retrying)\n", ch.Err)
			continue
		}
		var lines []watchLine
		if isPrefix {
			lines = diffPage(seen, ch.Page, *index)
			if ch.Page.More {
				fmt.Fprintf(stderr, "watch: more than %d keys under %q: changes past the first page are not shown\n",
					len(ch.Page.Entries), target)
			}
		} else {
			lines = []watchLine{{Key: ch.KV.Key, Value: ch.KV.Value, Deleted: !ch.KV.Found, Version: ch.KV.Version, Index: ch.Index}}
		}
		for _, l := range lines {
			if err := enc.Encode(l); err != nil {
				return 1
			}
		}
		if initial {
			initial = false
			continue
		}
		if n++; *count > 0 && n >= *count {
			return 0
		}
	}
	return 0
}

// diffPage turns a prefix's new page into lines: the keys written since the last page (or
// past from, on the first), and those gone (deleted). It updates seen.
func diffPage(seen map[string]uint64, p client.Page, from uint64) []watchLine {
	var lines []watchLine
	now := make(map[string]bool, len(p.Entries))
	first := len(seen) == 0
	for _, e := range p.Entries {
		now[e.Key] = true
		if old, ok := seen[e.Key]; !ok && (!first || e.Index > from) || ok && e.Index != old {
			lines = append(lines, watchLine{Key: e.Key, Value: e.Value, Version: e.Version, Index: e.Index})
		}
		seen[e.Key] = e.Index
	}
	var gone []string
	for k := range seen {
		if !now[k] && !(p.More && k > p.Next) {
			gone = append(gone, k)
		}
	}
	sort.Strings(gone)
	for _, k := range gone {
		lines = append(lines, watchLine{Key: k, Deleted: true, Index: p.Index})
		delete(seen, k)
	}
	return lines
}

func usageCode(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	return 2
}
