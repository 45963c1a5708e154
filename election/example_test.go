package election_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"os"
	"time"

	"github.com/zkv-dev/zkv/election"
)

// A server joins the election and reacts to every change of leadership.
// It needs a live ZooKeeper, so it has no output to check.
func Example() {
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	sess, err := election.Dial([]string{"127.0.0.1:2181"}, 4*time.Second, election.WithLogger(logger))
	if err != nil {
		log.Fatal(err)
	}
	defer sess.Close()

	cand, err := election.New(election.Config{
		Conn:    sess.Conn,
		Events:  sess.Events,
		ID:      "server-1",
		Address: "127.0.0.1:5000",
		Logger:  logger,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer cand.Close()

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := cand.Join(ctx); err != nil {
		log.Fatal(err)
	}
	for v := range cand.Observe(ctx) {
		fmt.Printf("leader=%s epoch=%d leading=%v connected=%v\n", v.Leader.ID, v.Epoch, v.IsLeader, v.Connected)
	}
}

// Campaign blocks until this candidate leads; Leading's context then ends
// with the leadership, so work tied to it stops by itself.
func ExampleCandidate_Campaign() {
	sess, err := election.Dial([]string{"127.0.0.1:2181"}, 4*time.Second)
	if err != nil {
		log.Fatal(err)
	}
	defer sess.Close()
	cand, err := election.New(election.Config{Conn: sess.Conn, Events: sess.Events, ID: "worker-1"})
	if err != nil {
		log.Fatal(err)
	}
	defer cand.Close()

	if err := cand.Campaign(context.Background()); err != nil {
		log.Fatal(err)
	}
	leadCtx, ok := cand.Leading()
	if !ok {
		return // lost it already
	}
	<-leadCtx.Done() // do leader work until here
	fmt.Println("stepped down")
}

// With a shared secret, the session authenticates with the digest scheme
// and every election znode is readable and writable by that identity only.
func ExampleWithDigestAuth() {
	sess, err := election.Dial([]string{"127.0.0.1:2181"}, 4*time.Second,
		election.WithDigestAuth("zkv", "s3cret"))
	if err != nil {
		log.Fatal(err)
	}
	defer sess.Close()
	cand, err := election.New(election.Config{
		Conn: sess.Conn, Events: sess.Events, ID: "server-1",
		ACL: election.DigestACL("zkv", "s3cret"),
	})
	if err != nil {
		log.Fatal(err)
	}
	defer cand.Close()
}

func ExampleDigestACL() {
	acl := election.DigestACL("zkv", "s3cret")
	fmt.Println(acl[0].Scheme, acl[0].ID)
	// Output: digest zkv:jf4kBA8jSsxmJnBiKdIJgenK8ec=
}
