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
	// ErrNotReplicated reports a write the leader applied but could not get acknowledged
	// under the ack mode within the write timeout.
	ErrNotReplicated = errors.New("server: write not replicated")
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
	CodeInternal          = "internal"
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
}

// apiError is an error with the status and code it is answered with.
type apiError struct {
	status int
	code   string
	msg    string
	err    error // wrapped sentinel, may be nil
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
	msg := ae.msg
	if msg == "" {
		msg = http.StatusText(ae.status)
	}
	return c.JSON(ae.status, ErrorBody{Error: ErrorDetail{Code: ae.code, Message: msg}})
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
