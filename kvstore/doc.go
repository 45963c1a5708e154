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
// scale over cores: keys are spread over power-of-two shards by FNV-1a hash, each with its
// own sync.RWMutex, so a read only contends with a write to the same shard.
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
// delete gives its key's bytes back; each still holds its key and a few words, which no
// figure here bounds (there is no compaction of tombstones yet).
//
// # Listings
//
// Beside the shards, the store keeps every key's entry in a B-tree ordered by key, so
// [Store.List] answers a page of the keys under a prefix, after a cursor, at the cost of the
// page rather than of the store, in one consistent state (writers update the tree and the
// position under one lock). It costs about 95 bytes per key on top of the maps
// (BenchmarkIndexMemory) and a tree insert per write.
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
