package server

import (
	"context"
	"errors"
	"fmt"
	"path"
	"sync"

	"github.com/zkv-dev/zkv/zk"
)

// zkInSync keeps the in-sync record in a znode. go-zookeeper's calls take no context:
// each runs in a goroutine and the caller stops waiting when ctx ends (the call itself
// ends with the session, at the latest).
//
// It remembers the last record it read or wrote. Should ZooKeeper lose its data (the znode
// is gone, though the cluster has run), Load answers with that remembered record (found
// false, so that the next Save creates the znode again): a new leader then still waits for
// the members the cluster last recorded instead of taking whoever answers.
type zkInSync struct {
	conn *zk.Conn
	path string
	acl  []zk.ACL

	mu         sync.Mutex
	remembered *InSyncRecord
}

func (z *zkInSync) remember(rec InSyncRecord) {
	z.mu.Lock()
	defer z.mu.Unlock()
	z.remembered = &rec
}

// Remembered returns the last record read or written, if any.
func (z *zkInSync) Remembered() (InSyncRecord, bool) {
	z.mu.Lock()
	defer z.mu.Unlock()
	if z.remembered == nil {
		return InSyncRecord{}, false
	}
	return *z.remembered, true
}

func (z *zkInSync) Load(ctx context.Context) (InSyncRecord, int32, bool, error) {
	type result struct {
		data []byte
		stat *zk.Stat
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		data, stat, err := z.conn.Get(z.path)
		ch <- result{data, stat, err}
	}()
	select {
	case <-ctx.Done():
		return InSyncRecord{}, 0, false, ctx.Err()
	case r := <-ch:
		switch {
		case errors.Is(r.err, zk.ErrNoNode):
			rec, _ := z.Remembered()
			return rec, 0, false, nil
		case r.err != nil:
			return InSyncRecord{}, 0, false, fmt.Errorf("server: read %s: %w", z.path, r.err)
		}
		rec, err := decodeRecord(r.data)
		if err == nil {
			z.remember(rec)
		}
		return rec, r.stat.Version, true, err
	}
}

func (z *zkInSync) Save(ctx context.Context, rec InSyncRecord, version int32, found bool, guard string) (int32, error) {
	data, err := encodeRecord(rec)
	if err != nil {
		return 0, err
	}
	ch := make(chan error, 1)
	var newVersion int32
	go func() {
		if !found {
			if err := z.ensureParents(); err != nil {
				ch <- err
				return
			}
		}
		ops := []any{&zk.CheckVersionRequest{Path: guard, Version: -1}}
		if found {
			ops = append(ops, &zk.SetDataRequest{Path: z.path, Data: data, Version: version})
		} else {
			ops = append(ops, &zk.CreateRequest{Path: z.path, Data: data, Acl: z.acl})
		}
		res, err := z.conn.Multi(ops...)
		if err == nil {
			for _, r := range res {
				if r.Error != nil {
					err = r.Error
				}
			}
		}
		switch {
		case errors.Is(err, zk.ErrBadVersion), errors.Is(err, zk.ErrNoNode), errors.Is(err, zk.ErrNodeExists):
			ch <- fmt.Errorf("%w: %v", ErrInSyncConflict, err)
			return
		case err != nil:
			ch <- fmt.Errorf("server: write %s: %w", z.path, err)
			return
		}
		if found {
			newVersion = version + 1
		}
		z.remember(rec)
		ch <- nil
	}()
	select {
	case <-ctx.Done():
		return 0, ctx.Err()
	case err := <-ch:
		return newVersion, err
	}
}

// ensureParents creates the record's parent znodes that are missing.
func (z *zkInSync) ensureParents() error {
	// The directories hold no data and stay open (world ACL), so that clusters with and
	// without a token can share an ensemble; the record itself carries z.acl.
	if err := ensureParents(z.conn, path.Dir(z.path), zk.WorldACL(zk.PermAll)); err != nil {
		return fmt.Errorf("server: %w", err)
	}
	return nil
}
