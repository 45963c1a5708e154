package launcher

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/zkv-dev/zkv/zk"
)

// fourLetter sends a four-letter word to addr and returns the whole answer.
func fourLetter(ctx context.Context, addr, word string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", err
	}
	defer func() { _ = conn.Close() }()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	if _, err := io.WriteString(conn, word); err != nil {
		return "", err
	}
	b, err := io.ReadAll(conn)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// serving asks addr for "srvr" and returns its mode (leader, follower, standalone) when it
// serves clients. A quorum member that has no quorum answers without a mode.
func serving(ctx context.Context, addr string) (string, error) {
	out, err := fourLetter(ctx, addr, "srvr")
	if err != nil {
		return "", err
	}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if mode, ok := strings.CutPrefix(sc.Text(), "Mode: "); ok {
			return strings.TrimSpace(mode), nil
		}
	}
	// An existing ensemble may not whitelist srvr; it answered, so it runs.
	if strings.Contains(out, "not in the whitelist") {
		return "unknown", nil
	}
	return "", fmt.Errorf("%s does not serve: %q", addr, strings.TrimSpace(out))
}

// alive reports whether the process behind addr answers at all ("ruok" is answered even
// without a quorum).
func alive(ctx context.Context, addr string) error {
	out, err := fourLetter(ctx, addr, "ruok")
	if err != nil {
		return err
	}
	if out != "imok" {
		return fmt.Errorf("%s answered ruok with %q", addr, out)
	}
	return nil
}

// errGaveUp marks a failure poll must not retry (the process it waits for exited).
var errGaveUp = errors.New("gave up")

// poll calls check until it succeeds, fails with errGaveUp or ctx ends; the last failure is
// wrapped in the error.
func poll(ctx context.Context, what string, check func(context.Context) error) error {
	wait := 50 * time.Millisecond
	for {
		err := check(ctx)
		if err == nil {
			return nil
		}
		if errors.Is(err, errGaveUp) {
			return fmt.Errorf("launcher: %s: %w", what, err)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("launcher: %s: %w (last: %v)", what, ctx.Err(), err)
		case <-t.C:
		}
		wait = min(2*wait, 500*time.Millisecond)
	}
}

// children opens a session on servers, lists path and closes the session. A session per call
// keeps nothing running between calls; cancelling ctx closes the connection, which makes the
// pending request return.
func children(ctx context.Context, servers []string, path string, logger *slog.Logger) ([]string, error) {
	var kids []string
	err := withSession(ctx, servers, logger, "children of "+path, func(conn *zk.Conn) error {
		var err error
		kids, _, err = conn.Children(path)
		return err
	})
	return kids, err
}

// deleteNode deletes path (any version) if it exists.
func deleteNode(ctx context.Context, servers []string, path string, logger *slog.Logger) error {
	return withSession(ctx, servers, logger, "delete "+path, func(conn *zk.Conn) error {
		if err := conn.Delete(path, -1); err != nil && !errors.Is(err, zk.ErrNoNode) {
			return err
		}
		return nil
	})
}

// withSession runs op on a new session with servers, bounded by ctx.
func withSession(ctx context.Context, servers []string, logger *slog.Logger, what string, op func(*zk.Conn) error) error {
	conn, events, err := zk.Connect(servers, 10*time.Second,
		zk.WithLogger(zkLogger{logger}), zk.WithLogInfo(false))
	if err != nil {
		return fmt.Errorf("launcher: connect %v: %w", servers, err)
	}
	defer conn.Close()
	// Wait for the session first: a request made before it would wait for it anyway, but then
	// ctx could not interrupt it without closing.
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("launcher: session with %v: %w", servers, ctx.Err())
		case ev, ok := <-events:
			if !ok {
				return fmt.Errorf("launcher: session with %v: %w", servers, zk.ErrClosing)
			}
			if ev.State != zk.StateHasSession {
				continue
			}
		}
		break
	}
	done := make(chan error, 1)
	go func() { done <- op(conn) }()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("launcher: %s: %w", what, err)
		}
		return nil
	case <-ctx.Done():
		conn.Close()
		<-done // Close fails the pending request, so this returns promptly
		return fmt.Errorf("launcher: %s: %w", what, ctx.Err())
	}
}

// zkLogger sends go-zookeeper's Printf logging to slog at debug level.
type zkLogger struct{ l *slog.Logger }

func (z zkLogger) Printf(format string, args ...any) {
	z.l.Debug(fmt.Sprintf(format, args...), "component", "zk")
}
