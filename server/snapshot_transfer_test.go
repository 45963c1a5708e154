package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/zkv-dev/zkv/kvstore"
	"github.com/zkv-dev/zkv/replication"
	"github.com/zkv-dev/zkv/server"
)

// The scaled-down problem of issue #10: values of control characters, which JSON escapes
// six to one, make the store's JSON document exceed the snapshot cap (1 GiB in production,
// jsonCap here) although the store itself is far below it.
const (
	jsonCap    = 256 << 10
	bigValue   = 8 << 10
	bigEntries = 96 // 768 KiB of values: 4.5 MiB of JSON, about 96 records of a stream
)

func controlValue(i int) string { return strings.Repeat(string(rune(1+i%30)), bigValue) }

func bigSnapshot(index uint64, epoch int64) kvstore.Snapshot {
	snap := kvstore.Snapshot{Index: index, Epoch: epoch}
	for i := range bigEntries {
		snap.Entries = append(snap.Entries, kvstore.Entry{Key: fmt.Sprintf("big/%03d", i), Value: controlValue(i),
			Version: 1, Index: uint64(i + 1), Epoch: epoch})
	}
	return snap
}

func withSnapshotCap(cfg *server.Config) {
	cfg.MaxSnapshotJSONBytes = jsonCap
	cfg.MaxValueBytes = bigValue
}

// TestSnapshotStreamBeyondJSONCap: a leader's snapshot whose JSON exceeds the cap is
// refused as one JSON document (413, nothing installed: the replica could never catch
// up), and arrives as a stream, many times the size of one record; a stream cut short, or
// from a deposed leader, installs nothing.
func TestSnapshotStreamBeyondJSONCap(t *testing.T) {
	c, stub, n := followerOfStub(t, withConfig(withSnapshotCap))
	epoch := c.epochNow()
	snap := bigSnapshot(bigEntries, epoch)
	req := replication.SnapshotRequest{Epoch: epoch, Leader: stub.addr(), Snapshot: snap}

	// The old path: one JSON document.
	doc, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	if len(doc) <= jsonCap {
		t.Fatalf("the JSON document is %d bytes, not above the cap %d: the test shows nothing", len(doc), jsonCap)
	}
	if r := do(t, http.MethodPost, n.url+replication.PathSnapshot, "application/json", string(doc)); r.code != http.StatusRequestEntityTooLarge {
		t.Fatalf("JSON snapshot above the cap: %d %s", r.code, r.body)
	}
	if n.store.Len() != 0 {
		t.Fatal("a refused JSON snapshot was installed")
	}

	// The stream: the same snapshot, through the leader's transport.
	var stream bytes.Buffer
	h := replication.SnapshotHeader{Epoch: epoch, Leader: stub.addr(), Index: snap.Index, SnapshotEpoch: snap.Epoch}
	if err := replication.WriteSnapshotStream(&stream, h, snap.Entries); err != nil {
		t.Fatal(err)
	}
	if stream.Len() < 50*bigValue {
		t.Fatalf("the stream is %d bytes, not many records", stream.Len())
	}
	tr, err := replication.NewHTTPTransport(replication.HTTPTransportConfig{RetryMax: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	resp, err := tr.Snapshot(context.Background(), n.addr, req)
	if err != nil || resp.LastIndex != snap.Index {
		t.Fatalf("streamed snapshot: %+v, %v", resp, err)
	}
	want, _ := kvstore.New(kvstore.Config{})
	want.Restore(snap)
	if n.store.Hash() != want.Hash() || n.store.Len() != bigEntries {
		t.Fatalf("the replica holds %d keys, not the snapshot's %d", n.store.Len(), bigEntries)
	}

	// A stream cut short (a later snapshot with other values): refused, nothing installed.
	later := bigSnapshot(bigEntries+10, epoch)
	for i := range later.Entries {
		later.Entries[i].Value = "other"
	}
	stream.Reset()
	h.Index = later.Index
	if err := replication.WriteSnapshotStream(&stream, h, later.Entries); err != nil {
		t.Fatal(err)
	}
	for _, cut := range []int{stream.Len() - 1, stream.Len() / 2, 20} {
		r := do(t, http.MethodPost, n.url+replication.PathSnapshot, replication.ContentTypeSnapshotStream, string(stream.Bytes()[:cut]))
		if r.code != http.StatusBadRequest {
			t.Errorf("stream cut at %d of %d: %d %s", cut, stream.Len(), r.code, r.body)
		}
	}
	if idx, _ := n.store.Last(); idx != snap.Index || n.store.Hash() != want.Hash() {
		t.Fatalf("a truncated stream changed the store (index %d)", idx)
	}

	// A deposed leader's stream is refused on its header.
	stale := req
	stale.Epoch, stale.Snapshot = epoch-1, later
	if _, err := tr.Snapshot(context.Background(), n.addr, stale); err == nil {
		t.Fatal("a stale leader's snapshot was taken")
	}
	if r := do(t, http.MethodPost, n.url+replication.PathSnapshot, "text/plain", "x"); r.code != http.StatusUnsupportedMediaType {
		t.Errorf("a snapshot of another media type: %d %s", r.code, r.body)
	}
	if n.store.Hash() != want.Hash() {
		t.Fatal("a refused snapshot changed the store")
	}
}

// TestSyncOnJoinBeyondJSONCap: a server with -sync_on_join pulls a leader's store whose
// JSON document exceeds the cap (so the old pull failed, and the server never became
// ready) as a stream, and holds all of it.
func TestSyncOnJoinBeyondJSONCap(t *testing.T) {
	c := newFakeCluster()
	a := startNode(t, c, "a", withConfig(withSnapshotCap))
	a.waitLeading(t)
	for i := range bigEntries {
		if r := put(t, a.url, fmt.Sprintf("big/%03d", i), controlValue(i)); r.code != 200 {
			t.Fatalf("PUT %d: %d %s", i, r.code, r.body)
		}
	}
	// What the old pull got: one JSON document, above the cap.
	if r := do(t, http.MethodGet, a.url+replication.PathSnapshot, "", "", "Accept", "application/json"); r.code != 200 || len(r.body) <= jsonCap {
		t.Fatalf("JSON snapshot: %d, %d bytes (cap %d)", r.code, len(r.body), jsonCap)
	}
	d := startNode(t, c, "d", withConfig(func(cfg *server.Config) {
		withSnapshotCap(cfg)
		cfg.SyncOnJoin = true
	}))
	d.waitReady(t)
	if d.store.Len() != bigEntries || d.store.Hash() != a.store.Hash() {
		t.Fatalf("d holds %d keys after sync on join, want the leader's %d", d.store.Len(), bigEntries)
	}
}
