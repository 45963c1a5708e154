// Package kvstore is zkv's in-memory store: a sharded concurrent map from key to Entry
// (value, per-key version, global write index, epoch), with tombstones for deletes,
// consistent snapshots and a content hash used to compare replicas.
//
// # Writers and readers
//
// A zkv cluster has one writer at a time: the leader assigns indexes with [Store.Put] and
// [Store.Delete], and replicas replay the leader's entries with [Store.Apply]. The caller
// serialises these writes (the server holds its own write lock around them); the store still
// takes an internal writer mutex so that concurrent misuse stays memory-safe and race-free,
// but it does not make interleaved writers meaningful.
//
// Reads ([Store.Get], [Store.Len], [Store.Last]) may come from any number of goroutines and
// scale over cores: keys are spread over power-of-two shards by a 64-bit hash (hash/maphash,
// seeded per store, so no one can pick keys that crowd one shard), each with its own
// sync.RWMutex, so a read only contends with a write to the same shard.
//
// # Tombstones
//
// A delete leaves a tombstone carrying the delete's index, epoch and version, so a replica
// can replay it and a later write to the same key continues the key's version count. Get
// reports a tombstoned key as absent; snapshots include tombstones; [Store.Hash] ignores them.
//
// # Size
//
// [Store.Bytes] (and [Stats].Bytes) is the sum of [Size] over the live entries: the lengths
// of their keys and values, the figure a server's quota bounds. Tombstones count zero, so a
// delete gives its key's bytes back; each still holds its key and a record (see Memory),
// which no figure here bounds (there is no compaction of tombstones yet).
//
// # Memory
//
// Each key is one record: one allocation holding a 32-byte header (version, index, epoch,
// the key's and the value's lengths, the tombstone flag) and right after it the key and the
// value (a tombstone: the key alone), which the store copies from the caller on every
// write, so it keeps no caller's buffer alive. Its shard's map and the ordered index hold
// pointers to that one record, the map under the key's 64-bit hash (a 16-byte slot, where
// the key's string header would make it 24; the rare keys whose hash another key holds go
// to a second map, by key). A write puts a new record in the key's place and never changes
// one, so the entries that reads hand out are built from a record without copying (their
// Key and Value point inside it: holding either keeps the whole record) and stay intact
// after later writes. At a million keys of 16 bytes with 100-byte values the store takes
// about 217 bytes of heap per key (BenchmarkMemoryPerKey): 160 for the record (32 + 16 +
// 100 bytes, in the 160-byte size class), about 38 for the maps (Go's maps grow in steps,
// so this varies from about 20 to 40 with the number of keys) and 19 for the ordered index;
// keeping each entry by value in both took 447. A key is at most 2 GiB - 1 bytes long and
// a value 4 GiB - 1: [Store.Apply] rejects a longer one, [Store.Put] and [Store.Restore]
// panic.
//
// # Listings
//
// Beside the shards, the store keeps every key's record in a B-tree ordered by key, so
// [Store.List] answers a page of the keys under a prefix, after a cursor, at the cost of the
// page rather than of the store, in one consistent state (writers update the tree and the
// position under one lock). The tree holds 8-byte pointers, and google/btree splits a full
// node in the middle, so nodes are half to fully used: about 13 bytes per key when keys come
// in random order and 19 when they come in ascending order, which leaves every node but the
// last half full (BenchmarkIndexMemory, BenchmarkMemoryPerKey); and a tree insert per write.
//
// # Watches
//
// [Store.WatchKey] and [Store.WatchPrefix] return a channel that the next write touching
// the key (or a key under the prefix) closes; a delete is such a write, a [Store.Restore]
// closes every channel. A blocking reader takes the channel, reads, and waits only if what
// it read is not newer than what it saw: a write in between has closed the channel already,
// so no write is missed, and nothing polls. Each write under a watched key's entry or
// prefix costs the writer a map lookup and a prefix test per watched prefix.
package kvstore
