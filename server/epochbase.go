package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/zkv-dev/zkv/election"
	"github.com/zkv-dev/zkv/zk"
)

// epochBasePath is the znode of the epoch base: a server's epoch is the leader node's czxid
// plus this number. It is 0 on a cluster's first ZooKeeper and raised above every epoch the
// servers knew when ZooKeeper comes back without its data, whose zxids start again from the
// bottom (see docs/design.md, "ZooKeeper loses its data").
const epochBasePath = "/zkv/epoch_base"

// epochBase keeps the epoch base in step with ZooKeeper and gates the views on it: after
// each new session (the first one, an expiry, or an ensemble that lost its data) the base is
// unsettled, and the server neither leads nor follows, until it has been read again and, if
// ZooKeeper has lost its data, raised above this server's fence.
//
// The znode identifies a ZooKeeper generation by its czxid. Reading it in a generation the
// server has not seen before, while the server knew an earlier one, means ZooKeeper lost its
// data (the znode is persistent and nobody deletes it): if the base there does not exceed
// the server's fence, the server raises it to fence+1 with a conditional write, so that any
// leader's epoch (base + czxid, czxid >= 1) exceeds every epoch it knew. Every server that
// knew the old generation does the same when it reconnects, and the base only grows, so it
// ends above the highest fence of them all. A missing znode is created: by a server that knew
// an earlier generation with fence+1, else (a new cluster) with 0.
type epochBase struct {
	conn   *zk.Conn
	sess   *election.Session
	path   string
	acl    []zk.ACL
	logger *slog.Logger
	// fence returns the highest epoch this server knows; set before run.
	fence func() int64
	// ensure runs on every new session before the base settles (the cluster secret is
	// recreated there when ZooKeeper lost it); may be nil.
	ensure func() error

	mu      sync.Mutex
	base    int64
	gen     int64 // the znode's czxid when last read; 0 before the first read
	settled bool
	changed chan struct{} // closed and replaced on every change of base or settled
}

func newEpochBase(sess *election.Session, acl []zk.ACL, logger *slog.Logger) *epochBase {
	return &epochBase{conn: sess.Conn, sess: sess, path: epochBasePath, acl: acl, logger: logger,
		fence: func() int64 { return 0 }, changed: make(chan struct{})}
}

// get returns the base, whether it is settled, and a channel closed at the next change.
func (b *epochBase) get() (base int64, settled bool, changed <-chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.base, b.settled, b.changed
}

func (b *epochBase) set(base, gen int64, settled bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.base == base && b.settled == settled && b.gen == gen {
		return
	}
	if base != b.base {
		b.logger.Info("epoch base", "base", base, "was", b.base, "generation", gen)
	}
	b.base, b.gen, b.settled = base, gen, settled
	b.notifyLocked()
}

// notifyLocked wakes whoever waits on the current changed channel. Call with mu.
func (b *epochBase) notifyLocked() {
	close(b.changed)
	b.changed = make(chan struct{})
}

func (b *epochBase) unsettle() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.settled {
		b.settled = false
		b.notifyLocked()
	}
}

// run follows the session until ctx ends: on every new session it settles the base again,
// and it follows the znode's changes with a watch.
func (b *epochBase) run(ctx context.Context) {
	events, cancel := b.sess.Subscribe()
	defer cancel()
	var (
		session int64 = -1 // the session the base was settled in
		watch   <-chan zk.Event
		retry   <-chan time.Time
	)
	settle := func() {
		w, err := b.settle()
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, zk.ErrClosing) {
				b.logger.Warn("epoch base: read or raise", "path", b.path, "error", err)
			}
			retry, watch = time.After(200*time.Millisecond), nil
			return
		}
		watch, retry = w, nil
	}
	if sid := b.conn.SessionID(); sid != 0 && b.conn.State() == zk.StateHasSession {
		session = sid
		settle()
	}
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-events:
			if !ok {
				return
			}
			if ev.Type != zk.EventSession {
				continue
			}
			switch ev.State {
			case zk.StateExpired:
				b.unsettle()
				session, watch = -1, nil
			case zk.StateHasSession:
				if sid := b.conn.SessionID(); sid != session {
					b.unsettle()
					session = sid
					settle()
				}
			}
		case <-watch:
			settle()
		case <-retry:
			settle()
		}
	}
}

// settle reads the base (with a watch), raising or creating it as the type's doc says, and
// marks it settled. It returns the watch.
func (b *epochBase) settle() (<-chan zk.Event, error) {
	if b.ensure != nil {
		if err := b.ensure(); err != nil {
			return nil, err
		}
	}
	for attempt := 0; attempt < 10; attempt++ {
		data, stat, w, err := b.conn.GetW(b.path)
		b.mu.Lock()
		known := b.gen
		b.mu.Unlock()
		fence := b.fence()
		if errors.Is(err, zk.ErrNoNode) {
			base := int64(0)
			if known != 0 || fence > 0 {
				base = fence + 1
				b.logger.Error("ZooKeeper has lost its data (the epoch base is gone): raising the epoch base above every epoch this server knew",
					"path", b.path, "base", base, "fence", fence)
			}
			if err := ensureParents(b.conn, path.Dir(b.path), zk.WorldACL(zk.PermAll)); err != nil { // as zkInSync's
				return nil, err
			}
			if _, err := b.conn.Create(b.path, []byte(strconv.FormatInt(base, 10)), 0, b.acl); err != nil && !errors.Is(err, zk.ErrNodeExists) {
				return nil, fmt.Errorf("create %s: %w", b.path, err)
			}
			continue // read it back, with a watch
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", b.path, err)
		}
		base, err := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
		if err != nil || base < 0 {
			return nil, fmt.Errorf("%s holds %q, not an epoch base", b.path, data)
		}
		if known != 0 && stat.Czxid != known && base <= fence {
			// A new ZooKeeper generation whose base does not clear what this server knew.
			b.logger.Error("ZooKeeper has lost its data (a new epoch base): raising it above every epoch this server knew",
				"path", b.path, "base", base, "fence", fence)
			_, err := b.conn.Set(b.path, []byte(strconv.FormatInt(fence+1, 10)), stat.Version)
			if err != nil && !errors.Is(err, zk.ErrBadVersion) {
				return nil, fmt.Errorf("raise %s: %w", b.path, err)
			}
			continue
		}
		b.set(base, stat.Czxid, true)
		return w, nil
	}
	return nil, fmt.Errorf("%s keeps changing", b.path)
}

// ensureParents creates dir and its missing ancestors (persistent).
func ensureParents(conn *zk.Conn, dir string, acl []zk.ACL) error {
	p := ""
	for _, part := range strings.Split(strings.Trim(dir, "/"), "/") {
		if part == "" {
			continue
		}
		p += "/" + part
		if _, err := conn.Create(p, nil, 0, acl); err != nil && !errors.Is(err, zk.ErrNodeExists) {
			return fmt.Errorf("create %s: %w", p, err)
		}
	}
	return nil
}

// view adjusts v to the base: the epoch is the base plus the leader node's czxid, and while
// the base is unsettled the server is told it has no session, so that it neither leads nor
// follows on an epoch that may be stale.
func (b *epochBase) view(v election.View) election.View {
	base, settled, _ := b.get()
	v.Epoch += base
	if !settled {
		v.Connected, v.IsLeader, v.Leader = false, false, election.Member{}
	}
	return v
}
