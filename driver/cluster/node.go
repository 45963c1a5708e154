package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/zkv-dev/zkv/driver/client"
)

// proc is one process of a node; done is closed after Wait returned, err is then set.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// Node is one server of a Cluster. Its methods are safe for concurrent use.
type Node struct {
	c       *Cluster
	id      int
	logPath string

	mu     sync.Mutex // serialises lifecycle operations and guards the fields below
	addr   string
	port   int
	client *client.Client
	p      *proc // the current or last process
	paused bool
	starts int
}

// ID returns the node's number, counting from 1 in start order.
func (n *Node) ID() int { return n.id }

// LogPath returns the file the node's output is appended to.
func (n *Node) LogPath() string { return n.logPath }

// Addr returns "127.0.0.1:port"; it stays the same across restarts.
func (n *Node) Addr() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.addr
}

// Client returns a client of this node.
func (n *Node) Client() *client.Client {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.client
}

// Pid returns the current process id, or 0 when none runs.
func (n *Node) Pid() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.p == nil || n.p.exited() {
		return 0
	}
	return n.p.cmd.Process.Pid
}

// Running reports whether the node's process exists (paused included).
func (n *Node) Running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.p != nil && !n.p.exited()
}

// Paused reports whether the node was paused with SIGSTOP and not resumed.
func (n *Node) Paused() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.paused && n.p != nil && !n.p.exited()
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Signal sends sig to the node's process group without waiting.
func (n *Node) Signal(sig os.Signal) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.signalLocked(sig)
}

func (n *Node) signalLocked(sig os.Signal) error {
	if n.p == nil || n.p.exited() {
		return fmt.Errorf("%w: node %d", ErrNotRunning, n.id)
	}
	s, ok := sig.(syscall.Signal)
	if !ok {
		return fmt.Errorf("cluster: node %d: unsupported signal %v", n.id, sig)
	}
	pid := n.p.cmd.Process.Pid
	if err := syscall.Kill(-pid, s); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("cluster: node %d: signal %v: %w", n.id, sig, err)
	}
	switch s {
	case syscall.SIGSTOP:
		n.paused = true
	case syscall.SIGCONT:
		n.paused = false
	}
	return nil
}

// Kill sends SIGKILL (kill -9) and returns once the process exited.
func (n *Node) Kill() error { return n.kill() }

func (n *Node) kill() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.signalLocked(syscall.SIGKILL); err != nil {
		return err
	}
	<-n.p.done // SIGKILL cannot be caught; the reaper closes done right after
	n.paused = false
	return nil
}

// Term sends SIGTERM (resuming a paused node) and returns once the process exited; after
// Options.TermTimeout it sends SIGKILL. The error is nil for a clean exit, else the exit status.
func (n *Node) Term() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.signalLocked(syscall.SIGTERM); err != nil {
		return err
	}
	if n.paused {
		_ = n.signalLocked(syscall.SIGCONT)
	}
	t := time.NewTimer(n.c.o.TermTimeout)
	defer t.Stop()
	select {
	case <-n.p.done:
		return n.p.err
	case <-t.C:
		_ = n.signalLocked(syscall.SIGKILL)
		<-n.p.done
		return fmt.Errorf("cluster: node %d ignored SIGTERM for %v, killed", n.id, n.c.o.TermTimeout)
	}
}

// Pause stops the process with SIGSTOP (it keeps its sockets but answers nothing) and returns
// once the kernel reports it stopped, as signal delivery is asynchronous.
func (n *Node) Pause() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.signalLocked(syscall.SIGSTOP); err != nil {
		return err
	}
	pid := n.p.cmd.Process.Pid
	deadline := time.Now().Add(2 * time.Second)
	for !stopped(pid) && !n.p.exited() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond) // polling the kernel's view; no event to wait on
	}
	return nil
}

// stopped reports whether /proc says pid is stopped; true where /proc is unavailable.
func stopped(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] == 'T' || s[i+2] == 't'
}

// Resume continues a paused process with SIGCONT.
func (n *Node) Resume() error { return n.Signal(syscall.SIGCONT) }

// Wait returns once the node's current process exited, with its exit error.
func (n *Node) Wait(ctx context.Context) error {
	n.mu.Lock()
	p := n.p
	n.mu.Unlock()
	if p == nil {
		return fmt.Errorf("%w: node %d", ErrNotRunning, n.id)
	}
	select {
	case <-p.done:
		return p.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Restart starts the node again with the same address and flags and waits for /healthz; a
// node still running is killed first. Its output is appended to the same log file, after a
// marker line.
func (n *Node) Restart(ctx context.Context) error {
	if n.c.isClosed() {
		return ErrClosed
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.p != nil && !n.p.exited() {
		if err := n.signalLocked(syscall.SIGKILL); err != nil {
			return err
		}
		<-n.p.done
	}
	n.paused = false
	return n.startLocked(ctx, n.port, "restart")
}

// sysProcAttr puts each server in its own process group, so signals reach all it started and
// a Ctrl-C at the driver's terminal reaches the driver only (which then stops the servers).
func sysProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }

// startFresh picks a port and starts the node, retrying on another port when the server
// exits at once (the free port may have been taken in between).
func (n *Node) startFresh(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	var err error
	for range 3 {
		var port int
		port, err = freePort()
		if err != nil {
			return fmt.Errorf("%w: node %d: %w", ErrStart, n.id, err)
		}
		n.port = port
		n.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if n.client != nil {
			_ = n.client.Close()
		}
		n.client = client.New(n.addr, client.WithTimeout(5*time.Second))
		err = n.startLocked(ctx, port, "start")
		if err == nil || !errors.Is(err, errExited) || ctx.Err() != nil {
			return err
		}
	}
	return err
}

var errExited = errors.New("exited while starting")

// startLocked spawns the process and waits for /healthz; on failure the process is killed.
func (n *Node) startLocked(ctx context.Context, port int, why string) error {
	n.starts++
	p, err := n.c.spawn(n, port, why)
	if err != nil {
		return err
	}
	n.p = p
	ctx, cancel := context.WithTimeout(ctx, n.c.o.StartTimeout)
	defer cancel()
	t := time.NewTicker(n.c.o.PollInterval)
	defer t.Stop()
	var last error
	for {
		hctx, hcancel := context.WithTimeout(ctx, time.Second)
		last = n.client.Healthy(hctx)
		hcancel()
		if last == nil {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("%w: node %d (%s) %w: %v; see %s", ErrStart, n.id, n.addr, errExited, p.err, n.logPath)
		case <-ctx.Done():
			_ = n.signalLocked(syscall.SIGKILL)
			<-p.done
			return fmt.Errorf("%w: node %d (%s): no /healthz: %w (last: %v); see %s", ErrStart, n.id, n.addr, ctx.Err(), last, n.logPath)
		case <-t.C:
		}
	}
}
