package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// freePorts returns n distinct free TCP ports on 127.0.0.1. The listeners are closed before it
// returns, so another process could take one in between; the callers start their processes
// at once and fail clearly if that happens.
func freePorts(n int) ([]int, error) {
	ls := make([]net.Listener, 0, n)
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("bench: free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func hostPort(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// proc is a child process the benchmark started, in its own process group, with its output in
// a log file.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  *os.File
	done chan struct{}
	once sync.Once
}

func startProc(name, logDir, bin string, args ...string) (*proc, error) {
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return nil, fmt.Errorf("bench: %s: %w", name, err)
	}
	f, err := os.Create(filepath.Join(logDir, name+".log"))
	if err != nil {
		return nil, fmt.Errorf("bench: %s: %w", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("bench: start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: f, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM to the process group, SIGKILL after grace; it waits for the exit. Idempotent.
func (p *proc) stop(grace time.Duration) {
	p.once.Do(func() {
		pg := -p.cmd.Process.Pid
		_ = syscall.Kill(pg, syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(grace):
			_ = syscall.Kill(pg, syscall.SIGKILL)
			<-p.done
		}
		p.log.Close()
	})
}

// waitFor polls check every interval until it succeeds, ctx ends or timeout passes; it also
// gives up when one of procs has exited.
func waitFor(ctx context.Context, timeout time.Duration, what string, check func(context.Context) error, procs ...*proc) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	var last error
	for {
		cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
		last = check(cctx)
		ccancel()
		if last == nil {
			return nil
		}
		for _, p := range procs {
			if p.exited() {
				return fmt.Errorf("bench: %s: %s exited (see %s): %w", what, p.name, p.log.Name(), last)
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("bench: %s: %w (last: %w)", what, ctx.Err(), last)
		case <-t.C:
		}
	}
}

var errNotInstalled = errors.New("bench: not installed")

// lookBinary finds name on $PATH, or says how to install it.
func lookBinary(name, apt string) (string, error) {
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%w: %s (apt-get install -y %s)", errNotInstalled, name, apt)
	}
	return p, nil
}

// startProcPiped is startProc with stdout piped to the caller (stderr still to the log) and a
// stdin the caller holds: closing it tells a cooperating child to exit.
func startProcPiped(name, logDir, bin string, args ...string) (*proc, io.WriteCloser, io.ReadCloser, error) {
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return nil, nil, nil, fmt.Errorf("bench: %s: %w", name, err)
	}
	f, err := os.Create(filepath.Join(logDir, name+".log"))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("bench: %s: %w", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stderr = f
	stdin, err := cmd.StdinPipe()
	if err != nil {
		f.Close()
		return nil, nil, nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		f.Close()
		return nil, nil, nil, err
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, nil, nil, fmt.Errorf("bench: start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: f, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	return p, stdin, stdout, nil
}
