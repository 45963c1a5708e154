package election

import (
	"context"
	"errors"
	"fmt"

	"github.com/zkv-dev/zkv/zk"
)

// multier is the part of *zk.Conn GuardedMulti needs; a Conn without it cannot fence.
type multier interface {
	Multi(ops ...any) ([]zk.MultiResponse, error)
}

// GuardedMulti runs ops (*zk.CreateRequest, *zk.SetDataRequest, *zk.DeleteRequest,
// *zk.CheckVersionRequest) as one ZooKeeper multi, guarded by a check that this candidate's
// node, the one it leads from in epoch, still exists: all of them apply only while the node
// does, that is while no other candidate can lead. It is ZooKeeper's form of etcd's
// Txn(If(CreateRevision(leaderKey) == rev)): the node is the leader key and epoch its czxid.
// Unlike CheckLeader, which trusts the lease, the guard is checked by ZooKeeper itself, in the
// same transaction as the writes, so a deposed leader's late writes cannot land.
//
// It returns an error wrapping ErrNotLeader when this candidate does not lead in epoch, before
// sending anything, or when the guard failed (the node is gone: the leadership has ended, or is
// about to); then none of ops applied. Otherwise it returns ZooKeeper's responses to ops (the
// guard's left out) and the multi's error, if any: a failed op of the caller's (each response
// carries its own error) or a connection error, after which the outcome is unknown. The Conn must
// have a Multi method (*zk.Conn has). go-zookeeper calls take no context: ctx is checked before.
func (c *Candidate) GuardedMulti(ctx context.Context, epoch int64, ops ...any) ([]zk.MultiResponse, error) {
	m, ok := c.cfg.Conn.(multier)
	if !ok {
		return nil, fmt.Errorf("election: GuardedMulti: the Conn (%T) has no Multi method", c.cfg.Conn)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c.mu.Lock()
	node := c.view.Self.Node
	err := c.checkLeaderLocked(epoch)
	c.mu.Unlock()
	if err != nil {
		return nil, err
	}
	guard := &zk.CheckVersionRequest{Path: node, Version: -1} // -1: any version, the node exists
	res, err := m.Multi(append([]any{guard}, ops...)...)
	if len(res) > 0 && res[0].Error != nil {
		return nil, fmt.Errorf("%w: leader node %s: %w", ErrNotLeader, node, res[0].Error)
	}
	if len(res) == 0 && errors.Is(err, zk.ErrNoNode) {
		return nil, fmt.Errorf("%w: leader node %s: %w", ErrNotLeader, node, err)
	}
	if len(res) > 0 {
		res = res[1:]
	}
	if err != nil {
		return res, fmt.Errorf("election: multi: %w", err)
	}
	return res, nil
}
