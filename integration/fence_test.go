package integration

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/zkv-dev/zkv/election"
	"github.com/zkv-dev/zkv/zk"
)

// deposingConn deletes the leader's node just before a multi, as if the session had expired on
// the server right after GuardedMulti's local check: ZooKeeper's own check must refuse the ops.
type deposingConn struct {
	*zk.Conn
	node *string
}

func (d deposingConn) Multi(ops ...any) ([]zk.MultiResponse, error) {
	if *d.node != "" {
		_ = d.Conn.Delete(*d.node, -1)
	}
	return d.Conn.Multi(ops...)
}

// TestElectionGuardedMulti: on a real ZooKeeper, the leader's guarded multi applies, a
// follower's is refused before it is sent, and one whose leader node went between the local
// check and the multi is refused by ZooKeeper, with none of its ops applied.
func TestElectionGuardedMulti(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	z := sharedEnsemble(ctx, t)
	r := newElectionRig(ctx, t, z.Servers())
	a := r.add(ctx, "a", false)
	b := r.add(ctx, "b", false)
	if got := r.leader(ctx, 10*time.Second, a, b); got != a {
		t.Fatalf("leader %s, want a", got.id)
	}
	epoch := a.c.View().Epoch
	acl := zk.WorldACL(zk.PermAll)
	res, err := a.c.GuardedMulti(ctx, epoch, &zk.CreateRequest{Path: r.root + "/fenced", Acl: acl})
	if err != nil || len(res) != 1 || res[0].String != r.root+"/fenced" {
		t.Fatalf("leader's GuardedMulti: %+v, %v", res, err)
	}
	if _, err := b.c.GuardedMulti(ctx, epoch, &zk.CreateRequest{Path: r.root + "/b", Acl: acl}); !errors.Is(err, election.ErrNotLeader) {
		t.Fatalf("follower's GuardedMulti: %v, want ErrNotLeader", err)
	}

	// A candidate of its own whose node goes just before the multi.
	sess, err := election.DialContext(ctx, z.Servers(), electionSession, election.WithLogger(testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	var node string
	c, err := election.New(election.Config{Conn: deposingConn{Conn: sess.Conn, node: &node}, Events: sess.Events,
		Root: r.root + "/solo", ID: "solo", Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	term, err := c.Campaign(ctx)
	if err != nil {
		t.Fatal(err)
	}
	node = term.Node
	_, err = c.GuardedMulti(ctx, term.Epoch, &zk.CreateRequest{Path: r.root + "/late", Acl: acl})
	if !errors.Is(err, election.ErrNotLeader) || !errors.Is(err, zk.ErrNoNode) {
		t.Fatalf("GuardedMulti after the node went: %v, want ErrNotLeader wrapping zk.ErrNoNode", err)
	}
	if ok, _, err := sess.Conn.Exists(r.root + "/late"); err != nil || ok {
		t.Fatalf("the deposed leader's create landed (exists %v, %v)", ok, err)
	}
}
