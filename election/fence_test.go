package election

import (
	"errors"
	"testing"

	"github.com/zkv-dev/zkv/zk"
)

func TestGuardedMultiOnlyWhileLeading(t *testing.T) {
	srv := newFakeServer()
	ms := joinAll(t, srv, "a", "b")
	waitLeader(t, ms[0], ms...)
	epoch := ms[0].c.View().Epoch
	ctx := ctxT(t)
	srv.mu.Lock()
	srv.ensure("/data")
	srv.mu.Unlock()

	res, err := ms[0].c.GuardedMulti(ctx, epoch, &zk.CreateRequest{Path: "/data/x", Data: []byte("1"), Acl: zk.WorldACL(zk.PermAll)})
	if err != nil {
		t.Fatalf("leader's GuardedMulti: %v", err)
	}
	if len(res) != 1 || res[0].String != "/data/x" {
		t.Fatalf("responses %+v, want the create's alone", res)
	}
	// A failed op of the caller's is its error, not ErrNotLeader.
	_, err = ms[0].c.GuardedMulti(ctx, epoch, &zk.CreateRequest{Path: "/data/x", Acl: zk.WorldACL(zk.PermAll)})
	if !errors.Is(err, zk.ErrNodeExists) || errors.Is(err, ErrNotLeader) {
		t.Fatalf("create of an existing node: %v", err)
	}

	for name, call := range map[string]func() error{
		"follower": func() error {
			_, err := ms[1].c.GuardedMulti(ctx, epoch, &zk.CreateRequest{Path: "/data/y"})
			return err
		},
		"other epoch": func() error {
			_, err := ms[0].c.GuardedMulti(ctx, epoch+1, &zk.CreateRequest{Path: "/data/y"})
			return err
		},
	} {
		if err := call(); !errors.Is(err, ErrNotLeader) {
			t.Errorf("%s: %v, want ErrNotLeader", name, err)
		}
	}
	if got := srv.children("/data"); len(got) != 1 {
		t.Fatalf("/data holds %v, want x alone", got)
	}
}

// deposingConn deletes the leader's node just before a multi, as when the session expired
// on the server a moment after the local check: the guard, checked by ZooKeeper, must fail.
type deposingConn struct {
	*fakeConn
	node *string
}

func (d deposingConn) Multi(ops ...any) ([]zk.MultiResponse, error) {
	d.srv.mu.Lock()
	d.srv.deleteLocked(*d.node)
	d.srv.mu.Unlock()
	return d.fakeConn.Multi(ops...)
}

func TestGuardedMultiGuardCheckedByZooKeeper(t *testing.T) {
	srv := newFakeServer()
	var node string
	m := newMemberWith(t, srv, "a", func(cfg *Config) {
		cfg.Conn = deposingConn{fakeConn: cfg.Conn.(*fakeConn), node: &node}
	})
	if _, err := m.c.Campaign(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	v := m.c.View()
	node = v.Self.Node
	srv.mu.Lock()
	srv.ensure("/data")
	srv.mu.Unlock()
	_, err := m.c.GuardedMulti(ctxT(t), v.Epoch, &zk.CreateRequest{Path: "/data/x"})
	if !errors.Is(err, ErrNotLeader) || !errors.Is(err, zk.ErrNoNode) {
		t.Fatalf("GuardedMulti after the node went: %v, want ErrNotLeader wrapping zk.ErrNoNode", err)
	}
	if got := srv.children("/data"); len(got) != 0 {
		t.Fatalf("/data holds %v: the write landed without the guard", got)
	}
}

func TestGuardedMultiNeedsMulti(t *testing.T) {
	srv := newFakeServer()
	m := newMemberWith(t, srv, "a", func(cfg *Config) {
		cfg.Conn = struct{ Conn }{cfg.Conn} // hides Multi
	})
	if _, err := m.c.GuardedMulti(ctxT(t), 1); err == nil || errors.Is(err, ErrNotLeader) {
		t.Fatalf("GuardedMulti on a Conn without Multi: %v", err)
	}
}
