package launcher

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/zkv-dev/zkv/zk"
)

// These tests start real ZooKeeper nodes, in docker (the image in $ZK_IMAGE, built by
// scripts/prepare.sh) and from Debian's jars. A mode whose prerequisites are missing is
// skipped with the reason (a failure under CI=true for local, ZKV_REQUIRE_DOCKER=1 for docker);
// -short skips them all.

const realTick = 300 * time.Millisecond

func requireMode(t *testing.T, m Mode) Options {
	t.Helper()
	if testing.Short() {
		t.Skip("starts real ZooKeeper nodes; skipped with -short")
	}
	o, err := Options{Mode: m, TickTime: realTick, LogDir: t.TempDir(), Logger: testLogger(t)}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := selectMode(ctx, o, systemProbes); err != nil {
		// CI prepares both (scripts/prepare.sh, .ci/run): there a missing mode is a failure.
		if (m == ModeDocker && os.Getenv("ZKV_REQUIRE_DOCKER") == "1") || (m == ModeLocal && os.Getenv("CI") == "true") {
			t.Fatalf("mode %s unavailable in CI: %v", m, err)
		}
		t.Skipf("mode %s unavailable: %v", m, err)
	}
	return o
}

func startReal(t *testing.T, ctx context.Context, o Options) *ZooKeeper {
	t.Helper()
	began := time.Now()
	z, err := Start(ctx, o)
	if err != nil {
		t.Fatalf("Start %s x%d: %v", o.Mode, o.Nodes, err)
	}
	t.Logf("%s: %d node(s) serving after %v: %v", z.Mode(), o.Nodes, time.Since(began).Round(time.Millisecond), z.Servers())
	t.Cleanup(func() {
		if err := z.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := z.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
		for i := range o.Nodes {
			if _, err := serving(context.Background(), z.Servers()[i]); err == nil {
				t.Errorf("node %d still serves after Close", i)
			}
		}
	})
	if z.Mode() != o.Mode {
		t.Fatalf("mode %q, asked for %q", z.Mode(), o.Mode)
	}
	if len(z.Servers()) != o.Nodes {
		t.Fatalf("servers %v for %d nodes", z.Servers(), o.Nodes)
	}
	return z
}

// checkChildren lists / (which always holds "zookeeper"), retrying until ctx ends: after a
// failure the ensemble may need an election first.
func checkChildren(t *testing.T, ctx context.Context, z *ZooKeeper) {
	t.Helper()
	err := poll(ctx, "list /", func(ctx context.Context) error {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		kids, err := z.Children(cctx, "/")
		if err != nil {
			return err
		}
		if !slices.Contains(kids, "zookeeper") {
			return errors.New("/ lacks zookeeper: " + strings.Join(kids, ","))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func checkLog(t *testing.T, o Options, node int) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(o.LogDir, "zookeeper-"+itoa(node+1)+".log"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "QuorumPeer") && !strings.Contains(string(b), "ZooKeeperServer") {
		t.Fatalf("node %d log does not look like ZooKeeper's:\n%.2000s", node, b)
	}
}

func testSingle(t *testing.T, m Mode) {
	o := requireMode(t, m)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	z := startReal(t, ctx, o)
	checkChildren(t, ctx, z)
	if mode, err := serving(ctx, z.Servers()[0]); err != nil || mode != "standalone" {
		t.Fatalf("srvr: %q, %v", mode, err)
	}

	if err := z.Stop(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if err := alive(ctx, z.Servers()[0]); err == nil {
		t.Fatal("node answers after Stop")
	}
	if err := z.Restart(ctx, 0); err != nil {
		t.Fatal(err)
	}
	checkChildren(t, ctx, z)

	if err := z.Pause(ctx, 0); err != nil {
		t.Fatal(err)
	}
	short, cancelShort := context.WithTimeout(ctx, time.Second)
	_, err := z.Children(short, "/")
	cancelShort()
	if err == nil {
		t.Fatal("a paused node answered")
	}
	if err := z.Resume(ctx, 0); err != nil {
		t.Fatal(err)
	}
	checkChildren(t, ctx, z)

	if err := z.Kill(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if err := z.Restart(ctx, 0); err != nil {
		t.Fatal(err)
	}
	checkChildren(t, ctx, z)
	if err := z.Kill(ctx, 1); !errors.Is(err, ErrNoSuchNode) {
		t.Fatalf("Kill(1) of one node: %v", err)
	}
	checkLog(t, o, 0)
}

func testEnsemble(t *testing.T, m Mode) {
	o := requireMode(t, m)
	o.Nodes = 3
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	z := startReal(t, ctx, o)
	checkChildren(t, ctx, z)

	leader, modes := -1, []string{}
	for i, s := range z.Servers() {
		mode, err := serving(ctx, s)
		if err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
		modes = append(modes, mode)
		if mode == "leader" {
			leader = i
		}
	}
	if leader < 0 {
		t.Fatalf("no leader among %v", modes)
	}

	// Crash the leader: the other two elect a new one and keep serving.
	if err := z.Kill(ctx, leader); err != nil {
		t.Fatal(err)
	}
	checkChildren(t, ctx, z)
	if err := z.Restart(ctx, leader); err != nil {
		t.Fatal(err)
	}
	if mode, err := serving(ctx, z.Servers()[leader]); err != nil {
		t.Fatalf("restarted node: %q, %v", mode, err)
	}

	// Freeze a node: the other two keep a quorum; once thawed it serves again.
	frozen := (leader + 1) % 3
	if err := z.Pause(ctx, frozen); err != nil {
		t.Fatal(err)
	}
	short, cancelShort := context.WithTimeout(ctx, time.Second)
	if _, err := serving(short, z.Servers()[frozen]); err == nil {
		t.Fatal("a paused node answered srvr")
	}
	cancelShort()
	checkChildren(t, ctx, z)
	if err := z.Resume(ctx, frozen); err != nil {
		t.Fatal(err)
	}
	if err := poll(ctx, "resumed node serves", func(ctx context.Context) error {
		_, err := serving(ctx, z.Servers()[frozen])
		return err
	}); err != nil {
		t.Fatal(err)
	}

	// Lose the quorum: the survivor stops serving; Restart of one brings it back.
	a, b := (leader+1)%3, (leader+2)%3
	for _, i := range []int{a, b} {
		if err := z.Kill(ctx, i); err != nil {
			t.Fatal(err)
		}
	}
	if err := poll(ctx, "survivor stops serving", func(ctx context.Context) error {
		if _, err := serving(ctx, z.Servers()[leader]); err == nil {
			return errors.New("still serves")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := z.Restart(ctx, a); err != nil {
		t.Fatal(err)
	}
	checkChildren(t, ctx, z)

	// Lose every node's data (one node, b, is still stopped): the ensemble comes back
	// empty and serving, a znode created before is gone.
	if err := withSession(ctx, z.Servers(), z.logger, "create /before-wipe", func(conn *zk.Conn) error {
		_, err := conn.Create("/before-wipe", nil, 0, zk.WorldACL(zk.PermAll))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := z.Wipe(ctx); err != nil {
		t.Fatal(err)
	}
	checkChildren(t, ctx, z)
	kids, err := z.Children(ctx, "/")
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(kids, "before-wipe") {
		t.Fatalf("a znode survived the wipe: %v", kids)
	}
	for i := range 3 {
		if _, err := serving(ctx, z.Servers()[i]); err != nil {
			t.Fatalf("node %d after the wipe: %v", i, err)
		}
		checkLog(t, o, i)
	}
}

func TestLocalSingle(t *testing.T)   { testSingle(t, ModeLocal) }
func TestLocalEnsemble(t *testing.T) { testEnsemble(t, ModeLocal) }
func TestDockerSingle(t *testing.T)  { testSingle(t, ModeDocker) }
func TestDockerEnsemble(t *testing.T) {
	testEnsemble(t, ModeDocker)
}
