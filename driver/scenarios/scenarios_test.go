package scenarios_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/zkv-dev/zkv/driver/scenarios"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestAddrsModeRunsScenarioOneAndSkipsTheRest(t *testing.T) {
	f := newFakeCluster(t, 3)
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rep, err := scenarios.Run(ctx, scenarios.Config{Addrs: f.addrs(), Out: &out, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	text := out.String()
	t.Log("\n" + text)
	pass, fail, skip := rep.Counts()
	if pass != 3 || fail != 0 || skip != 9 || !rep.OK() {
		t.Fatalf("counts %d/%d/%d, OK %v", pass, fail, skip, rep.OK())
	}
	if rep.Leader != f.addr(0) {
		t.Fatalf("leader %q, want %q", rep.Leader, f.addr(0))
	}
	for _, want := range []string{
		"-addrs mode", "Scenario 1: add and read", "znode /election/server0000000000, epoch 5",
		"PASS a write through each server is routed to the leader", "SKIP stop the leader",
		"Summary", "every check held",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("transcript lacks %q", want)
		}
	}
	if strings.Contains(text, "\x1b[") {
		t.Error("ANSI escapes without Color")
	}
}

func TestLaggingServerFailsTheReadCheck(t *testing.T) {
	f := newFakeCluster(t, 3)
	f.lagging[2] = true
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rep, err := scenarios.Run(ctx, scenarios.Config{Addrs: f.addrs(), Out: &out, Color: true, ConvergeTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() {
		t.Fatal("OK with a server that never reads the writes")
	}
	var c scenarios.Check
	for _, c = range rep.Checks {
		if c.ID == "1.3" {
			break
		}
	}
	if c.Result != scenarios.Fail || !strings.Contains(c.Detail, f.addr(2)+" reads") || !strings.Contains(c.Detail, "found=false") {
		t.Fatalf("1.3 = %+v", c)
	}
	if !strings.Contains(out.String(), "\x1b[31m") {
		t.Fatal("no red FAIL with Color")
	}
}

func TestNoLeaderFailsEveryLaterStep(t *testing.T) {
	f := newFakeCluster(t, 1)
	f.srvs[0].Close() // nothing answers
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rep, err := scenarios.Run(ctx, scenarios.Config{Addrs: f.addrs(), Out: &out, ElectionTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() || rep.Checks[0].Result != scenarios.Fail || rep.Checks[1].Detail != "not run: no leader was elected" {
		t.Fatalf("checks %+v", rep.Checks[:2])
	}
}

func TestConfigValidation(t *testing.T) {
	for _, cfg := range []scenarios.Config{{}, {Addrs: []string{"nohostport"}}} {
		if _, err := scenarios.Run(context.Background(), cfg); !errors.Is(err, scenarios.ErrInvalidConfig) {
			t.Errorf("Run(%+v) = %v, want ErrInvalidConfig", cfg, err)
		}
	}
}

func TestSummaryTable(t *testing.T) {
	rep := scenarios.Report{
		Checks: []scenarios.Check{
			{ID: "1.1", Name: "short", Result: scenarios.Pass, Detail: "fine", Took: 1234567 * time.Nanosecond},
			{ID: "2.10", Name: "a longer expectation", Result: scenarios.Fail, Detail: "first line\nsecond line"},
			{ID: "3.1", Name: "skipped one", Result: scenarios.Skip, Detail: "-addrs mode"},
		},
		Timings: []scenarios.Timing{{Name: scenarios.TimingElection, D: 2183456789}},
		Elapsed: 5 * time.Second,
	}
	var plain, color bytes.Buffer
	rep.WriteSummary(&plain, false)
	rep.WriteSummary(&color, true)
	want := `Summary
  check  expectation           result  detail
  1.1    short                 PASS    fine [1.2ms]
  2.10   a longer expectation  FAIL    first line ...
  3.1    skipped one           SKIP    -addrs mode

Timings
  new leader agreed (from the signal)  2.183s

3 checks: 1 passed, 1 failed, 1 skipped in 5s: SOME CHECKS FAILED
`
	if plain.String() != want {
		t.Fatalf("plain summary:\n%s\nwant:\n%s", plain.String(), want)
	}
	stripped := ansi(color.String())
	if stripped != want || color.String() == want {
		t.Fatalf("coloured summary, escapes removed:\n%s", stripped)
	}
	if d, ok := rep.Timing(scenarios.TimingElection); !ok || d != 2183456789 {
		t.Fatal("Timing lookup")
	}
	if (scenarios.Report{}).OK() {
		t.Fatal("an empty report is not OK")
	}
}

// ansi removes ANSI SGR sequences.
func ansi(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == 0x1b {
			for i < len(s) && s[i] != 'm' {
				i++
			}
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
