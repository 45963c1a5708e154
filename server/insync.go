package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/zkv-dev/zkv/election"
	"github.com/zkv-dev/zkv/replication"
)

// Replica names one server process in the in-sync set: its ID and its incarnation (a
// restarted server is a new incarnation, with an empty store).
type Replica struct {
	ID          string `json:"id"`
	Incarnation string `json:"inc"`
}

// InSyncRecord is the in-sync set as recorded in ZooKeeper: the servers that hold every
// committed write (under ack all) or whose quorums every committed write reaches (under
// ack majority). Only the leader writes it, with a conditional write guarded by its
// election node; a new leader reads it to know whom it must hear from before it leads.
type InSyncRecord struct {
	Epoch   int64     `json:"epoch"`  // the epoch of the leader that wrote it
	Leader  string    `json:"leader"` // that leader's ID
	Ack     string    `json:"ack"`    // the ack mode the set was kept under
	Members []Replica `json:"members"`
	// Addresses holds the last address known of each member (by ID): a new leader asks a
	// member of the set there even while it is not registered (its session lost), since it
	// may still hold what only it and the dead leader held.
	Addresses map[string]string `json:"addresses,omitempty"`
}

// withAddresses returns rec with the addresses of its members: the registered ones' from
// members, the others' as rec had them.
func (rec InSyncRecord) withAddresses(members []election.Member) InSyncRecord {
	addrs := make(map[string]string, len(rec.Members))
	for _, r := range rec.Members {
		if a := rec.Addresses[r.ID]; a != "" {
			addrs[r.ID] = a
		}
		for _, m := range members {
			if replicaOf(m) == r && m.Address != "" {
				addrs[r.ID] = m.Address
			}
		}
	}
	rec.Addresses = addrs
	return rec
}

// has reports whether r is in the record.
func (rec InSyncRecord) has(r Replica) bool { return slices.Contains(rec.Members, r) }

// need is how many members of the set a new leader must hear from (itself included, if
// it is one) to be sure one of them holds every committed write: the set's size less a
// commit quorum, plus one. Zero for an empty set.
func (rec InSyncRecord) need() int {
	n := len(rec.Members)
	if n == 0 {
		return 0
	}
	mode, err := replication.ParseAckMode(rec.Ack)
	if err != nil {
		mode = replication.AckAll // the most demanding reading of an unknown mode
	}
	if mode == replication.AckLeader {
		// A write acked by the leader alone is on the leader alone: any member will do,
		// and none can vouch for the last writes. The documented cost of ack leader.
		return 1
	}
	return n - replication.Quorum(mode, n) + 1
}

// ErrInSyncConflict reports that the in-sync record changed since it was read (another
// leader wrote it) or that this server's election node is gone: it no longer leads.
var ErrInSyncConflict = errors.New("server: the in-sync record changed or this leader's node is gone")

// InSyncStore keeps the in-sync record. Version is the record's version as read; Save
// writes only if it is still current and guard (this leader's election node) still
// exists, and returns the new version. Load answers found false when there is no record
// (the cluster's first leader, or ZooKeeper lost its data).
type InSyncStore interface {
	Load(ctx context.Context) (rec InSyncRecord, version int32, found bool, err error)
	Save(ctx context.Context, rec InSyncRecord, version int32, found bool, guard string) (int32, error)
}

// MemInSync is an InSyncStore in memory, for servers in one process (tests): share one
// among the servers of a cluster. A Server built without an InSyncStore gets its own.
type MemInSync struct {
	mu      sync.Mutex
	rec     InSyncRecord
	version int32
	found   bool
}

// Load implements InSyncStore.
func (m *MemInSync) Load(context.Context) (InSyncRecord, int32, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.rec, m.version, m.found, nil
}

// Save implements InSyncStore.
func (m *MemInSync) Save(_ context.Context, rec InSyncRecord, version int32, found bool, _ string) (int32, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if found != m.found || (found && version != m.version) {
		return 0, ErrInSyncConflict
	}
	m.rec, m.found = rec, true
	if found {
		m.version++
	}
	return m.version, nil
}

func newIncarnation() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// metaIncarnation is the election Meta key that carries a server's incarnation.
const metaIncarnation = "inc"

// replicaOf names a member of the election as a Replica.
func replicaOf(m election.Member) Replica {
	return Replica{ID: m.ID, Incarnation: m.Meta[metaIncarnation]}
}

// reincarnated reports whether r's ID is registered among members as another incarnation:
// r has restarted, and what it held is gone for good.
func reincarnated(members []election.Member, r Replica) bool {
	return slices.ContainsFunc(members, func(m election.Member) bool {
		o := replicaOf(m)
		return m.Node != "" && o.ID == r.ID && o.Incarnation != "" && o.Incarnation != r.Incarnation
	})
}

func (s *Server) self() Replica { return Replica{ID: s.cfg.ID, Incarnation: s.cfg.Incarnation} }

func encodeRecord(rec InSyncRecord) ([]byte, error) { return json.Marshal(rec) }

func decodeRecord(data []byte) (InSyncRecord, error) {
	var rec InSyncRecord
	if err := json.Unmarshal(data, &rec); err != nil {
		return rec, fmt.Errorf("server: decode the in-sync record: %w", err)
	}
	return rec, nil
}

// unregisteredAddr stands, in the fan-out's in-sync sets, for a member of the set that is
// not registered in the election now: it holds nothing the leader can count.
func unregisteredAddr(r Replica) string { return "unregistered:" + r.ID + "/" + r.Incarnation }

// inSyncAddrs maps the record's members, this server aside, to their addresses.
func (s *Server) inSyncAddrs(rec InSyncRecord, members []election.Member) []string {
	out := make([]string, 0, len(rec.Members))
	for _, r := range rec.Members {
		if r == s.self() {
			continue
		}
		addr := unregisteredAddr(r)
		for _, m := range members {
			if replicaOf(m) == r && m.Address != "" {
				addr = m.Address
				break
			}
		}
		out = append(out, addr)
	}
	return out
}

// inSyncTick is how often a leader reviews its in-sync set.
func (s *Server) inSyncTick() time.Duration {
	return min(100*time.Millisecond, max(s.cfg.ReplicaLagMax/4, 5*time.Millisecond))
}

// keepInSync is a leadership's keeper of the in-sync set: it drops a member that has lacked
// an entry for ReplicaLagMax (or is gone, or partial), so that writes stop waiting for
// it, and adds a complete member that has caught up. Each change is recorded in ZooKeeper
// first (guarded by this leader's node); a removal is made only while the members left
// still form a commit quorum holding every committed write, and an addition is counted
// (with the old set) before it is recorded, so that no committed write ever misses the
// quorum a successor relies on.
func (s *Server) keepInSync(ld *leadership) {
	var lastConflict time.Time
	wait := time.Duration(0)
	for {
		t := time.NewTimer(wait)
		select {
		case <-s.ctx.Done():
			t.Stop()
			return
		case <-ld.done:
			t.Stop()
			return
		case <-t.C:
		}
		var members []election.Member
		if p := ld.members.Load(); p != nil {
			members = *p
		}
		outside, err := s.reviewInSync(ld, members)
		// While complete members wait outside the set, look again soon: until they are in,
		// writes acknowledged under ack all are not on them.
		wait = s.inSyncTick()
		if outside || members == nil {
			wait = min(wait, 10*time.Millisecond)
		}
		if errors.Is(err, ErrInSyncConflict) && time.Since(lastConflict) > 2*time.Second {
			lastConflict = time.Now()
			s.logger.Warn("in-sync set: the record changed under this leader or its node is gone", "epoch", ld.epoch, "error", err)
			s.requestRefresh()
		} else if err != nil && !errors.Is(err, ErrInSyncConflict) && s.ctx.Err() == nil {
			s.logger.Warn("in-sync set: record a change", "epoch", ld.epoch, "error", err)
		}
	}
}

// reviewInSync makes at most one change to the in-sync set. outside reports registered,
// complete members that are not in the set (yet).
func (s *Server) reviewInSync(ld *leadership, members []election.Member) (outside bool, err error) {
	if members == nil {
		return false, nil // the members are not read yet: nothing to judge by
	}
	rec := ld.record()
	// A member of the set may have been unregistered (hence unknown by address) when the
	// set was last handed to the fan-out, and be back: keep the fan-out's view current.
	if addrs := s.inSyncAddrs(rec, members); !slices.Equal(addrs, ld.inSyncAddrs) {
		ld.repl.SetInSync(addrs)
		ld.inSyncAddrs = addrs
	}
	stats := make(map[string]replication.ReplicaStats)
	for _, st := range ld.repl.Stats() {
		stats[st.Addr] = st
	}
	addrOf := make(map[Replica]string, len(members))
	registered := make(map[Replica]bool, len(members))
	for _, m := range members {
		addrOf[replicaOf(m)] = m.Address
		registered[replicaOf(m)] = m.Node != "" // withRecorded's additions have no node
	}
	commit, _ := ld.repl.Commit()
	safe := max(commit, ld.epochStart)
	lagMax := s.cfg.ReplicaLagMax
	holds := func(set []Replica) bool { // the set's members holding every committed write form a quorum
		n := 0
		for _, r := range set {
			if r == s.self() {
				n++
			} else if st, ok := stats[addrOf[r]]; ok && addrOf[r] != "" && st.MatchIndex >= safe {
				n++
			}
		}
		return n >= replication.Quorum(s.ack, len(set))
	}

	// A member whose ID is registered under another incarnation has restarted: what it held
	// is gone, and its address now answers for the new process (whose stats must not keep
	// the old one in the set).
	removals := map[Replica]string{}
	for _, r := range rec.Members {
		if r == s.self() {
			continue
		}
		addr, hasAddr := addrOf[r]
		st, known := stats[addr]
		switch {
		case reincarnated(members, r):
			removals[r] = "restarted: its ID is registered as a new incarnation"
		case !hasAddr && time.Since(ld.since) > lagMax:
			removals[r] = "no address known"
		case !registered[r] && known && !st.Up:
			removals[r] = "not registered in the election and not answering"
		case known && st.Partial:
			removals[r] = "partial"
		case known && !st.LaggingSince.IsZero() && time.Since(st.LaggingSince) > lagMax:
			removals[r] = fmt.Sprintf("has lacked entries for %s", time.Since(st.LaggingSince).Round(time.Millisecond))
		case !known && time.Since(ld.since) > lagMax:
			removals[r] = "not replicated to since this leadership began"
		}
	}
	if len(removals) > 0 {
		// All of them at once (members that are gone must not keep each other in), else the
		// first one whose removal leaves a quorum holding every committed write.
		without := func(drop func(Replica) bool) InSyncRecord {
			next := rec
			next.Members = slices.DeleteFunc(slices.Clone(rec.Members), drop)
			return next
		}
		// Never below -min_insync (nor below what the set already is).
		floor := min(s.cfg.MinInSync, len(rec.Members))
		allowed := func(set []Replica) bool { return len(set) >= floor && holds(set) }
		next := without(func(m Replica) bool { _, ok := removals[m]; return ok })
		if !allowed(next.Members) {
			next.Members = nil
			for r := range removals {
				if cand := without(func(m Replica) bool { return m == r }); allowed(cand.Members) {
					next = cand
					break
				}
			}
		}
		if next.Members != nil {
			if err := s.saveInSync(ld, next); err != nil {
				return false, err
			}
			ld.inSyncAddrs = s.inSyncAddrs(next, members)
			ld.repl.SetInSync(ld.inSyncAddrs)
			for r, why := range removals {
				if !next.has(r) {
					s.metrics.inSyncChanges.WithLabelValues("removed").Inc()
					s.logger.Warn("dropped a replica from the in-sync set: writes no longer wait for it", "replica", r.ID,
						"incarnation", r.Incarnation, "reason", why, "in_sync", next.Members)
				}
			}
			return false, nil
		}
	}

	next := rec
	next.Members = slices.Clone(rec.Members)
	var added []Replica
	for _, m := range members {
		r := replicaOf(m)
		if r.ID == "" || r.Incarnation == "" || next.has(r) || r == s.self() {
			continue
		}
		st, ok := stats[m.Address]
		if ok && st.Partial {
			continue // never in sync: it lacks the writes before its base
		}
		if !ok || !st.Up || (!st.LaggingSince.IsZero() && time.Since(st.LaggingSince) > lagMax/2) || st.MatchIndex < safe {
			outside = true
			continue
		}
		next.Members = append(next.Members, r)
		added = append(added, r)
	}
	if len(added) == 0 {
		return outside, nil
	}
	// Count the newcomers before they are recorded: a write that commits meanwhile is on them.
	ld.repl.SetInSync(ld.inSyncAddrs, s.inSyncAddrs(next, members))
	if err := s.saveInSync(ld, next); err != nil {
		ld.repl.SetInSync(ld.inSyncAddrs)
		return true, err
	}
	ld.inSyncAddrs = s.inSyncAddrs(next, members)
	ld.repl.SetInSync(ld.inSyncAddrs)
	s.metrics.inSyncChanges.WithLabelValues("added").Add(float64(len(added)))
	s.logger.Info("added replicas to the in-sync set", "added", added, "in_sync", next.Members)
	return outside, nil
}

// saveInSync records rec as the leadership's in-sync set.
func (s *Server) saveInSync(ld *leadership, rec InSyncRecord) error {
	var members []election.Member
	if p := ld.members.Load(); p != nil {
		members = *p
	}
	rec = rec.withAddresses(members)
	ld.mu.Lock()
	version := ld.recVersion
	ld.mu.Unlock()
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.WriteTimeout)
	defer cancel()
	v, err := s.insync.Save(ctx, rec, version, true, ld.guard)
	if err != nil {
		return err
	}
	ld.mu.Lock()
	ld.rec, ld.recVersion = rec, v
	ld.mu.Unlock()
	return nil
}

// withoutDeparted leaves out of a new leader's in-sync set the members that have departed:
// unregistered in the election and either silent or shutting down (their answer said
// Leaving), such as the leader that just resigned or crashed. Were they kept, every commit
// under ack all would wait for them until the review dropped them (up to -replica_lag_max).
// It is the review's removal rule, applied at takeover in the same record write: only when
// the members kept that hold every committed write (this leader, which has just taken the
// most up-to-date log, at position self, and those that answered with a position as far
// along) still form a
// commit quorum of the new set, and never below -min_insync; else the set stays whole.
func (s *Server) withoutDeparted(set []Replica, self replication.Position, peers []peerPosition, members []election.Member) []Replica {
	registered := make(map[Replica]bool, len(members))
	for _, m := range members {
		if m.Node != "" {
			registered[replicaOf(m)] = true
		}
	}
	answered := make(map[Replica]replication.Position, len(peers))
	for _, p := range peers {
		answered[Replica{ID: p.id, Incarnation: p.pos.Incarnation}] = p.pos
	}
	var kept, gone []Replica
	holding := 0
	for _, r := range set {
		pos, ok := answered[r]
		switch {
		case r == s.self():
			holding++
		case !registered[r] && (!ok || pos.Leaving):
			gone = append(gone, r)
			continue
		case ok && !pos.Partial && !self.After(pos):
			holding++
		}
		kept = append(kept, r)
	}
	if len(gone) == 0 || len(kept) < min(s.cfg.MinInSync, len(set)) || holding < replication.Quorum(s.ack, len(kept)) {
		return set
	}
	s.metrics.inSyncChanges.WithLabelValues("removed").Add(float64(len(gone)))
	s.logger.Info("leaving departed members out of the in-sync set", "departed", gone, "in_sync", kept)
	return kept
}
