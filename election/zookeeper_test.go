package election

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zkv-dev/zkv/zk"
)

// TestRealZooKeeper runs three candidates against the ZooKeeper at $ZK_ADDR
// ("host:port[,host:port...]"): one leads, all agree, and when the leader
// closes (and later when the new one's session is closed outright) another
// takes over.
func TestRealZooKeeper(t *testing.T) {
	addr := os.Getenv("ZK_ADDR")
	if addr == "" {
		t.Skip("ZK_ADDR not set")
	}
	servers := strings.Split(addr, ",")
	var raw [6]byte
	rand.Read(raw[:])
	root := "/zkv-election-test-" + hex.EncodeToString(raw[:])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	type node struct {
		sess *Session
		c    *Candidate
	}
	var nodes []*node
	t.Cleanup(func() { cleanTree(t, servers, root) }) // runs after the candidates close
	for _, id := range []string{"a", "b", "c"} {
		logger, _ := testLogger(t)
		sess, err := DialContext(ctx, servers, 2*time.Second, WithLogger(logger), WithDigestAuth("zkv", "test"), WithoutEvents())
		if err != nil {
			t.Fatal(err)
		}
		c, err := New(Config{Session: sess, Root: root, ID: id,
			Address: id + ":1", ACL: DigestACL("zkv", "test"), Logger: logger})
		if err != nil {
			t.Fatal(err)
		}
		n := &node{sess: sess, c: c}
		nodes = append(nodes, n)
		t.Cleanup(func() {
			n.c.Close()
			n.sess.Close()
		})
		if err := c.Join(ctx); err != nil {
			t.Fatalf("join %s: %v", id, err)
		}
	}
	agree := func(live []*node) *node {
		t.Helper()
		var leader *node
		waitFor(t, "one agreed leader", func() bool {
			leader = nil
			for _, n := range live {
				if n.c.IsLeader() {
					if leader != nil {
						t.Fatal("two leaders")
					}
					leader = n
				}
			}
			if leader == nil {
				return false
			}
			want := leader.c.View()
			for _, n := range live {
				if v := n.c.View(); v.Leader.Node != want.Self.Node || v.Epoch != want.Epoch {
					return false
				}
			}
			return true
		})
		return leader
	}

	first := agree(nodes)
	if first != nodes[0] {
		t.Fatalf("leader %s, want a (smallest sequence)", first.c.cfg.ID)
	}
	e1 := first.c.View().Epoch
	members, err := nodes[2].c.Members(ctx)
	if err != nil || len(members) != 3 || members[0].ID != "a" {
		t.Fatalf("members %+v, %v", members, err)
	}

	// Graceful failover: the leader closes, its successor leads at once.
	start := time.Now()
	first.c.Close()
	second := agree(nodes[1:])
	t.Logf("graceful failover in %v", time.Since(start))
	if second != nodes[1] || second.c.View().Epoch <= e1 {
		t.Fatalf("after close: leader %s epoch %d (was %d)", second.c.cfg.ID, second.c.View().Epoch, e1)
	}

	// Crash-like failover: the leader's session ends without Resign.
	second.sess.Close()
	third := agree(nodes[2:])
	if third != nodes[2] {
		t.Fatal("c does not lead")
	}
	if err := second.c.Join(ctx); !errors.Is(err, ErrNoSession) {
		t.Fatalf("join on a closed session: %v", err)
	}
}

// cleanTree deletes what the test left under root.
func cleanTree(t *testing.T, servers []string, root string) {
	conn, _, err := zk.Connect(servers, 2*time.Second, zk.WithLogger(zkLogger{discardLogger()}))
	if err != nil {
		t.Log(err)
		return
	}
	defer conn.Close()
	if err := conn.AddAuth("digest", []byte("zkv:test")); err != nil {
		t.Log(err)
		return
	}
	kids, _, _ := conn.Children(root + "/election")
	for _, k := range kids {
		conn.Delete(root+"/election/"+k, -1)
	}
	conn.Delete(root+"/election", -1)
	conn.Delete(root, -1)
}

// partition is a dialer whose connections the test can cut.
type partition struct {
	mu    sync.Mutex
	down  bool
	conns []net.Conn
}

func (p *partition) dial(network, address string, timeout time.Duration) (net.Conn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.down {
		return nil, errors.New("test partition")
	}
	conn, err := net.DialTimeout(network, address, timeout)
	if err == nil {
		p.conns = append(p.conns, conn)
	}
	return conn, err
}

func (p *partition) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func (p *partition) heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = false
}

// TestRealZooKeeperPartition cuts the leader off ZooKeeper: it must step
// down at once, the other candidate must take over once the session
// expires, and on healing the old leader must find its session expired and
// register again with a new node.
func TestRealZooKeeperPartition(t *testing.T) {
	addr := os.Getenv("ZK_ADDR")
	if addr == "" {
		t.Skip("ZK_ADDR not set")
	}
	servers := strings.Split(addr, ",")
	var raw [6]byte
	rand.Read(raw[:])
	root := "/zkv-election-test-" + hex.EncodeToString(raw[:])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	t.Cleanup(func() { cleanTree(t, servers, root) })

	var part partition
	mk := func(id string, opts ...DialOption) *Candidate {
		logger, _ := testLogger(t)
		sess, err := DialContext(ctx, servers, time.Second,
			append(opts, WithLogger(logger), WithDigestAuth("zkv", "test"))...)
		if err != nil {
			t.Fatal(err)
		}
		c, err := New(Config{Conn: sess.Conn, Events: sess.Events, Root: root, ID: id,
			ACL: DigestACL("zkv", "test"), Logger: logger})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			c.Close()
			sess.Close()
		})
		return c
	}
	a := mk("a", WithZKOptions(zk.WithDialer(part.dial)))
	if _, err := a.Campaign(ctx); err != nil {
		t.Fatal(err)
	}
	b := mk("b")
	if err := b.Join(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "b to follow a", func() bool { return b.View().Leader.ID == "a" })
	lctx, _ := a.Leading()
	old := a.View().Self.Node

	part.cut()
	waitFor(t, "a to step down", func() bool { return !a.IsLeader() && lctx.Err() != nil })
	// The session timeout asked for is 1s, but ZooKeeper raises it to at least
	// 2 x tickTime (4s with the default 2s tick).
	waitWithin(t, 15*time.Second, "b to lead after a's session expired", b.IsLeader)
	part.heal()
	waitWithin(t, 15*time.Second, "a to follow b on a new node", func() bool {
		v := a.View()
		return v.Connected && v.Leader.ID == "b" && v.Self.Node != "" && v.Self.Node != old
	})
	if a.IsLeader() {
		t.Fatal("two leaders")
	}
}
