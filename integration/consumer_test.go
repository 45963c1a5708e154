package integration

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zkv-dev/zkv/integration/internal/modproxy"
)

const (
	zkModule       = "github.com/zkv-dev/zkv/zk"
	electionModule = "github.com/zkv-dev/zkv/election"
)

// TestConsumerFromModuleProxy builds election as a user outside the repository gets it: zk and
// election are packed into a file module proxy, at the versions their dependents' go.mod files
// require (election's require of zk; testdata/consumer's require of election), and
// testdata/consumer, a module of its own without replace directives, is built from that proxy
// with no workspace and the race detector. Its module graph must hold our zk fork and not
// upstream go-zookeeper; it then elects one leader among three candidates on a real ZooKeeper.
// What a replace or go.work hides (a require of the placeholder v0.0.0, a fix that lives only
// in a replaced module) fails here.
func TestConsumerFromModuleProxy(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	zkVersion, err := modproxy.Required("../election", zkModule)
	if err != nil {
		t.Fatal(err)
	}
	if zkVersion == "v0.0.0" {
		// A proxy could serve it, but no tag ever makes it: users of a release could not build.
		t.Fatalf("election requires %s at the placeholder v0.0.0; see docs/releasing.md", zkModule)
	}
	c := newConsumer(t, modproxy.Module{Path: zkModule, Version: zkVersion, Dir: "../zk"})

	began := time.Now()
	out, err := c.goCmd(ctx, "build", "-race", "-o", "zkv-consumer", ".")
	if err != nil {
		t.Fatalf("go build of the consumer from the module proxy: %v\n%s", err, out)
	}
	t.Logf("built from the proxy in %v", time.Since(began).Round(time.Millisecond))
	out, err = c.goCmd(ctx, "list", "-m", "all")
	if err != nil {
		t.Fatalf("go list -m all: %v\n%s", err, out)
	}
	t.Logf("consumer's modules:\n%s", out)
	mods := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if f := strings.Fields(line); len(f) >= 2 {
			mods[f[0]] = strings.Join(f[1:], " ")
		}
	}
	if v := mods[zkModule]; v != zkVersion {
		t.Errorf("consumer links %s at %q, want %s (election's require)", zkModule, v, zkVersion)
	}
	if v, ok := mods["github.com/go-zookeeper/zk"]; ok {
		t.Errorf("consumer's module graph holds upstream github.com/go-zookeeper/zk %s", v)
	}
	if t.Failed() {
		return
	}

	z := sharedEnsemble(ctx, t)
	run := exec.CommandContext(ctx, filepath.Join(c.dir, "zkv-consumer"),
		"-zookeeper", strings.Join(z.Servers(), ","), "-timeout", "60s")
	b, err := run.CombinedOutput()
	t.Logf("zkv-consumer:\n%s", b)
	if err != nil {
		t.Fatalf("zkv-consumer: %v", err)
	}
	if !strings.Contains(string(b), "linked: "+zkModule+"@"+zkVersion) || !strings.Contains(string(b), "leader: c") {
		t.Fatalf("zkv-consumer's output lacks the linked zk or the leader")
	}
}

// TestConsumerNeedsZKFromProxy shows the consumer test can fail: with a proxy that serves
// election but not zk, the consumer cannot build, because nothing of the repository (no
// go.work, no replace ../zk) reaches it.
func TestConsumerNeedsZKFromProxy(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := newConsumer(t)
	out, err := c.goCmd(ctx, "build", "-o", "zkv-consumer", ".")
	if err == nil {
		t.Fatalf("the consumer built from a proxy without %s:\n%s", zkModule, out)
	}
	if !strings.Contains(out, zkModule) {
		t.Fatalf("the build failed, but not for want of %s: %v\n%s", zkModule, err, out)
	}
	t.Logf("as expected, the build failed:\n%s", out)
}

// consumer is a copy of testdata/consumer in a temporary directory with a proxy of its own.
type consumer struct {
	t     testing.TB
	dir   string
	proxy string
	cache string // GOMODCACHE: fresh, so nothing fetched by an earlier run is reused
}

// newConsumer packs election, at the version testdata/consumer requires, and extra into a new
// proxy, and copies testdata/consumer next to it.
func newConsumer(t *testing.T, extra ...modproxy.Module) *consumer {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		t.Skipf("no go command: %v", err)
	}
	electionVersion, err := modproxy.Required("testdata/consumer", electionModule)
	if err != nil {
		t.Fatal(err)
	}
	base := t.TempDir()
	c := &consumer{t: t, dir: filepath.Join(base, "consumer"), proxy: filepath.Join(base, "proxy"), cache: filepath.Join(base, "modcache")}
	mods := append([]modproxy.Module{{Path: electionModule, Version: electionVersion, Dir: "../election"}}, extra...)
	if err := modproxy.Write(c.proxy, mods...); err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(c.dir, os.DirFS("testdata/consumer")); err != nil {
		t.Fatal(err)
	}
	return c
}

// goCmd runs the go command in the consumer's directory as an outsider: no workspace, modules
// from the proxy only (third-party ones, such as election's goleak, from this machine's module
// cache, read as a proxy, so no network is needed), no checksum database for ours.
func (c *consumer) goCmd(ctx context.Context, args ...string) (string, error) {
	out, err := exec.Command("go", "env", "GOMODCACHE").Output()
	if err != nil {
		return "", err
	}
	download := filepath.Join(strings.TrimSpace(string(out)), "cache", "download")
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = c.dir
	cmd.Env = append(os.Environ(),
		"GOWORK=off",
		"GOFLAGS=-mod=mod -modcacherw",
		"GOPROXY=file://"+filepath.ToSlash(c.proxy)+",file://"+filepath.ToSlash(download),
		"GOMODCACHE="+c.cache,
		"GONOSUMDB=github.com/zkv-dev/zkv",
		"GOSUMDB=off", // the machine's module cache, read as a proxy, has no checksum database
		"GONOPROXY=", "GOPRIVATE=",
		"GOTOOLCHAIN=local",
	)
	b, err := cmd.CombinedOutput()
	return string(b), err
}
