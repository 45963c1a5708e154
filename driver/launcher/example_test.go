package launcher_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/zkv-dev/zkv/driver/launcher"
)

// Start a three-node ensemble wherever one can run, crash a node and bring it back.
func ExampleStart() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	zk, err := launcher.Start(ctx, launcher.Options{Nodes: 3, TickTime: 300 * time.Millisecond, LogDir: "logs"})
	if err != nil {
		log.Fatal(err) // errors.Is(err, launcher.ErrNoZooKeeper): the message says what to install
	}
	defer func() { _ = zk.Close() }()
	fmt.Println(zk.Mode(), zk.Servers()) // e.g. docker [127.0.0.1:41227 127.0.0.1:35311 127.0.0.1:44089]

	if err := zk.Kill(ctx, 0); err != nil {
		log.Fatal(err)
	}
	if err := zk.Restart(ctx, 0); err != nil {
		log.Fatal(err)
	}
	kids, err := zk.Children(ctx, "/election")
	fmt.Println(kids, err)
}

// Options are checked before anything starts.
func ExampleOptions() {
	_, err := launcher.Start(context.Background(), launcher.Options{Nodes: 2})
	fmt.Println(errors.Is(err, launcher.ErrInvalidOptions))
	fmt.Println(err)
	// Output:
	// true
	// launcher: invalid options: Nodes 2 (want 1 or 3; an odd count up to 7)
}
