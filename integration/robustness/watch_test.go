package robustness

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestWatchCheckerFlagsAMissedChange: the watch check flags a watcher left holding an older
// state than its server's own copy (a change that did not wake it), and passes one that holds
// the same state.
func TestWatchCheckerFlagsAMissedChange(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Zkv-Index", "7")
		_, _ = w.Write([]byte(`{"prefix":"key-","entries":[{"key":"key-1","value":"b","version":2,"index":7}],"more":false}`))
	}))
	defer srv.Close()
	s := &Server{Index: 0, Addr: strings.TrimPrefix(srv.URL, "http://"), running: true}

	stale := &watcher{srv: s, seen: true, woke: 3, last: watchState{index: 5, values: map[string]string{"key-1": "a@1"}}}
	res := &Result{}
	checkWatchers(context.Background(), []*watcher{stale}, res)
	if len(res.Violations) != 1 || res.Violations[0].Invariant != InvWatchMissed {
		t.Fatalf("a watcher two changes behind: violations %v", res.Violations)
	}

	current := &watcher{srv: s, seen: true, woke: 4, last: watchState{index: 7, values: map[string]string{"key-1": "b@2"}}}
	res = &Result{}
	checkWatchers(context.Background(), []*watcher{current}, res)
	if len(res.Violations) != 0 {
		t.Fatalf("an up-to-date watcher: violations %v", res.Violations)
	}
}
