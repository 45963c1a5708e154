package launcher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/ory/dockertest/v3"
	dc "github.com/ory/dockertest/v3/docker"
)

// containerExpiry bounds a container's life in case the process that started it dies before
// Close: dockertest's Expire asks docker to stop it after this long.
const containerExpiry = 30 * time.Minute

// Label marks the containers the launcher starts, so a CI run can remove leftovers:
// docker ps -aq --filter label=zkv.launcher=1.
const Label = "zkv.launcher"

// splitImage splits "repo[:tag]" (the registry part may have a port) into repository and tag.
func splitImage(image string) (repo, tag string) {
	slash := strings.LastIndex(image, "/")
	if colon := strings.LastIndex(image, ":"); colon > slash {
		return image[:colon], image[colon+1:]
	}
	return image, "latest"
}

func newPool(ctx context.Context) (*dockertest.Pool, error) {
	pool, err := dockertest.NewPool("")
	if err != nil {
		return nil, fmt.Errorf("docker client: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := pool.Client.PingWithContext(ctx); err != nil {
		closeIdle(pool)
		return nil, fmt.Errorf("docker engine does not answer: %w", err)
	}
	return pool, nil
}

func closeIdle(pool *dockertest.Pool) {
	if pool.Client.HTTPClient != nil {
		pool.Client.HTTPClient.CloseIdleConnections()
	}
}

func inspectImage(pool *dockertest.Pool, image string) error {
	if _, err := pool.Client.InspectImage(image); err != nil {
		if errors.Is(err, dc.ErrNoSuchImage) {
			return fmt.Errorf("image %s is not present locally (no registry is used; build it with scripts/prepare.sh): %w", image, errMissing)
		}
		return fmt.Errorf("inspect image %s: %w", image, err)
	}
	return nil
}

// dockerAvailable reports whether a docker engine answers and has image locally.
func dockerAvailable(ctx context.Context, image string) error {
	pool, err := newPool(ctx)
	if err != nil {
		return err
	}
	defer closeIdle(pool)
	return inspectImage(pool, image)
}

func startDocker(ctx context.Context, o Options) (z *ZooKeeper, err error) {
	pool, err := newPool(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: docker: %w", ErrUnavailable, err)
	}
	if err := inspectImage(pool, o.Image); err != nil {
		closeIdle(pool)
		return nil, fmt.Errorf("%w: docker: %w", ErrUnavailable, err)
	}
	ens, err := newEnsemble(o.Nodes, o.TickTime)
	if err != nil {
		closeIdle(pool)
		return nil, err
	}
	var work string
	logDir := o.LogDir
	if logDir == "" {
		if work, err = os.MkdirTemp("", "zkv-zookeeper-"); err != nil {
			closeIdle(pool)
			return nil, fmt.Errorf("launcher: %w", err)
		}
		logDir = work
	}
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		closeIdle(pool)
		return nil, fmt.Errorf("launcher: log dir: %w", err)
	}
	logCtx, stopLogs := context.WithCancel(context.Background())
	followers := &sync.WaitGroup{}
	z = &ZooKeeper{
		mode:    ModeDocker,
		servers: ens.servers(),
		logger:  o.Logger,
		cleanup: func() error {
			stopLogs()
			followers.Wait()
			closeIdle(pool)
			if work != "" {
				return os.RemoveAll(work)
			}
			return nil
		},
	}
	defer func() {
		if err != nil {
			_ = z.Close()
		}
	}()
	repo, tag := splitImage(o.Image)
	prefix := fmt.Sprintf("zkv-zk-%d-%x", os.Getpid(), time.Now().UnixNano()&0xffffff)
	o.Logger.Info("starting zookeeper", "nodes", o.Nodes, "image", o.Image, "containers", prefix+"-*", "logs", logDir)
	for i := range ens.Members {
		res, err := pool.RunWithOptions(&dockertest.RunOptions{
			Name:       fmt.Sprintf("%s-%d", prefix, i+1),
			Repository: repo,
			Tag:        tag,
			Env:        ens.dockerEnv(i),
			Labels:     map[string]string{Label: "1"},
		}, func(hc *dc.HostConfig) {
			hc.NetworkMode = "host" // loopback ports only; no bridge network
			hc.AutoRemove = false   // Restart starts the same container again
			hc.RestartPolicy = dc.RestartPolicy{Name: "no"}
		})
		if err != nil {
			return z, fmt.Errorf("launcher: run container %d: %w", i, err)
		}
		p := &dockerProcess{
			pool:      pool,
			res:       res,
			log:       filepath.Join(logDir, fmt.Sprintf("zookeeper-%d.log", i+1)),
			logger:    o.Logger.With("node", i, "container", res.Container.Name),
			logCtx:    logCtx,
			followers: followers,
		}
		z.nodes = append(z.nodes, &nodeHandle{addr: ens.Members[i].clientAddr(), proc: p})
		if err := res.Expire(uint(containerExpiry.Seconds())); err != nil {
			return z, fmt.Errorf("launcher: expire container %d: %w", i, err)
		}
		if err := p.follow(time.Time{}); err != nil {
			return z, err
		}
	}
	// Wait with dockertest's backoff, failing at once when a container exited or ctx ended.
	pool.MaxWait = 2 * time.Minute
	if dl, ok := ctx.Deadline(); ok {
		pool.MaxWait = time.Until(dl)
	}
	for i, n := range z.nodes {
		p := n.proc.(*dockerProcess)
		err := pool.Retry(func() error {
			if err := ctx.Err(); err != nil {
				return backoff.Permanent(err)
			}
			if err := p.running(ctx); err != nil {
				return backoff.Permanent(err)
			}
			_, err := serving(ctx, n.addr)
			return err
		})
		if err != nil {
			return z, fmt.Errorf("launcher: node %d (%s) does not serve: %w", i, n.addr, err)
		}
	}
	return z, nil
}

// dockerProcess is one container; its output is appended to log by a follower goroutine per run.
type dockerProcess struct {
	pool      *dockertest.Pool
	res       *dockertest.Resource
	log       string
	logger    *slog.Logger
	logCtx    context.Context
	followers *sync.WaitGroup
}

func (p *dockerProcess) id() string { return p.res.Container.ID }

// follow streams the container's output from since (all of it when zero) until it stops.
func (p *dockerProcess) follow(since time.Time) error {
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("launcher: %w", err)
	}
	var sinceUnix int64
	if !since.IsZero() {
		sinceUnix = since.Unix()
	}
	p.followers.Add(1)
	go func() {
		defer p.followers.Done()
		defer func() { _ = f.Close() }()
		err := p.pool.Client.Logs(dc.LogsOptions{
			Context:      p.logCtx,
			Container:    p.id(),
			OutputStream: f,
			ErrorStream:  f,
			Follow:       true,
			Stdout:       true,
			Stderr:       true,
			Since:        sinceUnix,
		})
		if err != nil && p.logCtx.Err() == nil {
			p.logger.Debug("container log stream ended", "err", err)
		}
	}()
	return nil
}

func (p *dockerProcess) start(ctx context.Context) error {
	began := time.Now()
	if err := p.pool.Client.StartContainerWithContext(p.id(), nil, ctx); err != nil {
		var already *dc.ContainerAlreadyRunning
		if !errors.As(err, &already) {
			return err
		}
	}
	if err := p.res.Expire(uint(containerExpiry.Seconds())); err != nil {
		return err
	}
	return p.follow(began)
}

// unpause thaws a paused container: docker refuses to signal a paused one.
func (p *dockerProcess) unpause(ctx context.Context) error {
	c, err := p.pool.Client.InspectContainerWithContext(p.id(), ctx)
	if err != nil {
		return err
	}
	if c.State.Paused {
		return p.pool.Client.UnpauseContainer(p.id())
	}
	return nil
}

func (p *dockerProcess) signal(ctx context.Context, sig dc.Signal) error {
	if err := p.unpause(ctx); err != nil {
		return err
	}
	err := p.pool.Client.KillContainer(dc.KillContainerOptions{ID: p.id(), Signal: sig, Context: ctx})
	var notRunning *dc.ContainerNotRunning
	if err != nil && !errors.As(err, &notRunning) {
		return err
	}
	return nil
}

func (p *dockerProcess) wait(ctx context.Context) error {
	_, err := p.pool.Client.WaitContainerWithContext(p.id(), ctx)
	return err
}

// stop sends SIGTERM itself: dockertest gives containers SIGWINCH as their stop signal, so
// that Expire's "docker stop" only kills once the timeout passed.
func (p *dockerProcess) stop(ctx context.Context) error {
	if err := p.signal(ctx, dc.SIGTERM); err != nil {
		return err
	}
	if err := p.wait(ctx); err == nil {
		return nil
	}
	return p.kill(context.WithoutCancel(ctx))
}

func (p *dockerProcess) kill(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := p.signal(ctx, dc.SIGKILL); err != nil {
		return err
	}
	return p.wait(ctx)
}

func (p *dockerProcess) running(ctx context.Context) error {
	c, err := p.pool.Client.InspectContainerWithContext(p.id(), ctx)
	if err == nil && !c.State.Running {
		return fmt.Errorf("%w: container exited with %d (log: %s)", errGaveUp, c.State.ExitCode, p.log)
	}
	return nil // an inspect failure is the engine's, not the node's: keep waiting
}

func (p *dockerProcess) pause(context.Context) error  { return p.pool.Client.PauseContainer(p.id()) }
func (p *dockerProcess) resume(context.Context) error { return p.pool.Client.UnpauseContainer(p.id()) }

// wipe deletes the data from inside the running container (a stopped one is started
// first: docker cannot run a command in it), then kills it before ZooKeeper writes again.
func (p *dockerProcess) wipe(ctx context.Context) error {
	c, err := p.pool.Client.InspectContainerWithContext(p.id(), ctx)
	if err != nil {
		return err
	}
	if !c.State.Running {
		if err := p.start(ctx); err != nil {
			return err
		}
	}
	code, err := p.res.Exec([]string{"sh", "-c", `rm -rf "${ZOO_DATA_DIR:-/data}/version-2" "${ZOO_DATA_LOG_DIR:-/datalog}/version-2"`},
		dockertest.ExecOptions{})
	if err != nil {
		return fmt.Errorf("delete the data: %w", err)
	}
	if code != 0 {
		return fmt.Errorf("delete the data: exit code %d", code)
	}
	return p.kill(ctx)
}

func (p *dockerProcess) remove() error {
	err := p.pool.Purge(p.res)
	var noSuch *dc.NoSuchContainer
	if errors.As(err, &noSuch) {
		return nil
	}
	return err
}
