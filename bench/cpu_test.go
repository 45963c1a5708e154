package bench

import (
	"encoding/binary"
	"errors"
	"math"
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"
)

// A line of /proc/<pid>/stat whose command name holds a space and parentheses; utime 250 and
// stime 57 ticks, cutime and cstime (the children's, not counted) 9000 and 9000.
const statFixture = "4242 (my (odd) srv) S 1 4242 4242 0 -1 4194560 3217 0 0 0 250 57 9000 9000 20 0 12 0 2170216 1256636416 549 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0"

func TestParseStatCPU(t *testing.T) {
	for _, tc := range []struct {
		hz   int64
		want time.Duration
	}{{100, 3070 * time.Millisecond}, {250, 1228 * time.Millisecond}, {1000, 307 * time.Millisecond}} {
		got, err := parseStatCPU([]byte(statFixture), tc.hz)
		if err != nil || got != tc.want {
			t.Errorf("hz %d: %v, %v; want %v", tc.hz, got, err, tc.want)
		}
	}
	for _, bad := range []string{
		"4242 no parentheses S 1 2 3",
		"4242 (srv) S 1 4242 4242 0 -1 4194560 3217 0 0 0 250", // cut before stime
		"4242 (srv) S 1 4242 4242 0 -1 4194560 3217 0 0 0 250 x7 0 0",
	} {
		if d, err := parseStatCPU([]byte(bad), 100); err == nil {
			t.Errorf("%q parsed as %v", bad, d)
		}
	}
	if _, err := parseStatCPU([]byte(statFixture), 0); err == nil {
		t.Error("0 ticks per second accepted")
	}
	f, err := statFields([]byte(statFixture))
	if err != nil || f[0] != "S" || f[4-3] != "1" {
		t.Fatalf("fields %q %v: want state S, parent 1", f, err)
	}
}

func TestAuxvClockTicks(t *testing.T) {
	words := func(size int, v ...uint64) []byte {
		var b []byte
		for _, x := range v {
			if size == 4 {
				b = binary.NativeEndian.AppendUint32(b, uint32(x))
			} else {
				b = binary.NativeEndian.AppendUint64(b, x)
			}
		}
		return b
	}
	for _, size := range []int{4, 8} {
		auxv := words(size, 33, 0x7ffd, 6, 4096, atClkTck, 250, 0, 0, atClkTck, 999)
		if v, ok := auxvValue(auxv, atClkTck, size); !ok || v != 250 {
			t.Errorf("word %d: %d %v, want 250", size, v, ok)
		}
		if v, ok := auxvValue(words(size, 6, 4096, 0, 0, atClkTck, 999), atClkTck, size); ok {
			t.Errorf("word %d: found %d after AT_NULL", size, v)
		}
		if _, ok := auxvValue(words(size, 6)[:size], atClkTck, size); ok {
			t.Errorf("word %d: found in a cut vector", size)
		}
	}
	if hz := clockTicks(); hz <= 0 {
		t.Fatalf("clock ticks %d", hz)
	}
}

// This process's own time, through /proc and through getrusage.
func TestOwnCPUTime(t *testing.T) {
	d, err := procCPU(os.Getpid(), clockTicks())
	if err != nil || d < 0 {
		t.Fatalf("procCPU(self) = %v, %v", d, err)
	}
	s, err := selfCPU()
	if err != nil || s <= 0 {
		t.Fatalf("selfCPU = %v, %v", s, err)
	}
	if _, err := procCPU(math.MaxInt32, 100); err == nil {
		t.Fatal("no error for a process that does not exist")
	}
}

// fakeCPU serves per-process CPU times from a map, as a /proc would.
type fakeCPU map[int]time.Duration

func (f fakeCPU) read(pid int, hz int64) (time.Duration, error) {
	d, ok := f[pid]
	if !ok {
		return 0, errors.New("no such process")
	}
	return d, nil
}

func TestCPUReadingsAndPerOp(t *testing.T) {
	tg := cpuTargets{Servers: []int{11, 12, 13}, Leader: 12, ZooKeeper: []int{21}}
	a, err := tg.read(100, fakeCPU{11: 1 * time.Second, 12: 5 * time.Second, 13: 1 * time.Second, 21: 3 * time.Second}.read)
	if err != nil {
		t.Fatal(err)
	}
	if a.Server != 7*time.Second || a.Leader != 5*time.Second || a.ZooKeeper != 3*time.Second || a.Client <= 0 {
		t.Fatalf("reading %+v", a)
	}
	b := cpuReading{At: a.At.Add(2020 * time.Millisecond), Server: a.Server + 1010*time.Millisecond, Leader: a.Leader + 606*time.Millisecond,
		ZooKeeper: a.ZooKeeper + 101*time.Millisecond, Client: a.Client + 505*time.Millisecond}
	c := tg.spent(a, b)
	want := cellCPU{Window: 2020 * time.Millisecond, Server: 1010 * time.Millisecond, Leader: 606 * time.Millisecond, HasLeader: true,
		ZooKeeper: 101 * time.Millisecond, HasZooKeeper: true, Client: 505 * time.Millisecond}
	if c != want {
		t.Fatalf("spent %+v, want %+v", c, want)
	}
	if c.Total() != 1515*time.Millisecond {
		t.Fatalf("total %v", c.Total())
	}
	// 10000 operations ended over a 2 s window: 5000 ops/s. The CPU window is 2.02 s (read a
	// little late): the server used 0.5 core, 100 µs per operation.
	cell := loadCell{Result: LoopResult{Elapsed: 2 * time.Second, Ops: 9990, Ended: 10000}, CPU: &c}
	for _, tc := range []struct {
		d    time.Duration
		want float64
	}{{c.Server, 100}, {c.Leader, 60}, {c.Client, 50}, {c.Total(), 150}, {c.ZooKeeper, 10}} {
		if got := cell.perOp(tc.d); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("perOp(%v) = %v µs, want %v", tc.d, got, tc.want)
		}
	}
	// 20200 system calls over the 2.02 s window: 10000/s over 5000 ops/s, 2 per operation.
	if got := cell.perOpCount(20200); math.Abs(got-2) > 1e-9 {
		t.Errorf("perOpCount(20200) = %v, want 2", got)
	}
	if got := c.cores(); math.Abs(got-1616.0/2020) > 1e-9 {
		t.Errorf("cores %v", got)
	}
	for _, bad := range []loadCell{
		{Result: cell.Result},
		{Result: LoopResult{Elapsed: 2 * time.Second}, CPU: &c},
		{Result: cell.Result, CPU: &cellCPU{}},
	} {
		if got := bad.perOp(time.Second); !math.IsNaN(got) {
			t.Errorf("perOp of %+v = %v, want NaN", bad, got)
		}
		if got := bad.perOpCount(10); !math.IsNaN(got) {
			t.Errorf("perOpCount of %+v = %v, want NaN", bad, got)
		}
	}
	if _, err := tg.read(100, fakeCPU{11: 0, 12: 0}.read); err == nil {
		t.Fatal("no error with a process gone")
	}
}

func TestCPUMeter(t *testing.T) {
	f := fakeCPU{7: time.Second}
	m := &cpuMeter{t: cpuTargets{Servers: []int{7}}, hz: 100, procCPU: f.read}
	m.begin()
	if _, err := m.result(); err == nil {
		t.Fatal("a result from an open window")
	}
	f[7] = 3 * time.Second
	m.end()
	c, err := m.result()
	if err != nil || c.Server != 2*time.Second || c.HasLeader || c.HasZooKeeper || c.Window <= 0 {
		t.Fatalf("result %+v, %v", c, err)
	}
	delete(f, 7)
	m = &cpuMeter{t: cpuTargets{Servers: []int{7}}, hz: 100, procCPU: f.read}
	m.begin()
	m.end()
	if c, err := m.result(); err == nil {
		t.Fatalf("result %+v with the process gone", c)
	}
}

func TestChildrenRunning(t *testing.T) {
	cmd := exec.Command("sleep", "3600")
	if err := cmd.Start(); err != nil {
		t.Skip(err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	// Start returns once the child has closed its descriptors in exec, which the kernel does
	// before it writes the new program's arguments: /proc/PID/cmdline can read empty for a
	// moment (a CI run saw it), so the child may take a few reads to show.
	var pids []int
	var err error
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		pids, err = childrenRunning(os.Getpid(), "sleep")
		if err != nil || slices.Contains(pids, cmd.Process.Pid) || time.Now().After(deadline) {
			break
		}
	}
	if err != nil || !slices.Contains(pids, cmd.Process.Pid) {
		t.Fatalf("children %v %v, want %d", pids, err, cmd.Process.Pid)
	}
	if pids, _ := childrenRunning(os.Getpid(), "QuorumPeerMain"); len(pids) != 0 {
		t.Fatalf("children %v", pids)
	}
}

func TestParseProcIO(t *testing.T) {
	in := "rchar: 100\nwchar: 200\nsyscr: 7\nsyscw: 5\nread_bytes: 0\nwrite_bytes: 0\ncancelled_write_bytes: 0\n"
	if n, err := parseProcIO([]byte(in)); err != nil || n != 12 {
		t.Fatalf("parseProcIO = %d, %v; want 12", n, err)
	}
	for _, bad := range []string{"", "rchar: 1\n", "syscr: 7\n", "syscr: x\nsyscw: 1\n"} {
		if n, err := parseProcIO([]byte(bad)); err == nil {
			t.Errorf("parseProcIO(%q) = %d, no error", bad, n)
		}
	}
	// This process's own count moves with its reads.
	a, err := procIO(os.Getpid())
	if err != nil {
		t.Skipf("no /proc/self/io here: %v", err)
	}
	for range 3 {
		if _, err := os.ReadFile("/proc/self/stat"); err != nil {
			t.Fatal(err)
		}
	}
	if b, err := procIO(os.Getpid()); err != nil || b < a+3 {
		t.Fatalf("procIO after 3 reads = %d, %v; was %d", b, err, a)
	}
}

func TestReadIO(t *testing.T) {
	counts := map[int]uint64{11: 100, 12: 40}
	io := func(pid int) (uint64, error) {
		n, ok := counts[pid]
		if !ok {
			return 0, errors.New("gone")
		}
		return n, nil
	}
	tg := cpuTargets{Servers: []int{11, 12}, Leader: 12}
	var a, b cpuReading
	tg.readIO(&a, io)
	counts[11], counts[12] = 160, 70
	tg.readIO(&b, io)
	c := tg.spent(a, b)
	if !c.HasIO || c.ServerIO != 90 || c.LeaderIO != 30 {
		t.Fatalf("spent %+v, want 90 server syscalls, 30 of them the leader's", c)
	}
	delete(counts, 11)
	tg.readIO(&b, io)
	if c := tg.spent(a, b); c.HasIO {
		t.Fatalf("spent %+v with a process's count unread", c)
	}
	tg.readIO(&b, nil)
	if b.HasIO {
		t.Fatal("counts without a reader")
	}
}
