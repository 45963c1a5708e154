// Package server is zkv's REST server: it composes the leader election (package
// election), the store (package kvstore) and replication (package replication) behind the
// HTTP API of docs/api.md, served with echo.
//
// # Roles
//
// The election's View drives the role. A leader creates a replication.Fanout for its epoch
// and points it at every other member (on each view change and every
// Config.MemberRefresh); a follower applies the leader's appends through a
// replication.Follower; a server without a ZooKeeper session is a candidate. The view's
// epoch raises the Follower's fence, so a deposed leader's appends are refused (412), and
// an append from a sender the view does not name as leader is refused too (403). A leader
// whose fan-out is deposed by a replica that has seen a newer epoch steps down: it
// resigns, joins again, and the write that found out answers 504 outcome_unknown, never
// 200 (it was logged, and a successor may still adopt it).
//
// # Writes
//
// The leader's write path takes the write lock, checks it still leads in the same epoch,
// applies the write to the store, appends it to the in-memory log, enqueues it to the
// fan-out, releases the lock and waits for acknowledgements under the ack mode (all,
// majority or leader) for at most Config.WriteTimeout: then 200, else 504
// not_replicated (logged: it may still commit). If-Match and If-None-Match are checked,
// and Config.QuotaBytes counted, under the write lock against the key's newest logged
// entry, so two writes conditional on one version cannot both apply. A follower proxies writes (and ?consistency=leader reads) to the leader
// with X-Zkv-Forwarded and relays the answer: the client sees one answer. A forwarded
// request that reaches a server which does not lead gets 503 with Retry-After: one hop, no
// loops. Reads are served from the local store and may be stale.
//
// # Input
//
// Bodies are capped before they are read, must be application/json (415), and are decoded
// strictly: malformed JSON, unknown fields, wrong types and trailing data are 400, invalid
// UTF-8 is 400, an empty key is 400, an oversized key 414 (400 in a body) and an oversized
// value 413. Every error is {"error":{"code","message"}} and changes nothing; a panic is a
// JSON 500, never bad input.
//
// # Dependencies
//
// New takes the parts as small interfaces the package defines (Elector, Store,
// Replicator through a ReplicatorFactory), so the handlers are tested with fakes; Open
// wires the real ones: a ZooKeeper session (election.Dial, digest ACLs when a cluster
// token is set), an election.Candidate and a kvstore.Store.
package server
