package cluster_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/zkv-dev/zkv/driver/cluster"
)

// Start three servers on a running ZooKeeper, kill the leader and wait for its successor.
func ExampleStart() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := cluster.Start(ctx, cluster.Options{
		Binary:    "bin/server", // default $ZKV_SERVER_BIN
		ZooKeeper: []string{"127.0.0.1:2181"},
		LogDir:    "logs",
		Args:      []string{"-session_timeout", "2s"},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer func() { _ = c.Close() }()

	leader, err := c.Leader(ctx)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := leader.Client().Put(ctx, "greeting", "hello"); err != nil {
		log.Fatal(err)
	}
	killed := time.Now()
	if err := leader.Kill(); err != nil { // kill -9: its ZooKeeper session has to expire
		log.Fatal(err)
	}
	next, err := c.Leader(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("new leader", next.Addr(), "after", time.Since(killed))

	if err := leader.Restart(ctx); err != nil { // same address, empty store
		log.Fatal(err)
	}
	kv, _ := leader.Client().Get(ctx, "greeting")
	fmt.Println(kv.Found) // false: a restarted server starts empty
}
