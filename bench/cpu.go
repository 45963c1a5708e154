package bench

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// The CPU time a cell costs: read from the kernel's accounting of each process, it depends far
// less on what else runs on a shared machine than throughput does.
//
// A process's time is utime+stime of /proc/<pid>/stat, which the kernel sums over every thread
// of the process, live and exited. /proc/<pid>/schedstat is finer (ns) but describes the
// process's main thread alone: for a Go server, which works on other threads, it reads near
// zero. The load generator's own time is getrusage(RUSAGE_SELF), in µs, also over all threads.

// cpuTargets names the processes whose CPU time a cell counts.
type cpuTargets struct {
	Servers   []int // the system's processes
	Leader    int   // the zkv leader's process, one of Servers; 0 when unknown
	ZooKeeper []int // a local ZooKeeper's processes, reported apart from the system's
	InProcess bool  // the system serves from this process (the ceiling without a process of its own)
}

// cpuReading is the CPU time consumed so far by the targets, summed per part, at one instant.
type cpuReading struct {
	At        time.Time
	Server    time.Duration
	Leader    time.Duration
	ZooKeeper time.Duration
	Client    time.Duration // this process

	// The read and write system calls of the system's processes (/proc/<pid>/io: syscr +
	// syscw, every thread): a count of work that, unlike time, does not depend on how fast a
	// shared core ran. HasIO is false when a process's io file could not be read.
	ServerIO, LeaderIO uint64
	HasIO              bool
}

// cellCPU is the CPU time spent during a cell's measured window.
type cellCPU struct {
	Window       time.Duration // wall time between the two readings
	Server       time.Duration // every process of the system
	Leader       time.Duration // part of Server
	HasLeader    bool
	ZooKeeper    time.Duration // not part of Server
	HasZooKeeper bool
	Client       time.Duration // the load generator, and the server too when InProcess
	InProcess    bool
	ServerIO     uint64 // read and write system calls of the system's processes
	LeaderIO     uint64 // part of ServerIO
	HasIO        bool   // both readings had the io counts
}

// read takes one reading: this process first, then each target in turn.
func (t cpuTargets) read(hz int64, procCPU func(pid int, hz int64) (time.Duration, error)) (cpuReading, error) {
	r := cpuReading{At: time.Now()}
	var err error
	if r.Client, err = selfCPU(); err != nil {
		return r, err
	}
	for _, pid := range t.Servers {
		d, err := procCPU(pid, hz)
		if err != nil {
			return r, err
		}
		r.Server += d
		if pid == t.Leader {
			r.Leader = d
		}
	}
	for _, pid := range t.ZooKeeper {
		d, err := procCPU(pid, hz)
		if err != nil {
			return r, err
		}
		r.ZooKeeper += d
	}
	return r, nil
}

// spent is the CPU time between readings a and b of targets t.
func (t cpuTargets) spent(a, b cpuReading) cellCPU {
	return cellCPU{
		Window:       b.At.Sub(a.At),
		Server:       b.Server - a.Server,
		Leader:       b.Leader - a.Leader,
		HasLeader:    t.Leader != 0,
		ZooKeeper:    b.ZooKeeper - a.ZooKeeper,
		HasZooKeeper: len(t.ZooKeeper) > 0,
		Client:       b.Client - a.Client,
		InProcess:    t.InProcess,
		ServerIO:     b.ServerIO - a.ServerIO,
		LeaderIO:     b.LeaderIO - a.LeaderIO,
		HasIO:        a.HasIO && b.HasIO,
	}
}

// readIO adds the targets' system-call counts to r; a process whose io file cannot be read
// leaves r without them (HasIO false), not failed: the counts are extra.
func (t cpuTargets) readIO(r *cpuReading, procIO func(pid int) (uint64, error)) {
	r.ServerIO, r.LeaderIO, r.HasIO = 0, 0, false
	if procIO == nil || t.InProcess || len(t.Servers) == 0 {
		return
	}
	for _, pid := range t.Servers {
		n, err := procIO(pid)
		if err != nil {
			return
		}
		r.ServerIO += n
		if pid == t.Leader {
			r.LeaderIO = n
		}
	}
	r.HasIO = true
}

// procIO is a process's read and write system calls so far (syscr + syscw of
// /proc/<pid>/io, summed over its threads by the kernel).
func procIO(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return 0, err
	}
	return parseProcIO(b)
}

// parseProcIO reads syscr and syscw from the text of /proc/<pid>/io.
func parseProcIO(b []byte) (uint64, error) {
	var sum uint64
	found := 0
	for line := range strings.Lines(string(b)) {
		name, val, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || (name != "syscr" && name != "syscw") {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSpace(val), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("bench: /proc io: %s: %w", name, err)
		}
		sum += n
		found++
	}
	if found != 2 {
		return 0, errors.New("bench: /proc io: no syscr and syscw")
	}
	return sum, nil
}

// perOpCount is n, a count read over the cell's window, per operation. NaN when the cell has
// no CPU reading or no operations.
func (c loadCell) perOpCount(n uint64) float64 { return c.perOpOfWindow(float64(n)) }

// Total is the system's and the load generator's CPU time, ZooKeeper left out (zkv's
// coordination service, which the other systems do not have: the report shows it apart).
func (c cellCPU) Total() time.Duration { return c.Server + c.Client }

// perOp is d, a CPU time read over the cell's window, in µs per operation: the CPU rate over
// the window divided by the rate of operations that ended in it. Dividing the rates keeps a
// reading taken a little late (the meter's goroutine waits for a core like the rest) from
// counting against ops it did not see. NaN when the cell has no CPU reading or no operations.
func (c loadCell) perOp(d time.Duration) float64 { return c.perOpOfWindow(d.Seconds()) * 1e6 }

// perOpOfWindow divides x, an amount read over the CPU window, by the operations of the cell:
// its rate over the window over the rate of operations that ended in it. NaN when the cell
// has no CPU reading or no operations.
func (c loadCell) perOpOfWindow(x float64) float64 {
	r := c.Result
	if c.CPU == nil || c.CPU.Window <= 0 || r.Ended == 0 || r.Elapsed <= 0 {
		return math.NaN()
	}
	opsPerSec := float64(r.Ended) / r.Elapsed.Seconds()
	return x / c.CPU.Window.Seconds() / opsPerSec
}

// cores is the CPU time the cell used per second of its window: how many cores it kept busy,
// ZooKeeper included. NaN without a reading.
func (c cellCPU) cores() float64 {
	if c.Window <= 0 {
		return math.NaN()
	}
	return (c.Total() + c.ZooKeeper).Seconds() / c.Window.Seconds()
}

// cpuMeter is the windowMeter that reads the targets' CPU time at the edges of a cell's window.
type cpuMeter struct {
	t       cpuTargets
	hz      int64
	procCPU func(pid int, hz int64) (time.Duration, error)
	procIO  func(pid int) (uint64, error) // nil: no system-call counts

	first, last cpuReading
	n           int // readings taken
	err         error
}

func (m *cpuMeter) begin() { m.take(&m.first) }
func (m *cpuMeter) end()   { m.take(&m.last) }

func (m *cpuMeter) take(into *cpuReading) {
	if m.err != nil {
		return
	}
	r, err := m.t.read(m.hz, m.procCPU)
	if err != nil {
		m.err = fmt.Errorf("bench: cpu time: %w", err)
		return
	}
	m.t.readIO(&r, m.procIO)
	*into = r
	m.n++
}

// result is the window's CPU time; an error when a reading failed or the window never closed.
// Call it after the loop returned.
func (m *cpuMeter) result() (*cellCPU, error) {
	if m.err != nil {
		return nil, m.err
	}
	if m.n != 2 {
		return nil, errors.New("bench: cpu time: the measured window did not complete")
	}
	c := m.t.spent(m.first, m.last)
	return &c, nil
}

// procCPU is a process's user and system time so far, over all its threads.
func procCPU(pid int, hz int64) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStatCPU(b, hz)
}

// parseStatCPU reads utime and stime (fields 14 and 15, in clock ticks of 1/hz s) from the text
// of /proc/<pid>/stat.
func parseStatCPU(stat []byte, hz int64) (time.Duration, error) {
	f, err := statFields(stat)
	if err != nil {
		return 0, err
	}
	if hz <= 0 {
		return 0, fmt.Errorf("bench: /proc stat: %d clock ticks per second", hz)
	}
	u, err1 := strconv.ParseUint(f[14-3], 10, 64)
	s, err2 := strconv.ParseUint(f[15-3], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("bench: /proc stat: %w", err)
	}
	return ticksToDuration(u+s, hz), nil
}

// statFields splits /proc/<pid>/stat after its second field, the command name in parentheses,
// which may hold spaces and parentheses itself: the fields are counted from the last ')'. The
// first field returned is field 3 (the state); it returns at least up to field 15 (stime).
func statFields(stat []byte) ([]string, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return nil, fmt.Errorf("bench: /proc stat: no command name in %q", shorten(string(stat), 40))
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 15-2 {
		return nil, fmt.Errorf("bench: /proc stat: %d fields after the command name", len(f))
	}
	return f, nil
}

// childrenRunning returns the processes whose parent is ppid and whose command line holds
// match: the local ZooKeeper's java processes, which the launcher starts without telling
// their PIDs.
func childrenRunning(ppid int, match string) ([]int, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue // gone meanwhile
		}
		f, err := statFields(b)
		if err != nil || f[4-3] != strconv.Itoa(ppid) {
			continue
		}
		cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err == nil && bytes.Contains(cmd, []byte(match)) {
			out = append(out, pid)
		}
	}
	return out, nil
}

func ticksToDuration(ticks uint64, hz int64) time.Duration {
	sec, rest := ticks/uint64(hz), ticks%uint64(hz)
	return time.Duration(sec)*time.Second + time.Duration(rest)*time.Second/time.Duration(hz)
}

// selfCPU is this process's user and system time so far, over all its threads.
func selfCPU() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, fmt.Errorf("bench: getrusage: %w", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}

// clockTicks is the unit of /proc's times per second, sysconf(_SC_CLK_TCK): the kernel hands it
// to every process as AT_CLKTCK in the auxiliary vector. 100 when that cannot be read (the value
// of every Linux architecture Go runs on).
var clockTicks = sync.OnceValue(func() int64 {
	b, err := os.ReadFile("/proc/self/auxv")
	if err != nil {
		return 100
	}
	if hz, ok := auxvValue(b, atClkTck, int(unsafe.Sizeof(uintptr(0)))); ok && hz > 0 {
		return int64(hz)
	}
	return 100
})

const atClkTck = 17 // AT_CLKTCK of <elf.h>

// auxvValue finds the value of entry key in auxv, pairs of native words of size word.
func auxvValue(auxv []byte, key uint64, word int) (uint64, bool) {
	get := func(b []byte) uint64 {
		if word == 4 {
			return uint64(binary.NativeEndian.Uint32(b))
		}
		return binary.NativeEndian.Uint64(b)
	}
	for i := 0; i+2*word <= len(auxv); i += 2 * word {
		k, v := get(auxv[i:]), get(auxv[i+word:])
		if k == key {
			return v, true
		}
		if k == 0 { // AT_NULL ends the vector
			break
		}
	}
	return 0, false
}
