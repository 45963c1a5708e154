package kvstore_test

import (
	"fmt"

	"github.com/zkv-dev/zkv/kvstore"
)

func Example() {
	leader, _ := kvstore.New(kvstore.Config{})
	replica, _ := kvstore.New(kvstore.Config{Shards: 8})

	// The leader assigns indexes and versions; the replica replays its entries.
	e1 := leader.Put("greeting", "hello", 1)
	e2 := leader.Put("greeting", "hello, world", 1)
	e3, _ := leader.Delete("greeting", 1)
	e4 := leader.Put("greeting", "back", 1)
	if err := replica.Apply(e1, e2, e3, e4); err != nil {
		fmt.Println(err)
	}

	e, ok := replica.Get("greeting")
	fmt.Println(e.Value, e.Version, e.Index, ok)
	fmt.Println(replica.Hash() == leader.Hash())
	// Output:
	// back 4 4 true
	// true
}

func ExampleStore_Snapshot() {
	s, _ := kvstore.New(kvstore.Config{})
	s.Put("a", "1", 3)
	s.Put("b", "2", 3)
	s.Delete("a", 3)

	copyOf, _ := kvstore.New(kvstore.Config{})
	copyOf.Restore(s.Snapshot())
	idx, epoch := copyOf.Last()
	st := copyOf.Stats()
	fmt.Println(idx, epoch, st.Keys, st.Tombstones)
	// Output: 3 3 1 1
}

func ExampleStore_Apply() {
	s, _ := kvstore.New(kvstore.Config{})
	_ = s.Apply(kvstore.Entry{Key: "k", Value: "v", Version: 1, Index: 10, Epoch: 2})
	err := s.Apply(kvstore.Entry{Key: "k", Value: "old", Version: 1, Index: 9, Epoch: 2})
	fmt.Println(err)
	// Output: kvstore: entry out of order: index 9 does not exceed 10
}

func ExampleStore_List() {
	s, _ := kvstore.New(kvstore.Config{})
	for _, k := range []string{"app/b", "app/a", "other", "app/c"} {
		s.Put(k, "v", 1)
	}
	s.Delete("app/c", 1)
	page := s.List(kvstore.ListOptions{Prefix: "app/", Limit: 1})
	fmt.Println(page.Entries[0].Key, page.More, page.Index)
	page = s.List(kvstore.ListOptions{Prefix: "app/", After: page.Entries[0].Key, Limit: 1})
	fmt.Println(page.Entries[0].Key, page.More)
	// Output:
	// app/a true 5
	// app/b false
}

func ExampleStore_WatchKey() {
	s, _ := kvstore.New(kvstore.Config{})
	changed, release := s.WatchKey("k") // take the channel before reading
	defer release()
	go s.Put("k", "v", 1)
	<-changed
	e, _ := s.Get("k")
	fmt.Println(e.Value, e.Index)
	// Output: v 1
}
