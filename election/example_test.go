package election_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/zkv-dev/zkv/election"
	"github.com/zkv-dev/zkv/election/electiontest"
)

// A server joins the election and reacts to every change of leadership.
// It needs a live ZooKeeper, so it has no output to check.
func Example() {
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	sess, err := election.Dial([]string{"127.0.0.1:2181"}, 4*time.Second,
		election.WithLogger(logger), election.WithoutEvents())
	if err != nil {
		log.Fatal(err)
	}
	defer sess.Close()

	cand, err := election.New(election.Config{
		Session: sess,
		Root:    "/myservice", // the election's znodes: /myservice/election/server<seq>
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
// with the leadership, so work tied to it stops by itself. (electiontest's
// in-memory ZooKeeper stands in for a real one.)
func ExampleCandidate_Campaign() {
	zk := electiontest.NewServer(electiontest.Options{})
	conn := zk.Connect()
	defer conn.Close()
	cand, err := election.New(election.Config{Conn: conn, Events: conn.Events(), Root: "/", ID: "worker-1"})
	if err != nil {
		log.Fatal(err)
	}
	defer cand.Close()

	ctx := context.Background()
	if _, err := cand.Campaign(ctx); err != nil {
		log.Fatal(err)
	}
	leadCtx, ok := cand.Leading()
	fmt.Println("leading:", ok)
	if err := cand.Resign(ctx); err != nil { // as an outage or a shutdown would
		log.Fatal(err)
	}
	<-leadCtx.Done() // leader work stops here
	fmt.Println("stepped down:", !cand.IsLeader())
	// Output:
	// leading: true
	// stepped down: true
}

// Campaign says which leadership was won: its epoch fences a deposed
// leader's writes, and its context ends with it.
func ExampleCandidate_Campaign_term() {
	zk := electiontest.NewServer(electiontest.Options{})
	conn := zk.Connect()
	defer conn.Close()
	cand, err := election.New(election.Config{Conn: conn, Events: conn.Events(), Root: "/", ID: "worker-1"})
	if err != nil {
		log.Fatal(err)
	}
	defer cand.Close()

	term, err := cand.Campaign(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("leading as", term.Node, "in epoch", term.Epoch)
	fmt.Println("the term's writes pass the fence:", cand.CheckLeader(term.Epoch) == nil)
	// Output:
	// leading as /election/server0000000000 in epoch 2
	// the term's writes pass the fence: true
}

// Workers that all use Run take turns: each holds the leadership while its
// function runs, then queues again behind the others.
func ExampleCandidate_Run() {
	zk := electiontest.NewServer(electiontest.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var (
		mu    sync.Mutex
		turns int
		wg    sync.WaitGroup
	)
	for _, id := range []string{"a", "b"} {
		conn := zk.Connect()
		defer conn.Close()
		cand, err := election.New(election.Config{Conn: conn, Events: conn.Events(), Root: "/", ID: id})
		if err != nil {
			log.Fatal(err)
		}
		defer cand.Close()
		if err := cand.Join(ctx); err != nil { // a queues first, then b
			log.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := cand.Run(ctx, func(ctx context.Context, t election.Term) error {
				// Run promises no order between this worker's requeue and the
				// other's: hold the term until the other has queued again.
				for len(zk.Children("/election")) < 2 {
					time.Sleep(time.Millisecond)
				}
				mu.Lock()
				defer mu.Unlock()
				turns++
				fmt.Printf("term %d: %s leads\n", turns, id)
				if turns == 4 {
					cancel()
				}
				return nil // done: let the next one lead
			})
			if !errors.Is(err, context.Canceled) {
				log.Fatal(err)
			}
		}()
	}
	wg.Wait()
	// Output:
	// term 1: a leads
	// term 2: b leads
	// term 3: a leads
	// term 4: b leads
}

// Resign hands the leadership to the next in line at once.
func ExampleCandidate_Resign() {
	zk := electiontest.NewServer(electiontest.Options{})
	ctx := context.Background()
	var cands []*election.Candidate
	for _, id := range []string{"a", "b"} {
		conn := zk.Connect()
		defer conn.Close()
		cand, err := election.New(election.Config{Conn: conn, Events: conn.Events(), Root: "/", ID: id})
		if err != nil {
			log.Fatal(err)
		}
		defer cand.Close()
		if err := cand.Join(ctx); err != nil {
			log.Fatal(err)
		}
		cands = append(cands, cand)
	}
	a, b := cands[0], cands[1]
	if _, err := a.Campaign(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Println("a leads:", a.IsLeader())

	if err := a.Resign(ctx); err != nil {
		log.Fatal(err)
	}
	if _, err := b.Campaign(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Println("after a resigns, b leads:", b.IsLeader(), "and a:", a.IsLeader())
	// Output:
	// a leads: true
	// after a resigns, b leads: true and a: false
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
		Session: sess, Root: "/myservice", ID: "server-1",
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

// Hooks feed metrics: a gauge of leading, a count of elections, a histogram of
// the wait for leadership, a count of retried errors by step.
func ExampleHooks() {
	zk := electiontest.NewServer(electiontest.Options{})
	conn := zk.Connect()
	defer conn.Close()
	cand, err := election.New(election.Config{
		Conn: conn, Events: conn.Events(), Root: "/", ID: "worker-1",
		Hooks: election.Hooks{
			Leadership: func(leading bool, epoch int64) { fmt.Println("leading:", leading, "epoch:", epoch) },
			Elected:    func(wait time.Duration) { fmt.Println("waited less than a minute:", wait < time.Minute) },
			Error:      func(step string, err error) { fmt.Println("retrying", step, err) },
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer cand.Close()

	ctx := context.Background()
	if _, err := cand.Campaign(ctx); err != nil {
		log.Fatal(err)
	}
	if err := cand.Resign(ctx); err != nil {
		log.Fatal(err)
	}
	// Output:
	// leading: true epoch: 2
	// waited less than a minute: true
	// leading: false epoch: 2
}

// An Observer follows the leader without taking part, as a router would.
func ExampleObserver() {
	zk := electiontest.NewServer(electiontest.Options{})
	candConn, obsConn := zk.Connect(), zk.Connect()
	defer candConn.Close()
	defer obsConn.Close()
	cand, err := election.New(election.Config{Conn: candConn, Events: candConn.Events(), Root: "/", ID: "worker-1", Address: "10.0.0.1:5000"})
	if err != nil {
		log.Fatal(err)
	}
	defer cand.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := cand.Campaign(ctx); err != nil {
		log.Fatal(err)
	}

	obs, err := election.NewObserver(election.ObserverConfig{Conn: obsConn, Events: obsConn.Events(), Root: "/"})
	if err != nil {
		log.Fatal(err)
	}
	defer obs.Close()
	for v := range obs.Observe(ctx) {
		if v.Leader.ID != "" {
			fmt.Println("leader:", v.Leader.ID, "at", v.Leader.Address, "epoch:", v.Epoch)
			break
		}
	}
	// Output:
	// leader: worker-1 at 10.0.0.1:5000 epoch: 2
}
