package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptrace"
	"net/http/pprof"
	"net/url"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/zkv-dev/zkv/election"
	"github.com/zkv-dev/zkv/kvstore"
	"github.com/zkv-dev/zkv/replication"
)

const kvPrefix = "/v1/kv/"

// KV is the answer of GET and PUT /v1/kv/{key}.
type KV struct {
	Key     string `json:"key"`
	Value   string `json:"value"`
	Found   *bool  `json:"found,omitempty"`
	Version uint64 `json:"version,omitempty"`
	Epoch   int64  `json:"epoch,omitempty"`
	Leader  string `json:"leader,omitempty"`
}

// Deleted is the answer of DELETE /v1/kv/{key}.
type Deleted struct {
	Key   string `json:"key"`
	Found bool   `json:"found"`
}

// Status is the answer of GET /v1/status.
type Status struct {
	ID      string       `json:"id"`
	Address string       `json:"address"`
	Role    string       `json:"role"`
	Leader  StatusLeader `json:"leader"`
	Epoch   int64        `json:"epoch"`
	Keys    int          `json:"keys"`
	Members []Member     `json:"members"`
	// Applied is the index of the last committed write this server's store has applied.
	Applied uint64 `json:"applied"`
	// InSync is, on the leader, the in-sync set ("id/incarnation" each): the servers a
	// successor must hear from; empty elsewhere.
	InSync []string `json:"in_sync"`
	// Incarnation names this server process (a restart makes a new one).
	Incarnation string `json:"incarnation"`
	// Alarms lists the conditions that refuse some writes: "NOSPACE" (the quota); empty
	// when none.
	Alarms []string `json:"alarms"`
}

// StatusLeader names the leader in Status; empty fields while none is known.
type StatusLeader struct {
	ID      string `json:"id"`
	Address string `json:"address"`
}

// Member is one registered server in Status.
type Member struct {
	ID      string `json:"id"`
	Address string `json:"address"`
	Znode   string `json:"znode"`
}

type putBody struct {
	Value *string `json:"value"`
}

type updateBody struct {
	Key   *string `json:"key"`
	Value *string `json:"value"`
}

func (s *Server) routes() *echo.Echo {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = func(err error, c echo.Context) {
		if !c.Response().Committed {
			_ = writeError(c, err)
		}
	}
	e.Use(s.observe, s.recoverJSON)

	e.GET(kvPrefix+"*", s.handleGet)
	e.PUT(kvPrefix+"*", s.handlePut)
	e.DELETE(kvPrefix+"*", s.handleDelete)
	e.GET("/v1/status", s.handleStatus)
	e.GET("/healthz", s.handleHealthz)
	e.GET("/readyz", s.handleReadyz)
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{})))
	if s.cfg.Pprof {
		// Opt-in (-pprof): CPU and heap profiles of a running server, behind the cluster token
		// when one is set.
		pp := e.Group("/debug/pprof", s.authorize)
		pp.GET("/", echo.WrapHandler(http.HandlerFunc(pprof.Index)))
		pp.GET("/cmdline", echo.WrapHandler(http.HandlerFunc(pprof.Cmdline)))
		pp.GET("/profile", echo.WrapHandler(http.HandlerFunc(pprof.Profile)))
		pp.GET("/symbol", echo.WrapHandler(http.HandlerFunc(pprof.Symbol)))
		pp.GET("/trace", echo.WrapHandler(http.HandlerFunc(pprof.Trace)))
		pp.GET("/:name", func(c echo.Context) error {
			pprof.Handler(c.Param("name")).ServeHTTP(c.Response(), c.Request())
			return nil
		})
	}
	e.GET("/read", s.handleRead)
	e.POST("/update", s.handleUpdate)

	s.opsRoutes(e) // ui.go, backup.go: /ui, /v1/cluster, /v1/snapshot

	in := e.Group("/internal/v1", s.requirePeerCert, s.authorize)
	in.POST("/append", s.handleAppend)
	in.GET("/stream", s.handleStream)
	in.POST("/snapshot", s.handleInstallSnapshot)
	in.POST("/hello", s.handleHello)
	in.GET("/position", s.handlePosition)
	in.GET("/entries", s.handleEntries)
	in.GET("/snapshot", s.handleGetSnapshot)
	return e
}

// observe sets the leader headers on every answer and counts it in the metrics. It
// renders a handler's error itself, so the status it records is the one sent.
func (s *Server) observe(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		v := s.elector.View()
		h := c.Response().Header()
		h.Set(HeaderLeader, v.Leader.Address)
		h.Set(HeaderEpoch, strconv.FormatInt(v.Epoch, 10))
		if err := next(c); err != nil {
			c.Error(err)
		}
		route := c.Path()
		if route == "" || c.Response().Status == http.StatusNotFound && !strings.HasPrefix(route, kvPrefix) {
			route = "unmatched" // no label per unknown path
		}
		s.metrics.observeRequest(route, c.Request().Method, c.Response().Status, time.Since(start))
		return nil
	}
}

// recoverJSON turns a panic (a bug, never bad input) into a JSON 500.
func (s *Server) recoverJSON(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) (err error) {
		defer func() {
			if r := recover(); r != nil {
				if r == http.ErrAbortHandler {
					panic(r)
				}
				s.logger.Error("panic in handler", "method", c.Request().Method, "path", c.Request().URL.Path,
					"panic", fmt.Sprint(r), "stack", string(debug.Stack()))
				err = newAPIError(http.StatusInternalServerError, CodeInternal, "internal error")
			}
		}()
		return next(c)
	}
}

// --- input checks ---

// pathKey returns the key of /v1/kv/{key}: the rest of the escaped path, unescaped, so a
// key may hold '/' (plain or as %2F).
func (s *Server) pathKey(c echo.Context) (string, error) {
	raw := c.Request().URL.EscapedPath()
	if !strings.HasPrefix(raw, kvPrefix) {
		return "", badRequest(CodeMissingKey, "no key in the path")
	}
	key, err := url.PathUnescape(raw[len(kvPrefix):])
	if err != nil {
		return "", badRequest(CodeBadRequest, "key is not a valid escaped path")
	}
	return key, s.checkKey(key, true)
}

func (s *Server) checkKey(key string, inURI bool) error {
	switch {
	case key == "":
		return badRequest(CodeMissingKey, "key must not be empty")
	case len(key) > s.cfg.MaxKeyBytes:
		status := http.StatusBadRequest
		if inURI {
			status = http.StatusRequestURITooLong
		}
		return newAPIError(status, CodeKeyTooLong, "key is %d bytes, at most %d allowed", len(key), s.cfg.MaxKeyBytes)
	case !utf8.ValidString(key):
		return badRequest(CodeInvalidUTF8, "key is not valid UTF-8")
	}
	return nil
}

func (s *Server) checkValue(value *string) error {
	switch {
	case value == nil:
		return badRequest(CodeMissingValue, `body must hold a string "value"`)
	case len(*value) > s.cfg.MaxValueBytes:
		return newAPIError(http.StatusRequestEntityTooLarge, CodeValueTooLarge, "value is %d bytes, at most %d allowed",
			len(*value), s.cfg.MaxValueBytes)
	}
	return nil
}

// checkContentType requires a JSON body.
func checkContentType(r *http.Request) error {
	ct := r.Header.Get(echo.HeaderContentType)
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || mt != echo.MIMEApplicationJSON {
		return newAPIError(http.StatusUnsupportedMediaType, CodeUnsupportedMedia,
			"Content-Type must be application/json, got %q", ct)
	}
	return nil
}

// readBody reads a JSON body of at most limit bytes, capped before reading.
func readBody(c echo.Context, limit int64) ([]byte, error) {
	if err := checkContentType(c.Request()); err != nil {
		return nil, err
	}
	data, err := io.ReadAll(http.MaxBytesReader(c.Response(), c.Request().Body, limit))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return nil, newAPIError(http.StatusRequestEntityTooLarge, CodeBodyTooLarge, "body above %d bytes", limit)
	case err != nil:
		return nil, badRequest(CodeBadRequest, "read body: %v", err)
	}
	return data, nil
}

// decodeStrict decodes exactly one JSON object into v: valid UTF-8, no unknown fields,
// no type mismatch, nothing after it.
func decodeStrict(data []byte, v any) error {
	if !utf8.Valid(data) {
		return badRequest(CodeInvalidUTF8, "body is not valid UTF-8")
	}
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return badRequest(CodeInvalidJSON, "body must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest(CodeInvalidJSON, "malformed JSON: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return badRequest(CodeInvalidJSON, "trailing data after the JSON object")
	}
	return nil
}

// fastPutValue decodes the usual PUT body, {"value":"..."} with a string free of escapes
// and control characters (whitespace allowed where JSON allows it), without
// encoding/json: every write passes here once on the server that takes it and again on
// the leader. It reports false for anything else, which decodeStrict then decodes (or
// refuses) as always; when it reports true, decodeStrict would have decoded the same value
// (FuzzFastPutValue). data is valid UTF-8 or it reports false.
func fastPutValue(data []byte) (string, bool) {
	i := 0
	ws := func() {
		for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r') {
			i++
		}
	}
	lit := func(l string) bool {
		if !bytes.HasPrefix(data[i:], []byte(l)) {
			return false
		}
		i += len(l)
		return true
	}
	for _, tok := range [...]string{"{", `"value"`, ":", `"`} { // each after optional whitespace
		ws()
		if !lit(tok) {
			return "", false
		}
	}
	start := i
	for i < len(data) && data[i] != '"' {
		if data[i] == '\\' || data[i] < 0x20 {
			return "", false
		}
		i++
	}
	if i == len(data) {
		return "", false
	}
	raw := data[start:i]
	i++
	ws()
	if !lit("}") {
		return "", false
	}
	ws()
	if i != len(data) || !utf8.Valid(raw) {
		return "", false
	}
	return string(raw), true
}

// --- public handlers ---

func (s *Server) handleGet(c echo.Context) error {
	if c.Request().URL.EscapedPath() == kvPrefix && c.QueryParams().Has("prefix") {
		return s.handleList(c) // list.go
	}
	key, err := s.pathKey(c)
	if err != nil {
		return err
	}
	if err := s.awaitKey(c, key); err != nil { // watch.go: blocks only with ?index=
		return err
	}
	leader, err := s.wantLeaderRead(c)
	if err != nil {
		return err
	}
	var e kvstore.Entry
	var ok bool
	if leader {
		var here bool
		if e, ok, here, err = s.leaderRead(c.Request().Context(), key); err != nil {
			return err
		}
		if !here {
			return s.forward(c, nil)
		}
	} else if e, ok, err = s.localRead(c, key); err != nil {
		return err
	}
	if !ok {
		return writeKV(c, KV{Key: key, Found: ptr(false)})
	}
	c.Response().Header().Set(HeaderETag, etag(e.Version))
	return writeKV(c, KV{Key: key, Value: e.Value, Found: ptr(true), Version: e.Version})
}

// localRead reads key from this server's own store. The answer says how stale it may be
// (HeaderApplied, HeaderLastContact) and the key's modify index (HeaderIndex);
// ?max_staleness=D refuses it (503 too_stale) when this server has not heard from its
// leader within D.
func (s *Server) localRead(c echo.Context, key string) (kvstore.Entry, bool, error) {
	if err := s.checkLocalRead(c); err != nil {
		return kvstore.Entry{}, false, err
	}
	// Lookup, not Get: a tombstone's index is the key's modify index too (a watch wakes on
	// a delete and goes on from it).
	e, ok := s.store.Lookup(key)
	applied, _ := s.store.Last()
	h := c.Response().Header()
	h.Set(HeaderApplied, strconv.FormatUint(applied, 10))
	h.Set(HeaderIndex, strconv.FormatUint(e.Index, 10))
	if !ok || e.Deleted {
		return kvstore.Entry{}, false, nil
	}
	return e, true, nil
}

// checkLocalRead sets HeaderLastContact and applies ?max_staleness to a local read.
func (s *Server) checkLocalRead(c echo.Context) error {
	var bound time.Duration = -1
	if q := c.QueryParam("max_staleness"); q != "" {
		d, err := time.ParseDuration(q)
		if err != nil || d < 0 {
			return badRequest(CodeBadRequest, "max_staleness must be a non-negative duration such as 500ms, got %q", q)
		}
		bound = d
	}
	since := s.staleness()
	h := c.Response().Header()
	h.Set(HeaderLastContact, strconv.FormatInt(since.Milliseconds(), 10))
	if since < 0 {
		h.Set(HeaderLastContact, "-1")
	}
	if bound >= 0 && (since < 0 || since > bound) {
		return unavailable(CodeTooStale, ErrTooStale,
			"this server last heard from its leader %s ago, more than max_staleness %s; read from another server or with ?consistency=leader",
			lastContactText(since), bound)
	}
	return nil
}

// staleness is how long ago this server last heard from its leader: 0 while it leads, -1
// if it never did.
func (s *Server) staleness() time.Duration {
	if s.leading() {
		return 0
	}
	at := s.lastContact.Load()
	if at == 0 {
		return -1
	}
	return max(0, time.Since(time.Unix(0, at)))
}

func lastContactText(d time.Duration) string {
	if d < 0 {
		return "never"
	}
	return d.Round(time.Millisecond).String()
}

// wantLeaderRead parses ?consistency=: "" or "local" reads here, "leader" at the leader.
// leaderRead is a linearizable read on the leader (?consistency=leader), after Raft's
// ReadIndex: it reads the key and the last index together under the write lock, waits
// until that index is acknowledged under the ack mode (so it never answers a write that
// may yet fail), then needs replicas to answer a round sent after the read began
// (Barrier), which proves this server still led at that moment: a leader paused past its
// session that wakes up believing it leads is refused by replicas that saw a newer epoch.
// here is false when this server does not lead (the caller forwards).
func (s *Server) leaderRead(ctx context.Context, key string) (e kvstore.Entry, ok, here bool, err error) {
	s.writeMu.Lock()
	ld := s.lead
	if ld == nil {
		s.writeMu.Unlock()
		return e, false, false, nil
	}
	idx, _ := s.log.Last()
	s.writeMu.Unlock()

	rctx, cancel := context.WithTimeout(ctx, s.cfg.WriteTimeout)
	defer cancel()
	if _, err := ld.repl.Wait(rctx, idx, s.ack); err != nil {
		return e, false, true, s.readUnconfirmed(err, "the writes it reads are not acknowledged")
	}
	// Every write logged before the read began is applied now: the store answers with
	// them, or with later committed writes.
	e, ok = s.store.Get(key)
	if _, err := ld.repl.Barrier(rctx, s.ack); err != nil {
		return e, false, true, s.readUnconfirmed(err, "the replicas did not confirm this leader")
	}
	if v := s.elector.View(); !v.IsLeader || v.Epoch != ld.epoch {
		return e, false, true, unavailable(CodeNotLeader, ErrNotLeader, "this server no longer leads epoch %d", ld.epoch)
	}
	return e, ok, true, nil
}

func (s *Server) readUnconfirmed(err error, why string) error {
	if errors.Is(err, replication.ErrFenced) {
		return unavailable(CodeNotLeader, ErrFenced, "leader read refused: this leader was deposed by a newer epoch; retry")
	}
	return unavailable(CodeNotReplicated, ErrNotReplicated, "leader read not confirmed: %s: %v", why, err)
}

func (s *Server) wantLeaderRead(c echo.Context) (bool, error) {
	switch c.QueryParam("consistency") {
	case "", "local":
		return false, nil
	case "leader":
		return true, nil
	}
	return false, badRequest(CodeBadRequest, `consistency must be "local" or "leader"`)
}

func (s *Server) handlePut(c echo.Context) error {
	key, err := s.pathKey(c)
	if err != nil {
		return err
	}
	pre, err := parsePrecondition(c.Request().Header)
	if err != nil {
		return err
	}
	data, err := readBody(c, s.cfg.bodyLimit())
	if err != nil {
		return err
	}
	var body putBody
	if v, ok := fastPutValue(data); ok {
		body.Value = &v
	} else if err := decodeStrict(data, &body); err != nil {
		return err
	}
	if err := s.checkValue(body.Value); err != nil {
		return err
	}
	value := *body.Value
	res, err := s.write(c, data, "put", key, s.putEntry(key, value, pre))
	if err != nil || res.forwarded {
		return err
	}
	c.Response().Header().Set(HeaderETag, etag(res.entry.Version))
	return writeKV(c, KV{Key: key, Value: value, Version: res.entry.Version, Epoch: res.epoch, Leader: s.cfg.Address})
}

func (s *Server) handleDelete(c echo.Context) error {
	key, err := s.pathKey(c)
	if err != nil {
		return err
	}
	pre, err := parsePrecondition(c.Request().Header)
	if err != nil {
		return err
	}
	res, err := s.write(c, nil, "delete", key, s.deleteEntry(key, pre))
	if err != nil || res.forwarded {
		return err
	}
	return c.JSON(http.StatusOK, Deleted{Key: key, Found: res.found})
}

func (s *Server) handleRead(c echo.Context) error {
	key := c.QueryParam("key")
	if err := s.checkKey(key, true); err != nil {
		return err
	}
	leader, err := s.wantLeaderRead(c)
	if err != nil {
		return err
	}
	var e kvstore.Entry
	if leader {
		var here bool
		if e, _, here, err = s.leaderRead(c.Request().Context(), key); err != nil {
			return err
		}
		if !here {
			return s.forward(c, nil)
		}
	} else if e, _, err = s.localRead(c, key); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, struct {
		Key   string `json:"key"`
		Value string `json:"value"`
	}{key, e.Value})
}

func (s *Server) handleUpdate(c echo.Context) error {
	data, err := readBody(c, s.cfg.bodyLimit())
	if err != nil {
		return err
	}
	var body updateBody
	if err := decodeStrict(data, &body); err != nil {
		return err
	}
	if body.Key == nil {
		return badRequest(CodeMissingKey, `body must hold a string "key"`)
	}
	if err := s.checkKey(*body.Key, false); err != nil {
		return err
	}
	if err := s.checkValue(body.Value); err != nil {
		return err
	}
	pre, err := parsePrecondition(c.Request().Header)
	if err != nil {
		return err
	}
	key, value := *body.Key, *body.Value
	res, err := s.write(c, data, "put", key, s.putEntry(key, value, pre))
	if err != nil || res.forwarded {
		return err
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "updated"})
}

func (s *Server) handleStatus(c echo.Context) error {
	return c.JSON(http.StatusOK, s.status(c.Request().Context()))
}

// status is this server's answer to GET /v1/status.
func (s *Server) status(ctx context.Context) Status {
	v := s.elector.View()
	st := Status{
		ID: s.cfg.ID, Address: s.cfg.Address, Role: roleOf(v),
		Leader: StatusLeader{ID: v.Leader.ID, Address: v.Leader.Address},
		Epoch:  v.Epoch, Keys: s.store.Len(), Members: []Member{},
	}
	st.Members = members(s.currentMembers(ctx, v))
	st.Applied, _ = s.store.Last()
	st.InSync = []string{}
	st.Incarnation = s.cfg.Incarnation
	st.Alarms = s.alarms()
	if ld := s.leadPtr.Load(); ld != nil {
		for _, r := range ld.record().Members {
			st.InSync = append(st.InSync, r.ID+"/"+r.Incarnation)
		}
	}
	return st
}

func (s *Server) handleHealthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) handleReadyz(c echo.Context) error {
	v := s.elector.View()
	s.writeMu.Lock()
	draining := s.draining
	s.writeMu.Unlock()
	switch {
	case draining:
		return unavailable(CodeShuttingDown, ErrShuttingDown, "shutting down")
	case !v.Connected:
		return unavailable(CodeNoLeader, ErrNoLeader, "no ZooKeeper session")
	case v.Leader.Address == "":
		return unavailable(CodeNoLeader, ErrNoLeader, "no leader known")
	case !s.synced.Load():
		return unavailable(CodeNoLeader, ErrNoLeader, "copying the leader's store (-sync_on_join)")
	case !v.IsLeader && s.streamEpoch.Load() != v.Epoch:
		return unavailable(CodeNoLeader, ErrNoLeader, "the leader %s does not replicate to this server yet", v.Leader.Address)
	case v.IsLeader && !s.leading():
		return unavailable(CodeNoLeader, ErrNoLeader, "elected, catching up before it takes writes")
	case !v.IsLeader && s.staleness() > s.cfg.SilentAfter:
		return unavailable(CodeNoLeader, ErrNoLeader, "the leader's stream has been silent for %s (local reads still answer, with %s)",
			lastContactText(s.staleness()), HeaderLastContact)
	case !v.IsLeader && !s.follower.Position().Partial && !s.follower.InSync():
		// A complete replica is ready once writes wait for it: from then on every write
		// acknowledged under ack all is on it. A partial one (restarted, empty) never joins
		// the in-sync set; it is ready once the stream reaches it.
		return unavailable(CodeNoLeader, ErrNoLeader, "the leader %s does not count this server in its in-sync set yet", v.Leader.Address)
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ready", "role": roleOf(v)})
}

// --- the write path ---

type writeResult struct {
	forwarded bool // the leader's answer has been sent already
	entry     kvstore.Entry
	found     bool
	epoch     int64
}

// entryFunc builds a leader's entry for a write at index in epoch over old, the key's
// newest logged entry (zero when never written); false when the write changes nothing (a
// delete of an absent key); an error when its precondition fails. It runs under writeMu.
type entryFunc func(old kvstore.Entry, epoch int64, index uint64) (kvstore.Entry, bool, error)

func (s *Server) putEntry(key, value string, pre precondition) entryFunc {
	return func(old kvstore.Entry, epoch int64, index uint64) (kvstore.Entry, bool, error) {
		if err := pre.check(key, old); err != nil {
			return kvstore.Entry{}, false, err
		}
		return kvstore.Entry{Key: key, Value: value, Version: old.Version + 1, Index: index, Epoch: epoch}, true, nil
	}
}

func (s *Server) deleteEntry(key string, pre precondition) entryFunc {
	return func(old kvstore.Entry, epoch int64, index uint64) (kvstore.Entry, bool, error) {
		if err := pre.check(key, old); err != nil {
			return kvstore.Entry{}, false, err
		}
		if old.Key == "" || old.Deleted {
			return kvstore.Entry{}, false, nil
		}
		return kvstore.Entry{Key: key, Version: old.Version + 1, Index: index, Epoch: epoch, Deleted: true}, true, nil
	}
}

// write runs op on the leader, or forwards the request (with body) to it.
func (s *Server) write(c echo.Context, body []byte, op, key string, apply entryFunc) (writeResult, error) {
	res, err := s.leaderWrite(c.Request().Context(), op, key, apply)
	if !errors.Is(err, errNotLeading) {
		if err == nil && res.entry.Index != 0 {
			h := c.Response().Header()
			h.Set(HeaderWriteIndex, strconv.FormatUint(res.entry.Index, 10))
			h.Set(HeaderWriteEpoch, strconv.FormatInt(res.epoch, 10))
		}
		return res, err
	}
	if err := s.forward(c, body); err != nil {
		return res, err
	}
	res.forwarded = true
	return res, nil
}

var errNotLeading = errors.New("server: not leading here")

func (s *Server) leading() bool { return s.leadPtr.Load() != nil }

// leaderWrite is the leader's write path: under writeMu check the leadership and its
// epoch, build the entry, append it to the log, enqueue it to the fan-out; then, outside
// the lock, wait until it has committed and the store has applied it (the store never
// holds a write that may yet be lost).
func (s *Server) leaderWrite(ctx context.Context, op, key string, apply entryFunc) (writeResult, error) {
	s.writeMu.Lock()
	ld := s.lead
	if ld == nil {
		s.writeMu.Unlock()
		return writeResult{}, errNotLeading
	}
	if s.draining {
		s.writeMu.Unlock()
		return writeResult{}, unavailable(CodeShuttingDown, ErrShuttingDown, "this leader is shutting down")
	}
	if v := s.elector.View(); !v.IsLeader || v.Epoch != ld.epoch {
		s.writeMu.Unlock()
		s.metrics.writes.WithLabelValues(op, "not_leader").Inc()
		return writeResult{}, unavailable(CodeNotLeader, ErrNotLeader, "this server no longer leads epoch %d", ld.epoch)
	}
	// The entry is built, its precondition checked and its quota counted against the
	// state it will apply on: the store plus every entry logged ahead of it (pending),
	// all under writeMu, which orders the log (see docs/design.md, conditional writes).
	last, _ := s.log.Last()
	old, _ := s.latest(key)
	e, wrote, err := apply(old, ld.epoch, last+1)
	if err != nil {
		s.writeMu.Unlock()
		s.metrics.writes.WithLabelValues(op, "precondition_failed").Inc()
		return writeResult{}, err
	}
	if !wrote {
		s.writeMu.Unlock()
		s.metrics.writes.WithLabelValues(op, "noop").Inc()
		return writeResult{entry: e, epoch: ld.epoch}, nil
	}
	if err := s.checkQuota(ld, old, e); err != nil {
		s.writeMu.Unlock()
		s.metrics.writes.WithLabelValues(op, "quota_exceeded").Inc()
		return writeResult{}, err
	}
	if err := s.log.Append(e); err != nil {
		s.writeMu.Unlock()
		s.logger.Error("log a write", "op", op, "index", e.Index, "error", err)
		return writeResult{}, newAPIError(http.StatusInternalServerError, CodeInternal, "log the write: %v", err)
	}
	s.countLogged(ld, old, e)
	s.pendMu.Lock()
	s.pending[key] = e
	s.pendMu.Unlock()
	ld.repl.Enqueue(e)
	s.inflight.Add(1)
	s.writeMu.Unlock()
	defer s.inflight.Done()

	start := time.Now()
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.WriteTimeout)
	defer cancel()
	acked, err := ld.repl.Wait(wctx, e.Index, s.ack)
	switch {
	case errors.Is(err, replication.ErrFenced):
		// The entry may be on replicas already: a successor that adopts such a log commits
		// it. So its outcome is unknown, not "nothing applied".
		s.metrics.writes.WithLabelValues(op, "fenced").Inc()
		s.logger.Warn("write fenced: a newer leader exists", "op", op, "key", shortKey(key), "index", e.Index, "error", err)
		return writeResult{}, maybeApplied(CodeOutcomeUnknown, errors.Join(ErrOutcomeUnknown, ErrFenced), e.Index, e.Epoch,
			"write logged at index %d epoch %d, then this leader was deposed by a newer epoch: the write may still apply through its successor, or not; read it back at the leader, or retry with If-Match", e.Index, e.Epoch)
	case err != nil:
		s.metrics.writes.WithLabelValues(op, "not_replicated").Inc()
		s.logger.Warn("write not replicated", "op", op, "key", shortKey(key), "index", e.Index, "ack", s.cfg.Ack, "acked", acked, "error", err)
		return writeResult{}, maybeApplied(CodeNotReplicated, ErrNotReplicated, e.Index, e.Epoch,
			"write logged at index %d epoch %d but not acknowledged (ack %s, %d replicas acked): it may still commit, or not; read it back at the leader, or retry with If-Match: %v",
			e.Index, e.Epoch, s.cfg.Ack, acked, err)
	}
	s.metrics.writes.WithLabelValues(op, "ok").Inc()
	// One line per write, once its fate is known: applied at this index and version,
	// replicated with these acks (half the log volume of a line per step).
	s.logger.Log(ctx, s.writeLevel, "write applied and replicated", "op", op, "key", shortKey(key), "index", e.Index,
		"version", e.Version, "epoch", ld.epoch, "acks", acked, "ack", s.cfg.Ack,
		"took", time.Since(start).Round(time.Microsecond))
	return writeResult{entry: e, found: true, epoch: ld.epoch}, nil
}

func shortKey(k string) string {
	if len(k) > 64 {
		return k[:64] + "..."
	}
	return k
}

// forward proxies the request to the leader and relays its answer: the client sees one
// answer. A request that was forwarded already is not forwarded again.
func (s *Server) forward(c echo.Context, body []byte) error {
	r := c.Request()
	if from := r.Header.Get(HeaderForwarded); from != "" {
		s.metrics.forwarded.WithLabelValues("loop_refused").Inc()
		return unavailable(CodeNotLeader, ErrNotLeader, "request forwarded by %s reached %s, which does not lead", from, s.cfg.ID)
	}
	v := s.elector.View()
	leader := v.Leader.Address
	if leader == "" || leader == s.cfg.Address {
		s.metrics.forwarded.WithLabelValues("no_leader").Inc()
		return unavailable(CodeNoLeader, ErrNoLeader, "no leader known")
	}
	if s.fwdStream != nil {
		if done, err := s.streamForward(c, leader, body); done {
			return err
		}
	}
	var rd io.Reader = http.NoBody
	if body != nil {
		rd = bytes.NewReader(body)
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.WriteTimeout+2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, r.Method, s.peerURL(leader, r.URL.RequestURI()), rd)
	if err != nil {
		return unavailable(CodeLeaderUnreachable, ErrLeaderUnreachable, "leader address %q: %v", leader, err)
	}
	if body != nil {
		req.Header.Set(echo.HeaderContentType, echo.MIMEApplicationJSON)
	}
	req.Header.Set(HeaderForwarded, s.cfg.ID)
	for _, h := range []string{HeaderIfMatch, HeaderIfNoneMatch} {
		for _, v := range r.Header.Values(h) {
			req.Header.Add(h, v) // the leader evaluates them, where the write is ordered
		}
	}
	// Once a connection to the leader is made, the write may reach it: an error after that
	// leaves its outcome unknown. Before (a failed dial), nothing was sent.
	write := r.Method != http.MethodGet
	sent := new(atomic.Bool)
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
		GotConn: func(httptrace.GotConnInfo) { sent.Store(true) },
	}))
	start := time.Now()
	resp, err := s.fwd.Do(req)
	if err != nil {
		s.requestRefresh()
		s.metrics.forwarded.WithLabelValues("unreachable").Inc()
		s.logger.Warn("forward to the leader failed", "method", r.Method, "leader", leader, "sent", sent.Load(), "error", err)
		if write && sent.Load() {
			return maybeApplied(CodeOutcomeUnknown, ErrOutcomeUnknown, 0, 0,
				"forwarded the write to the leader %s, which did not answer: it may have applied it, or not; read it back at the leader, or retry with If-Match: %v", leader, err)
		}
		return unavailable(CodeLeaderUnreachable, ErrLeaderUnreachable, "leader %s: %v", leader, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 2*s.cfg.bodyLimit()))
	if err != nil {
		s.metrics.forwarded.WithLabelValues("unreachable").Inc()
		if write {
			return maybeApplied(CodeOutcomeUnknown, ErrOutcomeUnknown, 0, 0,
				"the leader %s's answer to the forwarded write was cut (status %d): it may have applied it, or not; read it back at the leader, or retry with If-Match: %v",
				leader, resp.StatusCode, err)
		}
		return unavailable(CodeLeaderUnreachable, ErrLeaderUnreachable, "leader %s: read answer: %v", leader, err)
	}
	var hs [][2]string
	for _, h := range relayedHeaders {
		if v := resp.Header.Get(h); v != "" {
			hs = append(hs, [2]string{h, v})
		}
	}
	return s.relay(c, leader, start, resp.StatusCode, resp.Header.Get(echo.HeaderContentType), hs, data)
}

// relay sends the leader's answer to a forwarded request as this server's.
func (s *Server) relay(c echo.Context, leader string, start time.Time, status int, ct string, headers [][2]string, data []byte) error {
	r := c.Request()
	s.metrics.forwarded.WithLabelValues(strconv.Itoa(status)).Inc()
	if r.Method != http.MethodGet {
		s.logger.Log(r.Context(), s.writeLevel, "write forwarded", "method", r.Method, "path", shortKey(r.URL.Path), "leader", leader,
			"status", status, "took", time.Since(start).Round(time.Microsecond))
	}
	for _, h := range headers {
		c.Response().Header().Set(h[0], h[1])
	}
	if ct == "" {
		ct = echo.MIMEApplicationJSON
	}
	return c.Blob(status, ct, data)
}

// relayedHeaders are the leader's answer headers a follower passes on with its body.
var relayedHeaders = []string{"Retry-After", HeaderETag, HeaderWriteIndex, HeaderWriteEpoch,
	HeaderApplied, HeaderLastContact}

func ptr[T any](v T) *T { return &v }

// currentMembers lists the members for /v1/status: the leader's view has them (its
// children watch); a follower asks ZooKeeper, with a bound, since go-zookeeper queues a
// call until it reconnects and would hang the request through an outage. Without a
// session, or past the bound, it answers the last list read.
func (s *Server) currentMembers(ctx context.Context, v election.View) []election.Member {
	if v.Members != nil {
		return v.Members
	}
	last := func() []election.Member {
		if p := s.members.Load(); p != nil {
			return *p
		}
		return nil
	}
	if !v.Connected {
		return last()
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	type result struct {
		ms  []election.Member
		err error
	}
	ch := make(chan result, 1) // the call may outlive the request; it ends with the session
	go func() {
		ms, err := s.elector.Members(ctx)
		ch <- result{ms, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			return last()
		}
		s.members.Store(&r.ms)
		return r.ms
	case <-ctx.Done():
		return last()
	}
}

// members converts the election's members for Status.
func members(ms []election.Member) []Member {
	out := make([]Member, 0, len(ms))
	for _, m := range ms {
		out = append(out, Member{ID: m.ID, Address: m.Address, Znode: m.Node})
	}
	return out
}
