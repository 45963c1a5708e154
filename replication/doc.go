// Package replication moves the leader's writes to zkv's replicas.
//
// The leader side is [Fanout]: after the server applies a write to its store it appends the
// entry to the [Log] and calls [Fanout.Enqueue]; one worker goroutine per replica streams
// the Log to that replica in index order over POST /internal/v1/append (everything pending,
// up to MaxBatch entries, in one request), retrying transport errors and 5xx through
// go-retryablehttp with jittered backoff, and [Fanout.Wait] tells when the write is
// acknowledged under an [AckMode]. A replica that answers 409 log_mismatch is resumed from
// its own last position if the Log still holds it, else sent a snapshot over
// POST /internal/v1/snapshot. A replica that answers 412 stale_epoch has seen a newer
// leader: the Fanout stops, Wait returns [ErrFenced] and [Fanout.Deposed] is closed.
//
// The replica side is [Follower], which the server's handlers call after decoding the body
// with [DecodeAppend] or [DecodeSnapshot] and answer with [ErrorStatus] on error. Its rules:
//
//   - an append or snapshot whose epoch is below the fence is refused (412) and changes
//     nothing; every accepted one raises the fence to its epoch, and so does
//     [Follower.ObserveEpoch] from the election's view;
//   - entries at or below the replica's last index are skipped, so retries and duplicates
//     are harmless and an index is applied once;
//   - the rest apply only if the request's entry at the replica's last index (or its
//     prev_index/prev_epoch) carries the replica's last epoch: the log-matching rule;
//     otherwise the answer is 409 with the replica's last position;
//   - a fresh replica (started empty, nothing applied) takes the first append as its base,
//     whatever the prev position: a restarted server starts empty and sees later writes only.
//
// The server also refuses appends from a sender its election view does not name as leader
// (403 not_leader), through [FollowerConfig].CheckLeader.
//
// Wire: see the types [AppendRequest], [AppendResponse], [SnapshotRequest] and
// [ErrorResponse], and docs/design.md.
package replication
