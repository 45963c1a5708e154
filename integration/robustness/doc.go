// Package robustness checks that zkv keeps working and loses nothing it acknowledged while faults
// are injected, in the manner of etcd's tests/robustness: several clients send traffic to a real
// cluster (bin/server processes on a real three-node ZooKeeper ensemble, every link on 127.0.0.1
// and most of them through an in-process toxiproxy), one fault is injected at a time, every
// operation is recorded in a History, and invariants are checked over it afterwards:
//
//   - the leader path (writes and ?consistency=leader reads) is linearizable per key
//     (porcupine; a write whose outcome is unknown may or may not have taken effect);
//   - no acknowledged write is lost: after quiescence each key's final value on the leader is
//     one that could come last in the history;
//   - every local (possibly stale) read returns a value that was really written at that key;
//   - a value is applied once: one version per value and one value per (key, version);
//   - versions never go backwards on a server: per key, a server process never answers a version
//     below one it answered before (a restarted process may start empty, never older);
//   - no write is acknowledged under an old epoch once a newer leader has acknowledged one, and
//     the time during which two leaders both acknowledged writes is zero;
//   - after healing, every live server holds the same content.
//
// Every checker has a unit test that feeds it a synthetic history with the bug it looks for.
// The end-to-end tests need $ZKV_SERVER_BIN (make build) and a ZooKeeper the launcher can start;
// they skip when either is missing. When $ZKV_ROBUSTNESS_REPORT names a file, TestMain writes the
// run's figures there as Markdown (docs/robustness.md is generated that way).
package robustness
