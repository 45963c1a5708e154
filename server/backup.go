package server

import (
	"bufio"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
)

// SnapshotFormat names the backup format of GET /v1/snapshot in its header line.
const SnapshotFormat = "zkv-snapshot/1"

// SnapshotHeader is the first line of GET /v1/snapshot: where in the history the snapshot
// stands and how many key lines follow (a reader that counts fewer has a truncated copy).
type SnapshotHeader struct {
	Format  string    `json:"format"`
	Index   uint64    `json:"index"` // the last committed write the snapshot reflects
	Epoch   int64     `json:"epoch"` // the epoch of that write
	Keys    int       `json:"keys"`  // key lines after the header
	Server  string    `json:"server"`
	TakenAt time.Time `json:"taken_at"`
}

// SnapshotKey is one key line of GET /v1/snapshot.
type SnapshotKey struct {
	Key     string `json:"key"`
	Value   string `json:"value"`
	Version uint64 `json:"version"`
}

// snapshotChunk is how much of the answer is buffered before it is sent; each send also
// pushes the write deadline on, so a large store over a slow link is not cut by the
// server's WriteTimeout while it keeps moving.
const snapshotChunk = 64 << 10

// handleSnapshot streams a consistent snapshot of this server's store as JSON lines: a
// SnapshotHeader, then one SnapshotKey per live key, sorted by key. It is the copy the
// internal snapshot route sends a replica (taken under the store's writer lock, so it is
// one point of the history: exactly the committed writes up to Index); only entry headers
// are copied, the values are shared, and the JSON is encoded as it is sent, never held
// whole. It is served from this server's own copy, like a local read: ask the leader for
// the newest one.
func (s *Server) handleSnapshot(c echo.Context) error {
	snap := s.store.Snapshot()
	live := 0
	for _, e := range snap.Entries {
		if !e.Deleted && !e.Noop && e.Key != "" {
			live++
		}
	}
	w := c.Response()
	w.Header().Set(echo.HeaderContentType, "application/x-ndjson")
	w.Header().Set(HeaderApplied, strconv.FormatUint(snap.Index, 10))
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w.Writer)
	extend := func() { _ = rc.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout + s.cfg.ReadTimeout)) }
	extend()
	bw := bufio.NewWriterSize(w, snapshotChunk)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(SnapshotHeader{Format: SnapshotFormat, Index: snap.Index, Epoch: snap.Epoch, Keys: live,
		Server: s.cfg.Address, TakenAt: time.Now().UTC()}); err != nil {
		return nil // the client is gone; the status is sent already
	}
	for _, e := range snap.Entries {
		if e.Deleted || e.Noop || e.Key == "" {
			continue
		}
		if bw.Available() < len(e.Key)+len(e.Value)+64 {
			extend()
		}
		if err := enc.Encode(SnapshotKey{Key: e.Key, Value: e.Value, Version: e.Version}); err != nil {
			s.logger.Warn("snapshot stream cut", "remote", c.Request().RemoteAddr, "error", err)
			return nil
		}
	}
	if err := bw.Flush(); err != nil {
		s.logger.Warn("snapshot stream cut", "remote", c.Request().RemoteAddr, "error", err)
		return nil
	}
	s.logger.Info("snapshot sent", "remote", c.Request().RemoteAddr, "index", snap.Index, "keys", live)
	return nil
}
