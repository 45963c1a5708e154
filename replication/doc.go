// Package replication moves the leader's writes to zkv's replicas and decides when they are
// committed.
//
// The leader side is [Fanout]: the server appends a write's entry to the [Log] and calls
// [Fanout.Enqueue]; one worker goroutine per replica streams the Log to that replica in index
// order through a [Transport] (everything pending, up to MaxBatch entries, in one request).
// The Transport is the Fanout's view of the network: [HTTPTransport], the default, POSTs to
// /internal/v1/append and /internal/v1/snapshot, retries transport errors and 5xx through
// go-retryablehttp with jittered backoff, and maps error answers back to the typed errors
// below; [InmemTransport] calls Followers in the same process, with partitions, delays,
// lost requests or answers and reordering on demand, so that the protocol's unit tests run
// without sockets ([Config].Peers picks one).
// An entry commits once the leader and a quorum of every in-sync set ([Fanout.SetInSync],
// [Quorum] of [Config].Mode) hold it, and never below [Config].EpochStart (a new leader's
// first entry: entries it took over commit only with one of its own epoch, Raft's rule).
// Committed entries go to the leader's store through [Config].Apply, in order, and the next
// append tells the replicas the commit index. [Fanout.Wait] returns once a write is committed
// and applied (under AckAll, once every in-sync and every live replica applied it). A replica
// that refuses with a *[LogMismatchError] (409 log_mismatch) is resumed from its own position if
// the Log still holds it, else sent a snapshot; one that refuses with [ErrNewIncarnation] (409
// new_incarnation) restarted and starts again at the leader's last entry; one that refuses with
// a *[StaleEpochError] (412 stale_epoch) has seen a newer leader: the Fanout stops, Wait returns
// [ErrFenced] and [Fanout.Deposed] is closed.
//
// The replica side is [Follower], which the server's handlers call after decoding the body
// with [DecodeAppend] or [DecodeSnapshot] and answer with [ErrorStatus] on error. Its rules:
//
//   - an append or snapshot whose epoch is below the fence is refused (412) and changes
//     nothing; every accepted one raises the fence to its epoch, and so does
//     [Follower.ObserveEpoch] from the election's view;
//   - entries go into the replica's Log if they continue it (log matching on index and
//     epoch); entries it holds already are skipped, so retries are harmless;
//   - the store applies only the entries up to the append's commit index that the append
//     shows to match the leader's log: nothing uncommitted is ever readable;
//   - on a mismatch the replica drops its log's tail beyond the applied index (never
//     committed) and answers 409 with the position it keeps;
//   - a fresh replica (started empty) takes the first append as its base: a restarted server
//     starts empty and sees later writes only; it is partial unless the leader says nothing
//     but no-ops came before.
//
// The server also refuses appends from a sender its election view does not name as leader
// (403 not_leader), through [FollowerConfig].CheckLeader.
//
// Wire: see the types [AppendRequest], [AppendResponse], [SnapshotRequest] and
// [ErrorResponse], and docs/design.md.
package replication
