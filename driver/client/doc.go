// Package client is a typed client of one zkv server's REST API (see docs/api.md).
//
// A Client talks to a single server. Reads (Get, Read) are answered from that server's own copy
// and may be stale; Get with the Leader option asks the server to forward the read to the
// leader. Writes (Put, Delete, Update) may be sent to any server: a follower forwards them to
// the leader and the client sees one answer.
//
// Keys are non-empty and may contain '/': each path segment is escaped on its own, so
// "users/alice smith" travels as /v1/kv/users/alice%20smith and a segment "." or ".." is sent
// percent-encoded instead of being collapsed by a path cleaner.
//
// Every answer other than a 2xx becomes an *APIError (use errors.As), which carries the HTTP
// status, the server's error code and message, and the Retry-After delay of a 503. Transport
// failures are returned wrapped, with the method and URL in the message.
//
// Clients are safe for concurrent use. Close releases idle connections of the client's own
// transport; it is idempotent and the client stays usable afterwards.
package client
