// Package electiontest helps test code built on package election without a
// ZooKeeper: Server is an in-memory ZooKeeper whose sessions (Conn) satisfy
// election.Conn and inflict the faults a real ensemble does, and Checker
// watches candidates for the election's guarantees: never two leaders at
// once, and each new leadership in a higher epoch than every earlier one.
//
// # Faults
//
// Each Conn is one client session. Its fault methods act at once:
//
//   - LoseNextReply: the next create or delete takes effect on the server,
//     but the reply is lost with the connection (the call fails with
//     zk.ErrConnectionClosed and the Conn is partitioned).
//   - Partition and Heal: the connection drops (calls fail, a Disconnected
//     event is sent); the server expires the session a session timeout
//     later unless Heal reconnects first. After expiry Heal reports it and
//     opens a new session on the same Conn, as go-zookeeper does.
//   - Expire: the server expires the session now; the Conn gets a new one.
//   - Pause and Resume: the client hears nothing (its calls hang, no event
//     arrives) while its State still reports the session, as for a paused
//     process or a link gone silent before the client's receive timeout; the
//     server expires the session a session timeout later unless Resume comes
//     first.
//   - DropEvents: session events are lost from now on, as on zk.Connect's own
//     6-slot channel when nobody drains it.
//
// Events sent while the Events channel's buffer (256) is full are dropped,
// as go-zookeeper drops them.
//
// # Checking
//
// Add each candidate to a Checker, Start it, inject faults, and Stop it: it
// returns the first violation it saw. Checker samples the candidates' views
// (View().IsLeader and Epoch) every interval; two leaders in one sample, or a
// leadership whose epoch is not above every earlier one, is a violation. An
// operator deleting the leader's znode by hand (Server.Delete) makes a short,
// real overlap that the Checker reports: the old leader learns of it only
// through its watch.
package electiontest
