package replication

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/zkv-dev/zkv/kvstore"
)

// Internal routes the server serves and the Fanout calls.
const (
	PathAppend   = "/internal/v1/append"   // POST AppendRequest -> AppendResponse
	PathSnapshot = "/internal/v1/snapshot" // POST SnapshotRequest -> AppendResponse; GET -> kvstore.Snapshot
	PathPosition = "/internal/v1/position" // GET -> Position
	PathEntries  = "/internal/v1/entries"  // GET ?after=I&epoch=E -> EntriesResponse; 409 when (I, E) is not in this log
)

// Error codes of the internal routes' error bodies.
const (
	CodeLogMismatch    = "log_mismatch"    // 409
	CodeStaleEpoch     = "stale_epoch"     // 412
	CodeNotLeader      = "not_leader"      // 403
	CodeNewIncarnation = "new_incarnation" // 409: a restarted replica; its stream starts again
	CodeBadRequest     = "bad_request"     // 400
	CodeTooLarge       = "too_large"       // 413
	CodeInternal       = "internal"        // 500
)

// Default body limits for DecodeAppend and DecodeSnapshot callers.
const (
	DefaultMaxAppendBytes   = 64 << 20
	DefaultMaxSnapshotBytes = 1 << 30
)

// AppendRequest is the body of POST /internal/v1/append: entries that follow the
// leader's position (PrevIndex, PrevEpoch), one index after the other.
type AppendRequest struct {
	Epoch     int64           `json:"epoch"`
	Leader    string          `json:"leader"`
	PrevIndex uint64          `json:"prev_index"`
	PrevEpoch int64           `json:"prev_epoch"`
	Entries   []kvstore.Entry `json:"entries"`
	// Commit is the leader's commit index: the replica applies to its store the entries
	// up to it that this append shows its log to share with the leader's.
	Commit uint64 `json:"commit,omitempty"`
	// Complete says that the leader's history up to PrevIndex holds no key (only no-ops):
	// a fresh replica that takes this append as its base misses nothing and is complete.
	Complete bool `json:"complete,omitempty"`
	// InSync says whether the leader counts this replica in its in-sync set.
	InSync bool `json:"in_sync,omitempty"`
	// To is the incarnation the leader's stream has been reaching at this address, when it
	// knows one: a replica that is another (it restarted) refuses with new_incarnation.
	To string `json:"to,omitempty"`
}

// AppendResponse answers an append or a snapshot with the replica's last position, the
// index its store has applied, and whether it is partial (see Position).
type AppendResponse struct {
	LastIndex uint64 `json:"last_index"`
	LastEpoch int64  `json:"last_epoch"`
	Applied   uint64 `json:"applied,omitempty"`
	Partial   bool   `json:"partial,omitempty"`
	// Incarnation names the replica's process (FollowerConfig.Incarnation).
	Incarnation string `json:"incarnation,omitempty"`
}

// Position is a replica's place in the replicated log: the index and epoch of its last
// entry, and whether it is partial: a fresh replica that took a later append as its base
// lacks the writes before it. A newly elected leader asks every member for it and catches
// up from the most up-to-date one before it takes writes (see Follower.Extend and Adopt).
type Position struct {
	LastIndex uint64 `json:"last_index"`
	LastEpoch int64  `json:"last_epoch"`
	Partial   bool   `json:"partial"`
	// Applied is the index the store has applied: what is committed to this replica's
	// knowledge. Entries between Applied and LastIndex are held but not committed yet.
	Applied uint64 `json:"applied"`
	// Incarnation names this server process (a restarted server is a new incarnation with
	// an empty store); the in-sync set names its members by ID and incarnation.
	Incarnation string `json:"incarnation,omitempty"`
	// Leaving: this server is shutting down (it has resigned or is about to). A new leader
	// counts what it holds, but leaves it out of its in-sync set when the others hold
	// every committed write.
	Leaving bool `json:"leaving,omitempty"`
}

// After reports whether p is further along the log than q: a later last epoch, or the same
// epoch and a higher index (Raft's "more up-to-date").
func (p Position) After(q Position) bool {
	if p.LastEpoch != q.LastEpoch {
		return p.LastEpoch > q.LastEpoch
	}
	return p.LastIndex > q.LastIndex
}

// EntriesResponse answers GET /internal/v1/entries: the entries after (PrevIndex,
// PrevEpoch) that the log still holds, at most a batch; More is true when there are more.
type EntriesResponse struct {
	PrevIndex uint64          `json:"prev_index"`
	PrevEpoch int64           `json:"prev_epoch"`
	Entries   []kvstore.Entry `json:"entries"`
	More      bool            `json:"more"`
}

// SnapshotRequest is the body of POST /internal/v1/snapshot.
type SnapshotRequest struct {
	Epoch    int64            `json:"epoch"`
	Leader   string           `json:"leader"`
	Snapshot kvstore.Snapshot `json:"snapshot"`
	To       string           `json:"to,omitempty"` // as AppendRequest.To
}

// ErrorDetail is the "error" member of an error body.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// ErrorResponse is the body of every non-200 answer of the internal routes. LastIndex and
// LastEpoch matter for log_mismatch, Epoch (the replica's fence) for stale_epoch.
type ErrorResponse struct {
	Error     ErrorDetail `json:"error"`
	LastIndex uint64      `json:"last_index"`
	LastEpoch int64       `json:"last_epoch"`
	Epoch     int64       `json:"epoch"`
}

// Validate checks the protocol rules the decoder cannot: a non-negative epoch, prev_epoch
// and entry epochs not above the request's epoch, non-empty keys, and entry indexes that
// run prev_index+1, prev_index+2, ... without gaps.
func (r *AppendRequest) Validate() error {
	if r.Epoch < 0 || r.PrevEpoch < 0 {
		return fmt.Errorf("%w: negative epoch", ErrInvalidRequest)
	}
	if r.PrevEpoch > r.Epoch {
		return fmt.Errorf("%w: prev_epoch %d above epoch %d", ErrInvalidRequest, r.PrevEpoch, r.Epoch)
	}
	want := r.PrevIndex
	for i, e := range r.Entries {
		want++
		if want == 0 {
			return fmt.Errorf("%w: index overflow", ErrInvalidRequest)
		}
		if e.Index != want {
			return fmt.Errorf("%w: entry %d has index %d, want %d", ErrInvalidRequest, i, e.Index, want)
		}
		if (e.Key == "") != e.Noop {
			return fmt.Errorf("%w: entry %d: a key is required unless it is a no-op, and a no-op has none", ErrInvalidRequest, i)
		}
		if e.Epoch < 0 || e.Epoch > r.Epoch {
			return fmt.Errorf("%w: entry %d has epoch %d outside [0, %d]", ErrInvalidRequest, i, e.Epoch, r.Epoch)
		}
	}
	return nil
}

// Validate checks a snapshot request: epochs in range, keys non-empty, no entry after the
// snapshot's index.
func (r *SnapshotRequest) Validate() error {
	if r.Epoch < 0 || r.Snapshot.Epoch < 0 || r.Snapshot.Epoch > r.Epoch {
		return fmt.Errorf("%w: snapshot epoch %d, request epoch %d", ErrInvalidRequest, r.Snapshot.Epoch, r.Epoch)
	}
	for i, e := range r.Snapshot.Entries {
		if e.Key == "" || e.Noop {
			return fmt.Errorf("%w: snapshot entry %d has an empty key or is a no-op", ErrInvalidRequest, i)
		}
		if e.Index > r.Snapshot.Index {
			return fmt.Errorf("%w: snapshot entry %d has index %d above the snapshot's %d", ErrInvalidRequest, i, e.Index, r.Snapshot.Index)
		}
	}
	return nil
}

// DecodeAppend reads exactly one AppendRequest from r, strictly: unknown fields, trailing
// data, a body above limit bytes (ErrTooLarge) and protocol violations (ErrInvalidRequest)
// are errors. A limit <= 0 means DefaultMaxAppendBytes.
func DecodeAppend(r io.Reader, limit int64) (AppendRequest, error) {
	if limit <= 0 {
		limit = DefaultMaxAppendBytes
	}
	var req AppendRequest
	if err := decodeStrict(r, limit, &req); err != nil {
		return AppendRequest{}, err
	}
	if err := req.Validate(); err != nil {
		return AppendRequest{}, err
	}
	return req, nil
}

// DecodeSnapshot is DecodeAppend for SnapshotRequest; a limit <= 0 means
// DefaultMaxSnapshotBytes.
func DecodeSnapshot(r io.Reader, limit int64) (SnapshotRequest, error) {
	if limit <= 0 {
		limit = DefaultMaxSnapshotBytes
	}
	var req SnapshotRequest
	if err := decodeStrict(r, limit, &req); err != nil {
		return SnapshotRequest{}, err
	}
	if err := req.Validate(); err != nil {
		return SnapshotRequest{}, err
	}
	return req, nil
}

func decodeStrict(r io.Reader, limit int64, v any) error {
	lr := &io.LimitedReader{R: r, N: limit + 1}
	dec := json.NewDecoder(lr)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		// Read on to EOF: whitespace is fine, anything else is trailing data.
		if _, terr := dec.Token(); terr != io.EOF {
			err = errors.New("trailing data after the JSON object")
		}
	}
	var mbe *http.MaxBytesError
	if lr.N <= 0 || errors.As(err, &mbe) {
		return fmt.Errorf("%w: more than %d bytes", ErrTooLarge, limit)
	}
	if err != nil {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return nil
}

// ErrorStatus maps an error of Follower or the decoders to the HTTP status and body the
// internal routes answer with; unknown errors give 500.
func ErrorStatus(err error) (int, ErrorResponse) {
	body := ErrorResponse{Error: ErrorDetail{Message: err.Error()}}
	var stale *StaleEpochError
	var mismatch *LogMismatchError
	switch {
	case errors.As(err, &stale):
		body.Error.Code, body.Epoch = CodeStaleEpoch, stale.Epoch
		return http.StatusPreconditionFailed, body
	case errors.As(err, &mismatch):
		body.Error.Code, body.LastIndex, body.LastEpoch = CodeLogMismatch, mismatch.LastIndex, mismatch.LastEpoch
		return http.StatusConflict, body
	case errors.Is(err, ErrNotLeader):
		body.Error.Code = CodeNotLeader
		return http.StatusForbidden, body
	case errors.Is(err, ErrNewIncarnation):
		body.Error.Code = CodeNewIncarnation
		return http.StatusConflict, body
	case errors.Is(err, ErrTooLarge):
		body.Error.Code = CodeTooLarge
		return http.StatusRequestEntityTooLarge, body
	case errors.Is(err, ErrMalformed), errors.Is(err, ErrInvalidRequest):
		body.Error.Code = CodeBadRequest
		return http.StatusBadRequest, body
	}
	body.Error.Code = CodeInternal
	return http.StatusInternalServerError, body
}
