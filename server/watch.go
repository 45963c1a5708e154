package server

import (
	"errors"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
)

// HeaderIndex is the modify index a read answers with: of the key (the index of its last
// write, a delete included; 0 when this copy never held it) on GET /v1/kv/{key}, of the
// prefix on a listing (see kvstore.Store.PrefixIndex). A watch sends it back as ?index=
// and blocks until it grows past it (compare Consul's X-Consul-Index).
const HeaderIndex = "X-Zkv-Index"

// Watch waits: DefaultWatchWait when ?wait= is not given, at most MaxWatchWait (a longer
// one is cut to it), plus a random jitter of up to a sixteenth of it, so that watchers
// started together do not all come back together.
const (
	DefaultWatchWait = 5 * time.Minute
	MaxWatchWait     = 10 * time.Minute
)

// ErrTooManyWatchers reports a watch refused because Config.MaxWatchers requests already
// wait on this server.
var ErrTooManyWatchers = errors.New("server: too many watchers")

// CodeTooManyWatchers is the error code of a watch refused by Config.MaxWatchers (503).
const CodeTooManyWatchers = "too_many_watchers"

// watch is a blocking query's parameters: ?index=N&wait=D.
type watch struct {
	on    bool
	index uint64
	wait  time.Duration
}

// parseWatch reads ?index= and ?wait=. Without index the request does not block, and a
// wait alone is refused (it would not block either, which a caller would not expect).
func parseWatch(c echo.Context) (watch, error) {
	q := c.QueryParams()
	_, hasWait := q["wait"]
	if _, ok := q["index"]; !ok {
		if hasWait {
			return watch{}, badRequest(CodeBadRequest, "wait needs index: ?index=N&wait=30s blocks until the index passes N")
		}
		return watch{}, nil
	}
	raw := q.Get("index")
	n, err := strconv.ParseUint(raw, 10, 64)
	if err != nil {
		return watch{}, badRequest(CodeBadRequest, "index must be a non-negative integer (an %s answered before), got %q", HeaderIndex, raw)
	}
	w := watch{on: true, index: n, wait: DefaultWatchWait}
	if hasWait {
		raw := q.Get("wait")
		d, err := time.ParseDuration(raw)
		if err != nil || d <= 0 {
			return watch{}, badRequest(CodeBadRequest, "wait must be a positive duration such as 30s or 5m, got %q", raw)
		}
		w.wait = min(d, MaxWatchWait)
	}
	if cons := q.Get("consistency"); cons != "" && cons != "local" {
		return watch{}, badRequest(CodeBadRequest, `a watch is served from this server's copy: consistency must be "local"`)
	}
	w.wait += rand.N(w.wait/16 + 1)
	return w, nil
}

// awaitKey blocks a GET /v1/kv/{key}?index=N until the key's modify index passes N, the
// wait ends, the client leaves or the server shuts down; then the GET answers as usual.
func (s *Server) awaitKey(c echo.Context, key string) error {
	w, err := parseWatch(c)
	if err != nil || !w.on {
		return err
	}
	if err := s.checkLocalRead(c); err != nil { // bad max_staleness: refused before any wait
		return err
	}
	return s.await(c, w,
		func() (<-chan struct{}, func()) { return s.store.WatchKey(key) },
		func() uint64 { e, _ := s.store.Lookup(key); return e.Index })
}

// await blocks until index() passes w.index. It takes the store's channel before each
// read of the index, so a write landing in between closes the channel: nothing is missed,
// and nothing polls. At most Config.MaxWatchers requests wait at once.
func (s *Server) await(c echo.Context, w watch, changes func() (<-chan struct{}, func()), index func() uint64) error {
	select {
	case <-s.stopped:
		return unavailable(CodeShuttingDown, ErrShuttingDown, "this server is shutting down: watch another one")
	default:
	}
	if n := s.watchers.Add(1); n > int64(s.cfg.MaxWatchers) {
		s.watchers.Add(-1)
		s.logger.Debug("watch refused", "watchers", n-1, "max_watchers", s.cfg.MaxWatchers)
		return unavailable(CodeTooManyWatchers, ErrTooManyWatchers,
			"%d watches are waiting on this server already (-max_watchers); retry later or watch another server", s.cfg.MaxWatchers)
	}
	defer s.watchers.Add(-1)
	// The server's read and write deadlines are sized for plain requests; this one may
	// wait longer. (Not supported under httptest's recorder: nothing to extend there.)
	rc := http.NewResponseController(c.Response())
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Now().Add(w.wait + s.cfg.WriteTimeout + 5*time.Second))

	timer := time.NewTimer(w.wait)
	defer timer.Stop()
	ctx := c.Request().Context()
	for {
		ch, release := changes()
		if index() > w.index {
			release()
			return nil
		}
		select {
		case <-ch:
			release()
			continue
		case <-timer.C:
		case <-ctx.Done():
		case <-s.stopped:
		}
		// The wait is over (or the client left, or the server stops): answer what is here,
		// with its index, as a plain read would.
		release()
		return nil
	}
}
