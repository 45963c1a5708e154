package server

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/zkv-dev/zkv/election"
	"github.com/zkv-dev/zkv/replication"
)

// catchUpPositionTimeout bounds one member's answer to a new leader's position query.
const catchUpPositionTimeout = time.Second

// peerPosition is a member's answer to GET /internal/v1/position.
type peerPosition struct {
	addr, id string
	pos      replication.Position
}

// catchUpRetry is how often a new leader asks again while too few in-sync members answer.
const catchUpRetry = 200 * time.Millisecond

// takeover is what a new leader learned before it leads: the in-sync record it read and
// whether it had to lead uncleanly.
type takeover struct {
	rec     InSyncRecord
	version int32
	found   bool
	unclean bool
	peers   []peerPosition // the members that answered, with their positions
}

// catchUp runs when this server has just been elected, before it takes a write. The order
// of the election is not the order of the log, so it must first hold every committed
// write. The in-sync record in ZooKeeper says who can vouch for them: every committed
// write is on a commit quorum of the in-sync set, so any need() members of the set hold
// all of them between them (quorum intersection). It asks every member for its position
// (raising their fences to its epoch), again and again, until need() members of the set
// (itself included, when it is one) have answered; then it takes the log of the most
// up-to-date member that answered (entries, or a snapshot and entries when the logs do not
// line up). It never leads having heard from too few: only when too few members of the set
// remain registered for UncleanAfter, or so many have restarted (a new incarnation under
// their ID: their stores are gone) that too few can ever answer, does it lead with what it
// can reach, an unclean leadership, logged and counted. It gives up (false) when it stops leading or ctx ends.
func (s *Server) catchUp(ctx context.Context, epoch int64, members []election.Member) (takeover, bool) {
	var (
		t           takeover
		shortSince  time.Time // since when too few in-sync members are registered
		behindSince time.Time // since when the best member's log could not be copied
		lastWarn    time.Time
	)
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return t, false
			case <-time.After(catchUpRetry):
			}
			if v := s.elector.View(); !v.IsLeader || v.Epoch != epoch {
				s.logger.Info("catch-up abandoned: no longer the leader of this epoch", "epoch", epoch)
				return t, false
			}
			if ms, err := s.elector.Members(ctx); err == nil {
				members = ms
			}
		}
		rec, version, found, err := s.insync.Load(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return t, false
			}
			s.logger.Warn("catch-up: read the in-sync record", "error", err)
			continue
		}
		t = takeover{rec: rec, version: version, found: found}
		peers := s.positions(ctx, epoch, withRecorded(members, rec, s.self()))
		t.peers = peers
		need, heard := rec.need(), 0
		if rec.has(s.self()) {
			heard++
		}
		for _, p := range peers {
			if rec.has(Replica{ID: p.id, Incarnation: p.pos.Incarnation}) {
				heard++
			}
		}
		if !found {
			s.logger.Warn("catch-up: no in-sync record in ZooKeeper (a new cluster, or ZooKeeper lost its data): taking the most up-to-date member that answers",
				"path", s.cfg.InSyncPath, "members_asked", len(peers))
		}
		if heard < need {
			registered := 0
			for _, m := range members {
				if rec.has(replicaOf(m)) {
					registered++
				}
			}
			if rec.has(s.self()) {
				registered = max(registered, 1)
			}
			// A member of the set whose ID now answers, or is registered, as another
			// incarnation has restarted: what it held is gone for good.
			gone := map[string]bool{}
			for _, r := range rec.Members {
				if reincarnated(members, r) {
					gone[r.ID] = true
				}
				for _, p := range peers {
					if p.id == r.ID && p.pos.Incarnation != "" && p.pos.Incarnation != r.Incarnation {
						gone[r.ID] = true
					}
				}
			}
			if registered >= need {
				shortSince = time.Time{}
			} else if shortSince.IsZero() {
				shortSince = time.Now()
			}
			hopeless := len(rec.Members)-len(gone) < need // nothing safer can ever come
			unclean := hopeless || !shortSince.IsZero() && s.cfg.UncleanAfter >= 0 && time.Since(shortSince) >= s.cfg.UncleanAfter
			if !unclean {
				if time.Since(lastWarn) > 2*time.Second {
					lastWarn = time.Now()
					s.logger.Warn("catch-up: waiting for in-sync members before leading", "epoch", epoch,
						"in_sync", rec.Members, "heard", heard, "need", need, "registered", registered)
				}
				continue
			}
			t.unclean = true
			s.metrics.unclean.Inc()
			s.logger.Error("UNCLEAN leadership: too few members of the in-sync set remain to tell every committed write; leading with the most up-to-date member reachable (writes only the missing members held are lost)",
				"epoch", epoch, "in_sync", rec.Members, "heard", heard, "need", need, "restarted", len(gone),
				"waited", sinceOrZero(shortSince).Round(time.Millisecond))
		}
		if !s.takeBest(ctx, peers) {
			// The most up-to-date member answered but its log could not be copied (it went
			// away, or the transfer failed): leading now could lose what only it holds. Ask
			// again, as while too few answer; after UncleanAfter, lead with what there is.
			if behindSince.IsZero() {
				behindSince = time.Now()
			}
			if s.cfg.UncleanAfter < 0 || time.Since(behindSince) < s.cfg.UncleanAfter {
				continue
			}
			if !t.unclean {
				t.unclean = true
				s.metrics.unclean.Inc()
			}
			s.logger.Error("UNCLEAN leadership: the most up-to-date member's log could not be copied within -unclean_after; leading with what this server holds",
				"epoch", epoch, "waited", time.Since(behindSince).Round(time.Millisecond))
		}
		return t, true
	}
}

// takeBest brings this server's log up to the most up-to-date peer that answered. It
// reports false when some peer still holds more than this server does afterwards.
func (s *Server) takeBest(ctx context.Context, peers []peerPosition) bool {
	// Most up-to-date first; on a tie, a complete member before a partial one.
	slices.SortStableFunc(peers, func(a, b peerPosition) int {
		switch {
		case a.pos.After(b.pos):
			return -1
		case b.pos.After(a.pos):
			return 1
		case a.pos.Partial != b.pos.Partial:
			if b.pos.Partial {
				return -1
			}
			return 1
		}
		return 0
	})
	self := s.follower.Position()
	for _, p := range peers {
		if !p.pos.After(self) {
			break
		}
		err := s.pullEntries(ctx, p.addr, self, p.pos)
		if err != nil && !p.pos.Partial {
			s.logger.Info("catch-up: the logs do not line up; adopting the member's snapshot",
				"member", p.addr, "error", err)
			if err = s.adoptSnapshot(ctx, p.addr); err == nil {
				err = s.pullEntries(ctx, p.addr, s.follower.Position(), p.pos)
			}
		}
		if err != nil {
			s.logger.Warn("catch-up from a more up-to-date member failed", "member", p.addr,
				"its_index", p.pos.LastIndex, "its_epoch", p.pos.LastEpoch, "error", err)
			continue
		}
		self = s.follower.Position()
		break
	}
	if self.Partial {
		for _, p := range peers {
			if p.pos.Partial || self.After(p.pos) {
				continue
			}
			err := s.adoptSnapshot(ctx, p.addr)
			if err == nil {
				err = s.pullEntries(ctx, p.addr, s.follower.Position(), p.pos)
			}
			if err != nil {
				s.logger.Warn("catch-up: a complete member's snapshot", "member", p.addr, "error", err)
				continue
			}
			self = s.follower.Position()
			break
		}
		if self.Partial {
			s.logger.Warn("leading with a partial store: no complete member answered; keys written before this server's base read as empty")
		}
	}
	for _, p := range peers {
		if p.pos.After(self) {
			s.logger.Warn("catch-up: a member still holds more than this server; asking again before leading",
				"member", p.addr, "its_index", p.pos.LastIndex, "its_epoch", p.pos.LastEpoch,
				"last_index", self.LastIndex, "last_epoch", self.LastEpoch)
			return false
		}
	}
	s.logger.Info("caught up before leading", "members_asked", len(peers),
		"last_index", self.LastIndex, "last_epoch", self.LastEpoch, "applied", self.Applied)
	return true
}

// withRecorded adds to members the in-sync members that are not registered, at their
// recorded addresses, so that they are asked too.
func withRecorded(members []election.Member, rec InSyncRecord, self Replica) []election.Member {
	out := slices.Clone(members)
	for _, r := range rec.Members {
		addr := rec.Addresses[r.ID]
		if r == self || addr == "" || slices.ContainsFunc(members, func(m election.Member) bool {
			return replicaOf(m) == r || m.Address == addr
		}) {
			continue
		}
		out = append(out, election.Member{ID: r.ID, Address: addr, Meta: map[string]string{metaIncarnation: r.Incarnation}})
	}
	return out
}

// positions asks every other member for its position, in parallel, raising its fence to
// epoch on the way.
func (s *Server) positions(ctx context.Context, epoch int64, members []election.Member) []peerPosition {
	var (
		mu  sync.Mutex
		out []peerPosition
		wg  sync.WaitGroup
	)
	for _, m := range members {
		if m.Address == "" || m.Address == s.cfg.Address {
			continue
		}
		wg.Add(1)
		go func(addr, id string) {
			defer wg.Done()
			qctx, cancel := context.WithTimeout(ctx, catchUpPositionTimeout)
			defer cancel()
			var pos replication.Position
			q := fmt.Sprintf("%s?epoch=%d", replication.PathPosition, epoch)
			if err := s.getInternal(qctx, addr, q, 1<<10, &pos); err != nil {
				s.logger.Info("catch-up: a member did not tell its position", "member", addr, "error", err)
				return
			}
			mu.Lock()
			out = append(out, peerPosition{addr: addr, id: id, pos: pos})
			mu.Unlock()
		}(m.Address, m.ID)
	}
	wg.Wait()
	return out
}

// pullEntries takes from addr, batch by batch, the entries after this server's position
// until it reaches target.
func (s *Server) pullEntries(ctx context.Context, addr string, from, target replication.Position) error {
	pos := from
	if !target.After(pos) {
		return nil
	}
	for target.After(pos) {
		var resp replication.EntriesResponse
		q := fmt.Sprintf("%s?after=%d&epoch=%d", replication.PathEntries, pos.LastIndex, pos.LastEpoch)
		if err := s.getInternal(ctx, addr, q, s.cfg.appendLimit(), &resp); err != nil {
			return err
		}
		if len(resp.Entries) == 0 {
			return errors.New("the member sent no entries beyond this server's position")
		}
		next, err := s.follower.Extend(resp.PrevIndex, resp.PrevEpoch, resp.Entries)
		if err != nil {
			return err
		}
		if !next.After(pos) {
			return errors.New("the member's entries took this server no further")
		}
		s.logger.Info("catch-up: took entries from a more up-to-date member", "member", addr,
			"entries", len(resp.Entries), "last_index", next.LastIndex, "last_epoch", next.LastEpoch)
		pos = next
		if !resp.More {
			break
		}
	}
	return nil
}

// adoptSnapshot replaces this server's store with addr's.
func (s *Server) adoptSnapshot(ctx context.Context, addr string) error {
	snap, err := s.fetchSnapshot(ctx, addr)
	if err != nil {
		return err
	}
	pos := s.follower.Adopt(snap)
	s.logger.Info("catch-up: adopted a member's snapshot", "member", addr, "index", pos.LastIndex,
		"entries", len(snap.Entries))
	return nil
}

func sinceOrZero(t time.Time) time.Duration {
	if t.IsZero() {
		return 0
	}
	return time.Since(t)
}
