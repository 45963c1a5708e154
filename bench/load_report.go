package bench

import (
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"time"

	"gonum.org/v1/plot/plotter"
)

// find returns the first cell matching; ok false when none.
func (r *loadRun) find(system, op string, size, clients, servers int) (loadCell, bool) {
	for _, c := range r.Cells {
		if c.System == system && c.Op == op && c.ValueSize == size && c.Clients == clients && c.Servers == servers {
			return c, true
		}
	}
	return loadCell{}, false
}

func fmtOps(f float64) string {
	switch {
	case f >= 100:
		return fmt.Sprintf("%.0f", f)
	case f >= 10:
		return fmt.Sprintf("%.1f", f)
	default:
		return fmt.Sprintf("%.2f", f)
	}
}

// ratio is one comparison of two cells' throughput (or p99 latency) against a target.
type ratio struct {
	Name      string
	Num, Den  loadCell
	OK        bool // both cells exist
	Target    float64
	HasTarget bool
	P99       bool // compares p99 latencies: the target is a ceiling, not a floor
	CPU       bool // compares total CPU time per operation (lower is leaner); informational
}

func (r ratio) value() float64 {
	if r.CPU {
		return r.Num.perOp(r.Num.CPU.Total()) / r.Den.perOp(r.Den.CPU.Total())
	}
	if r.P99 {
		if r.Den.Result.Latency.P99 == 0 {
			return 0
		}
		return float64(r.Num.Result.Latency.P99) / float64(r.Den.Result.Latency.P99)
	}
	d := r.Den.Result.Throughput()
	if d == 0 {
		return 0
	}
	return r.Num.Result.Throughput() / d
}

// met reports whether the ratio meets its target.
func (r ratio) met() bool {
	if r.P99 {
		return r.value() <= r.Target
	}
	return r.value() >= r.Target
}

// cellText is what the report shows of a ratio's cell: ops/s, or p99 ms.
func (r ratio) cellText(c loadCell) string {
	if r.CPU {
		return fmtCPU(c.perOp(c.CPU.Total())) + " µs/op"
	}
	if r.P99 {
		return fmtDur(c.Result.Latency.P99) + " ms p99"
	}
	return fmtOps(c.Result.Throughput())
}

func (o loadOptions) ratios(run *loadRun) []ratio {
	size, c := o.ValueSizes[0], o.SizeClients
	mkAt := func(name string, clients int, ns, nop string, nservers int, ds, dop string, dservers int, target float64) ratio {
		n, ok1 := run.find(ns, nop, size, clients, nservers)
		d, ok2 := run.find(ds, dop, size, clients, dservers)
		return ratio{Name: name, Num: n, Den: d, OK: ok1 && ok2, Target: target, HasTarget: target > 0}
	}
	mk := func(name string, ns, nop, ds, dop string, target float64) ratio {
		return mkAt(name, c, ns, nop, 3, ds, dop, serversOf(ds), target)
	}
	p99 := mk("zkv PUT ack all p99 / etcd put p99", "zkv", "PUT ack all", "etcd", "put", 0.8)
	p99.P99 = true
	cpu := mk("zkv PUT ack all total CPU per op / etcd put total CPU per op", "zkv", "PUT ack all", "etcd", "put", 0)
	cpu.CPU = true
	cpu.OK = cpu.OK && cpu.Num.CPU != nil && cpu.Den.CPU != nil
	scaleTo := 0
	for _, n := range o.Scale {
		scaleTo = max(scaleTo, n)
	}
	return []ratio{
		mk("zkv PUT ack all / etcd put", "zkv", "PUT ack all", "etcd", "put", 1.5),
		mkAt("zkv PUT ack all / etcd put, 256 clients", 256, "zkv", "PUT ack all", 3, "etcd", "put", 3, 2.0),
		p99,
		cpu,
		mk("zkv PUT ack all / Redis SET + WAIT 2", "zkv", "PUT ack all", "redis", "SET + WAIT 2", 0),
		mk("zkv PUT ack majority / etcd put", "zkv", "PUT ack majority", "etcd", "put", 1.6),
		mk("zkv PUT ack leader / etcd put", "zkv", "PUT ack leader", "etcd", "put", 0),
		mk("zkv GET local / etcd get serializable", "zkv", "GET local", "etcd", "get serializable", 1),
		mk("zkv GET local / HTTP ceiling", "zkv", "GET local", "ceiling", "GET fixed body", 0.9),
		mk("zkv GET local / Redis GET replica", "zkv", "GET local", "redis", "GET from a replica", 0),
		mk("zkv GET leader / etcd get linearizable", "zkv", "GET ?consistency=leader", "etcd", "get linearizable", 2.0),
		mk("zkv 90/10 mix / etcd 90/10 mix", "zkv", "90% GET local / 10% PUT ack all", "etcd", "90% get serializable / 10% put", 0),
		mk("zkv 90/10 mix / Redis 90/10 mix", "zkv", "90% GET local / 10% PUT ack all", "redis", "90% GET replica / 10% SET+WAIT", 0),
		mkAt(fmt.Sprintf("zkv PUT ack all, %d servers / 3 servers", scaleTo), o.ScaleClients, "zkv", "PUT ack all", scaleTo, "zkv", "PUT ack all", 3, 0.8),
	}
}

// serversOf is the server count of a comparison system's cells.
func serversOf(system string) int {
	if system == "ceiling" {
		return 1
	}
	return 3
}

// loadPlots draws throughput against clients at the first value size: one plot for writes, one
// for reads and mixes.
func loadPlots(o loadOptions, run *loadRun, reportDir string) ([]string, error) {
	size := o.ValueSizes[0]
	var files []string
	for _, group := range []struct {
		base, title string
		kinds       []string
	}{
		{"load-writes", "writes", []string{"write"}},
		{"load-reads", "reads and 90/10 mixes", []string{"read", "mixed"}},
	} {
		var ss []series
		seen := map[string]int{}
		for _, c := range run.Cells {
			if c.ValueSize != size || (c.System == "zkv" && c.Servers != 3) || !contains(group.kinds, c.Kind) {
				continue
			}
			name := c.System + ": " + c.Op
			i, ok := seen[name]
			if !ok {
				i = len(ss)
				seen[name] = i
				ss = append(ss, series{Name: name})
			}
			ss[i].Points = append(ss[i].Points, plotter.XY{X: float64(c.Clients), Y: c.Result.Throughput()})
		}
		var keep []series
		for _, s := range ss {
			if len(s.Points) > 1 {
				keep = append(keep, s)
			}
		}
		fs, err := lineChart(o.ImgDir, group.base, fmt.Sprintf("Throughput, %s, %d-byte values", group.title, size), "closed-loop clients", "ops/s", true, true, keep)
		if err != nil {
			return files, err
		}
		for _, f := range fs {
			if rel, err := filepath.Rel(reportDir, f); err == nil {
				f = rel
			}
			files = append(files, f)
		}
	}
	return files, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func loadMarkdown(o loadOptions, run *loadRun, when time.Time, took time.Duration, plots []string) string {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	w("# zkv load benchmarks\n\n")
	w("Generated by `%s` on %s (took %v).\n\n", o.Command, when.UTC().Format("2006-01-02 15:04 MST"), took.Round(time.Second))
	w("- Machine: %s. Every process (servers, ZooKeeper, the load generator) shares these cores, and other work ran on the machine too: read the figures as ratios within this run, not as absolutes.\n", machine())
	w("- Load: closed-loop clients (each sends its next request when the last is answered), %d-byte keys over a key space of %d preloaded keys, picked uniformly; %v measured per cell after a %v warm-up. Clients %v at %d-byte values; %d clients at the other sizes. Latency is per request, from send to the whole answer read.\n",
		keyBytes, o.Keys, o.Duration, o.Warmup, o.Clients, o.ValueSizes[0], o.SizeClients)
	w("- zkv: 3 servers (`-ack all|majority|leader`, one cluster per mode), `-session_timeout %v`; clients spread round-robin over all servers (a follower forwards writes and `?consistency=leader` reads to the leader). Plain net/http client, keep-alive pool as large as the client count.\n", o.SessionTimeout)
	if v := run.Versions["zookeeper"]; v != "" {
		w("- ZooKeeper: %s.\n", v)
	}
	w("- etcd %s: 3 members on loopback, data in `%s` (tmpfs when /dev/shm, so fsync is nearly free: the comparison is of request and replication paths, not disks); go.etcd.io/etcd/client/v3 v3.5, one client per member, worker i on member i mod 3.\n", orDash(run.Versions["etcd"]), o.EtcdDataDir)
	w("- Redis %s: a primary and 2 replicas, no persistence; go-redis v9. Writes are SET then WAIT 2 pipelined in one round trip (the parity of ack all); reads GET from the replicas.\n", orDash(run.Versions["redis"]))
	w("- Ceiling: a bare Go net/http server in its own process answering a fixed body shaped like zkv's GET answer: the most one HTTP round trip can do here.\n")
	w("- Not installed systems are skipped: `apt-get install -y etcd-server redis-server`.\n\n")
	for _, s := range run.Skipped {
		w("**Skipped:** %s\n\n", s)
	}
	for _, n := range run.Notes {
		w("**Note:** %s\n\n", n)
	}

	w("## Targets (%d clients, %d-byte values)\n\n", o.SizeClients, o.ValueSizes[0])
	w("| ratio | numerator | denominator | ratio | target | verdict |\n|---|---:|---:|---:|---:|---|\n")
	for _, r := range o.ratios(run) {
		if !r.OK {
			w("| %s | | | n/a | | not measured |\n", r.Name)
			continue
		}
		target, verdict := "", ""
		if r.HasTarget {
			target = fmt.Sprintf(">= %.2g", r.Target)
			if r.P99 {
				target = fmt.Sprintf("<= %.2g", r.Target)
			}
			verdict = "met"
			if !r.met() {
				verdict = "**missed**"
			}
		}
		w("| %s | %s | %s | %.2f | %s | %s |\n", r.Name, r.cellText(r.Num), r.cellText(r.Den), r.value(), target, verdict)
	}
	w("\nThe failover targets are in [election-latency.md](election-latency.md).\n\n")

	w("## All cells\n\n")
	w("| system | op | value B | clients | ops/s | p50 ms | p99 ms | errors |\n|---|---|---:|---:|---:|---:|---:|---:|\n")
	for _, c := range run.Cells {
		if c.System == "zkv" && c.Servers != 3 {
			continue
		}
		r := c.Result
		errs := fmt.Sprint(r.Errors)
		if r.Errors > 0 && r.FirstErr != nil {
			errs = fmt.Sprintf("%d (%s)", r.Errors, shorten(r.FirstErr.Error(), 60))
		}
		w("| %s | %s | %d | %d | %s | %s | %s | %s |\n", c.System, c.Op, c.ValueSize, c.Clients, fmtOps(r.Throughput()), fmtDur(r.Latency.P50), fmtDur(r.Latency.P99), errs)
	}
	w("\n## zkv write scaling (PUT ack all, %d clients, %d-byte values)\n\n", o.ScaleClients, o.ValueSizes[0])
	w("| servers | ops/s | p50 ms | p99 ms | errors |\n|---:|---:|---:|---:|---:|\n")
	for _, n := range o.Scale {
		if c, ok := run.find("zkv", "PUT ack all", o.ValueSizes[0], o.ScaleClients, n); ok {
			w("| %d | %s | %s | %s | %d |\n", n, fmtOps(c.Result.Throughput()), fmtDur(c.Result.Latency.P50), fmtDur(c.Result.Latency.P99), c.Result.Errors)
		}
	}
	w("\n")
	w("%s", cpuMarkdown(run))
	if m := run.Memory; m != nil {
		w("## zkv memory per key\n\n")
		w("Measured from each server's process RSS (`VmRSS` in /proc/<pid>/status) before and after writing %d new %d-byte keys with %d-byte values through a 3-server cluster under ack leader (%v). RSS includes the Go runtime's free heap and the leader's in-memory replication log, so it is an upper bound on what the store itself takes; `go test -bench MemoryPerKey ./kvstore` measures the store's heap alone.\n\n",
			m.Keys, keyBytes, m.ValueSize, m.Took.Round(time.Second))
		if m.Err != "" {
			w("The load did not complete: %s\n\n", m.Err)
		}
		if len(m.After) == len(m.Before) && m.Loaded > 0 {
			w("| server | RSS before MiB | RSS after MiB | bytes per key |\n|---:|---:|---:|---:|\n")
			for i := range m.Before {
				w("| %d | %.0f | %.0f | %.0f |\n", i+1, float64(m.Before[i])/(1<<20), float64(m.After[i])/(1<<20), float64(m.After[i]-m.Before[i])/float64(m.Loaded))
			}
			w("\n")
		}
	}
	if p := run.Profile; p != nil {
		w("%s", profileMarkdown(o, run, p))
	}
	if len(plots) > 0 {
		w("## Plots\n\nThroughput against closed-loop clients (log-log), %d-byte values, 3 zkv servers.\n\n", o.ValueSizes[0])
		for _, p := range plots {
			if strings.HasSuffix(p, ".png") {
				w("![%s](%s) ([SVG](%s))\n\n", filepath.Base(p), filepath.ToSlash(p), filepath.ToSlash(strings.TrimSuffix(p, ".png")+".svg"))
			}
		}
	}
	return b.String()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func shorten(s string, n int) string {
	s = strings.ReplaceAll(s, "|", "/")
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// cpuMarkdown is the report's "CPU per operation" section: a row per cell.
func cpuMarkdown(run *loadRun) string {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	w("## CPU per operation\n\n")
	w("CPU time (user + system) spent during each cell's measured window, divided by the operations that ended in it. It moves less than throughput with what else runs on the shared machine, so it is the steadier figure to compare between runs. " +
		"*server*: the system's processes summed (zkv's servers, etcd's members, Redis's primary and replicas, the ceiling's process), each read from `/proc/<pid>/stat` (every thread, in clock ticks of 1/100 s); " +
		"*leader*: the zkv leader's share of it; " +
		"*client*: the load generator, this bench process (`getrusage`): the client libraries, the loop, and background work that weighs most in the cells with few operations; " +
		"*total*: server + client; " +
		"*ZooKeeper*: the local ZooKeeper's processes, left out of the total (read only when the bench starts them as local processes, not in Docker or a given ensemble); " +
		"*cores busy*: the CPU time of all of them per second of the window, near the machine's core count when the cell was bound by CPU; " +
		"*server syscalls/op*, *leader syscalls/op*: the read and write system calls of the system's processes and of the zkv leader (`syscr` + `syscw` of `/proc/<pid>/io`), a count of work that does not depend on how fast a shared core ran.\n\n")
	w("| system | op | value B | clients | servers | server µs/op | leader µs/op | client µs/op | total µs/op | ZooKeeper µs/op | cores busy | server syscalls/op | leader syscalls/op |\n")
	w("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, c := range run.Cells {
		w("| %s | %s | %d | %d | %d | ", c.System, c.Op, c.ValueSize, c.Clients, c.Servers)
		p := c.CPU
		if p == nil {
			w("not read: %s | | | | | | | |\n", shorten(c.CPUErr, 60))
			continue
		}
		server, leader, zk := "in client", "-", "-"
		if !p.InProcess {
			server = fmtCPU(c.perOp(p.Server))
		}
		if p.HasLeader {
			leader = fmtCPU(c.perOp(p.Leader))
		}
		if p.HasZooKeeper {
			zk = fmtCPU(c.perOp(p.ZooKeeper))
		}
		sysServer, sysLeader := "-", "-"
		if p.HasIO {
			sysServer = fmtCount(c.perOpCount(p.ServerIO))
			if p.HasLeader {
				sysLeader = fmtCount(c.perOpCount(p.LeaderIO))
			}
		}
		w("%s | %s | %s | %s | %s | %.2f | %s | %s |\n", server, leader, fmtCPU(c.perOp(p.Client)), fmtCPU(c.perOp(p.Total())), zk, p.cores(), sysServer, sysLeader)
	}
	w("\n")
	return b.String()
}

// fmtCount formats a count per operation; "-" when there is none.
func fmtCount(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "-"
	}
	return fmt.Sprintf("%.2f", v)
}

// fmtCPU formats µs per operation; "-" when there is none.
func fmtCPU(us float64) string {
	if math.IsNaN(us) || math.IsInf(us, 0) {
		return "-"
	}
	return fmtOps(math.Round(us*1000) / 1000) // 99.9999999 from float division is 100
}
