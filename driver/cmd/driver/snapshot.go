package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zkv-dev/zkv/driver/client"
)

// progressEvery is how often save and restore report their progress on stderr.
const progressEvery = time.Second

func runSnapshot(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "save":
			return runSnapshotSave(ctx, args[1:], stdout, stderr)
		case "restore":
			return runSnapshotRestore(ctx, args[1:], stdout, stderr)
		}
	}
	fmt.Fprintln(stderr, "usage: driver snapshot save|restore [flags] FILE (\"driver snapshot save -h\" lists the flags)")
	return exitUsage
}

// leaderOf returns the leader's address as addr's server knows it.
func leaderOf(ctx context.Context, c *client.Client) (string, error) {
	st, err := c.Status(ctx)
	if err != nil {
		return "", err
	}
	if st.Leader.Address == "" {
		return "", fmt.Errorf("%s knows no leader (role %s): try again once the cluster has one", c.Addr(), st.Role)
	}
	return st.Leader.Address, nil
}

func runSnapshotSave(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f := newClientFlags("snapshot save", "[-addr h:p] [-local] FILE", stderr)
	local := f.fs.Bool("local", false, "take the snapshot from -addr's own copy instead of the leader's")
	rest, code, ok := f.parse(args, 1)
	if !ok {
		return code
	}
	file := rest[0]
	from := *f.addr
	if !*local {
		leader, err := leaderOf(ctx, f.client())
		if err != nil {
			return f.answer(stdout, stderr, nil, err)
		}
		from = leader
	}
	// Written beside the target and renamed once complete: FILE is never half a snapshot.
	tmp, err := os.CreateTemp(filepath.Dir(file), "."+filepath.Base(file)+".*.partial")
	if err != nil {
		return f.answer(stdout, stderr, nil, err)
	}
	defer func() { _ = os.Remove(tmp.Name()) }()
	start := time.Now()
	last := start
	opts := []client.Option{client.WithToken(*f.token)} // no timeout: a large store takes long
	if *f.tls != nil {
		opts = append(opts, client.WithTLS(*f.tls))
	}
	c := client.New(from, opts...)
	defer func() { _ = c.Close() }()
	h, err := c.Snapshot(ctx, tmp, func(done int, h client.SnapshotHeader) {
		if now := time.Now(); now.Sub(last) >= progressEvery {
			last = now
			fmt.Fprintf(stderr, "saving: %d/%d keys\n", done, h.Keys)
		}
	})
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), file)
	}
	if err != nil {
		return f.answer(stdout, stderr, nil, fmt.Errorf("snapshot save from %s: %w", from, err))
	}
	sum := map[string]any{"file": file, "from": from, "index": h.Index, "epoch": h.Epoch, "keys": h.Keys,
		"took_ms": time.Since(start).Milliseconds()}
	if *f.json {
		return f.answer(stdout, stderr, sum, nil)
	}
	fmt.Fprintf(stdout, "saved %d keys (index %d, epoch %d) from %s to %s in %v\n", h.Keys, h.Index, h.Epoch, from, file,
		time.Since(start).Round(time.Millisecond))
	return exitOK
}

// restoreAttempts bounds the tries of one key's write; a write refused as temporary (no
// leader for now, leader unreachable) is retried after a growing pause.
const restoreAttempts = 8

func runSnapshotRestore(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f := newClientFlags("snapshot restore", "[-addr h:p] [-concurrency N] FILE", stderr)
	workers := f.fs.Int("concurrency", 16, "writes in flight at once")
	rest, code, ok := f.parse(args, 1)
	if !ok {
		return code
	}
	if *workers < 1 {
		fmt.Fprintf(stderr, "-concurrency %d: want at least 1\n", *workers)
		return exitUsage
	}
	file := rest[0]
	// First pass: the whole file is checked before anything is written.
	h, err := checkSnapshotFile(file)
	if err != nil {
		return f.answer(stdout, stderr, nil, fmt.Errorf("snapshot restore: %s: %w (nothing written)", file, err))
	}
	seed := f.client()
	leader, err := leaderOf(ctx, seed)
	if err != nil {
		return f.answer(stdout, stderr, nil, err)
	}
	if st, err := seed.Status(ctx); err == nil && st.Keys > 0 {
		fmt.Fprintf(stderr, "note: the cluster holds %d keys already; the snapshot's keys overwrite theirs, the others stay\n", st.Keys)
	}
	// Writes go to the leader; one refused as temporary is retried through -addr, which
	// forwards it to whichever server leads by then.
	lc := f.clientOf(leader)
	defer func() { _ = lc.Close() }()

	start := time.Now()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	keys := make(chan client.SnapshotKey, *workers*4)
	var written atomic.Int64
	var firstErr error
	var errOnce sync.Once
	fail := func(err error) {
		errOnce.Do(func() { firstErr = err; cancel() })
	}
	var wg sync.WaitGroup
	for range *workers {
		wg.Go(func() {
			for k := range keys {
				if err := restoreKey(ctx, lc, seed, k); err != nil {
					fail(fmt.Errorf("write %q: %w", k.Key, err))
					continue // drain
				}
				written.Add(1)
			}
		})
	}
	done := make(chan struct{})
	var progress sync.WaitGroup
	progress.Go(func() {
		t := time.NewTicker(progressEvery)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				fmt.Fprintf(stderr, "restoring: %d/%d keys\n", written.Load(), h.Keys)
			}
		}
	})
	_, rerr := readSnapshotFile(file, func(_ client.SnapshotHeader, k client.SnapshotKey) error {
		select {
		case keys <- k:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	close(keys)
	wg.Wait()
	close(done)
	progress.Wait()
	if firstErr == nil && rerr != nil {
		firstErr = rerr
	}
	if firstErr != nil {
		return f.answer(stdout, stderr, nil, fmt.Errorf("snapshot restore: %d of %d keys written: %w", written.Load(), h.Keys, firstErr))
	}
	sum := map[string]any{"file": file, "leader": leader, "keys": written.Load(), "snapshot_index": h.Index,
		"snapshot_epoch": h.Epoch, "took_ms": time.Since(start).Milliseconds()}
	if *f.json {
		return f.answer(stdout, stderr, sum, nil)
	}
	fmt.Fprintf(stdout, "restored %d keys from %s (snapshot index %d, epoch %d) through leader %s in %v\n",
		written.Load(), file, h.Index, h.Epoch, leader, time.Since(start).Round(time.Millisecond))
	return exitOK
}

// restoreKey writes k through the leader, retrying a temporary refusal through via.
func restoreKey(ctx context.Context, leader, via *client.Client, k client.SnapshotKey) error {
	c := leader
	pause := 50 * time.Millisecond
	var err error
	for range restoreAttempts {
		if _, err = c.Put(ctx, k.Key, k.Value); err == nil {
			return nil
		}
		if ae := (*client.APIError)(nil); errors.As(err, &ae) && !ae.Temporary() {
			return err // refused for good (a 4xx: the key or value is not acceptable here)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c = via // the leader may have changed or gone: let -addr route it
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pause):
		}
		pause = min(2*pause, 2*time.Second)
	}
	return err
}

func checkSnapshotFile(file string) (client.SnapshotHeader, error) {
	return readSnapshotFile(file, func(client.SnapshotHeader, client.SnapshotKey) error { return nil })
}

func readSnapshotFile(file string, fn func(client.SnapshotHeader, client.SnapshotKey) error) (client.SnapshotHeader, error) {
	fh, err := os.Open(file)
	if err != nil {
		return client.SnapshotHeader{}, err
	}
	defer func() { _ = fh.Close() }()
	return client.ReadSnapshot(fh, fn)
}
