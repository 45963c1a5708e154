// Package scenarios runs the assignment's three scenarios against a zkv cluster and reports
// each expectation as a check that passed, failed or was skipped:
//
//  1. Add and read: the servers elect a leader (its address, znode and epoch are shown); a
//     write sent through each server is answered by the leader; every server then reads every
//     value.
//  2. Leader election: the leader is killed (SIGKILL, or SIGTERM when Graceful); the survivors
//     agree on a new leader (timed from the signal), writes are acknowledged again (timed too),
//     later writes are answered by the new leader, and every survivor reads every value.
//  3. Stale read: the killed ex-leader is restarted; it rejoins as a follower, reads the keys
//     written before as empty (found=false, value ""), and after one key is updated through
//     another server it reads the updated value.
//
// Run prints a transcript a person can follow (ANSI colour only when Config.Color) and a summary
// table, and returns a Report; Report.OK is what the driver's exit code follows. With
// Config.Cluster the scenarios control the servers; with Config.Addrs (servers someone else
// started) scenario 1 runs and the kill and restart checks are skipped, with a note saying so.
package scenarios
