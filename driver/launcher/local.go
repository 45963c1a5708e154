package launcher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// jarDir holds Debian's zookeeper jars (package libzookeeper-java, pulled in by zookeeper).
var jarDir = "/usr/share/java"

// requiredJars must be in jarDir for local mode; optionalJars are added when present. Found by
// trying: Debian's zookeeper.jar names most of these in its manifest's Class-Path, but listing
// them keeps a jar directory without that manifest working. slf4j-simple gives the logs.
var (
	requiredJars = []string{"zookeeper.jar", "zookeeper-jute.jar", "slf4j-api.jar"}
	optionalJars = []string{
		"slf4j-simple.jar", "netty-handler.jar", "netty-buffer.jar", "netty-common.jar",
		"netty-transport.jar", "netty-codec.jar", "netty-resolver.jar",
		"netty-transport-native-epoll.jar", "netty-transport-native-unix-common.jar",
		"metrics-core.jar", "commons-cli.jar", "snappy-java.jar", "commons-io.jar",
	}
)

// javaBinary finds java: $JAVA_HOME/bin/java, else java on PATH.
func javaBinary() (string, error) {
	if home := os.Getenv("JAVA_HOME"); home != "" {
		p := filepath.Join(home, "bin", "java")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	p, err := exec.LookPath("java")
	if err != nil {
		return "", fmt.Errorf("java: %w", errMissing)
	}
	return p, nil
}

func classpath() (string, error) {
	var cp []string
	for _, j := range requiredJars {
		p := filepath.Join(jarDir, j)
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%s: %w", p, errMissing)
		}
		cp = append(cp, p)
	}
	for _, j := range optionalJars {
		p := filepath.Join(jarDir, j)
		if _, err := os.Stat(p); err == nil {
			cp = append(cp, p)
		}
	}
	return strings.Join(cp, string(os.PathListSeparator)), nil
}

func localAvailable() error {
	if _, err := javaBinary(); err != nil {
		return err
	}
	_, err := classpath()
	return err
}

func startLocal(ctx context.Context, o Options) (*ZooKeeper, error) {
	java, err := javaBinary()
	if err != nil {
		return nil, fmt.Errorf("%w: local: %w", ErrUnavailable, err)
	}
	cp, err := classpath()
	if err != nil {
		return nil, fmt.Errorf("%w: local: %w", ErrUnavailable, err)
	}
	ens, err := newEnsemble(o.Nodes, o.TickTime)
	if err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp("", "zkv-zookeeper-")
	if err != nil {
		return nil, fmt.Errorf("launcher: %w", err)
	}
	logDir := o.LogDir
	if logDir == "" {
		logDir = filepath.Join(work, "logs")
	}
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		_ = os.RemoveAll(work)
		return nil, fmt.Errorf("launcher: log dir: %w", err)
	}
	z := &ZooKeeper{
		mode:    ModeLocal,
		servers: ens.servers(),
		logger:  o.Logger,
		cleanup: func() error { return os.RemoveAll(work) },
	}
	o.Logger.Info("starting zookeeper", "nodes", o.Nodes, "java", java, "dir", work, "logs", logDir)
	for i := range ens.Members {
		dir := filepath.Join(work, "node-"+strconv.Itoa(i+1))
		data := filepath.Join(dir, "data")
		if err := os.MkdirAll(data, 0o755); err != nil {
			_ = z.Close()
			return nil, fmt.Errorf("launcher: %w", err)
		}
		cfg := filepath.Join(dir, "zoo.cfg")
		err := errors.Join(
			os.WriteFile(cfg, []byte(ens.zooCfg(i, data)), 0o644),
			os.WriteFile(filepath.Join(data, "myid"), []byte(strconv.Itoa(ens.Members[i].ID)+"\n"), 0o644),
		)
		if err != nil {
			_ = z.Close()
			return nil, fmt.Errorf("launcher: node %d config: %w", i, err)
		}
		args := append([]string{}, jvmFlags...)
		args = append(args,
			"-Dzookeeper.log.dir="+dir,
			"-Dorg.slf4j.simpleLogger.logFile=System.out",
			"-Dorg.slf4j.simpleLogger.showDateTime=true",
			"-Dorg.slf4j.simpleLogger.dateTimeFormat=yyyy-MM-dd'T'HH:mm:ss.SSS",
			"-cp", cp, "org.apache.zookeeper.server.quorum.QuorumPeerMain", cfg)
		p := &localProcess{
			java:   java,
			args:   args,
			dir:    dir,
			log:    filepath.Join(logDir, fmt.Sprintf("zookeeper-%d.log", i+1)),
			logger: o.Logger.With("node", i),
		}
		z.nodes = append(z.nodes, &nodeHandle{addr: ens.Members[i].clientAddr(), proc: p})
		if err := p.start(ctx); err != nil {
			_ = z.Close()
			return nil, fmt.Errorf("launcher: start node %d: %w", i, err)
		}
	}
	return z, nil
}

// localProcess is one java process in its own process group; a goroutine per run waits for it.
type localProcess struct {
	java, dir, log string
	args           []string
	logger         *slog.Logger

	cmd  *exec.Cmd
	done chan struct{} // closed when cmd exited; nil when never started
	wg   sync.WaitGroup
}

func (p *localProcess) exited() bool {
	if p.done == nil {
		return true
	}
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *localProcess) start(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if !p.exited() {
		return errors.New("still running")
	}
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }() // the child has its own descriptor
	cmd := exec.Command(p.java, p.args...)
	cmd.Dir = p.dir
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	p.cmd = cmd
	done := make(chan struct{})
	p.done = done
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		err := cmd.Wait()
		p.logger.Debug("zookeeper process exited", "pid", cmd.Process.Pid, "err", err)
		close(done)
	}()
	p.logger.Debug("zookeeper process started", "pid", cmd.Process.Pid, "log", p.log)
	return nil
}

// signal sends sig to the node's process group.
func (p *localProcess) signal(sig syscall.Signal) error {
	if p.exited() {
		return nil
	}
	if err := syscall.Kill(-p.cmd.Process.Pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("signal %v: %w", sig, err)
	}
	return nil
}

func (p *localProcess) wait(ctx context.Context) error {
	if p.done == nil {
		return nil
	}
	select {
	case <-p.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (p *localProcess) stop(ctx context.Context) error {
	if err := p.signal(syscall.SIGTERM); err != nil {
		return err
	}
	_ = p.signal(syscall.SIGCONT) // a stopped process acts on SIGTERM only once continued
	if err := p.wait(ctx); err == nil {
		return nil
	}
	return p.kill(context.WithoutCancel(ctx))
}

func (p *localProcess) kill(ctx context.Context) error {
	if err := p.signal(syscall.SIGKILL); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return p.wait(ctx)
}

func (p *localProcess) running(context.Context) error {
	if p.exited() {
		code := -1
		if p.cmd != nil && p.cmd.ProcessState != nil {
			code = p.cmd.ProcessState.ExitCode()
		}
		return fmt.Errorf("%w: java exited with %d (log: %s)", errGaveUp, code, p.log)
	}
	return nil
}

func (p *localProcess) pause(context.Context) error  { return p.signal(syscall.SIGSTOP) }
func (p *localProcess) resume(context.Context) error { return p.signal(syscall.SIGCONT) }

func (p *localProcess) wipe(ctx context.Context) error {
	if err := p.kill(ctx); err != nil {
		return err
	}
	// zoo.cfg keeps snapshots and transaction logs under dataDir/version-2; myid stays.
	return os.RemoveAll(filepath.Join(p.dir, "data", "version-2"))
}

func (p *localProcess) remove() error {
	err := p.kill(context.Background())
	p.wg.Wait()
	return err
}
