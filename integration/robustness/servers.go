package robustness

import (
	"context"
	"errors"
	"fmt"
	mathrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Server is one bin/server process that can be killed, paused and restarted on the same
// address. The tests spawn servers themselves rather than through driver/cluster because each
// server needs flags of its own: its own ZooKeeper proxies and, with -advertise, its own peer
// proxy.
type Server struct {
	Index      int
	Addr       string // what it binds: 127.0.0.1:port
	ClientAddr string // where the traffic sends its requests: a proxy in front of Addr
	PeerAddr   string // what it advertises to the other servers (a proxy) when the binary has -advertise, else Addr
	binary     string
	args       []string
	env        []string
	logPath    string

	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{}
	gen     int
	paused  bool
	running bool
}

// Features says which optional flags the server binary has, from its -h output.
type Features struct {
	Advertise        bool   // the registered address can differ from the bound one
	AdvertiseFlag    string // the flag that sets it: -advertise or -address
	DisableFencing   bool   // -unsafe_disable_fencing (ZKV_UNSAFE_DISABLE_FENCING=1), test only
	ClusterTokenFlag bool   // -cluster_token
	ReplicaLagMax    bool   // -replica_lag_max
}

// ProbeFeatures runs binary -h.
func ProbeFeatures(binary string) Features {
	out, _ := exec.Command(binary, "-h").CombinedOutput()
	s := string(out)
	return Features{
		Advertise:        strings.Contains(s, "-advertise") || strings.Contains(s, "-address"),
		AdvertiseFlag:    map[bool]string{true: "-advertise", false: "-address"}[strings.Contains(s, "-advertise")],
		DisableFencing:   strings.Contains(s, "unsafe_disable_fencing"),
		ClusterTokenFlag: strings.Contains(s, "-cluster_token"),
		ReplicaLagMax:    strings.Contains(s, "-replica_lag_max"),
	}
}

// freePort finds a free loopback port for a server below Linux's ephemeral range
// (32768-60999): a port the kernel hands out for ":0" could be handed out again, to a
// proxy or an outgoing connection, between this check and the server's bind or across its
// restarts; a port below the range is only ever taken by a bind of ours.
func freePort() (int, error) {
	for range 200 {
		port := 20000 + mathrand.IntN(12000)
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			continue
		}
		l.Close()
		return port, nil
	}
	return 0, errors.New("robustness: no free port in 20000-31999")
}

// Gen is the process generation: 0 for the first process, +1 for each restart.
func (s *Server) Gen() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gen
}

// Running reports whether the process is alive (paused counts as alive).
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.running
}

// Start spawns the process and returns once it answers /healthz.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	if s.running {
		s.mu.Unlock()
		return fmt.Errorf("robustness: server %d already running", s.Index)
	}
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		s.mu.Unlock()
		return err
	}
	fmt.Fprintf(logf, "=== robustness: start gen %d: %s %s\n", s.gen, s.binary, strings.Join(s.args, " "))
	cmd := exec.Command(s.binary, s.args...)
	cmd.Env = append(os.Environ(), s.env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		s.mu.Unlock()
		return fmt.Errorf("robustness: start server %d: %w", s.Index, err)
	}
	exited := make(chan struct{})
	s.cmd, s.exited, s.running, s.paused = cmd, exited, true, false
	s.mu.Unlock()
	go func() {
		_ = cmd.Wait()
		logf.Close()
		s.mu.Lock()
		if s.cmd == cmd {
			s.running = false
		}
		s.mu.Unlock()
		close(exited)
	}()
	return waitHTTP(ctx, "http://"+s.Addr+"/healthz", exited)
}

func waitHTTP(ctx context.Context, url string, exited <-chan struct{}) error {
	c := &http.Client{Timeout: time.Second}
	for {
		resp, err := c.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("robustness: %s: %w", url, ctx.Err())
		case <-exited:
			return fmt.Errorf("robustness: server exited before %s answered", url)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (s *Server) signal(sig syscall.Signal) (chan struct{}, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.running {
		return nil, fmt.Errorf("robustness: server %d not running", s.Index)
	}
	if s.paused && (sig == syscall.SIGKILL || sig == syscall.SIGTERM) {
		// a stopped process takes SIGKILL, but SIGTERM waits for SIGCONT
		_ = s.cmd.Process.Signal(syscall.SIGCONT)
	}
	switch sig {
	case syscall.SIGSTOP:
		s.paused = true
	case syscall.SIGCONT:
		s.paused = false
	}
	return s.exited, s.cmd.Process.Signal(sig)
}

// Kill sends SIGKILL and waits for the process to exit.
func (s *Server) Kill() error {
	exited, err := s.signal(syscall.SIGKILL)
	if err != nil {
		return err
	}
	<-exited
	return nil
}

// Term sends SIGTERM (a leader resigns first) and waits, SIGKILL after 10s.
func (s *Server) Term() error {
	exited, err := s.signal(syscall.SIGTERM)
	if err != nil {
		return err
	}
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		_, _ = s.signal(syscall.SIGKILL)
		<-exited
	}
	return nil
}

// Pause sends SIGSTOP.
func (s *Server) Pause() error { _, err := s.signal(syscall.SIGSTOP); return err }

// Resume sends SIGCONT.
func (s *Server) Resume() error { _, err := s.signal(syscall.SIGCONT); return err }

// Restart starts a new process (next generation) on the same address and flags: it starts
// empty, as the assignment wants.
func (s *Server) Restart(ctx context.Context) error {
	s.mu.Lock()
	if s.running {
		s.mu.Unlock()
		return errors.New("robustness: restart of a running server")
	}
	s.gen++
	s.mu.Unlock()
	return s.Start(ctx)
}

// newServer lays out a server; Start spawns it.
func newServer(i int, binary, logDir string, args, env []string) (*Server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &Server{
		Index:   i,
		Addr:    "127.0.0.1:" + strconv.Itoa(port),
		binary:  binary,
		env:     env,
		logPath: filepath.Join(logDir, fmt.Sprintf("server-%d.log", i)),
	}
	s.PeerAddr = s.Addr
	s.args = append([]string{"-host", "127.0.0.1", "-port", strconv.Itoa(port), "-id", fmt.Sprintf("s%d", i)}, args...)
	return s, nil
}
