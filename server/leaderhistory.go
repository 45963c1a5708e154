package server

import (
	"sync"
	"time"

	"github.com/zkv-dev/zkv/election"
)

// leaderHistoryLen is how many leader changes a server remembers for /v1/cluster and /ui.
const leaderHistoryLen = 32

// LeaderChange is one change of leader as this server saw it.
type LeaderChange struct {
	At    time.Time    `json:"at"`
	From  StatusLeader `json:"from"` // empty for the first leader this server knew
	To    StatusLeader `json:"to"`
	Epoch int64        `json:"epoch"`
	// WithoutLeaderMS is how long, in milliseconds, this server went without a live leader
	// before To: from the moment its view lost From or, when the view went straight from
	// From to To (a killed leader is noticed only once its session expires), from the last
	// append or heartbeat it took from From, which is at most a heartbeat late. For the first
	// leader it is the time since this server started.
	WithoutLeaderMS int64 `json:"without_leader_ms"`
}

// leaderHistory remembers the last leaderHistoryLen changes of leader, oldest first.
type leaderHistory struct {
	mu      sync.Mutex
	started time.Time
	node    string // the election node of the leader last seen; "" while none
	epoch   int64
	leader  StatusLeader
	lostAt  time.Time // when the view lost its leader; zero while one is known
	since   time.Time // when the view first named the current leader
	changes []LeaderChange
}

func newLeaderHistory(now time.Time) *leaderHistory {
	return &leaderHistory{started: now, lostAt: now}
}

// observe takes a view of the election at now; lastContact is when this server last heard
// from its leader's stream (zero if never). Views that name the same leader are no change.
func (h *leaderHistory) observe(v election.View, lastContact, now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if v.Leader.Address == "" {
		if h.node != "" {
			h.node, h.lostAt = "", now
		}
		return
	}
	if v.Leader.Node == h.node && v.Epoch == h.epoch {
		return
	}
	from := h.leader
	lost := h.lostAt
	if lost.IsZero() { // straight from one leader to the next
		lost = now
		// The last contact counts only if it came from that leader's term (a deposed
		// leader's own last contact is older than its term).
		if lastContact.After(h.since) && lastContact.Before(now) {
			lost = lastContact
		}
	}
	to := StatusLeader{ID: v.Leader.ID, Address: v.Leader.Address}
	h.changes = append(h.changes, LeaderChange{At: now, From: from, To: to, Epoch: v.Epoch,
		WithoutLeaderMS: max(0, now.Sub(lost).Milliseconds())})
	if len(h.changes) > leaderHistoryLen {
		h.changes = append(h.changes[:0], h.changes[len(h.changes)-leaderHistoryLen:]...)
	}
	h.node, h.epoch, h.leader, h.lostAt, h.since = v.Leader.Node, v.Epoch, to, time.Time{}, now
}

// list returns the remembered changes, oldest first.
func (h *leaderHistory) list() []LeaderChange {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]LeaderChange{}, h.changes...)
}
