package election

import (
	"bufio"
	"os"
	"strings"
	"testing"
)

// A replace directive applies only when this module is the main module: whoever imports
// election gets what its require lines name, not what a replace points at. So every replace
// here must stand for one of our own modules, which are published (tagged) with the same code;
// a replace of someone else's path would mean users link code our tests never ran.
func TestReplacesOnlyOurModules(t *testing.T) {
	f, err := os.Open("go.mod")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const ours = "github.com/zkv-dev/zkv/"
	inBlock := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		var spec string
		switch {
		case line == "replace (":
			inBlock = true
			continue
		case inBlock && line == ")":
			inBlock = false
			continue
		case inBlock:
			spec = line
		case strings.HasPrefix(line, "replace "):
			spec = strings.TrimPrefix(line, "replace ")
		default:
			continue
		}
		if spec == "" || strings.HasPrefix(spec, "//") {
			continue
		}
		if !strings.HasPrefix(spec, ours) {
			t.Errorf("go.mod replaces %q: users of election would not get that; fork it under %s instead", spec, ours)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
}

// Users get the zk that election's require line names, so it must be a version a proxy can
// serve: v0.0.0 is the in-repository placeholder, which no tag ever makes (see
// docs/releasing.md). The integration module's consumer test packs zk at this version.
func TestRequiresPublishableVersions(t *testing.T) {
	b, err := os.ReadFile("go.mod")
	if err != nil {
		t.Fatal(err)
	}
	const ours = "github.com/zkv-dev/zkv/"
	found := false
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(strings.TrimPrefix(strings.TrimSpace(line), "require "))
		if len(f) < 2 || !strings.HasPrefix(f[0], ours) {
			continue
		}
		found = true
		if f[1] == "v0.0.0" {
			t.Errorf("go.mod requires %s at the placeholder v0.0.0: users could not fetch it", f[0])
		}
	}
	if !found {
		t.Errorf("go.mod requires none of %s*: is zk still required?", ours)
	}
}
