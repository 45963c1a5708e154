// Command zkv-consumer uses github.com/zkv-dev/zkv/election as a user outside the repository
// does: three candidates, each with a session of its own, elect exactly one leader on the
// ZooKeeper ensemble named by -zookeeper, and every candidate sees the same one. It also checks
// that it was linked with our zk fork and not the upstream module, whose fixes election needs.
// It exits 0 when all holds and prints what it found; integration/consumer_test.go runs it.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log"
	"runtime/debug"
	"strings"
	"time"

	"github.com/zkv-dev/zkv/election"
)

const (
	fork     = "github.com/zkv-dev/zkv/zk"
	upstream = "github.com/go-zookeeper/zk"
)

func main() {
	servers := flag.String("zookeeper", "127.0.0.1:2181", "ZooKeeper servers, comma-separated")
	timeout := flag.Duration("timeout", 30*time.Second, "how long the election may take")
	flag.Parse()
	log.SetFlags(0)

	if err := checkLinked(); err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	leader, err := elect(ctx, strings.Split(*servers, ","))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("leader: %s\n", leader)
}

// checkLinked reads the build info: the zk module linked must be our fork, never upstream.
func checkLinked() error {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return errors.New("no build info")
	}
	var zk string
	for _, d := range bi.Deps {
		switch d.Path {
		case upstream:
			return fmt.Errorf("linked %s@%s: election's fixes of it are not there", upstream, d.Version)
		case fork:
			zk = d.Version
			if d.Replace != nil {
				return fmt.Errorf("%s is replaced by %s: not what a user gets", fork, d.Replace.Path)
			}
		}
	}
	if zk == "" {
		return fmt.Errorf("%s is not linked", fork)
	}
	fmt.Printf("linked: %s@%s\n", fork, zk)
	return nil
}

// elect runs three candidates under a root of their own until each sees the same single leader.
func elect(ctx context.Context, servers []string) (string, error) {
	var raw [6]byte
	_, _ = rand.Read(raw[:])
	root := "/zkv-consumer-" + hex.EncodeToString(raw[:])
	var cands []*election.Candidate
	defer func() {
		for _, c := range cands {
			_ = c.Close()
		}
	}()
	for i := range 3 {
		sess, err := election.DialContext(ctx, servers, 4*time.Second, election.WithoutEvents())
		if err != nil {
			return "", fmt.Errorf("dial: %w", err)
		}
		defer sess.Close()
		c, err := election.New(election.Config{
			Session: sess, Root: root, ID: fmt.Sprintf("c%d", i),
		})
		if err != nil {
			return "", err
		}
		cands = append(cands, c)
		if err := c.Join(ctx); err != nil {
			return "", fmt.Errorf("join c%d: %w", i, err)
		}
	}
	for {
		leader, err := agreed(cands)
		if err == nil {
			return leader, nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("no single leader: %w (%w)", err, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// agreed returns the leader's ID when exactly one candidate leads and all three name it.
func agreed(cands []*election.Candidate) (string, error) {
	var leaders []string
	seen := map[string]bool{}
	for _, c := range cands {
		v := c.View()
		if v.IsLeader {
			leaders = append(leaders, v.Self.ID)
		}
		seen[v.Leader.ID] = true
	}
	if len(leaders) != 1 {
		return "", fmt.Errorf("%d candidates lead: %v", len(leaders), leaders)
	}
	if len(seen) != 1 || !seen[leaders[0]] {
		return "", fmt.Errorf("candidates name different leaders: %v", seen)
	}
	return leaders[0], nil
}
