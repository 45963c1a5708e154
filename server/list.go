package server

import (
	"net/http"
	"strconv"
	"unicode/utf8"

	"github.com/labstack/echo/v4"
	"github.com/zkv-dev/zkv/kvstore"
)

// Listing bounds: ?limit= defaults to DefaultListLimit and may not exceed MaxListLimit; a
// page also ends once its keys and values reach MaxListBytes (the entry that reaches it
// included), so large values make shorter pages, never an oversized answer.
const (
	DefaultListLimit = 1000
	MaxListLimit     = 10000
	MaxListBytes     = 4 << 20
)

// List is the answer of GET /v1/kv/?prefix=P.
type List struct {
	Prefix  string      `json:"prefix"`
	Entries []ListEntry `json:"entries"`
	// More is true when keys under the prefix follow this page: ask again with after=Next.
	More bool   `json:"more"`
	Next string `json:"next,omitempty"`
}

// ListEntry is one key of a List; Value is absent with ?keys=true.
type ListEntry struct {
	Key     string  `json:"key"`
	Value   *string `json:"value,omitempty"`
	Version uint64  `json:"version"`
	Index   uint64  `json:"index"`
}

// handleList answers GET /v1/kv/?prefix=P&after=K&limit=N&keys=true from this server's own
// copy, like a local read (same staleness headers, ?max_staleness), with HeaderIndex the
// prefix's modify index; ?index=N&wait=D first blocks until that index passes N.
func (s *Server) handleList(c echo.Context) error {
	q := c.QueryParams()
	opts := kvstore.ListOptions{Prefix: q.Get("prefix"), After: q.Get("after"), Limit: DefaultListLimit, MaxBytes: MaxListBytes}
	if err := s.checkListKey("prefix", opts.Prefix); err != nil {
		return err
	}
	if err := s.checkListKey("after", opts.After); err != nil {
		return err
	}
	if _, ok := q["limit"]; ok {
		n, err := strconv.Atoi(q.Get("limit"))
		if err != nil || n < 1 || n > MaxListLimit {
			return badRequest(CodeBadRequest, "limit must be an integer from 1 to %d, got %q", MaxListLimit, q.Get("limit"))
		}
		opts.Limit = n
	}
	if _, ok := q["keys"]; ok {
		b, err := strconv.ParseBool(q.Get("keys"))
		if err != nil {
			return badRequest(CodeBadRequest, "keys must be true or false, got %q", q.Get("keys"))
		}
		opts.KeysOnly = b
	}
	switch q.Get("consistency") {
	case "", "local":
	default:
		return badRequest(CodeBadRequest, `a listing is served from this server's copy: consistency must be "local"`)
	}
	w, err := parseWatch(c)
	if err != nil {
		return err
	}
	if err := s.checkLocalRead(c); err != nil { // bad max_staleness: refused before any wait
		return err
	}
	if w.on {
		if err := s.await(c, w,
			func() (<-chan struct{}, func()) { return s.store.WatchPrefix(opts.Prefix) },
			func() uint64 { return s.store.PrefixIndex(opts.Prefix) }); err != nil {
			return err
		}
		if err := s.checkLocalRead(c); err != nil { // the staleness after the wait is the one that counts
			return err
		}
	}
	page := s.store.List(opts)
	h := c.Response().Header()
	h.Set(HeaderApplied, strconv.FormatUint(page.Applied, 10))
	h.Set(HeaderIndex, strconv.FormatUint(page.Index, 10))
	ans := List{Prefix: opts.Prefix, Entries: make([]ListEntry, 0, len(page.Entries)), More: page.More}
	for _, e := range page.Entries {
		le := ListEntry{Key: e.Key, Version: e.Version, Index: e.Index}
		if !opts.KeysOnly {
			le.Value = &e.Value
		}
		ans.Entries = append(ans.Entries, le)
	}
	if page.More {
		ans.Next = page.Entries[len(page.Entries)-1].Key
	}
	return c.JSON(http.StatusOK, ans)
}

// checkListKey checks a prefix or cursor: like a key, but it may be empty.
func (s *Server) checkListKey(name, v string) error {
	switch {
	case len(v) > s.cfg.MaxKeyBytes:
		return newAPIError(http.StatusRequestURITooLong, CodeKeyTooLong, "%s is %d bytes, at most %d allowed", name, len(v), s.cfg.MaxKeyBytes)
	case !utf8.ValidString(v):
		return badRequest(CodeInvalidUTF8, "%s is not valid UTF-8", name)
	}
	return nil
}
