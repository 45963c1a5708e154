package server

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/zkv-dev/zkv/election"
	"github.com/zkv-dev/zkv/kvstore"
	"github.com/zkv-dev/zkv/replication"
)

// authorize guards the internal routes with the cluster token, compared in constant
// time. Without a token they are open (Open warns about it at start).
func (s *Server) authorize(next echo.HandlerFunc) echo.HandlerFunc {
	want := []byte("Bearer " + s.cfg.ClusterToken)
	return func(c echo.Context) error {
		if s.cfg.ClusterToken == "" {
			return next(c)
		}
		got := []byte(c.Request().Header.Get("Authorization"))
		if subtle.ConstantTimeCompare(got, want) != 1 {
			c.Response().Header().Set("WWW-Authenticate", `Bearer realm="zkv-internal"`)
			return newAPIError(http.StatusUnauthorized, CodeUnauthorized, "internal route: missing or wrong cluster token")
		}
		return next(c)
	}
}

// replicationError answers an error of the replication package in its wire shape.
func replicationError(c echo.Context, err error) error {
	status, body := replication.ErrorStatus(err)
	return c.JSON(status, body)
}

func (s *Server) handleAppend(c echo.Context) error {
	if err := checkContentType(c.Request()); err != nil {
		return err
	}
	limit := s.cfg.appendLimit()
	req, err := replication.DecodeAppend(http.MaxBytesReader(c.Response(), c.Request().Body, limit), limit)
	if err != nil {
		return replicationError(c, err)
	}
	resp, err := s.takeAppend(c.Request().Context(), req)
	if err != nil {
		return replicationError(c, err)
	}
	return c.JSON(http.StatusOK, resp)
}

// takeAppend is a leader's append, from POST /internal/v1/append or the stream: the
// Follower checks the epoch fence, the sender (CheckLeader) and the incarnation.
func (s *Server) takeAppend(ctx context.Context, req replication.AppendRequest) (replication.AppendResponse, error) {
	s.catchUpView(ctx, req.Leader, req.Epoch)
	resp, err := s.follower.Append(ctx, req)
	if err != nil {
		s.logReplicaRefusal("append", req.Leader, req.Epoch, err)
		return resp, err
	}
	s.streamEpoch.Store(req.Epoch)
	s.lastContact.Store(time.Now().UnixNano())
	if len(req.Entries) > 0 {
		s.logger.Debug("appended", "leader", req.Leader, "epoch", req.Epoch, "entries", len(req.Entries),
			"last_index", resp.LastIndex)
	}
	return resp, nil
}

// handleStream upgrades to the replication stream (replication.PathStream); the
// cluster token was checked by authorize.
func (s *Server) handleStream(c echo.Context) error {
	s.streams.ServeHTTP(c.Response(), c.Request())
	return nil
}

// viewRefreshTimeout bounds catchUpView's wait for the election.
const viewRefreshTimeout = time.Second

// catchUpView re-reads the election at once when a request comes from a newer epoch than
// this server's view (a follower down the line learns of a new leader from its poll, so
// the new leader's first appends usually arrive first). Without it the append is refused
// (403) and the leader retries after a backoff.
func (s *Server) catchUpView(ctx context.Context, leader string, epoch int64) {
	v := s.elector.View()
	if v.Epoch >= epoch && v.Leader.Address != "" {
		return
	}
	r, ok := s.elector.(refresher)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, viewRefreshTimeout)
	defer cancel()
	if err := r.Refresh(ctx); err != nil {
		s.logger.Debug("refresh the election for a newer epoch", "sender", leader, "epoch", epoch, "error", err)
	}
}

// handleHello is a follower telling the leader it exists (see sayHello): the leader
// re-reads the members now rather than at its next MemberRefresh.
func (s *Server) handleHello(c echo.Context) error {
	if !s.leading() {
		return unavailable(CodeNotLeader, ErrNotLeader, "%s does not lead", s.cfg.ID)
	}
	select {
	case s.rejoin <- struct{}{}:
	default:
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) logReplicaRefusal(what, leader string, epoch int64, err error) {
	switch {
	case errors.Is(err, replication.ErrStaleEpoch):
		s.logger.Warn("refused "+what+" from a deposed leader", "sender", leader, "epoch", epoch, "fence", s.follower.Fence())
	case errors.Is(err, replication.ErrNotLeader):
		// A leader retries until the view catches up: log once per sender and epoch.
		level, key := slog.LevelInfo, fmt.Sprint(leader, "/", epoch)
		if prev, _ := s.refused.Swap(key).(string); prev == key {
			level = slog.LevelDebug
		}
		s.logger.Log(context.Background(), level, "refused "+what+" from a sender this view does not take for the leader",
			"sender", leader, "epoch", epoch, "view_leader", s.elector.View().Leader.Address)
	case errors.Is(err, replication.ErrLogMismatch):
		s.logger.Debug(what+" does not continue this log", "sender", leader, "error", err)
	default:
		s.logger.Warn(what+" failed", "sender", leader, "error", err)
	}
}

// syncOnJoin copies the leader's store (-sync_on_join) through the Follower, so the copy
// obeys the fence and the leader check like any snapshot. On failure it is tried again at
// the next view or refresh tick.
func (s *Server) syncOnJoin(v election.View) {
	ctx, cancel := context.WithTimeout(s.ctx, DefaultSyncTimeout)
	defer cancel()
	snap, err := s.fetchSnapshot(ctx, v.Leader.Address)
	if err != nil {
		if s.ctx.Err() == nil {
			s.logger.Warn("sync on join: fetch the leader's snapshot", "leader", v.Leader.Address, "error", err)
		}
		return
	}
	if idx, _ := s.store.Last(); idx >= snap.Index && idx > 0 {
		s.synced.Store(true) // replication got here first
		s.logger.Info("sync on join: already caught up", "index", idx)
		return
	}
	req := replication.SnapshotRequest{Epoch: max(v.Epoch, snap.Epoch), Leader: v.Leader.Address, Snapshot: snap}
	if _, err := s.follower.InstallSnapshot(ctx, req); err != nil {
		s.logger.Warn("sync on join: install the leader's snapshot", "leader", v.Leader.Address, "error", err)
		return
	}
	s.synced.Store(true)
	s.logger.Info("sync on join: copied the leader's store", "leader", v.Leader.Address, "index", snap.Index,
		"entries", len(snap.Entries))
}

// getInternal GETs one of another server's internal routes (with the cluster token) and
// decodes its JSON answer into out. A non-200 answer is an *internalStatusError.
func (s *Server) getInternal(ctx context.Context, addr, pathQuery string, limit int64, out any) error {
	resp, url, err := s.openInternal(ctx, addr, pathQuery, echo.MIMEApplicationJSON)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(io.LimitReader(resp.Body, limit)).Decode(out); err != nil {
		return fmt.Errorf("GET %s: decode: %w", url, err)
	}
	return nil
}

// openInternal GETs one of another server's internal routes (with the cluster token,
// accepting accept) and returns its 200 answer, whose body the caller closes; any other
// answer is an *internalStatusError.
func (s *Server) openInternal(ctx context.Context, addr, pathQuery, accept string) (*http.Response, string, error) {
	url := s.peerURL(addr, pathQuery)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, url, err
	}
	req.Header.Set("Accept", accept)
	if s.cfg.ClusterToken != "" {
		req.Header.Set("Authorization", "Bearer "+s.cfg.ClusterToken)
	}
	hc := &http.Client{Transport: s.fwdTr, Timeout: DefaultSyncTimeout + time.Second}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, url, err
	}
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		return nil, url, &internalStatusError{url: url, status: resp.StatusCode, body: strings.TrimSpace(string(msg))}
	}
	return resp, url, nil
}

type internalStatusError struct {
	url    string
	status int
	body   string
}

func (e *internalStatusError) Error() string {
	return fmt.Sprintf("GET %s: %d %s", e.url, e.status, e.body)
}

// handlePosition answers this server's place in the log. A new leader's catch-up asks
// with ?epoch=E, its epoch: the fence rises to it first, so from then on this server
// refuses the deposed leader's appends even before the new leader's stream reaches it. While
// this server has a ZooKeeper session the fence rises only to an epoch it has seen there
// (re-reading the election once if its view is behind): a request naming any other epoch
// gets 409 unknown_epoch and changes nothing, so that no one, even with the cluster token,
// can make a follower refuse every real leader. Without a session it cannot check, and
// takes the epoch on the token's authority (see docs/design.md, "What is not guaranteed").
func (s *Server) handlePosition(c echo.Context) error {
	if q := c.QueryParam("epoch"); q != "" {
		epoch, err := strconv.ParseInt(q, 10, 64)
		if err != nil || epoch < 0 {
			return newAPIError(http.StatusBadRequest, CodeBadRequest, "epoch must be a non-negative integer")
		}
		if epoch > s.follower.Fence() {
			s.catchUpView(c.Request().Context(), c.RealIP(), epoch)
			// A server with a session checks the epoch in ZooKeeper. One without a session
			// cannot, and must still be counted by a new leader (it may hold writes no one
			// else holds: sequence 3 of the robustness suite), so it takes the epoch on the
			// cluster token's authority, as before.
			if v := s.elector.View(); v.Connected && v.Epoch < epoch {
				return newAPIError(http.StatusConflict, CodeUnknownEpoch,
					"epoch %d is not one this server has seen in ZooKeeper (it knows %d): its fence stays", epoch, v.Epoch)
			}
		}
		s.follower.ObserveEpoch(epoch)
	}
	pos := s.follower.Position()
	pos.Incarnation = s.cfg.Incarnation
	s.writeMu.Lock()
	pos.Leaving = s.draining
	s.writeMu.Unlock()
	return c.JSON(http.StatusOK, pos)
}

// handleEntries answers the entries of this server's log after ?after=I&epoch=E, a batch
// at a time; 409 when the log does not hold (I, E) (truncated, or another history).
func (s *Server) handleEntries(c echo.Context) error {
	after, err1 := strconv.ParseUint(c.QueryParam("after"), 10, 64)
	epoch, err2 := strconv.ParseInt(c.QueryParam("epoch"), 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return newAPIError(http.StatusBadRequest, CodeBadRequest, "after and epoch must be integers: %v", err)
	}
	entries, more, ok := s.log.After(after, epoch, entriesBatch)
	if !ok {
		idx, ep := s.store.Last()
		return c.JSON(http.StatusConflict, replication.ErrorResponse{
			Error:     replication.ErrorDetail{Code: replication.CodeLogMismatch, Message: "this log does not hold that position"},
			LastIndex: idx, LastEpoch: ep,
		})
	}
	if entries == nil {
		entries = []kvstore.Entry{}
	}
	return c.JSON(http.StatusOK, replication.EntriesResponse{PrevIndex: after, PrevEpoch: epoch, Entries: entries, More: more})
}

// entriesBatch caps one answer of the entries route.
const entriesBatch = 4096
