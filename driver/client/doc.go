// Package client is a typed client of zkv's REST API (see docs/api.md).
//
// A Client made by New talks to a single server and tries each call once. NewCluster (or
// WithEndpoints and WithRetry) gives it several servers: it rotates to the next on a 503 or
// a connection error, waits as Retry-After asks, and retries only what cannot apply a write
// twice (see Retry): reads; writes the server says applied nothing (503) or that never left
// the client; conditional writes (IfMatch, IfNoneMatch), which the leader checks where it
// orders them. A write that may have applied (a 504, or an answer lost after the request was
// sent) and is not conditional returns an error matching ErrOutcomeUnknown.
//
// Reads (Get, Read) are answered from the server's own copy and may be stale; Get with the Leader option asks the server to forward the read to the
// leader. Writes (Put, Delete, Update) may be sent to any server: a follower forwards them to
// the leader and the client sees one answer.
//
// Keys are non-empty and may contain '/': each path segment is escaped on its own, so
// "users/alice smith" travels as /v1/kv/users/alice%20smith and a segment "." or ".." is sent
// percent-encoded instead of being collapsed by a path cleaner.
//
// Every answer other than a 2xx becomes an *APIError (use errors.As), which carries the HTTP
// status, the server's error code and message, the Retry-After delay of a 503, a 412's
// CurrentVersion and a 504's WriteIndex and WriteEpoch. Transport
// failures are returned wrapped, with the method and URL in the message.
//
// Clients are safe for concurrent use. Close releases idle connections of the client's own
// transport; it is idempotent and the client stays usable afterwards.
package client
