package server

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"
)

// Sentinel errors; match them with errors.Is.
var (
	// ErrInvalidConfig is wrapped by New and Config.Validate for a config they refuse.
	ErrInvalidConfig = errors.New("server: invalid config")
	// ErrNotLeader reports a write that reached a server which does not lead (any more).
	ErrNotLeader = errors.New("server: not leader")
	// ErrNoLeader reports a write or leader read while no leader is known.
	ErrNoLeader = errors.New("server: no leader known")
	// ErrNotReplicated reports a write the leader logged but could not get acknowledged
	// under the ack mode within the write timeout: it may still commit, or not.
	ErrNotReplicated = errors.New("server: write not replicated")
	// ErrOutcomeUnknown reports a write that may or may not have applied (504): logged by a
	// leader that was then deposed, or forwarded to a leader whose answer was lost.
	ErrOutcomeUnknown = errors.New("server: write outcome unknown")
	// ErrFenced reports a leader deposed by a newer epoch: the write is not acknowledged.
	ErrFenced = errors.New("server: leader fenced by a newer epoch")
	// ErrShuttingDown reports a write refused because the server is draining.
	ErrShuttingDown = errors.New("server: shutting down")
	// ErrTooStale reports a local read refused by ?max_staleness: this copy may be older.
	ErrTooStale = errors.New("server: this copy may be staler than asked")
	// ErrLeaderUnreachable reports a forwarded request that did not get an answer.
	ErrLeaderUnreachable = errors.New("server: leader unreachable")
	// ErrStarted is returned by Start or Run called twice.
	ErrStarted = errors.New("server: already started")
)

// Error codes of the public error body {"error":{"code","message"}}.
const (
	CodeBadRequest        = "bad_request"
	CodeInvalidJSON       = "invalid_json"
	CodeInvalidUTF8       = "invalid_utf8"
	CodeMissingKey        = "missing_key"
	CodeMissingValue      = "missing_value"
	CodeKeyTooLong        = "key_too_long"
	CodeValueTooLarge     = "value_too_large"
	CodeBodyTooLarge      = "body_too_large"
	CodeUnsupportedMedia  = "unsupported_media_type"
	CodeMethodNotAllowed  = "method_not_allowed"
	CodeNotFound          = "not_found"
	CodeUnauthorized      = "unauthorized"
	CodeNoLeader          = "no_leader"
	CodeNotLeader         = "not_leader"
	CodeNotReplicated     = "not_replicated"
	CodeLeaderUnreachable = "leader_unreachable"
	CodeShuttingDown      = "shutting_down"
	CodeTooStale          = "too_stale"
	// CodePreconditionFailed (412): If-Match or If-None-Match did not hold; nothing changed.
	CodePreconditionFailed = "precondition_failed"
	// CodeOutcomeUnknown (504): the write may have applied; see docs/api.md.
	CodeOutcomeUnknown = "outcome_unknown"
	// CodeQuotaExceeded (413): the write would grow the store past -quota_bytes.
	CodeQuotaExceeded = "quota_exceeded"
	CodeInternal      = "internal"
	// CodeUnknownEpoch: an internal request names an epoch this server has not seen in
	// ZooKeeper (nor its fence): it raises no fence on someone's word alone.
	CodeUnknownEpoch = "unknown_epoch"
)

// retryAfterSeconds is what a 503 asks a client to wait: about one election.
const retryAfterSeconds = 1

// ErrorBody is the JSON of every public error answer.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is the "error" member of ErrorBody.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// Version (precondition_failed): the key's current version, 0 when it does not exist.
	Version *uint64 `json:"version,omitempty"`
	// Index and Epoch (504: not_replicated, outcome_unknown): the position the leader
	// logged the write at, when known.
	Index uint64 `json:"index,omitempty"`
	Epoch int64  `json:"epoch,omitempty"`
	// Used and Quota (quota_exceeded): the bytes the store would hold, and its quota.
	Used  int64 `json:"used,omitempty"`
	Quota int64 `json:"quota,omitempty"`
}

// apiError is an error with the status and code it is answered with.
type apiError struct {
	status int
	code   string
	msg    string
	err    error // wrapped sentinel, may be nil
	// Optional details for the body (ErrorDetail) and headers of the answer.
	version     *uint64
	index       uint64
	epoch       int64
	used, quota int64
	header      map[string]string
}

func (e *apiError) Error() string {
	if e.err != nil {
		return fmt.Sprintf("%s: %s", e.err, e.msg)
	}
	return e.msg
}

func (e *apiError) Unwrap() error { return e.err }

func newAPIError(status int, code, format string, args ...any) *apiError {
	return &apiError{status: status, code: code, msg: fmt.Sprintf(format, args...)}
}

func badRequest(code, format string, args ...any) *apiError {
	return newAPIError(http.StatusBadRequest, code, format, args...)
}

// unavailable is a 503 with Retry-After wrapping a sentinel.
func unavailable(code string, sentinel error, format string, args ...any) *apiError {
	e := newAPIError(http.StatusServiceUnavailable, code, format, args...)
	e.err = sentinel
	return e
}

// maybeApplied is a 504: a write that may have applied, logged at (index, epoch) when
// index is not 0. No Retry-After: retrying it blindly may apply it twice.
func maybeApplied(code string, sentinel error, index uint64, epoch int64, format string, args ...any) *apiError {
	e := newAPIError(http.StatusGatewayTimeout, code, format, args...)
	e.err = sentinel
	e.index, e.epoch = index, epoch
	if index != 0 {
		e.header = map[string]string{
			HeaderWriteIndex: strconv.FormatUint(index, 10),
			HeaderWriteEpoch: strconv.FormatInt(epoch, 10),
		}
	}
	return e
}

// writeError answers err as JSON: an *apiError as itself, an *echo.HTTPError with its
// status, anything else as 500.
func writeError(c echo.Context, err error) error {
	var ae *apiError
	if !errors.As(err, &ae) {
		var he *echo.HTTPError
		if errors.As(err, &he) {
			ae = fromHTTPError(he)
		} else {
			ae = newAPIError(http.StatusInternalServerError, CodeInternal, "internal error")
		}
	}
	if ae.status == http.StatusServiceUnavailable {
		c.Response().Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds))
	}
	for k, v := range ae.header {
		c.Response().Header().Set(k, v)
	}
	msg := ae.msg
	if msg == "" {
		msg = http.StatusText(ae.status)
	}
	return c.JSON(ae.status, ErrorBody{Error: ErrorDetail{Code: ae.code, Message: msg, Version: ae.version,
		Index: ae.index, Epoch: ae.epoch, Used: ae.used, Quota: ae.quota}})
}

func fromHTTPError(he *echo.HTTPError) *apiError {
	msg := http.StatusText(he.Code)
	if s, ok := he.Message.(string); ok && s != "" {
		msg = s
	}
	code := CodeBadRequest
	switch he.Code {
	case http.StatusNotFound:
		code = CodeNotFound
	case http.StatusMethodNotAllowed:
		code = CodeMethodNotAllowed
	case http.StatusRequestEntityTooLarge:
		code = CodeBodyTooLarge
	case http.StatusUnsupportedMediaType:
		code = CodeUnsupportedMedia
	case http.StatusUnauthorized:
		code = CodeUnauthorized
	case http.StatusServiceUnavailable:
		code = CodeNoLeader
	}
	if he.Code >= 500 && he.Code != http.StatusServiceUnavailable {
		code, msg = CodeInternal, "internal error"
	}
	return &apiError{status: he.Code, code: code, msg: msg}
}
