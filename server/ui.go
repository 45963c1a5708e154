package server

import (
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
)

// uiAssets is the cluster page: plain HTML, JS and CSS, no build step.
//
//go:embed ui/index.html ui/app.js ui/style.css
var uiAssets embed.FS

// clusterPollTimeout bounds /v1/cluster's request to each member: a member that does not
// answer within it is shown unreachable rather than holding the page up.
const clusterPollTimeout = time.Second

// ClusterView is the answer of GET /v1/cluster: the cluster as the answering server knows
// it, each member's own line (/v1/cluster?self=true: its /v1/status and its last contact)
// gathered by that server (so the page needs no access to
// any server but the one it came from, and no internal route or token is involved).
type ClusterView struct {
	Server  string          `json:"server"` // the answering server's address
	Time    time.Time       `json:"time"`
	Leader  StatusLeader    `json:"leader"` // the leader in the answering server's view
	Epoch   int64           `json:"epoch"`
	Members []ClusterMember `json:"members"`
	// LeaderChanges are the recent changes of leader the answering server saw, oldest first.
	LeaderChanges []LeaderChange `json:"leader_changes"`
}

// ClusterMember is one server in ClusterView, as it described itself.
type ClusterMember struct {
	ID        string `json:"id"`
	Address   string `json:"address"`
	Reachable bool   `json:"reachable"`
	Error     string `json:"error,omitempty"`
	Role      string `json:"role,omitempty"`
	// Leader is the address this member names as its leader.
	Leader  string `json:"leader,omitempty"`
	Epoch   int64  `json:"epoch"`
	Applied uint64 `json:"applied"`
	// Lag is how many writes this member's store is behind the leader's (their applied
	// indexes); null when the leader did not answer.
	Lag           *int64 `json:"lag"`
	LastContactMS int64  `json:"last_contact_ms"`
	Keys          int    `json:"keys"`
	Incarnation   string `json:"incarnation,omitempty"`
}

// opsRoutes adds the operator's routes: the cluster page and its JSON, and the backup.
func (s *Server) opsRoutes(e *echo.Echo) {
	sub, err := fs.Sub(uiAssets, "ui")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	assets := http.StripPrefix("/ui/", http.FileServerFS(sub))
	e.GET("/ui", s.handleUI)
	e.GET("/ui/", s.handleUI)
	e.GET("/ui/:asset", func(c echo.Context) error {
		assets.ServeHTTP(c.Response(), c.Request())
		return nil
	})
	e.GET("/v1/cluster", s.handleCluster)
	e.GET("/v1/snapshot", s.handleSnapshot)
}

func (s *Server) handleUI(c echo.Context) error {
	page, err := uiAssets.ReadFile("ui/index.html")
	if err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "no-cache")
	return c.HTMLBlob(http.StatusOK, page)
}

// handleCluster answers GET /v1/cluster, or with ?self=true this server's own line of it
// (what /v1/cluster gathers from each member, and bin/driver status -cluster too).
func (s *Server) handleCluster(c echo.Context) error {
	switch c.QueryParam("self") {
	case "":
		return c.JSON(http.StatusOK, s.clusterView(c.Request().Context()))
	case "true", "1":
		return c.JSON(http.StatusOK, s.selfMember(c.Request().Context()))
	}
	return badRequest(CodeBadRequest, `self must be "true" or absent`)
}

// selfMember is this server's ClusterMember, Lag aside.
func (s *Server) selfMember(ctx context.Context) ClusterMember {
	return memberOf(s.status(ctx), s.staleness())
}

// clusterView asks every member this server knows of for its /v1/status, concurrently and
// each within clusterPollTimeout, and puts the answers side by side.
func (s *Server) clusterView(ctx context.Context) ClusterView {
	self := s.status(ctx)
	since := s.staleness()
	cv := ClusterView{Server: s.cfg.Address, Time: time.Now().UTC(), Leader: self.Leader, Epoch: self.Epoch,
		LeaderChanges: s.leaders.list()}
	addrs := map[string]string{s.cfg.Address: s.cfg.ID}
	for _, m := range self.Members {
		if m.Address != "" {
			addrs[m.Address] = m.ID
		}
	}
	cv.Members = make([]ClusterMember, 0, len(addrs))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for addr, id := range addrs {
		if addr == s.cfg.Address {
			mu.Lock()
			cv.Members = append(cv.Members, memberOf(self, since))
			mu.Unlock()
			continue
		}
		wg.Go(func() {
			cm := ClusterMember{ID: id, Address: addr}
			if m, err := s.peerMember(ctx, addr); err != nil {
				cm.Error = err.Error()
			} else {
				cm = m
				cm.Address, cm.Reachable, cm.Lag = addr, true, nil
			}
			mu.Lock()
			cv.Members = append(cv.Members, cm)
			mu.Unlock()
		})
	}
	wg.Wait()
	slices.SortFunc(cv.Members, func(a, b ClusterMember) int { return strings.Compare(a.Address, b.Address) })
	setLag(cv.Members, cv.Leader.Address)
	return cv
}

// memberOf makes a server's ClusterMember from its status and the time since it last heard
// from its leader (0 on the leader, negative if never).
func memberOf(st Status, since time.Duration) ClusterMember {
	contact := since.Milliseconds()
	if since < 0 {
		contact = -1
	}
	return ClusterMember{ID: st.ID, Address: st.Address, Reachable: true, Role: st.Role, Leader: st.Leader.Address,
		Epoch: st.Epoch, Applied: st.Applied, LastContactMS: contact, Keys: st.Keys, Incarnation: st.Incarnation}
}

// setLag fills each reachable member's Lag from the applied index of the member that
// leads: the one at leader when it says it leads, else any that says so.
func setLag(ms []ClusterMember, leader string) {
	at := -1
	for i, m := range ms {
		if m.Reachable && m.Role == "leader" && (at < 0 || m.Address == leader) {
			at = i
		}
	}
	if at < 0 {
		return
	}
	for i := range ms {
		if ms[i].Reachable {
			lag := max(0, int64(ms[at].Applied)-int64(ms[i].Applied))
			ms[i].Lag = &lag
		}
	}
}

// peerMember GETs another server's own line, /v1/cluster?self=true (public, no token).
func (s *Server) peerMember(ctx context.Context, addr string) (ClusterMember, error) {
	ctx, cancel := context.WithTimeout(ctx, clusterPollTimeout)
	defer cancel()
	var st ClusterMember
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.peerURL(addr, "/v1/cluster?self=true"), nil)
	if err != nil {
		return st, err
	}
	resp, err := s.fwd.Do(req)
	if err != nil {
		return st, fmt.Errorf("unreachable: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("GET /v1/cluster?self=true: %s", resp.Status)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&st); err != nil {
		return st, fmt.Errorf("GET /v1/cluster?self=true: %w", err)
	}
	return st, nil
}

// lastContactTime is when this server last heard from a leader's stream; zero if never.
func (s *Server) lastContactTime() time.Time {
	at := s.lastContact.Load()
	if at == 0 {
		return time.Time{}
	}
	return time.Unix(0, at)
}
