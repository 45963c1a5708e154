package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// uiDeadline is how soon after the cluster agrees on a new leader the open page must show
// it, without a reload: the functional bound for a page that polls twice a second.
const uiDeadline = 2 * time.Second

// browserPath finds a Chromium: $ZKV_CHROMIUM, else chromium (Debian's package, installed by
// scripts/prepare.sh), chromium-browser or google-chrome on PATH. Without one the test skips,
// except under CI=true, where a missing browser is a failure: CI must run this test.
func browserPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("ZKV_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("no chromium on PATH (CI=true): scripts/prepare.sh installs Debian's chromium package; the browser test must run in CI")
	}
	t.Skip("no chromium on PATH: install Debian's chromium package (scripts/prepare.sh does, as root) or set ZKV_CHROMIUM to run the browser test")
	return ""
}

// browser starts a headless Chromium for t, stopped when t ends.
func browser(ctx context.Context, t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browserPath(t)),
		chromedp.NoSandbox, // tests run as root, where Chromium's sandbox refuses to start
		chromedp.DisableGPU,
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
	)
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	bctx, bcancel := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	// Start the browser now, so a failure to start is reported as such.
	if err := chromedp.Do(bctx); err != nil {
		bcancel()
		acancel()
		t.Fatalf("start chromium: %v", err)
	}
	t.Cleanup(func() {
		_ = chromedp.Cancel(bctx) // closes the browser and waits for it
		bcancel()
		acancel()
	})
	return bctx
}

// pageLeader reads the leader address the page shows (#leader's data-leader).
func pageLeader(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("leader").dataset.leader`))
}

// TestUIFollowsFailover opens /ui of a follower of a real cluster in headless Chromium: the
// page shows the leader and every member; after the leader is killed (SIGKILL) and the
// cluster has agreed on a successor, the same page, not reloaded, shows the successor
// within uiDeadline, and the change in its history of leader changes.
func TestUIFollowsFailover(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	bctx := browser(ctx, t)
	zc := startCluster(ctx, t)
	leader := zc.members(ctx, 3, 30*time.Second)
	var page string
	for _, n := range zc.others(leader) {
		page = n.Addr()
		break
	}
	url := "http://" + page + "/ui"
	if err := chromedp.Do(bctx, chromedp.Navigate(url), chromedp.WaitVisible(chromedp.ID("members"))); err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	eventually(ctx, t, 10*time.Second, "the page to show the leader and three reachable members", func(context.Context) error {
		got, err := pageLeader(bctx)
		if err != nil {
			return err
		}
		if got != leader.Addr() {
			return fmt.Errorf("page shows leader %q, want %s", got, leader.Addr())
		}
		rows, err := chromedp.Run(bctx, chromedp.Evaluate[int](
			`document.querySelectorAll('#members tbody tr[data-role="leader"], #members tbody tr[data-role="follower"]').length`))
		if err != nil {
			return err
		}
		if rows != 3 {
			return fmt.Errorf("page lists %d reachable members, want 3", rows)
		}
		return nil
	})
	// A mark in the page's window: it survives only if the page is not reloaded.
	if err := chromedp.Do(bctx, chromedp.Evaluate[chromedp.Void](`window.zkvMark = "kept"`)); err != nil {
		t.Fatal(err)
	}

	if err := leader.Kill(); err != nil {
		t.Fatalf("kill the leader %s: %v", leader.Addr(), err)
	}
	successor := zc.leader(ctx, 30*time.Second)
	agreed := time.Now()
	var err error
	if successor == leader {
		t.Fatalf("the killed leader %s still leads", leader.Addr())
	}
	err = waitFor(ctx, uiDeadline, func(context.Context) error {
		got, err := pageLeader(bctx)
		if err != nil {
			return err
		}
		if got != successor.Addr() {
			return fmt.Errorf("page shows leader %q, want %s", got, successor.Addr())
		}
		return nil
	})
	if err != nil {
		t.Fatalf("the page did not show the new leader within %v of the cluster agreeing: %v", uiDeadline, err)
	}
	t.Logf("page showed the new leader %s %v after the cluster agreed on it", successor.Addr(), time.Since(agreed).Round(time.Millisecond))
	mark, err := chromedp.Run(bctx, chromedp.Evaluate[string](`String(window.zkvMark)`))
	if err != nil {
		t.Fatal(err)
	}
	lastTo, err := chromedp.Run(bctx, chromedp.Evaluate[string](
		`document.querySelector("#changes tbody tr:first-child td:nth-child(3)").textContent`))
	if err != nil {
		t.Fatal(err)
	}
	if mark != "kept" {
		t.Fatalf("the page was reloaded (mark %q)", mark)
	}
	if lastTo != successor.Addr() {
		t.Fatalf("the newest leader change shown is to %q, want %s", lastTo, successor.Addr())
	}
}
