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
	addr string
	pos  replication.Position
}

// catchUp runs when this server has just been elected, before it takes a write. The order
// of the election is not the order of the log: the successor need not hold every
// acknowledged write (under ack=majority the acknowledging replica may be another, and a
// restarted replica that took a later base lacks the writes before it). So it asks every
// member it can reach for its position and first takes the entries the most up-to-date
// one holds beyond its own (or that member's snapshot, when the logs do not line up), then,
// if it is itself partial, a complete member's snapshot. Its fan-out then brings the
// others to the same state. A member that does not answer in time is passed over: its
// writes are lost only if it alone held them.
func (s *Server) catchUp(ctx context.Context, epoch int64, members []election.Member) {
	peers := s.positions(ctx, epoch, members)
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
			err = s.adoptSnapshot(ctx, p.addr)
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
			if err := s.adoptSnapshot(ctx, p.addr); err != nil {
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
	s.logger.Info("caught up before leading", "epoch", epoch, "members_asked", len(peers),
		"last_index", self.LastIndex, "last_epoch", self.LastEpoch)
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
		go func(addr string) {
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
			out = append(out, peerPosition{addr: addr, pos: pos})
			mu.Unlock()
		}(m.Address)
	}
	wg.Wait()
	return out
}

// pullEntries takes from addr, batch by batch, the entries after this server's position
// until it reaches target.
func (s *Server) pullEntries(ctx context.Context, addr string, from, target replication.Position) error {
	pos := from
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
