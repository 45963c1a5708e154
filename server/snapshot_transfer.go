package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/zkv-dev/zkv/kvstore"
	"github.com/zkv-dev/zkv/replication"
)

// A snapshot travels as a stream of bounded records (replication.ContentTypeSnapshotStream)
// both ways: pushed by a leader (POST /internal/v1/snapshot) and pulled by a new leader's
// catch-up or -sync_on_join (GET). Neither side holds more than the store's own
// consistent copy: the sender encodes it record by record as it writes, the receiver
// decodes record by record and installs the entries only once the trailer has verified
// the whole stream. The older single JSON document is still taken (and served to a
// client that does not accept the stream), under MaxSnapshotJSONBytes, so that servers of
// the previous release can be upgraded one by one.

// snapshotLimits bounds a received stream: each entry by this server's key and value
// limits, the whole by its quota.
func (s *Server) snapshotLimits() replication.SnapshotLimits {
	return replication.SnapshotLimits{MaxKeyBytes: s.cfg.MaxKeyBytes, MaxValueBytes: s.cfg.MaxValueBytes,
		MaxBytes: max(s.cfg.QuotaBytes, 0)}
}

func (s *Server) snapshotJSONLimit() int64 {
	if s.cfg.MaxSnapshotJSONBytes > 0 {
		return s.cfg.MaxSnapshotJSONBytes
	}
	return replication.DefaultMaxSnapshotBytes
}

// handleInstallSnapshot takes a leader's snapshot. The cluster token was checked before
// anything of the body was read (authorize); the fence and leader checks run on a
// stream's header before its entries are read, and again, as for any snapshot, in
// Follower.InstallSnapshot.
func (s *Server) handleInstallSnapshot(c echo.Context) error {
	r := c.Request()
	ct := r.Header.Get(echo.HeaderContentType)
	mt, _, _ := mime.ParseMediaType(ct)
	if mt != replication.ContentTypeSnapshotStream {
		if err := checkContentType(r); err != nil {
			return newAPIError(http.StatusUnsupportedMediaType, CodeUnsupportedMedia,
				"Content-Type must be %s or application/json, got %q", replication.ContentTypeSnapshotStream, ct)
		}
	}
	body := io.Reader(&deadlineReader{r: r.Body, rc: http.NewResponseController(c.Response()), every: s.cfg.ReadTimeout})
	jsonLimit := s.snapshotJSONLimit()
	if mt != replication.ContentTypeSnapshotStream {
		body = http.MaxBytesReader(c.Response(), io.NopCloser(body), jsonLimit)
	}
	var hdr replication.SnapshotHeader
	req, err := replication.DecodeSnapshotBody(ct, body, jsonLimit, s.snapshotLimits(), func(h replication.SnapshotHeader) error {
		hdr = h
		s.catchUpView(r.Context(), h.Leader, h.Epoch)
		return s.follower.Admits(h.Epoch, h.Leader)
	})
	if err != nil {
		if errors.Is(err, replication.ErrNotLeader) || errors.Is(err, replication.ErrStaleEpoch) {
			s.logReplicaRefusal("snapshot", hdr.Leader, hdr.Epoch, err)
		} else {
			s.logger.Warn("refused a snapshot", "content_type", mt, "error", err)
		}
		return replicationError(c, err)
	}
	s.catchUpView(r.Context(), req.Leader, req.Epoch)
	resp, err := s.follower.InstallSnapshot(r.Context(), req)
	if err != nil {
		s.logReplicaRefusal("snapshot", req.Leader, req.Epoch, err)
		return replicationError(c, err)
	}
	s.streamEpoch.Store(req.Epoch)
	s.lastContact.Store(time.Now().UnixNano())
	s.logger.Info("installed the leader's snapshot", "leader", req.Leader, "index", resp.LastIndex,
		"entries", len(req.Snapshot.Entries))
	return c.JSON(http.StatusOK, resp)
}

// handleGetSnapshot serves this server's store: as a stream to a client that accepts one,
// else as the older JSON document.
func (s *Server) handleGetSnapshot(c echo.Context) error {
	snap := s.store.Snapshot()
	if !strings.Contains(c.Request().Header.Get("Accept"), replication.ContentTypeSnapshotStream) {
		return c.JSON(http.StatusOK, snap)
	}
	h := replication.SnapshotHeader{Epoch: max(s.elector.View().Epoch, snap.Epoch), Leader: s.cfg.Address,
		Index: snap.Index, SnapshotEpoch: snap.Epoch}
	c.Response().Header().Set(echo.HeaderContentType, replication.ContentTypeSnapshotStream)
	c.Response().WriteHeader(http.StatusOK)
	w := &deadlineWriter{w: c.Response(), rc: http.NewResponseController(c.Response()), every: s.cfg.WriteTimeout + s.cfg.ReadTimeout}
	if err := replication.WriteSnapshotStream(w, h, snap.Entries); err != nil {
		// The answer is cut short: the client sees no trailer and installs nothing.
		s.logger.Warn("serve a snapshot", "remote", c.RealIP(), "entries", len(snap.Entries), "error", err)
	}
	return nil
}

// fetchSnapshot pulls addr's store, as a stream (or the JSON document of a server that
// does not stream), verified whole before it is returned.
func (s *Server) fetchSnapshot(ctx context.Context, addr string) (kvstore.Snapshot, error) {
	resp, url, err := s.openInternal(ctx, addr, replication.PathSnapshot,
		replication.ContentTypeSnapshotStream+", application/json;q=0.5")
	if err != nil {
		return kvstore.Snapshot{}, err
	}
	defer resp.Body.Close()
	ct := resp.Header.Get(echo.HeaderContentType)
	if mt, _, _ := mime.ParseMediaType(ct); mt == replication.ContentTypeSnapshotStream {
		req, err := replication.ReadSnapshotStream(resp.Body, s.snapshotLimits(), nil)
		if err != nil {
			return kvstore.Snapshot{}, fmt.Errorf("GET %s: %w", url, err)
		}
		return req.Snapshot, nil
	}
	var snap kvstore.Snapshot
	if err := decodeLimited(resp.Body, s.snapshotJSONLimit(), &snap); err != nil {
		return kvstore.Snapshot{}, fmt.Errorf("GET %s: %w", url, err)
	}
	return snap, nil
}

// deadlineReader pushes the connection's read deadline (and the write deadline, which
// the answer needs after a long body) forward while a long body keeps arriving: the
// server's ReadTimeout then bounds a pause, not the whole transfer.
type deadlineReader struct {
	r     io.Reader
	rc    *http.ResponseController
	every time.Duration
	last  time.Time
}

func (d *deadlineReader) Read(p []byte) (int, error) {
	if now := time.Now(); now.Sub(d.last) > time.Second {
		d.last = now
		_ = d.rc.SetReadDeadline(now.Add(d.every))
		_ = d.rc.SetWriteDeadline(now.Add(2 * d.every))
	}
	return d.r.Read(p)
}

// deadlineWriter is deadlineReader for a long answer.
type deadlineWriter struct {
	w     io.Writer
	rc    *http.ResponseController
	every time.Duration
	last  time.Time
}

func (d *deadlineWriter) Write(p []byte) (int, error) {
	if now := time.Now(); now.Sub(d.last) > time.Second {
		d.last = now
		_ = d.rc.SetWriteDeadline(now.Add(d.every))
	}
	return d.w.Write(p)
}

// decodeLimited decodes one JSON value of at most limit bytes from r.
func decodeLimited(r io.Reader, limit int64, v any) error {
	lr := &io.LimitedReader{R: r, N: limit + 1}
	err := json.NewDecoder(lr).Decode(v)
	if lr.N <= 0 {
		return fmt.Errorf("%w: more than %d bytes", replication.ErrTooLarge, limit)
	}
	if err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	return nil
}
