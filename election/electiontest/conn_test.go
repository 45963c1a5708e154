package electiontest_test

import (
	"errors"
	"testing"
	"time"

	"github.com/zkv-dev/zkv/election/electiontest"
	"github.com/zkv-dev/zkv/zk"
)

// nextEvent returns the next session event, failing t after a second.
func nextEvent(t *testing.T, c *electiontest.Conn) zk.Event {
	t.Helper()
	select {
	case ev := <-c.Events():
		return ev
	case <-time.After(time.Second):
		t.Fatal("no event")
		return zk.Event{}
	}
}

func wantStates(t *testing.T, c *electiontest.Conn, states ...zk.State) {
	t.Helper()
	for _, want := range states {
		for {
			ev := nextEvent(t, c)
			if ev.Type != zk.EventSession {
				continue // EventNotWatching
			}
			if ev.State != want {
				t.Fatalf("event %v, want %v", ev.State, want)
			}
			break
		}
	}
}

func TestLostReplyPartitionAndExpiry(t *testing.T) {
	srv := electiontest.NewServer(electiontest.Options{SessionTimeout: 100 * time.Millisecond})
	c := srv.Connect()
	defer c.Close()
	wantStates(t, c, zk.StateHasSession)
	sid := c.SessionID()

	c.LoseNextReply()
	if _, err := c.Create("/n", nil, zk.FlagEphemeral, nil); !errors.Is(err, zk.ErrConnectionClosed) {
		t.Fatalf("create with a lost reply: %v", err)
	}
	if _, ok := srv.Get("/n"); !ok {
		t.Fatal("the create did not take effect")
	}
	wantStates(t, c, zk.StateDisconnected)
	if _, _, err := c.Get("/n"); !errors.Is(err, zk.ErrConnectionClosed) {
		t.Fatalf("get while partitioned: %v", err)
	}
	c.Heal() // in time: same session
	wantStates(t, c, zk.StateHasSession)
	if c.SessionID() != sid {
		t.Fatal("a new session after a short partition")
	}

	c.Partition()
	wantStates(t, c, zk.StateDisconnected)
	deadline := time.Now().Add(5 * time.Second)
	for _, ok := srv.Get("/n"); ok; _, ok = srv.Get("/n") {
		if time.Now().After(deadline) {
			t.Fatal("the server never expired the partitioned session")
		}
		time.Sleep(time.Millisecond)
	}
	c.Heal()
	wantStates(t, c, zk.StateExpired, zk.StateHasSession)
	if c.SessionID() == sid || c.State() != zk.StateHasSession {
		t.Fatalf("after expiry: session %x, state %v", c.SessionID(), c.State())
	}
}

func TestPauseHangsCallsUntilResume(t *testing.T) {
	srv := electiontest.NewServer(electiontest.Options{SessionTimeout: time.Minute})
	c := srv.Connect()
	defer c.Close()
	if _, err := c.Create("/n", nil, 0, nil); err != nil {
		t.Fatal(err)
	}
	c.Pause()
	if c.State() != zk.StateHasSession {
		t.Fatal("a paused client must still believe it has its session")
	}
	done := make(chan error, 1)
	go func() {
		_, _, err := c.Get("/n")
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("a call returned during the pause: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	c.Resume()
	if err := <-done; err != nil {
		t.Fatalf("the call after resume: %v", err)
	}
}

func TestWatchesFireAndEndWithSession(t *testing.T) {
	srv := electiontest.NewServer(electiontest.Options{})
	a, b := srv.Connect(), srv.Connect()
	defer a.Close()
	defer b.Close()
	if _, err := a.Create("/e", nil, zk.FlagEphemeral, nil); err != nil {
		t.Fatal(err)
	}
	_, _, w, err := b.GetW("/e")
	if err != nil {
		t.Fatal(err)
	}
	_, _, kids, err := b.ChildrenW("/")
	if err != nil {
		t.Fatal(err)
	}
	a.Expire() // a's ephemeral node goes
	if ev := <-w; ev.Type != zk.EventNodeDeleted {
		t.Fatalf("data watch: %+v", ev)
	}
	if ev := <-kids; ev.Type != zk.EventNodeChildrenChanged {
		t.Fatalf("children watch: %+v", ev)
	}
	_, _, w2, err := b.ExistsW("/e")
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	if ev := <-w2; ev.Type != zk.EventNotWatching {
		t.Fatalf("watch of a closed session: %+v", ev)
	}
	for range b.Events() { // closed by Close
	}
}
