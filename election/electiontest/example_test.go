package electiontest_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/zkv-dev/zkv/election"
	"github.com/zkv-dev/zkv/election/electiontest"
)

// Cut the leader off ZooKeeper and check the election's guarantees all along:
// the follower takes over once the leader's session has expired, never while
// the old leader may still act, and the old leader queues again when it
// comes back.
func Example() {
	zk := electiontest.NewServer(electiontest.Options{SessionTimeout: 200 * time.Millisecond})
	chk := electiontest.NewChecker()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var (
		conns []*electiontest.Conn
		cands []*election.Candidate
	)
	for _, id := range []string{"a", "b"} {
		conn := zk.Connect()
		defer conn.Close()
		cand, err := election.New(election.Config{Conn: conn, Events: conn.Events(), Root: "/jobs", ID: id})
		if err != nil {
			log.Fatal(err)
		}
		defer cand.Close()
		if err := cand.Join(ctx); err != nil {
			log.Fatal(err)
		}
		chk.Add(id, cand)
		conns, cands = append(conns, conn), append(cands, cand)
	}
	a, b := cands[0], cands[1]
	chk.Start(time.Millisecond)
	if _, err := a.Campaign(ctx); err != nil {
		log.Fatal(err)
	}

	conns[0].Partition() // a is cut off; its session expires 200ms later
	if _, err := b.Campaign(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Println("b leads:", b.IsLeader(), "and a:", a.IsLeader())

	conns[0].Heal() // a learns its session expired and queues again, behind b
	for v := range a.Observe(ctx) {
		if v.Leader.ID == "b" && v.Self.Node != "" {
			break
		}
	}
	fmt.Println("a follows b")
	fmt.Println("violations:", chk.Stop())
	// Output:
	// b leads: true and a: false
	// a follows b
	// violations: <nil>
}
