// Package election elects one leader among N candidates with Apache
// ZooKeeper: the Go counterpart of Apache Curator's LeaderLatch, built on
// github.com/zkv-dev/zkv/zk (go-zookeeper v1.0.4 with its reconnect data race
// fixed; the package is still named zk).
//
// # Recipe
//
// Each candidate registers an EPHEMERAL_SEQUENTIAL znode
// <Root>/election/server<10-digit sequence> whose data is the JSON
// {"id","address","guid","meta"}. The oldest sequence leads. Sequences
// are compared as serial numbers (RFC 1982), never as strings, since
// ZooKeeper's signed 32-bit counter wraps, and wraps again:
// "server-2147483648" comes after "server2147483647", and "server0000000000"
// after "server-000000001".
//
// A follower watches the node just before its own (its predecessor) so a
// departure in the middle of the line wakes only the next candidate (no herd
// effect). A follower further down the line also watches the leader's node,
// so it learns of a new leader at once without polling: an idle election
// costs ZooKeeper nothing, and a leader's departure wakes each follower
// once. That is one watch per candidate next to the leader and two further
// down. The leader watches its own node, so it steps down at once if an
// operator deletes it, and the election's children, for View.Members. After
// every watch event, EventNotWatching and reconnect the candidate lists the
// children again; Candidate.Refresh does so on demand.
//
// Safety follows Curator:
//   - creation is protected: a GUID in the data finds a node whose create
//     reply was lost, and any other node carrying our GUID is deleted; so is
//     that node when the candidate has left meanwhile (Resign, Close);
//   - before claiming leadership the node's ephemeralOwner must equal the
//     current session ID, otherwise the node is replaced;
//   - on Disconnected the leader steps down at once (IsLeader is false and
//     the Leading context is cancelled); when the same session returns the
//     candidate re-checks and may lead again;
//   - on expiry, or a new session ID on the same connection (go-zookeeper
//     opens a new session after expiry), the node is gone: the candidate
//     registers again with a new node;
//   - beyond Curator, a local lease: IsLeader turns false once the session
//     timeout less a fifth has passed since the start of the last ZooKeeper
//     round trip that worked (the leader makes one every third of it), so a
//     leader that hears nothing, not even Disconnected, stops before its
//     session can expire and another candidate lead.
//
// Epoch is the leader node's czxid, which grows from one leader to the
// next, so it can fence a deposed leader's writes. Campaign returns the
// Term won (its context, epoch and node); Run holds the leadership while a
// function runs and then queues again, like Curator's LeaderSelector.
//
// # Sessions
//
// go-zookeeper's event channel has a buffer of 6 and drops what does not
// fit. Dial returns a Session that fans each event out, through an
// unbounded queue per subscriber, to every candidate and observer built on
// it (Config.Session), and routes go-zookeeper's log lines to log/slog.
// One Session serves several elections, each under its own Root; Root is
// required, so two services never meet in one election by default.
// Liveness does not rest on events: they only hasten what the candidate
// does anyway (it polls the session state while it has none), so the lossy
// or shared Config.Events of a Conn given apart delays it, never stalls it.
//
// # Use
//
//	sess, err := election.Dial([]string{"127.0.0.1:2181"}, 4*time.Second, election.WithoutEvents())
//	if err != nil { ... }
//	defer sess.Close()
//	cand, err := election.New(election.Config{
//		Session: sess, Root: "/myservice", ID: "server-1", Address: "127.0.0.1:5000",
//	})
//	if err != nil { ... }
//	defer cand.Close() // runs first: deletes the node, then the session closes
//	if err := cand.Join(ctx); err != nil { ... }
//	for v := range cand.Observe(ctx) {
//		log.Printf("leader %s epoch %d, me leading: %v", v.Leader.ID, v.Epoch, v.IsLeader)
//	}
//
// # Testing
//
// Package electiontest is an in-memory ZooKeeper whose sessions satisfy Conn
// and inject faults (lost replies, expiry, partitions, pauses, lost events),
// with a Checker for the guarantees above: test your own use of the
// election without a ZooKeeper.
package election
